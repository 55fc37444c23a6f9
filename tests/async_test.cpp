// The Asio retry loop: completion tokens, back-off on simulated time,
// cancellation (slot and stop_token, mid-sleep and mid-attempt), timeouts,
// hedging, nesting across co_await, and many operations on one io_context.
#include "rebound/async.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_future.hpp>
#include <atomic>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "rebound/budget.hpp"
#include "rebound/events.hpp"
#include "rebound/testing/async.hpp"
#include "test_types.hpp"

namespace {

using namespace std::chrono_literals;
using rebound::duration;
using rebound::testing::simulated_clock;
using rebound_test::not_found_error;

struct fixture : ::testing::Test {
  simulated_clock clock;
  asio::io_context io;
  std::shared_ptr<rebound::counters_observer> counters =
      std::make_shared<rebound::counters_observer>();
  rebound::retry_policy policy = rebound::retry_policy{}
                                     .stop(rebound::stop::after_attempts(5))
                                     .backoff(rebound::backoff::exponential(1s, 2.0, 30s))
                                     .jitter(rebound::jitter::none())
                                     .observer(counters)
                                     .clock(clock);

  // Runs `co` to completion on simulated time and returns its result.
  template <class T>
  T run(asio::awaitable<T> co) {
    // Through an outcome: co_spawn's futures need a default-constructible T.
    auto f = asio::co_spawn(io, rebound::detail::to_outcome<T>(std::move(co)), asio::use_future);
    rebound::testing::run_simulated(io, clock);
    // use_future completes through Asio's system executor (another thread):
    // a real, bounded wait for that hand-off only.
    EXPECT_EQ(f.wait_for(10s), std::future_status::ready);
    auto out = f.get();
    if (out.error) std::rethrow_exception(out.error);
    if constexpr (!std::is_void_v<T>) return std::move(*out.value);
  }
};

// Fails `failures` times with not_found_error, then returns `value`.
struct flaky {
  int failures;
  int value;
  std::shared_ptr<int> calls = std::make_shared<int>(0);
  asio::awaitable<int> operator()() const {
    const int n = ++*calls;
    if (n <= failures) throw not_found_error();
    co_return value;
  }
};

TEST_F(fixture, FirstTrySuccessReturnsTheValueWithoutWaiting) {
  flaky fn{0, 42};
  const auto start = clock.now();
  EXPECT_EQ(run(rebound::async_retry(policy, fn)), 42);
  EXPECT_EQ(*fn.calls, 1);
  EXPECT_EQ(clock.now(), start);
}

TEST_F(fixture, BackoffScheduleRunsOnSimulatedTime) {
  flaky fn{4, 7};
  const auto start = clock.now();
  rebound::call_report report;
  EXPECT_EQ(run(rebound::async_retry(policy, fn, {.report = &report})), 7);
  EXPECT_EQ(*fn.calls, 5);
  // 1 + 2 + 4 + 8 seconds of back-off, none of it real.
  EXPECT_EQ(clock.now() - start, duration(15s));
  EXPECT_EQ(report.reason, rebound::stop_reason::succeeded);
  EXPECT_EQ(report.attempts, 5);
  EXPECT_EQ(counters->snapshot().retries, 4u);
}

TEST_F(fixture, GivesUpByRethrowingTheLastException) {
  flaky fn{100, 0};
  rebound::call_report report;
  EXPECT_THROW(run(rebound::async_retry(policy, fn, {.report = &report})), not_found_error);
  EXPECT_EQ(*fn.calls, 5);
  EXPECT_EQ(report.reason, rebound::stop_reason::attempts_exhausted);
}

TEST_F(fixture, PermanentErrorsAreNotRetried) {
  auto p = policy.abort_on<rebound_test::forbidden_error>();
  int calls = 0;
  auto fn = [&]() -> asio::awaitable<int> {
    ++calls;
    throw rebound_test::forbidden_error();
    co_return 0;
  };
  EXPECT_THROW(run(rebound::async_retry(p, fn)), rebound_test::forbidden_error);
  EXPECT_EQ(calls, 1);
}

TEST_F(fixture, ExpectedLikeResultsAreRetriedAndTheLastOneReturned) {
  using result = rebound_test::result<int, rebound_test::api_error>;
  int calls = 0;
  auto fn = [&](const rebound::async_attempt& a) -> asio::awaitable<result> {
    ++calls;
    EXPECT_EQ(a.number(), calls);
    co_return result::failure({503});
  };
  const result r = run(rebound::async_retry(policy, fn));
  EXPECT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, 503);
  EXPECT_EQ(calls, 5);
}

TEST_F(fixture, VoidOperations) {
  int calls = 0;
  auto fn = [&]() -> asio::awaitable<void> {
    if (++calls < 3) throw not_found_error();
    co_return;
  };
  run(rebound::async_retry(policy, fn));
  EXPECT_EQ(calls, 3);
}

// ---- a first attempt made before the engine --------------------------------
// With nothing that needs the engine before the first outcome (no observer,
// report, budget, time-based stop or attempt context), async_retry runs the
// first attempt before making the engine. At a failure the engine takes over
// and must take the same steps as when it is made first.

rebound::retry_policy plain_policy(fixture& f) {
  return rebound::retry_policy{}
      .stop(rebound::stop::after_attempts(5))
      .backoff(rebound::backoff::exponential(1s, 2.0, 30s))
      .jitter(rebound::jitter::none())
      .clock(f.clock);
}

TEST_F(fixture, PlainFirstAttemptFailureHandsOverToTheEngineOnTheSameSchedule) {
  const auto plain = plain_policy(*this);
  ASSERT_TRUE(rebound::retry_call::plain_first_attempt(plain, {}));
  ASSERT_FALSE(rebound::retry_call::plain_first_attempt(policy, {}));  // it has an observer
  flaky fn{2, 9};
  auto start = clock.now();
  EXPECT_EQ(run(rebound::async_retry(plain, fn)), 9);
  EXPECT_EQ(*fn.calls, 3);
  const duration plain_took = clock.now() - start;
  EXPECT_EQ(plain_took, 3s);  // 1 s, then 2 s
  // The engine made before the first attempt: the same waits.
  flaky observed_fn{2, 9};
  start = clock.now();
  EXPECT_EQ(run(rebound::async_retry(policy, observed_fn)), 9);
  EXPECT_EQ(clock.now() - start, plain_took);
}

TEST_F(fixture, TimeBasedStopCountsAFirstAttemptRunBeforeTheEngine) {
  // The coroutine loop's first attempt runs before the engine too when the
  // stop counts time; the call's start is read before it. Each attempt
  // takes 4 s (a simulated-time wait inside it) and fails.
  const auto timed = plain_policy(*this)
                         .stop(rebound::stop::after_elapsed(12s))
                         .backoff(rebound::backoff::constant(1s));
  ASSERT_TRUE(rebound::retry_call::first_attempt_before_engine(timed, {}));
  auto run_timed = [&](const rebound::retry_policy& p) {
    int calls = 0;
    auto fn = [&]() -> asio::awaitable<int> {
      ++calls;
      (void)co_await rebound::detail::wait_until(clock, clock.now() + 4s);
      throw not_found_error();
    };
    const auto start = clock.now();
    EXPECT_THROW(run(rebound::async_retry(p, fn)), not_found_error);
    return std::pair{calls, clock.now() - start};
  };
  const auto before_engine = run_timed(timed);
  const auto engine_first = run_timed(timed.observer(counters));
  EXPECT_EQ(before_engine, engine_first);
  // Attempts end at 4, 9 and 14 s; counted from the first failure, a
  // fourth would run.
  EXPECT_EQ(before_engine.first, 3);
  EXPECT_EQ(before_engine.second, 14s);
}

TEST_F(fixture, PlainFirstAttemptGivesUpAfterTheSameAttempts) {
  const auto plain = plain_policy(*this).stop(rebound::stop::after_attempts(2));
  flaky fn{100, 1};
  EXPECT_THROW(run(rebound::async_retry(plain, fn)), not_found_error);
  EXPECT_EQ(*fn.calls, 2);
  // A permanent error on the first attempt: one call, rethrown as it was.
  int calls = 0;
  auto forbidden = [&]() -> asio::awaitable<int> {
    ++calls;
    throw rebound_test::forbidden_error();
    co_return 0;
  };
  EXPECT_THROW(
      run(rebound::async_retry(plain.abort_on<rebound_test::forbidden_error>(), forbidden)),
      rebound_test::forbidden_error);
  EXPECT_EQ(calls, 1);
}

TEST_F(fixture, PlainFirstAttemptRejectedResultAndVoid) {
  using result = rebound_test::result<int, rebound_test::api_error>;
  int calls = 0;
  auto fn = [&]() -> asio::awaitable<result> {
    // A rejected result first, then an exception, then a value.
    ++calls;
    if (calls == 1) co_return result::failure({503});
    if (calls == 2) throw not_found_error();
    co_return result(7);
  };
  const result r = run(rebound::async_retry(plain_policy(*this), fn));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r.value(), 7);
  EXPECT_EQ(calls, 3);
  // Every attempt rejected: the last result is returned, as with the engine first.
  int rejected_calls = 0;
  auto always = [&]() -> asio::awaitable<result> {
    ++rejected_calls;
    co_return result::failure({429 + rejected_calls});
  };
  const result last = run(rebound::async_retry(plain_policy(*this), always));
  EXPECT_FALSE(last.has_value());
  EXPECT_EQ(last.error().code, 434);
  EXPECT_EQ(rejected_calls, 5);

  int void_calls = 0;
  auto void_fn = [&]() -> asio::awaitable<void> {
    if (++void_calls < 3) throw not_found_error();
    co_return;
  };
  run(rebound::async_retry(plain_policy(*this), void_fn));
  EXPECT_EQ(void_calls, 3);
}

TEST_F(fixture, CallbackToken) {
  flaky fn{2, 9};
  std::exception_ptr error;
  int value = -1;
  rebound::async_retry(io.get_executor(), policy, fn, {}, [&](std::exception_ptr e, int v) {
    error = e;
    value = v;
  });
  rebound::testing::run_simulated(io, clock);
  EXPECT_FALSE(error);
  EXPECT_EQ(value, 9);
  EXPECT_EQ(*fn.calls, 3);
}

TEST_F(fixture, FutureToken) {
  flaky fn{100, 0};
  auto f = rebound::async_retry(io.get_executor(), policy, fn, {}, asio::use_future);
  rebound::testing::run_simulated(io, clock);
  EXPECT_THROW(f.get(), not_found_error);
}

// ---- cancellation --------------------------------------------------------

struct cancel_fixture : fixture {
  asio::cancellation_signal signal;
  std::exception_ptr error;
  bool completed = false;
  int value = -1;

  template <class F>
  void start(const rebound::retry_policy& p, F fn, rebound::async_options o = {}) {
    rebound::async_retry(
        io.get_executor(), p, std::move(fn), std::move(o),
        asio::bind_cancellation_slot(signal.slot(), [this](std::exception_ptr e, int v) {
          completed = true;
          error = e;
          value = v;
        }));
  }
  rebound::stop_reason reason() const {
    if (!error) return rebound::stop_reason::succeeded;
    try {
      std::rethrow_exception(error);
    } catch (const rebound::retry_error& e) {
      return e.reason();
    } catch (...) {
    }
    return rebound::stop_reason::succeeded;
  }
};

TEST_F(cancel_fixture, SlotCancelsABackoffAtOnce) {
  flaky fn{100, 0};
  rebound::call_report report;
  start(policy, fn, {.report = &report});
  // Run until the loop is in its first back-off (1s), then cancel.
  io.poll();
  ASSERT_EQ(*fn.calls, 1);
  ASSERT_TRUE(clock.next_call().has_value());
  const auto before = clock.now();
  signal.emit(asio::cancellation_type::terminal);
  rebound::testing::run_simulated(io, clock);
  ASSERT_TRUE(completed);
  EXPECT_EQ(reason(), rebound::stop_reason::cancelled);
  EXPECT_EQ(*fn.calls, 1);         // no attempt after the cancel
  EXPECT_EQ(clock.now(), before);  // the back-off did not run out
  EXPECT_EQ(report.reason, rebound::stop_reason::cancelled);
  EXPECT_EQ(report.attempts, 1);
}

TEST_F(cancel_fixture, StopTokenCancelsABackoffAtOnce) {
  flaky fn{100, 0};
  std::stop_source stop;
  start(policy, fn, {.stop = stop.get_token()});
  io.poll();
  ASSERT_EQ(*fn.calls, 1);
  const auto before = clock.now();
  stop.request_stop();
  rebound::testing::run_simulated(io, clock);
  ASSERT_TRUE(completed);
  EXPECT_EQ(reason(), rebound::stop_reason::cancelled);
  EXPECT_EQ(*fn.calls, 1);
  EXPECT_EQ(clock.now(), before);
}

// An attempt that waits an hour on a real Asio timer; the test cancels it
// from a handler posted while it waits, so nothing really waits.
struct hanging {
  asio::io_context* io;
  std::function<void()> while_waiting;
  std::shared_ptr<int> calls = std::make_shared<int>(0);
  std::shared_ptr<int> aborted = std::make_shared<int>(0);
  asio::awaitable<int> operator()() const {
    ++*calls;
    asio::steady_timer t(*io, 1h);
    asio::post(*io, while_waiting);
    try {
      co_await t.async_wait(asio::use_awaitable);
    } catch (const std::system_error&) {
      ++*aborted;
      throw;
    }
    co_return 1;
  }
};

TEST_F(cancel_fixture, SlotCancelsTheAttemptInFlightAndItIsNotRetried) {
  hanging fn{&io, [this] { signal.emit(asio::cancellation_type::terminal); }};
  start(policy, fn);
  io.run();  // returns as soon as the cancelled attempt ends
  ASSERT_TRUE(completed);
  EXPECT_EQ(reason(), rebound::stop_reason::cancelled);
  EXPECT_EQ(*fn.calls, 1);
  EXPECT_EQ(*fn.aborted, 1);
}

TEST_F(cancel_fixture, StopTokenCancelsTheAttemptInFlightAndItIsNotRetried) {
  std::stop_source stop;
  hanging fn{&io, [&stop] { stop.request_stop(); }};
  start(policy, fn, {.stop = stop.get_token()});
  io.run();
  ASSERT_TRUE(completed);
  EXPECT_EQ(reason(), rebound::stop_reason::cancelled);
  EXPECT_EQ(*fn.calls, 1);
  EXPECT_EQ(*fn.aborted, 1);
}

TEST_F(cancel_fixture, StopRequestedBeforeTheCallMakesNoAttempt) {
  std::stop_source stop;
  stop.request_stop();
  flaky fn{0, 1};
  start(policy, fn, {.stop = stop.get_token()});
  rebound::testing::run_simulated(io, clock);
  ASSERT_TRUE(completed);
  EXPECT_EQ(reason(), rebound::stop_reason::cancelled);
  EXPECT_LE(*fn.calls, 1);
}

TEST_F(cancel_fixture, StopFromAnotherThreadDuringARealBackoff) {
  // The system clock and a one-hour back-off: only the stop request can end it.
  auto p = policy.clock(rebound::system_clock()).backoff(rebound::backoff::constant(1h));
  std::atomic<int> calls{0};
  auto fn = [&calls]() -> asio::awaitable<int> {
    ++calls;
    throw not_found_error();
    co_return 0;
  };
  std::stop_source stop;
  start(p, fn, {.stop = stop.get_token()});
  std::thread runner([&] { io.run(); });
  while (calls.load() == 0) std::this_thread::yield();  // the first attempt has run
  stop.request_stop();
  runner.join();  // bounded: the stop ends the back-off at once
  ASSERT_TRUE(completed);
  EXPECT_EQ(reason(), rebound::stop_reason::cancelled);
  EXPECT_EQ(calls.load(), 1);
}

// ---- timeouts ------------------------------------------------------------

// Each call takes the next duration from `takes` (simulated), then returns its number.
struct slow {
  simulated_clock* clock;
  std::vector<duration> takes;
  std::shared_ptr<int> calls = std::make_shared<int>(0);
  std::shared_ptr<std::vector<int>> aborted = std::make_shared<std::vector<int>>();
  asio::awaitable<int> operator()(const rebound::async_attempt& a) const {
    const int n = ++*calls;
    const duration d = takes[std::min<std::size_t>(n - 1, takes.size() - 1)];
    try {
      co_await rebound::testing::sleep_for(*clock, d);
    } catch (const std::system_error&) {
      aborted->push_back(a.number());
      throw;
    }
    co_return a.number();
  }
};

TEST_F(fixture, AttemptTimeoutCancelsASlowAttemptAndCountsAsTransientTimeout) {
  auto p = policy.attempt_timeout(2s);
  slow fn{&clock, {10s, 500ms}};
  std::vector<rebound::event> events;
  p = p.observer(std::make_shared<rebound::function_observer>(
      [&](const rebound::event& e) { events.push_back(e); }));
  const auto start = clock.now();
  EXPECT_EQ(run(rebound::async_retry(p, fn)), 2);
  EXPECT_EQ(*fn.calls, 2);
  EXPECT_EQ(*fn.aborted, std::vector<int>{1});
  // 2s (timed out) + 1s back-off + 0.5s.
  EXPECT_EQ(clock.now() - start, duration(3500ms));
  bool saw_timeout = false;
  for (const auto& e : events) {
    if (e.kind == rebound::event_kind::attempt_failed) saw_timeout = e.verdict.timeout;
  }
  EXPECT_TRUE(saw_timeout);
}

TEST_F(fixture, TotalTimeoutEndsTheCallWithTimeExhausted) {
  auto p = policy.total_timeout(5s).stop(rebound::stop::after_attempts(100));
  slow fn{&clock, {10s}};
  rebound::call_report report;
  const auto start = clock.now();
  try {
    run(rebound::async_retry(p, fn, {.report = &report}));
    ADD_FAILURE() << "expected retry_error";
  } catch (const rebound::retry_error& e) {
    EXPECT_EQ(e.reason(), rebound::stop_reason::time_exhausted);
  }
  EXPECT_EQ(clock.now() - start, duration(5s));
  EXPECT_EQ(report.reason, rebound::stop_reason::time_exhausted);
  EXPECT_EQ(*fn.calls, 1);
}

TEST_F(fixture, DeadlineOptionBoundsAttemptsAndBackoffs) {
  auto p = policy.attempt_timeout(3s).stop(rebound::stop::after_attempts(100));
  slow fn{&clock, {10s}};
  rebound::call_report report;
  const auto start = clock.now();
  EXPECT_THROW(run(rebound::async_retry(p, fn, {.report = &report, .deadline = clock.now() + 8s})),
               rebound::retry_error);
  // 3s (timeout) + 1s + 3s (timeout) + 2s back-off would end at 9s, past the
  // deadline: the loop stops at 7s without starting that sleep.
  EXPECT_EQ(report.reason, rebound::stop_reason::time_exhausted);
  EXPECT_EQ(*fn.calls, 2);
  EXPECT_EQ(clock.now() - start, duration(7s));
}

TEST_F(fixture, AttemptContextReportsRemainingTime) {
  auto p = policy.attempt_timeout(2s).total_timeout(60s);
  std::optional<duration> remaining;
  auto fn = [&](const rebound::async_attempt& a) -> asio::awaitable<int> {
    remaining = a.remaining();
    co_return 0;
  };
  run(rebound::async_retry(p, fn));
  EXPECT_EQ(remaining, duration(2s));
}

// ---- hedging -------------------------------------------------------------

TEST_F(fixture, HedgeWinsAndTheSlowAttemptIsCancelled) {
  auto p = policy.hedge({.delay = 100ms, .max_hedges = 2});
  slow fn{&clock, {10s, 50ms, 10s}};
  const auto start = clock.now();
  EXPECT_EQ(run(rebound::async_retry(p, fn)), 2);
  EXPECT_EQ(clock.now() - start, duration(150ms));
  EXPECT_EQ(*fn.calls, 2);  // the second hedge was never needed
  EXPECT_EQ(*fn.aborted, std::vector<int>{1});
  const auto c = counters->snapshot();
  EXPECT_EQ(c.hedges, 1u);
  EXPECT_EQ(c.hedges_won, 1u);          // the hedge, attempt 2, won
  EXPECT_EQ(c.attempts_cancelled, 1u);  // attempt 1 was still running
  EXPECT_EQ(c.ended(rebound::stop_reason::succeeded), 1u);
}

TEST_F(fixture, TheFirstAttemptBeatsItsHedgeAndTheHedgeIsCancelled) {
  std::vector<rebound::event> seen;
  auto p = policy.hedge({.delay = 100ms, .max_hedges = 1})
               .observer(std::make_shared<rebound::function_observer>(
                   [&](const rebound::event& e) { seen.push_back(e); }));
  slow fn{&clock, {150ms, 10s}};
  EXPECT_EQ(run(rebound::async_retry(p, fn)), 1);
  EXPECT_EQ(*fn.aborted, std::vector<int>{2});
  std::vector<std::pair<rebound::event_kind, int>> order;
  for (const auto& e : seen) order.emplace_back(e.kind, e.attempt);
  using k = rebound::event_kind;
  // No hedge_won: the first attempt won. The hedge is cancelled before the call ends.
  EXPECT_EQ(
      order,
      (std::vector<std::pair<k, int>>{
          {k::attempt_started, 1}, {k::hedged, 2}, {k::attempt_cancelled, 2}, {k::succeeded, 2}}));
  EXPECT_EQ(seen[1].resend_count(), 1);  // the hedge is the request's second send
}

TEST_F(fixture, AllHedgesRunAndTheFirstSuccessWins) {
  auto p = policy.hedge({.delay = 1s, .max_hedges = 2});
  slow fn{&clock, {10s, 10s, 500ms}};
  const auto start = clock.now();
  EXPECT_EQ(run(rebound::async_retry(p, fn)), 3);
  EXPECT_EQ(clock.now() - start, duration(2500ms));
  std::vector<int> losers = *fn.aborted;
  std::sort(losers.begin(), losers.end());
  EXPECT_EQ(losers, (std::vector<int>{1, 2}));
  EXPECT_EQ(counters->snapshot().hedges, 2u);
  EXPECT_EQ(counters->snapshot().hedges_won, 1u);
  EXPECT_EQ(counters->snapshot().attempts_cancelled, 2u);
}

TEST_F(fixture, HedgesCountAgainstTheAttemptLimit) {
  auto p = policy.hedge({.delay = 1s, .max_hedges = 5}).stop(rebound::stop::after_attempts(2));
  slow fn{&clock, {10s}};
  rebound::call_report report;
  EXPECT_EQ(run(rebound::async_retry(p, fn, {.report = &report})), 1);
  EXPECT_EQ(*fn.calls, 2);
  EXPECT_EQ(report.attempts, 2);
}

TEST_F(fixture, HedgesDrawFromTheRetryBudget) {
  // A bucket with room for one hedge (cost 5 of 9).
  auto budget = std::make_shared<rebound::token_bucket_budget>(
      rebound::token_bucket_budget::options{.capacity = 9});
  auto p = policy.hedge({.delay = 1s, .max_hedges = 5}).budget(budget);
  slow fn{&clock, {10s}};
  EXPECT_EQ(run(rebound::async_retry(p, fn)), 1);
  EXPECT_EQ(*fn.calls, 2);
  const auto c = counters->snapshot();
  EXPECT_EQ(c.hedges, 1u);
  EXPECT_EQ(c.budget_rejections, 1u);
}

TEST_F(fixture, FailedHedgeLeavesTheOthersRunningThenRetries) {
  // Attempt 1 hangs long, the hedge fails fast; attempt 1 then succeeds.
  auto p = policy.hedge({.delay = 1s, .max_hedges = 1});
  int calls = 0;
  auto fn = [&](const rebound::async_attempt& a) -> asio::awaitable<int> {
    ++calls;
    if (a.hedged()) throw not_found_error();
    co_await rebound::testing::sleep_for(clock, 3s);
    co_return a.number();
  };
  const auto start = clock.now();
  EXPECT_EQ(run(rebound::async_retry(p, fn)), 1);
  EXPECT_EQ(clock.now() - start, duration(3s));
  EXPECT_EQ(calls, 2);
}

TEST_F(fixture, PercentileHedgeDelayFollowsObservedLatency) {
  auto tracker = std::make_shared<rebound::latency_tracker>();
  for (int i = 1; i <= 100; ++i) tracker->record(std::chrono::milliseconds(i * 10));
  auto p = policy.hedge({.delay = 5s, .max_hedges = 1, .percentile = 0.9, .tracker = tracker});
  // p90 of 10..1000ms is 900ms: the hedge starts then and answers in 100ms.
  slow fn{&clock, {10s, 100ms}};
  const auto start = clock.now();
  EXPECT_EQ(run(rebound::async_retry(p, fn)), 2);
  EXPECT_EQ(clock.now() - start, duration(1000ms));
  // Recorded: the winner's 100ms, and the 1000ms the beaten first attempt had run.
  EXPECT_EQ(tracker->size(), 102u);
}

TEST_F(fixture, HedgingPolicyValidation) {
  EXPECT_THROW((void)policy.hedge({.delay = -1ms}), std::invalid_argument);
  EXPECT_THROW((void)policy.hedge({.delay = 1ms, .max_hedges = 0}), std::invalid_argument);
  EXPECT_THROW((void)policy.hedge({.delay = 1ms, .percentile = 1.5}), std::invalid_argument);
  try {
    (void)policy.hedge({.delay = 1ms, .max_hedges = 0});
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("max_hedges"), std::string::npos);
  }
}

// ---- nesting across co_await ---------------------------------------------

// Attempts reaching the bottom when a 3-attempt loop runs inside a 3-attempt
// loop's attempt, across co_await, the inner one told of its parent.
int bottom_attempts(fixture& f, rebound::nesting inner_mode) {
  int bottom = 0;
  const auto outer = f.policy.stop(rebound::stop::after_attempts(3));
  const auto inner = f.policy.stop(rebound::stop::after_attempts(3)).nesting(inner_mode);
  auto fn = [&](const rebound::async_attempt& a) -> asio::awaitable<int> {
    const rebound::async_options nested{.parent = &a};
    co_return co_await rebound::async_retry(
        inner,
        [&]() -> asio::awaitable<int> {
          ++bottom;
          throw not_found_error();
          co_return 0;
        },
        nested);
  };
  EXPECT_THROW(f.run(rebound::async_retry(outer, fn)), not_found_error);
  return bottom;
}

TEST_F(fixture, PlainInnerLoopStillDefersToTheOuterOne) {
  // The inner policy needs nothing before its first outcome, so its first
  // attempt runs before its engine: the engine, made at the failure, must
  // still know it runs inside the outer attempt.
  int bottom = 0;
  const auto outer = policy.stop(rebound::stop::after_attempts(3));
  const auto inner = plain_policy(*this).stop(rebound::stop::after_attempts(3));
  ASSERT_TRUE(rebound::retry_call::plain_first_attempt(inner, {}));
  auto fn = [&](const rebound::async_attempt& a) -> asio::awaitable<int> {
    co_return co_await rebound::async_retry(inner,
                                            [&]() -> asio::awaitable<int> {
                                              ++bottom;
                                              throw not_found_error();
                                              co_return 0;
                                            },
                                            {.parent = &a});
  };
  EXPECT_THROW(run(rebound::async_retry(outer, fn)), not_found_error);
  EXPECT_EQ(bottom, 3);  // not 9
}

TEST_F(fixture, NestedLoopDefersToTheOuterOneAcrossCoAwait) {
  EXPECT_EQ(bottom_attempts(*this, rebound::nesting::defer), 3);  // not 9
}

TEST_F(fixture, IndependentNestedLoopsMultiply) {
  EXPECT_EQ(bottom_attempts(*this, rebound::nesting::independent), 9);
}

// ---- many operations -----------------------------------------------------

TEST_F(fixture, TenThousandConcurrentOperationsEndWithTheRightAttemptCounts) {
  constexpr int n = 10'000;
  auto p = policy.stop(rebound::stop::after_attempts(4))
               .jitter(rebound::jitter::full())
               .seed(7)
               .observer(nullptr);
  std::vector<rebound::call_report> reports(n);
  std::vector<int> calls(n, 0);
  std::vector<int> outcome(n, -2);
  for (int i = 0; i < n; ++i) {
    const int failures = i % 5;  // 0..4; 4 failures exceed the 4-attempt limit
    auto fn = [&calls, i, failures]() -> asio::awaitable<int> {
      if (++calls[i] <= failures) throw not_found_error();
      co_return i;
    };
    rebound::async_retry(io.get_executor(), p, fn, {.report = &reports[i]},
                         [&outcome, i](std::exception_ptr e, int v) { outcome[i] = e ? -1 : v; });
  }
  rebound::testing::run_simulated(io, clock);
  for (int i = 0; i < n; ++i) {
    const int failures = i % 5;
    if (failures < 4) {
      ASSERT_EQ(outcome[i], i) << i;
      ASSERT_EQ(reports[i].attempts, failures + 1) << i;
      ASSERT_EQ(reports[i].reason, rebound::stop_reason::succeeded) << i;
    } else {
      ASSERT_EQ(outcome[i], -1) << i;
      ASSERT_EQ(reports[i].attempts, 4) << i;
      ASSERT_EQ(reports[i].reason, rebound::stop_reason::attempts_exhausted) << i;
    }
    ASSERT_EQ(calls[i], std::min(failures + 1, 4)) << i;
  }
}

TEST_F(fixture, SameSeedSameSchedule) {
  auto p = policy.jitter(rebound::jitter::full()).seed(99);
  auto once = [&] {
    simulated_clock c;
    asio::io_context ctx;
    flaky fn{4, 1};
    // Named: the awaitable outlives this statement, and holds the policy by reference.
    const auto on_c = p.clock(c);
    auto f = asio::co_spawn(ctx, rebound::async_retry(on_c, fn), asio::use_future);
    rebound::testing::run_simulated(ctx, c);
    f.get();
    return c.now();
  };
  EXPECT_EQ(once(), once());
}

// Two threads on one io_context, real time but zero-length waits: TSan
// checks the strand, the stop callbacks and the hedges.
TEST(async_threads, TwoThreadIoContextWithHedgesTimeoutsAndStops) {
  asio::io_context io(2);
  auto counters = std::make_shared<rebound::counters_observer>();
  const auto p = rebound::retry_policy{}
                     .stop(rebound::stop::after_attempts(4))
                     .backoff(rebound::backoff::constant(0ms))
                     .attempt_timeout(1h)
                     .hedge({.delay = 0ms, .max_hedges = 2})
                     .observer(counters);
  constexpr int n = 400;
  std::atomic<int> done{0}, succeeded{0};
  std::vector<std::stop_source> stops(n);
  for (int i = 0; i < n; ++i) {
    auto calls = std::make_shared<std::atomic<int>>(0);
    auto fn = [calls, &io]() -> asio::awaitable<int> {
      const int k = ++*calls;
      for (int j = 0; j < 3; ++j) co_await asio::post(io, asio::use_awaitable);
      if (k % 2 == 1) throw not_found_error();
      co_return k;
    };
    rebound::async_retry(io.get_executor(), p, fn, {.stop = stops[i].get_token()},
                         [&](std::exception_ptr e, int) {
                           if (!e) ++succeeded;
                           ++done;
                         });
  }
  // And operations on the lean (composed-operation) path.
  const auto lean = rebound::retry_policy{}
                        .stop(rebound::stop::after_attempts(4))
                        .backoff(rebound::backoff::constant(0ms))
                        .retry_on<std::system_error>();
  std::atomic<int> lean_done{0}, lean_ok{0};
  for (int i = 0; i < n; ++i) {
    auto calls = std::make_shared<std::atomic<int>>(0);
    auto op = [calls, &io](auto&& token) {
      const int k = ++*calls;
      return asio::async_initiate<decltype(token), void(std::error_code, int)>(
          [k, &io](auto handler) {
            asio::post(io, [h = std::move(handler), k]() mutable {
              std::move(h)(k < 3 ? make_error_code(asio::error::timed_out) : std::error_code{}, k);
            });
          },
          token);
    };
    rebound::async_retry(io.get_executor(), lean, op, {}, [&](std::exception_ptr e, int v) {
      if (!e && v == 3) ++lean_ok;
      ++lean_done;
    });
  }
  std::thread a([&] { io.run(); });
  std::thread b([&] { io.run(); });
  for (int i = 0; i < n; i += 7) stops[i].request_stop();
  a.join();
  b.join();
  EXPECT_EQ(lean_done.load(), n);
  EXPECT_EQ(lean_ok.load(), n);
  EXPECT_EQ(done.load(), n);
  EXPECT_GT(succeeded.load(), 0);
  const auto c = counters->snapshot();
  std::uint64_t ends = 0;
  for (auto e : c.ends) ends += e;
  EXPECT_EQ(ends, static_cast<std::uint64_t>(n));
}

}  // namespace

// ---- fn taking a completion token ------------------------------------------

namespace {

// An Asio-style operation: completes (posted) with an error the first
// `failures` times, then with `value`.
struct flaky_op {
  asio::io_context* io;
  int failures;
  int value;
  std::shared_ptr<int> calls = std::make_shared<int>(0);
  template <class Token>
  auto operator()(Token&& token) const {
    return asio::async_initiate<Token, void(std::error_code, int)>(
        [this](auto handler) {
          const int n = ++*calls;
          const std::error_code ec =
              n <= failures ? make_error_code(asio::error::connection_refused) : std::error_code{};
          asio::post(*io, [h = std::move(handler), ec, v = value]() mutable {
            std::move(h)(ec, ec ? 0 : v);
          });
        },
        token);
  }
};

struct token_fixture : fixture {
  std::exception_ptr error;
  int value = -1;
  bool completed = false;
  auto callback() {
    return [this](std::exception_ptr e, int v) {
      completed = true;
      error = e;
      value = v;
    };
  }
};

TEST_F(token_fixture, LeanPathRetriesAnAsioOperationOnTheSystemClock) {
  // Zero-length back-offs on the real clock: nothing really waits.
  auto p = rebound::retry_policy{}
               .stop(rebound::stop::after_attempts(5))
               .backoff(rebound::backoff::constant(0ms))
               .retry_on<std::system_error>();
  flaky_op op{&io, 3, 42};
  rebound::async_retry(io.get_executor(), p, op, {}, callback());
  io.run();
  ASSERT_TRUE(completed);
  EXPECT_FALSE(error);
  EXPECT_EQ(value, 42);
  EXPECT_EQ(*op.calls, 4);
}

// An operation whose only state is two pointers. Wrapped in
// rebound::relocatable it stays inside the composed operation (no block of
// its own), and the engine is made at its first failure.
struct call_count {
  int calls = 0;
  int failures = 0;
};
struct pointer_op {
  asio::io_context* io;
  call_count* count;
  template <class Token>
  auto operator()(Token&& token) const {
    return asio::async_initiate<Token, void(std::error_code, int)>(
        [io = io, count = count](auto handler) {
          const int n = ++count->calls;
          const std::error_code ec = n <= count->failures
                                         ? make_error_code(asio::error::connection_refused)
                                         : std::error_code{};
          asio::post(*io, [h = std::move(handler), ec, n]() mutable { std::move(h)(ec, n); });
        },
        token);
  }
};
// Only when the caller says so (rebound::relocatable) or it holds nothing:
// size cannot tell two references from a reference and a small buffer.
static_assert(!rebound::detail::lean_keeps_fn_inline<pointer_op>);
static_assert(rebound::detail::lean_keeps_fn_inline<rebound::relocatable_fn<pointer_op>>);
static_assert(!rebound::detail::lean_keeps_fn_inline<flaky_op>);
struct reference_and_header {  // e.g. [&sock, header](auto&& t) { ...write(header)... }
  void* socket;
  std::array<char, 8> header;
};
static_assert(std::is_trivially_copyable_v<reference_and_header> &&
              sizeof(reference_and_header) <= 2 * sizeof(void*));
static_assert(!rebound::detail::lean_keeps_fn_inline<reference_and_header>);

TEST_F(token_fixture, LeanPathWithARelocatableOperationRetriesAfterItsFirstFailure) {
  const auto p = rebound::retry_policy{}
                     .stop(rebound::stop::after_attempts(4))
                     .backoff(rebound::backoff::constant(0ms))
                     .retry_on<std::system_error>();
  call_count count{.failures = 2};
  rebound::async_retry(io.get_executor(), p, rebound::relocatable(pointer_op{&io, &count}), {},
                       callback());
  io.run();
  ASSERT_TRUE(completed);
  EXPECT_FALSE(error);
  EXPECT_EQ(value, 3);  // the third call's number
  EXPECT_EQ(count.calls, 3);

  // With a report the engine is made before the first attempt: the same
  // attempts, and the report says so.
  completed = false;
  count = {.failures = 2};
  rebound::call_report report;
  rebound::async_retry(io.get_executor(), p, rebound::relocatable(pointer_op{&io, &count}),
                       {.report = &report}, callback());
  io.restart();
  io.run();
  ASSERT_TRUE(completed);
  EXPECT_EQ(value, 3);
  EXPECT_EQ(report.attempts, 3);
  EXPECT_EQ(report.reason, rebound::stop_reason::succeeded);

  // Every attempt fails: the last error after exactly four.
  completed = false;
  count = {.failures = 100};
  rebound::async_retry(io.get_executor(), p, rebound::relocatable(pointer_op{&io, &count}), {},
                       callback());
  io.restart();
  io.run();
  ASSERT_TRUE(completed);
  EXPECT_TRUE(error);
  EXPECT_EQ(count.calls, 4);

  // Unwrapped, the same operation lives in a block of its own: same outcome.
  completed = false;
  count = {.failures = 2};
  rebound::async_retry(io.get_executor(), p, pointer_op{&io, &count}, {}, callback());
  io.restart();
  io.run();
  ASSERT_TRUE(completed);
  EXPECT_FALSE(error);
  EXPECT_EQ(value, 3);
  EXPECT_EQ(count.calls, 3);
}

TEST_F(token_fixture, LeanPathKeepsAnOperationsOwnDataAliveThroughItsInitiation) {
  // The operation passes its own string to async_initiate, which moves the
  // handler (this composed operation) before the initiation reads the
  // string. An `fn` that owns data is therefore kept in a block of its own;
  // held inside the operation, the string would be read after a move.
  const auto p = rebound::retry_policy{}
                     .stop(rebound::stop::after_attempts(4))
                     .backoff(rebound::backoff::constant(0ms))
                     .retry_on<std::system_error>();
  std::vector<std::size_t> seen;
  auto op = [this, &seen, text = std::string(100, 'x')](auto&& token) {
    return asio::async_initiate<decltype(token), void(std::error_code, int)>(
        [this, &seen](auto handler, const std::string& t) {
          seen.push_back(t.size());
          const std::error_code ec = seen.size() < 3
                                         ? make_error_code(asio::error::connection_refused)
                                         : std::error_code{};
          asio::post(io, [h = std::move(handler), ec, n = static_cast<int>(t.size())]() mutable {
            std::move(h)(ec, n);
          });
        },
        token, text);
  };
  static_assert(!std::is_trivially_copyable_v<decltype(op)>);
  static_assert(!rebound::detail::lean_keeps_fn_inline<decltype(op)>);
  rebound::async_retry(io.get_executor(), p, op, {}, callback());
  io.run();
  ASSERT_TRUE(completed);
  EXPECT_FALSE(error);
  EXPECT_EQ(value, 100);
  EXPECT_EQ(seen, (std::vector<std::size_t>{100, 100, 100}));
}

TEST_F(token_fixture, LeanPathKeepsABufferInsideFnAtOneAddressUntilTheCallEnds) {
  // An operation that writes from a buffer held in `fn` itself reads that
  // buffer after its initiation returned (here: in the posted completion).
  // An `fn` this large is kept at one address, so the pointer stays good
  // through every attempt. (Inside the moved operation it would dangle;
  // ASan reports that.)
  const auto p = rebound::retry_policy{}
                     .stop(rebound::stop::after_attempts(3))
                     .backoff(rebound::backoff::constant(0ms))
                     .retry_on<std::system_error>();
  std::vector<std::string> sent;
  std::array<char, 24> message{};
  std::copy_n("twenty-four bytes here!", 24, message.begin());
  auto op = [this, &sent, message](auto&& token) {
    return asio::async_initiate<decltype(token), void(std::error_code, int)>(
        [this, &sent, data = message.data()](auto handler) {
          asio::post(io, [h = std::move(handler), &sent, data]() mutable {
            sent.emplace_back(data);  // read when the operation completes
            const std::error_code ec = sent.size() < 2
                                           ? make_error_code(asio::error::connection_refused)
                                           : std::error_code{};
            std::move(h)(ec, static_cast<int>(sent.size()));
          });
        },
        token);
  };
  static_assert(std::is_trivially_copyable_v<decltype(op)>);
  static_assert(!rebound::detail::lean_keeps_fn_inline<decltype(op)>);
  rebound::async_retry(io.get_executor(), p, op, {}, callback());
  io.run();
  ASSERT_TRUE(completed);
  EXPECT_FALSE(error);
  EXPECT_EQ(value, 2);
  EXPECT_EQ(sent, (std::vector<std::string>{"twenty-four bytes here!", "twenty-four bytes here!"}));
}

TEST_F(token_fixture, LeanPathGivesUpWithTheLastErrorCode) {
  auto p = rebound::retry_policy{}
               .stop(rebound::stop::after_attempts(3))
               .backoff(rebound::backoff::constant(0ms));
  flaky_op op{&io, 100, 1};
  rebound::async_retry(io.get_executor(), p, op, {}, callback());
  io.run();
  ASSERT_TRUE(completed);
  EXPECT_EQ(*op.calls, 3);
  try {
    std::rethrow_exception(error);
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), make_error_code(asio::error::connection_refused));
  }
}

TEST_F(token_fixture, LeanPathCancelledMidBackoffBySlot) {
  auto p = rebound::retry_policy{}
               .stop(rebound::stop::after_attempts(5))
               .backoff(rebound::backoff::constant(1h));
  flaky_op op{&io, 100, 1};
  asio::cancellation_signal signal;
  rebound::async_retry(io.get_executor(), p, op, {},
                       asio::bind_cancellation_slot(signal.slot(), callback()));
  // Run the first attempt and its failure; the loop is then waiting an hour.
  while (*op.calls == 0 || io.poll_one() > 0) {
    if (*op.calls == 0) io.run_one();
  }
  ASSERT_FALSE(completed);
  signal.emit(asio::cancellation_type::terminal);
  io.run();
  ASSERT_TRUE(completed);
  EXPECT_EQ(*op.calls, 1);
  try {
    std::rethrow_exception(error);
  } catch (const rebound::retry_error& e) {
    EXPECT_EQ(e.reason(), rebound::stop_reason::cancelled);
  }
}

TEST_F(token_fixture, LeanPathCancelledDuringItsFirstAttemptIsNotRetried) {
  // A plain policy: the first attempt runs before the engine is made. The
  // caller's slot reaches the attempt (a timer wait of an hour that is never
  // reached), which ends with operation_aborted; the engine, made at that
  // failure, ends the call as cancelled instead of retrying it. The
  // operation has no value, so the call completes with (exception_ptr).
  // A second attempt, were there one, would end at once and succeed.
  const auto p = rebound::retry_policy{}
                     .stop(rebound::stop::after_attempts(5))
                     .backoff(rebound::backoff::constant(0ms))
                     .retry_on<std::system_error>();
  ASSERT_TRUE(rebound::retry_call::plain_first_attempt(p, {}));
  asio::steady_timer timer(io);
  int calls = 0;
  auto op = [&timer, &calls](auto&& token) {
    ++calls;
    timer.expires_after(calls == 1 ? std::chrono::steady_clock::duration(1h)
                                   : std::chrono::steady_clock::duration::zero());
    return timer.async_wait(std::forward<decltype(token)>(token));
  };
  asio::cancellation_signal signal;
  std::exception_ptr e;
  rebound::async_retry(io.get_executor(), p, op, {},
                       asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr x) {
                         completed = true;
                         e = std::move(x);
                       }));
  io.poll();  // the first attempt starts, and waits
  ASSERT_EQ(calls, 1);
  ASSERT_FALSE(completed);
  signal.emit(asio::cancellation_type::terminal);
  io.run();
  ASSERT_TRUE(completed);
  EXPECT_EQ(calls, 1);
  ASSERT_TRUE(e);
  try {
    std::rethrow_exception(e);
  } catch (const rebound::retry_error& err) {
    EXPECT_EQ(err.reason(), rebound::stop_reason::cancelled);
  }
}

TEST_F(token_fixture, LeanPathInsideAnOuterAttemptDefersToTheOuterLoop) {
  // The inner call is the lean token form (system clock, zero back-off, a
  // plain policy), run inside an outer coroutine loop's attempt and told of
  // it. Its engine, made at its first failure, must still defer to the outer
  // loop: 3 attempts reach the operation, not 9.
  const auto inner = rebound::retry_policy{}
                         .stop(rebound::stop::after_attempts(3))
                         .backoff(rebound::backoff::constant(0ms))
                         .retry_on<std::system_error>();
  ASSERT_TRUE(rebound::retry_call::plain_first_attempt(inner, {}));
  const auto outer = policy.stop(rebound::stop::after_attempts(3)).retry_on<std::system_error>();
  flaky_op op{&io, 100, 1};
  auto attempt = [&](const rebound::async_attempt& a) -> asio::awaitable<int> {
    co_return co_await rebound::async_retry(io.get_executor(), inner, op, {.parent = &a},
                                            asio::use_awaitable);
  };
  EXPECT_THROW(run(rebound::async_retry(outer, attempt)), std::system_error);
  EXPECT_EQ(*op.calls, 3);  // not 9
  // Told of no parent, the same inner call retries on its own: 9.
  flaky_op independent{&io, 100, 1};
  auto alone = [&](const rebound::async_attempt&) -> asio::awaitable<int> {
    co_return co_await rebound::async_retry(io.get_executor(), inner, independent, {},
                                            asio::use_awaitable);
  };
  EXPECT_THROW(run(rebound::async_retry(outer, alone)), std::system_error);
  EXPECT_EQ(*independent.calls, 9);
}

TEST_F(token_fixture, FullLoopForTheSamePolicyOnSimulatedTime) {
  // A custom clock and a report: the coroutine loop runs fn(use_awaitable).
  flaky_op op{&io, 2, 5};
  rebound::call_report report;
  const auto start = clock.now();
  const auto p = policy.retry_on<std::system_error>();
  rebound::async_retry(io.get_executor(), p, op, {.report = &report}, callback());
  rebound::testing::run_simulated(io, clock);
  ASSERT_TRUE(completed);
  EXPECT_FALSE(error);
  EXPECT_EQ(value, 5);
  EXPECT_EQ(report.attempts, 3);
  EXPECT_EQ(clock.now() - start, duration(3s));  // 1s + 2s of simulated back-off
}

TEST_F(token_fixture, AwaitableFormTakesATokenFunctionToo) {
  flaky_op op{&io, 1, 8};
  EXPECT_EQ(run(rebound::async_retry(policy.retry_on<std::system_error>(), op)), 8);
  EXPECT_EQ(*op.calls, 2);
}

}  // namespace
