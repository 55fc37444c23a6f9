#include "rebound/classify.hpp"

#include <gtest/gtest.h>

#include "test_types.hpp"

namespace {

using namespace std::chrono_literals;
using namespace rebound_test;
using rebound::classifier;
using rebound::verdict;
using rebound::verdict_kind;

template <class E>
std::exception_ptr make(E e) {
  return std::make_exception_ptr(std::move(e));
}

TEST(ClassifyTest, WithoutRulesEveryExceptionIsTransient) {
  const classifier c;
  EXPECT_EQ(c.classify_exception(make(forbidden_error{})).kind, verdict_kind::transient);
  EXPECT_EQ(c.classify_exception(make(42)).kind, verdict_kind::transient);
}

TEST(ClassifyTest, RetryOnListsTheTransientTypesAndTheRestIsPermanent) {
  const auto c = classifier{}.retry_on<not_found_error>();
  EXPECT_EQ(c.classify_exception(make(not_found_error{})), verdict::transient());
  EXPECT_EQ(c.classify_exception(make(forbidden_error{})), verdict::permanent());
  EXPECT_EQ(c.classify_exception(make(42)), verdict::permanent());
}

TEST(ClassifyTest, RetryOnMatchesDerivedTypes) {
  const auto c = classifier{}.retry_on<std::runtime_error>();
  EXPECT_TRUE(c.classify_exception(make(not_found_error{})).retryable());
  EXPECT_FALSE(c.classify_exception(make(std::logic_error("x"))).retryable());
}

TEST(ClassifyTest, PredicateOnTheTypedException) {
  const auto c = classifier{}.retry_if_exception([](const http_status_error& e) {
    if (e.status == 429) return verdict::transient_after(2s);
    if (e.status == 503) return verdict::overloaded();
    return e.status >= 500 ? verdict::transient() : verdict::permanent();
  });
  EXPECT_EQ(c.classify_exception(make(http_status_error(502))), verdict::transient());
  EXPECT_EQ(c.classify_exception(make(http_status_error(404))), verdict::permanent());
  EXPECT_EQ(c.classify_exception(make(http_status_error(429))), verdict::transient_after(2s));
  EXPECT_EQ(c.classify_exception(make(http_status_error(503))).kind, verdict_kind::overloaded);
}

TEST(ClassifyTest, FirstMatchingRuleWinsAndFalseMeansNotMine) {
  const auto c = classifier{}
                     .retry_if_exception([](const http_status_error& e) { return e.status == 502; })
                     .abort_on<std::runtime_error>();
  EXPECT_EQ(c.classify_exception(make(http_status_error(502))), verdict::transient());
  // 500: the predicate says false, so the next rule (abort_on) decides.
  EXPECT_EQ(c.classify_exception(make(http_status_error(500))), verdict::permanent());
}

TEST(ClassifyTest, PlainResultsAreSuccessUnlessARuleSaysOtherwise) {
  EXPECT_EQ(classifier{}.classify_result(5), verdict::success());
  const auto c = classifier{}.retry_if_result([](const int& v) { return v < 0; });
  EXPECT_EQ(c.classify_result(-1), verdict::transient());
  EXPECT_EQ(c.classify_result(3), verdict::success());
  // A rule for another type does not apply.
  EXPECT_EQ(c.classify_result(std::string("x")), verdict::success());
}

TEST(ClassifyTest, ExpectedErrorsWithoutRulesAreTransient) {
  using R = result<int, api_error>;
  const classifier c;
  EXPECT_EQ(c.classify_result(R(1)), verdict::success());
  EXPECT_EQ(c.classify_result(R::failure({503})), verdict::transient());
}

TEST(ClassifyTest, ExpectedErrorRulesDecideAndUnmatchedIsPermanent) {
  using R = result<int, api_error>;
  const auto c = classifier{}.retry_if_error([](const api_error& e) { return e.code == 503; });
  EXPECT_EQ(c.classify_result(R::failure({503})), verdict::transient());
  EXPECT_EQ(c.classify_result(R::failure({403})), verdict::permanent());
  EXPECT_EQ(c.classify_result(R(7)), verdict::success());
}

TEST(ClassifyTest, ExpectedValuesCanBeRejectedByResultRules) {
  using R = result<int, api_error>;
  const auto c = classifier{}.retry_if_result([](const int& v) { return v == 0; });
  EXPECT_EQ(c.classify_result(R(0)), verdict::transient());
  EXPECT_EQ(c.classify_result(R(1)), verdict::success());
}

TEST(ClassifyTest, CopiesDoNotShareAddedRules) {
  const auto base = classifier{}.retry_on<not_found_error>();
  const auto more = base.retry_on<forbidden_error>();
  EXPECT_FALSE(base.classify_exception(make(forbidden_error{})).retryable());
  EXPECT_TRUE(more.classify_exception(make(forbidden_error{})).retryable());
  EXPECT_EQ(base, base);
  EXPECT_NE(base, more);
}

TEST(ClassifyTest, NegativeServerDelayBecomesZero) {
  EXPECT_EQ(verdict::transient_after(-3s).retry_after, 0s);
  EXPECT_EQ(rebound::to_string(verdict_kind::overloaded), "overloaded");
}

}  // namespace
