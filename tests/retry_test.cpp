#include "rebound/retry.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>
#include <utility>

#include "rebound/events.hpp"
#include "rebound/testing/simulated_clock.hpp"
#include "test_types.hpp"

namespace {

using namespace std::chrono_literals;
using namespace rebound_test;
using rebound::call_report;
using rebound::retry_policy;
using rebound::stop_reason;
using rebound::testing::simulated_clock;
namespace stop = rebound::stop;

class RetryTest : public ::testing::Test {
 protected:
  simulated_clock clock_;
  retry_policy policy_ = retry_policy{}
                             .stop(stop::after_attempts(4))
                             .backoff(rebound::backoff::exponential(1s, 2.0, 30s))
                             .jitter(rebound::jitter::none())
                             .clock(clock_);
};

TEST_F(RetryTest, FirstTrySuccessDoesNotSleep) {
  int calls = 0;
  EXPECT_EQ(rebound::retry(policy_, [&] { return ++calls; }), 1);
  EXPECT_TRUE(clock_.sleeps().empty());
}

TEST_F(RetryTest, RetriesExceptionsUntilSuccess) {
  int calls = 0;
  const int v = rebound::retry(policy_, [&] {
    if (++calls < 3) throw not_found_error();
    return 42;
  });
  EXPECT_EQ(v, 42);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(clock_.sleeps(), (std::vector<rebound::duration>{1s, 2s}));
}

// A stop that counts time, and nothing else that needs the engine before the
// first outcome: the first attempt runs before the engine is made, and the
// call's start, read before that attempt, is handed to the engine at its
// failure. The time the first attempt took must count, exactly as when the
// engine is made first (an observer makes it so).
TEST_F(RetryTest, TimeBasedStopCountsAFirstAttemptRunBeforeTheEngine) {
  const auto timed = policy_.stop(stop::after_elapsed(12s)).backoff(rebound::backoff::constant(1s));
  ASSERT_TRUE(rebound::retry_call::first_attempt_before_engine(timed, {}));
  ASSERT_FALSE(rebound::retry_call::plain_first_attempt(timed, {}));
  const auto observed = timed.observer(std::make_shared<rebound::counters_observer>());
  ASSERT_FALSE(rebound::retry_call::first_attempt_before_engine(observed, {}));
  // Each attempt takes 4 s and fails.
  auto run = [&](const retry_policy& p) {
    int calls = 0;
    const auto start = clock_.now();
    EXPECT_THROW(rebound::retry(p,
                                [&]() -> int {
                                  ++calls;
                                  clock_.advance(4s);
                                  throw not_found_error();
                                }),
                 not_found_error);
    return std::pair{calls, clock_.now() - start};
  };
  const auto before_engine = run(timed);
  const auto engine_first = run(observed);
  EXPECT_EQ(before_engine, engine_first);
  // Attempts end at 4, 9 and 14 s (each 4 s, 1 s waits between): at 14 s
  // the 12 s are spent. Counted from the first failure instead (4 s late),
  // the third would end at 10 s on that count, and a fourth would run.
  EXPECT_EQ(before_engine.first, 3);
  EXPECT_EQ(before_engine.second, 14s);
}

TEST_F(RetryTest, VoidFunctionsWork) {
  int calls = 0;
  rebound::retry(policy_, [&] {
    if (++calls < 2) throw not_found_error();
  });
  EXPECT_EQ(calls, 2);
}

TEST_F(RetryTest, RethrowsTheLastExceptionWhenExhausted) {
  int calls = 0;
  EXPECT_THROW(rebound::retry(policy_,
                              [&]() -> int {
                                ++calls;
                                throw not_found_error();
                              }),
               not_found_error);
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(clock_.sleeps().size(), 3u);
}

TEST_F(RetryTest, RetryErrorModeCarriesReasonAttemptsElapsedAndTheLastError) {
  const auto p = policy_.on_give_up(rebound::give_up_mode::throw_retry_error);
  try {
    rebound::retry(p, [] { throw not_found_error(); });
    FAIL() << "no exception";
  } catch (const rebound::retry_error& e) {
    EXPECT_EQ(e.reason(), stop_reason::attempts_exhausted);
    EXPECT_EQ(e.attempts(), 4);
    EXPECT_EQ(e.elapsed(), 7s);  // 1 + 2 + 4 on the simulated clock
    EXPECT_THROW(e.rethrow_last_error(), not_found_error);
    EXPECT_STREQ(e.what(), "gave up after 4 attempts in 7s (attempts_exhausted): not found");
  }
}

TEST_F(RetryTest, PermanentErrorsAreNotRetried) {
  int calls = 0;
  const auto p = policy_.retry_on<not_found_error>();
  EXPECT_THROW(rebound::retry(p,
                              [&] {
                                ++calls;
                                throw forbidden_error();
                              }),
               forbidden_error);
  EXPECT_EQ(calls, 1);
}

TEST_F(RetryTest, ExpectedLikeResultsAreReturnedWithTheReason) {
  using R = result<int, api_error>;
  int calls = 0;
  call_report report;
  const auto p = policy_.retry_if_error([](const api_error& e) { return e.code == 503; });
  const R r = rebound::retry(p, [&] { return ++calls < 3 ? R::failure({503}) : R::failure({403}); },
                             {.report = &report});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, 403);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(report.reason, stop_reason::permanent_error);
  EXPECT_EQ(report.attempts, 3);
  EXPECT_EQ(report.elapsed, 3s);
}

TEST_F(RetryTest, ExpectedLikeExhaustionReturnsTheLastFailure) {
  using R = result<int, api_error>;
  call_report report;
  const R r = rebound::retry(policy_, [] { return R::failure({503}); }, {.report = &report});
  EXPECT_EQ(r.error().code, 503);
  EXPECT_EQ(report.reason, stop_reason::attempts_exhausted);
  EXPECT_EQ(report.attempts, 4);
}

TEST_F(RetryTest, ResultPredicateRetriesRejectedValues) {
  int calls = 0;
  call_report report;
  const auto p = policy_.retry_if_result([](const int& v) { return v < 0; });
  EXPECT_EQ(rebound::retry(p, [&] { return ++calls < 3 ? -1 : 5; }, {.report = &report}), 5);
  EXPECT_EQ(report.reason, stop_reason::succeeded);
  EXPECT_EQ(report.attempts, 3);
}

TEST_F(RetryTest, ServerDelayOverridesTheBackoff) {
  int calls = 0;
  const auto p = policy_.retry_if_exception(
      [](const http_status_error& e) { return rebound::verdict::transient_after(e.status * 1ms); });
  rebound::retry(p, [&] {
    if (++calls == 1) throw http_status_error(1500);
  });
  EXPECT_EQ(clock_.sleeps(), (std::vector<rebound::duration>{1500ms}));
}

TEST_F(RetryTest, OverloadedStopsAtOnce) {
  int calls = 0;
  call_report report;
  const auto p = policy_.retry_if_exception(
      [](const http_status_error&) { return rebound::verdict::overloaded(); });
  EXPECT_THROW(rebound::retry(p,
                              [&] {
                                ++calls;
                                throw http_status_error(503);
                              },
                              {.report = &report}),
               http_status_error);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(report.reason, stop_reason::overloaded);
}

TEST_F(RetryTest, AttemptContextTellsNumberElapsedAndRemaining) {
  const auto p = policy_.stop(stop::after_attempts(3) | stop::before_elapsed(10s));
  std::vector<std::tuple<int, rebound::duration, std::optional<rebound::duration>>> seen;
  rebound::retry(p, [&](const rebound::attempt& a) {
    seen.emplace_back(a.number(), a.elapsed(), a.remaining());
    EXPECT_EQ(a.max_attempts(), 3);
    if (a.number() < 3) throw not_found_error();
  });
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], std::make_tuple(1, 0s, std::optional<rebound::duration>(10s)));
  EXPECT_EQ(seen[1], std::make_tuple(2, 1s, std::optional<rebound::duration>(9s)));
  EXPECT_EQ(seen[2], std::make_tuple(3, 3s, std::optional<rebound::duration>(7s)));
}

TEST_F(RetryTest, CancelledBeforeTheFirstAttemptRunsNothing) {
  std::stop_source source;
  source.request_stop();
  int calls = 0;
  try {
    rebound::retry(
        policy_, [&] { ++calls; }, source.get_token());
    FAIL() << "no exception";
  } catch (const rebound::retry_error& e) {
    EXPECT_EQ(e.reason(), stop_reason::cancelled);
    EXPECT_EQ(e.attempts(), 0);
    EXPECT_FALSE(e.last_error());
  }
  EXPECT_EQ(calls, 0);
}

TEST_F(RetryTest, CancelDuringBackoffEndsTheSleepAndStartsNoAttempt) {
  std::stop_source source;
  // Deterministic: the stop request arrives while the loop is in its first sleep.
  clock_.on_sleep([&](rebound::duration) { source.request_stop(); });
  const auto before = clock_.now();
  int calls = 0;
  try {
    rebound::retry(
        policy_,
        [&] {
          ++calls;
          throw not_found_error();
        },
        source.get_token());
    FAIL() << "no exception";
  } catch (const rebound::retry_error& e) {
    EXPECT_EQ(e.reason(), stop_reason::cancelled);
    EXPECT_EQ(e.attempts(), 1);
    EXPECT_THROW(e.rethrow_last_error(), not_found_error);
  }
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(clock_.now(), before);  // the sleep never completed
}

TEST_F(RetryTest, CancelDuringAnAttemptStartsNoFurtherAttempt) {
  std::stop_source source;
  using R = result<int, api_error>;
  call_report report;
  int calls = 0;
  const R r = rebound::retry(policy_,
                             [&](const rebound::attempt& a) {
                               ++calls;
                               source.request_stop();  // e.g. the user pressed cancel mid-request
                               EXPECT_TRUE(a.stop_token().stop_requested());
                               return R::failure({503});
                             },
                             {.stop = source.get_token(), .report = &report});
  EXPECT_FALSE(r.has_value());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(report.reason, stop_reason::cancelled);
}

TEST(RetryManualClockTest, AThreadCancelsALoopBlockedInItsBackoff) {
  simulated_clock clock(simulated_clock::mode::manual);
  const auto p =
      retry_policy{}.stop(stop::never()).backoff(rebound::backoff::constant(1h)).clock(clock);
  std::stop_source source;
  std::atomic<int> calls{0};
  call_report report;
  std::thread loop([&] {
    using R = result<int, api_error>;
    (void)rebound::retry(p, [&] { return ++calls, R::failure({1}); },
                         {.stop = source.get_token(), .report = &report});
  });
  // A real wait bounded at 10s, only to synchronise with the loop thread.
  ASSERT_TRUE(clock.wait_for_sleeps(1, std::chrono::milliseconds(10'000)));
  clock.advance(1h);  // wakes it: second attempt, then it sleeps again
  ASSERT_TRUE(clock.wait_for_sleeps(2, std::chrono::milliseconds(10'000)));
  source.request_stop();
  loop.join();
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(report.reason, stop_reason::cancelled);
  EXPECT_EQ(report.attempts, 2);
}

TEST_F(RetryTest, TimeLimitsEndTheLoop) {
  call_report report;
  const auto p = policy_.stop(stop::after_elapsed(5s));
  using R = result<int, api_error>;
  (void)rebound::retry(p, [] { return R::failure({1}); }, {.report = &report});
  // Waits 1s, 2s, 4s: elapsed 7s at the 4th failure >= 5s.
  EXPECT_EQ(report.reason, stop_reason::time_exhausted);
  EXPECT_EQ(report.attempts, 4);
  const auto q = policy_.stop(stop::before_elapsed(5s));
  (void)rebound::retry(q, [] { return R::failure({1}); }, {.report = &report});
  // Waits 1s, 2s; the next (4s) would end at 7s > 5s.
  EXPECT_EQ(report.attempts, 3);
  EXPECT_EQ(report.elapsed, 3s);
}

TEST_F(RetryTest, MoveOnlyResults) {
  auto p = rebound::retry(policy_, [] { return std::make_unique<int>(5); });
  EXPECT_EQ(*p, 5);
}

}  // namespace

namespace {

// Timeouts in the blocking loop are cooperative: the attempt's stop token.
class BlockingTimeoutTest : public RetryTest {};

TEST_F(BlockingTimeoutTest, AttemptTimeoutRequestsTheStopTokenAndCountsAsTimeout) {
  auto p = policy_.attempt_timeout(2s);
  std::vector<rebound::event> events;
  p = p.observer(std::make_shared<rebound::function_observer>(
      [&](const rebound::event& e) { events.push_back(e); }));
  int calls = 0;
  const auto start = clock_.now();
  const int v = rebound::retry(p, [&](const rebound::attempt& a) {
    ++calls;
    EXPECT_FALSE(a.stop_token().stop_requested());
    if (calls == 1) {
      clock_.advance(5s);  // a slow attempt: its timer fires at 2s
      EXPECT_TRUE(a.stop_token().stop_requested());
      throw std::runtime_error("gave up when asked to stop");
    }
    return 7;
  });
  EXPECT_EQ(v, 7);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(clock_.now() - start, rebound::duration(6s));  // 5s attempt + 1s back-off
  bool timed_out = false;
  for (const auto& e : events) {
    if (e.kind == rebound::event_kind::attempt_failed) timed_out = e.verdict.timeout;
  }
  EXPECT_TRUE(timed_out);
}

TEST_F(BlockingTimeoutTest, TotalTimeoutEndsTheCallWithTimeExhausted) {
  auto p = policy_.total_timeout(3s).stop(stop::after_attempts(100));
  call_report report;
  int calls = 0;
  EXPECT_THROW(rebound::retry(p,
                              [&](const rebound::attempt& a) -> int {
                                ++calls;
                                clock_.advance(10s);
                                EXPECT_TRUE(a.stop_token().stop_requested());
                                throw not_found_error();
                              },
                              {.report = &report}),
               not_found_error);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(report.reason, stop_reason::time_exhausted);
}

TEST_F(BlockingTimeoutTest, CallerStopStillReachesTheAttemptToken) {
  auto p = policy_.attempt_timeout(1h);
  std::stop_source stop;
  int calls = 0;
  EXPECT_THROW(rebound::retry(p,
                              [&](const rebound::attempt& a) -> int {
                                ++calls;
                                stop.request_stop();
                                EXPECT_TRUE(a.stop_token().stop_requested());
                                throw not_found_error();
                              },
                              {.stop = stop.get_token()}),
               rebound::retry_error);
  EXPECT_EQ(calls, 1);
}

TEST_F(BlockingTimeoutTest, HedgingPoliciesAreRefusedByTheBlockingLoop) {
  auto p = policy_.hedge({.delay = 10ms});
  try {
    rebound::retry(p, [] { return 1; });
    ADD_FAILURE() << "accepted a hedging policy";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("async_retry"), std::string::npos);
  }
}

TEST_F(BlockingTimeoutTest, TimeoutsAreValidated) {
  EXPECT_THROW((void)policy_.attempt_timeout(0s), std::invalid_argument);
  EXPECT_THROW((void)policy_.total_timeout(-1s), std::invalid_argument);
}

TEST(SimulatedClockCalls, RunInTimeOrderWhenTimeAdvances) {
  simulated_clock c;
  std::vector<int> order;
  const auto t0 = c.now();
  c.call_at(t0 + 3s, [&] { order.push_back(3); });
  const auto id = c.call_at(t0 + 2s, [&] { order.push_back(2); });
  c.call_at(t0 + 1s, [&] {
    order.push_back(1);
    EXPECT_EQ(c.now(), t0 + 1s);  // each call sees its own time
  });
  EXPECT_TRUE(c.cancel_call(id));
  EXPECT_FALSE(c.cancel_call(id));
  c.advance(5s);
  EXPECT_EQ(order, (std::vector<int>{1, 3}));
  EXPECT_FALSE(c.next_call());
}

TEST(SystemClockCalls, FireOnTheTimerThreadAndCanBeCancelled) {
  auto& c = rebound::system_clock();
  std::atomic<bool> fired{false};
  const auto never = c.call_at(c.now() + 1h, [&] { fired = true; });
  EXPECT_TRUE(c.cancel_call(never));
  std::promise<void> done;
  // Real time, 1 ms: the timer thread is the boundary under test.
  c.call_at(c.now() + 1ms, [&] { done.set_value(); });
  EXPECT_EQ(done.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_FALSE(fired.load());
}

}  // namespace
