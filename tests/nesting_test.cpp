// The nested-retry guard: one retry layer per logical call.
#include <gtest/gtest.h>

#include "rebound/retry.hpp"
#include "rebound/testing/simulated_clock.hpp"
#include "test_types.hpp"

namespace {

using namespace std::chrono_literals;
using namespace rebound_test;
using rebound::stop_reason;

class NestingTest : public ::testing::Test {
 protected:
  rebound::testing::simulated_clock clock_;
  // Scenario 000: the outer loop retries NotFound for 5 s...
  rebound::retry_policy outer_ = rebound::retry_policy{}
                                     .stop(rebound::stop::after_elapsed(5s))
                                     .backoff(rebound::backoff::exponential(500ms, 2.0, 3s))
                                     .jitter(rebound::jitter::none())
                                     .retry_on<not_found_error>()
                                     .clock(clock_);
  // ...around an inner 4-attempt loop that retries everything.
  rebound::retry_policy inner_ = rebound::retry_policy{}
                                     .stop(rebound::stop::after_attempts(4))
                                     .backoff(rebound::backoff::constant(100ms))
                                     .jitter(rebound::jitter::none())
                                     .clock(clock_);
};

TEST_F(NestingTest, ScenarioZeroNestedMakesAtMostTheOuterAttempts) {
  int calls = 0;
  rebound::call_report outer_report;
  auto details = [&] {
    return rebound::retry(inner_, [&]() -> int {
      ++calls;
      throw not_found_error();
    });
  };
  EXPECT_THROW((void)rebound::retry(outer_, details, {.report = &outer_report}), not_found_error);
  EXPECT_EQ(outer_report.reason, stop_reason::time_exhausted);
  EXPECT_EQ(calls, outer_report.attempts);  // one call per outer attempt
  EXPECT_LE(calls, 6);
}

TEST_F(NestingTest, IndependentInnerLoopsMultiply) {
  int calls = 0;
  rebound::call_report outer_report;
  const auto inner = inner_.nesting(rebound::nesting::independent);
  auto details = [&] {
    return rebound::retry(inner, [&]() -> int {
      ++calls;
      throw not_found_error();
    });
  };
  EXPECT_THROW((void)rebound::retry(outer_, details, {.report = &outer_report}), not_found_error);
  EXPECT_EQ(calls, 4 * outer_report.attempts);  // the amplification the guard prevents
}

TEST_F(NestingTest, ADeferredFailureKeepsTheInnerVerdict) {
  // The outer loop only knows NotFound; the inner loop knows 503 is transient.
  const auto inner =
      inner_.retry_if_exception([](const http_status_error& e) { return e.status == 503; });
  int calls = 0;
  const int v = rebound::retry(outer_, [&] {
    return rebound::retry(inner, [&] {
      if (++calls < 3) throw http_status_error(503);
      return 11;
    });
  });
  EXPECT_EQ(v, 11);
  EXPECT_EQ(calls, 3);  // retried by the outer loop, one inner attempt each
}

TEST_F(NestingTest, TheEnclosingLoopsOwnRulesComeBeforeTheCarriedVerdict) {
  // The inner loop has no rules (everything transient); the outer says logic errors are permanent.
  const auto outer = outer_.abort_on<std::logic_error>();
  int calls = 0;
  EXPECT_THROW(rebound::retry(outer,
                              [&] {
                                rebound::retry(inner_, [&] {
                                  ++calls;
                                  throw std::logic_error("bug");
                                });
                              }),
               std::logic_error);
  EXPECT_EQ(calls, 1);
}

TEST_F(NestingTest, TheEnclosingLoopRethrowsTheOriginalException) {
  const auto inner =
      inner_.retry_if_exception([](const http_status_error& e) { return e.status == 503; });
  const auto outer = outer_.stop(rebound::stop::after_attempts(2));
  int calls = 0;
  try {
    rebound::retry(outer, [&] {
      rebound::retry(inner, [&] {
        ++calls;
        throw http_status_error(503);
      });
    });
    FAIL() << "no exception";
  } catch (const http_status_error& e) {
    EXPECT_EQ(e.status, 503);
  }
  EXPECT_EQ(calls, 2);
}

TEST_F(NestingTest, PushbackStaysNonRetryableThroughTwoLayers) {
  // Three loops deep; the innermost is told "overloaded". Every layer stops at once.
  const auto overloaded = inner_.retry_if_exception(
      [](const http_status_error&) { return rebound::verdict::overloaded(); });
  const auto middle = inner_.nesting(rebound::nesting::independent);
  int calls = 0;
  rebound::call_report report;
  try {
    rebound::retry(
        outer_.retry_on<http_status_error>(),  // would retry it, if it were merely transient
        [&] {
          rebound::retry(middle, [&] {
            rebound::retry(overloaded, [&] {
              ++calls;
              throw http_status_error(503);
            });
          });
        },
        {.report = &report});
    FAIL() << "no exception";
  } catch (const http_status_error& e) {
    EXPECT_EQ(e.status, 503);  // the original error, unwrapped
  }
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(report.reason, stop_reason::overloaded);
}

TEST_F(NestingTest, DeferredExpectedResultsReturnToTheOuterLoop) {
  using R = result<int, api_error>;
  int calls = 0;
  rebound::call_report inner_report;
  const R r = rebound::retry(outer_.retry_if_error([](const api_error&) { return true; }), [&] {
    return rebound::retry(inner_, [&] { return ++calls < 3 ? R::failure({503}) : R(5); },
                          {.report = &inner_report});
  });
  EXPECT_EQ(*r, 5);
  EXPECT_EQ(calls, 3);
}

TEST_F(NestingTest, DepthIsRestoredWhenAttemptsThrow) {
  EXPECT_THROW(rebound::retry(outer_.stop(rebound::stop::after_attempts(1)),
                              [&] { rebound::retry(inner_, [] { throw not_found_error(); }); }),
               not_found_error);
  int calls = 0;
  EXPECT_THROW(rebound::retry(inner_,
                              [&] {
                                ++calls;
                                throw not_found_error();
                              }),
               not_found_error);
  EXPECT_EQ(calls, 4);  // top level again: it retries on its own
}

}  // namespace
