// The call engine (rebound/call.hpp): every step, every ending, and the
// proof that the loops built on it decide exactly as it does.
#include "rebound/call.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <vector>

#include "rebound/breaker.hpp"
#include "rebound/retry.hpp"
#include "rebound/testing/simulated_clock.hpp"
#include "rebound/throttle.hpp"

namespace {

using namespace std::chrono_literals;
using rebound::call_step;
using rebound::retry_call;
using rebound::step_kind;
using rebound::stop_reason;
using rebound::verdict;

struct flaky : std::runtime_error {
  flaky() : std::runtime_error("flaky") {}
};

TEST(CallEngine, AttemptWaitAttemptDone) {
  rebound::testing::simulated_clock clock;
  const auto p = rebound::retry_policy{}
                     .stop(rebound::stop::after_attempts(3))
                     .backoff(rebound::backoff::constant(100ms))
                     .jitter(rebound::jitter::none())
                     .clock(clock);
  retry_call call(p);
  EXPECT_TRUE(call.start().attempt());
  EXPECT_EQ(call.attempt(), 1);
  const auto t0 = clock.now();
  call_step s = call.failed(verdict::transient());
  ASSERT_TRUE(s.wait());
  EXPECT_EQ(s.delay, 100ms);
  EXPECT_EQ(s.until, t0 + 100ms);  // from when the failure was decided
  EXPECT_EQ(call.attempt(), 2);
  EXPECT_TRUE(call.resume(true).attempt());
  s = call.failed(verdict::transient());
  ASSERT_TRUE(s.wait());
  EXPECT_TRUE(call.resume(true).attempt());
  s = call.failed(verdict::transient());
  EXPECT_TRUE(s.done());
  EXPECT_EQ(s.reason, stop_reason::attempts_exhausted);
  EXPECT_TRUE(call.ended());
  EXPECT_EQ(call.attempts_made(), 3);
  // A permanent failure ends it at once; an overloaded one too.
  retry_call other(p);
  (void)other.start();
  EXPECT_EQ(other.failed(verdict::permanent()).reason, stop_reason::permanent_error);
  retry_call pushed(p);
  (void)pushed.start();
  EXPECT_EQ(pushed.failed(verdict::overloaded()).reason, stop_reason::overloaded);
}

TEST(CallEngine, CancelledBeforeAndDuringTheWait) {
  const rebound::retry_policy p;
  std::stop_source stop;
  stop.request_stop();
  retry_call before(p, {.stop = stop.get_token()});
  const auto s = before.start();
  EXPECT_TRUE(s.done());
  EXPECT_EQ(s.reason, stop_reason::cancelled);
  try {
    std::rethrow_exception(before.give_up_error(nullptr));
  } catch (const rebound::retry_error& e) {
    EXPECT_EQ(e.reason(), stop_reason::cancelled);
    EXPECT_EQ(e.attempts(), 0);
  }
  std::stop_source later;
  retry_call during(p, {.stop = later.get_token()});
  (void)during.start();
  ASSERT_TRUE(during.failed(verdict::transient()).wait());
  later.request_stop();
  EXPECT_EQ(during.resume(true).reason, stop_reason::cancelled);  // checked on resume too
}

TEST(CallEngine, UnsafeToRepeatEndsWithNotIdempotentInEveryLayer) {
  const auto p = rebound::retry_policy{}.stop(rebound::stop::after_attempts(5));
  retry_call call(p, {}, {.nested = 0});
  (void)call.start();
  const auto s = call.failed(verdict::transient(), {.unsafe_to_repeat = true});
  EXPECT_EQ(s.reason, stop_reason::not_idempotent);
  // A permanent failure of an unsafe request is just permanent.
  retry_call perm(p, {}, {.nested = 0});
  (void)perm.start();
  EXPECT_EQ(perm.failed(verdict::permanent(), {.unsafe_to_repeat = true}).reason,
            stop_reason::permanent_error);
  // Nested inside another loop, it is wrapped so the enclosing loop does not
  // send it again either: classify_exception makes it permanent there.
  retry_call inner(p, {}, {.nested = 1});
  (void)inner.start();
  EXPECT_EQ(inner.failed(verdict::transient(), {.unsafe_to_repeat = true}).reason,
            stop_reason::not_idempotent);
  const auto err = inner.give_up_error(std::make_exception_ptr(flaky()));
  const auto outer = rebound::retry_policy{}.retry_on<flaky>();
  EXPECT_EQ(rebound::classify_exception(outer, err), verdict::permanent());
}

TEST(CallEngine, ATimedOutAttemptPastTheDeadlineEndsTheCall) {
  rebound::testing::simulated_clock clock;
  const auto p = rebound::retry_policy{}.clock(clock).total_timeout(1s);
  retry_call call(p);
  (void)call.start();
  EXPECT_TRUE(call.timed());
  EXPECT_EQ(call.deadline(), clock.now() + 1s);
  clock.advance(1s);
  EXPECT_EQ(call.failed(verdict::permanent(), {.timed_out = true}).reason,
            stop_reason::time_exhausted);
  // Before the deadline a timed-out attempt is a transient timeout.
  retry_call early(p);
  (void)early.start();
  clock.advance(10ms);
  EXPECT_TRUE(early.failed(verdict::permanent(), {.timed_out = true}).wait());
}

TEST(CallEngine, AThrottledFirstAttemptThrowsThrottledError) {
  rebound::testing::simulated_clock clock;
  auto throttle = std::make_shared<rebound::adaptive_throttle>(
      rebound::adaptive_throttle::options{.k = 1.0}, clock);
  for (int i = 0; i < 100000; ++i) (void)throttle->admit(0.9999999);  // requests, no accepts
  const auto p = rebound::retry_policy{}.clock(clock).throttle(throttle).seed(3);
  retry_call call(p);
  const auto s = call.start();
  ASSERT_TRUE(s.done());
  EXPECT_EQ(s.reason, stop_reason::throttled);
  EXPECT_THROW(std::rethrow_exception(call.give_up_error(nullptr)), rebound::throttled_error);
}

TEST(CallEngine, HedgesAreRefusedWithTheirReason) {
  rebound::testing::simulated_clock clock;
  auto budget = std::make_shared<rebound::token_bucket_budget>(
      rebound::token_bucket_budget::options{.capacity = 5, .retry_cost = 5});
  const auto p = rebound::retry_policy{}
                     .clock(clock)
                     .stop(rebound::stop::after_attempts(5))
                     .budget(budget)
                     .hedge({.delay = 10ms});
  retry_call call(p, {}, {.concurrent = true});
  (void)call.start();
  EXPECT_FALSE(call.hedge());  // granted: the first hedge takes the 5 tokens
  EXPECT_EQ(call.attempt(), 2);
  EXPECT_EQ(call.hedge(), stop_reason::budget_exhausted);
  // A driver that cannot run attempts side by side refuses a hedging policy.
  EXPECT_THROW(retry_call(p, {}, {.concurrent = false}), std::invalid_argument);
}

// retry() is a driver of the engine: its sleeps are exactly the engine's waits.
TEST(CallEngine, TheBlockingLoopSleepsExactlyTheEnginesWaits) {
  rebound::testing::simulated_clock clock;
  const auto p = rebound::retry_policy{}
                     .stop(rebound::stop::after_attempts(6))
                     .backoff(rebound::backoff::exponential(100ms, 2.0, 1s))
                     .jitter(rebound::jitter::full())
                     .clock(clock)
                     .seed(42);
  int calls = 0;
  EXPECT_THROW(rebound::retry(p,
                              [&] {
                                ++calls;
                                throw flaky();
                              }),
               flaky);
  EXPECT_EQ(calls, 6);
  std::vector<rebound::duration> engine_waits;
  retry_call call(p);
  (void)call.start();
  for (call_step s = call.failed(verdict::transient()); s.wait();
       s = call.failed(verdict::transient())) {
    engine_waits.push_back(s.delay);
    (void)call.resume(true);
  }
  EXPECT_EQ(clock.sleeps(), engine_waits);
}

}  // namespace
