#include "rebound/pipeline.hpp"

#include <gtest/gtest.h>

#include "rebound/testing/simulated_clock.hpp"
#include "test_types.hpp"

namespace {

using namespace std::chrono_literals;
using namespace rebound_test;
using rebound::stop_reason;

class PipelineTest : public ::testing::Test {
 protected:
  rebound::testing::simulated_clock clock_;
  std::shared_ptr<rebound::circuit_breaker> breaker_ = std::make_shared<rebound::circuit_breaker>(
      rebound::breaker_options{.failure_threshold = 3, .open_duration = 30s}, clock_);
  std::shared_ptr<rebound::token_bucket_budget> budget_ =
      std::make_shared<rebound::token_bucket_budget>();
  rebound::retry_policy policy_ = rebound::retry_policy{}
                                      .stop(rebound::stop::after_attempts(10))
                                      .backoff(rebound::backoff::constant(1s))
                                      .jitter(rebound::jitter::none())
                                      .clock(clock_)
                                      .budget(budget_);
};

TEST_F(PipelineTest, RetriesThroughTheBreaker) {
  const rebound::pipeline p(policy_, breaker_, 1min);
  int calls = 0;
  EXPECT_EQ(p.execute([&] {
    if (++calls < 3) throw not_found_error();
    return 9;
  }),
            9);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(breaker_->state(), rebound::breaker_state::closed);
}

TEST_F(PipelineTest, AnOpenCircuitEndsTheCallInsteadOfRetryingIntoIt) {
  const rebound::pipeline p(policy_, breaker_);
  int calls = 0;
  rebound::call_report report;
  EXPECT_THROW(p.execute(
                   [&] {
                     ++calls;
                     throw not_found_error();
                   },
                   {.report = &report}),
               rebound::circuit_open_error);
  EXPECT_EQ(calls, 3);  // the third failure opened the circuit; the fourth attempt was refused
  EXPECT_EQ(report.reason, stop_reason::overloaded);
  EXPECT_EQ(breaker_->state(), rebound::breaker_state::open);
  // A new call is refused at once, without reaching the dependency.
  EXPECT_THROW(p.execute([&] { return ++calls; }), rebound::circuit_open_error);
  EXPECT_EQ(calls, 3);
}

TEST_F(PipelineTest, PermanentErrorsDoNotTripTheBreaker) {
  const rebound::pipeline p(policy_.retry_on<not_found_error>(), breaker_);
  for (int i = 0; i < 10; ++i) {
    EXPECT_THROW(p.execute([] { throw forbidden_error(); }), forbidden_error);
  }
  EXPECT_EQ(breaker_->state(), rebound::breaker_state::closed);
}

TEST_F(PipelineTest, TheTotalTimeoutBoundsTheCall) {
  const rebound::pipeline p(policy_, nullptr, 2500ms);
  int calls = 0;
  rebound::call_report report;
  EXPECT_THROW(p.execute(
                   [&](const rebound::attempt& a) {
                     ++calls;
                     EXPECT_LE(a.remaining(), std::optional<rebound::duration>(2500ms));
                     throw not_found_error();
                   },
                   {.report = &report}),
               not_found_error);
  EXPECT_EQ(calls, 3);  // at 0s, 1s, 2s; a retry at 3s would pass the 2.5s deadline
  EXPECT_EQ(report.reason, stop_reason::time_exhausted);
  // The refused retry was not charged to the budget: two retries of 5 tokens.
  EXPECT_EQ(budget_->tokens(), 490);
}

TEST_F(PipelineTest, TheBudgetStillApplies) {
  auto small = std::make_shared<rebound::token_bucket_budget>(rebound::token_bucket_budget::options{
      .capacity = 10, .retry_cost = 5, .timeout_retry_cost = 10, .success_refund = 1});
  const rebound::pipeline p(policy_.budget(small));
  int calls = 0;
  rebound::call_report report;
  EXPECT_THROW(p.execute([&] { ++calls, throw not_found_error(); }, {.report = &report}),
               not_found_error);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(report.reason, stop_reason::budget_exhausted);
}

TEST_F(PipelineTest, ExpectedResultsCountForTheBreaker) {
  using R = result<int, api_error>;
  const rebound::pipeline p(policy_.stop(rebound::stop::after_attempts(1)), breaker_);
  for (int i = 0; i < 3; ++i) (void)p.execute([] { return R::failure({503}); });
  EXPECT_EQ(breaker_->state(), rebound::breaker_state::open);
}

}  // namespace
