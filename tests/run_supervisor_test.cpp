// The run supervisor on simulated time: scenario 002's 2..32 s schedule runs
// in microseconds, and every cancel lands in a chosen phase.
#include "rebound/run_supervisor.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <latch>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "rebound/breaker.hpp"
#include "rebound/retry.hpp"
#include "rebound/testing/simulated_clock.hpp"
#include "rebound/throttle.hpp"

namespace {

using namespace std::chrono_literals;
using rebound::run_context;
using rebound::run_event;
using rebound::run_failure;
using rebound::run_phase;
using rebound::run_result;
using rebound::run_supervisor;

// A provider error with a typed status: classified by type, not by text.
struct provider_error : std::runtime_error {
  explicit provider_error(int s)
      : std::runtime_error("provider answered " + std::to_string(s)), status(s) {}
  int status;
};

rebound::retry_policy scenario_002(rebound::clock& c) {
  return run_supervisor::default_policy().clock(c).retry_if_exception([](const provider_error& e) {
    return e.status == 408 || e.status == 429 || (e.status >= 500 && e.status <= 504);
  });
}

// Records every event, in order.
struct recorder {
  std::mutex mu;
  std::vector<run_event> events;
  explicit recorder(run_supervisor& s) {
    s.subscribe([this](const run_event& e) {
      std::lock_guard lock(mu);
      events.push_back(e);
    });
  }
  template <class T>
  std::vector<T> all() {
    std::lock_guard lock(mu);
    std::vector<T> out;
    for (const auto& e : events) {
      if (const auto* t = std::get_if<T>(&e)) out.push_back(*t);
    }
    return out;
  }
  std::vector<std::string> lines() {
    std::lock_guard lock(mu);
    std::vector<std::string> out;
    for (const auto& e : events) out.push_back(rebound::describe(e));
    return out;
  }
};

TEST(RunSupervisor, Scenario002ScheduleIsTwoToThirtyTwoSecondsThenFails) {
  rebound::testing::simulated_clock clock;
  run_supervisor runs(scenario_002(clock));
  recorder rec(runs);
  const auto t0 = clock.now();
  const auto r =
      runs.run({.key = "conv-1", .attempt = [](const run_context&) { throw provider_error(503); }});
  EXPECT_EQ(r.state, run_result::status::failed);
  EXPECT_EQ(r.failure, run_failure::retries_exhausted);
  EXPECT_EQ(r.attempts, 6);
  EXPECT_EQ(clock.now() - t0, 62s);
  EXPECT_EQ(clock.sleeps(), (std::vector<rebound::duration>{2s, 4s, 8s, 16s, 32s}));

  const auto retrying = rec.all<rebound::run_retrying>();
  ASSERT_EQ(retrying.size(), 5U);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(retrying[i].attempt, i + 1);
    EXPECT_EQ(retrying[i].max, 5);
    EXPECT_EQ(retrying[i].error, "provider answered 503");
  }
  EXPECT_EQ(retrying[1].delay, 4s);
  const auto started = rec.all<rebound::run_started>();
  ASSERT_EQ(started.size(), 6U);
  for (std::size_t i = 0; i < started.size(); ++i) {
    EXPECT_EQ(started[i].attempt, static_cast<int>(i) + 1);
    for (std::size_t j = 0; j < i; ++j) EXPECT_NE(started[i].run_id, started[j].run_id);
  }
  const auto failed = rec.all<rebound::run_failed>();
  ASSERT_EQ(failed.size(), 1U);
  EXPECT_EQ(failed[0].attempts, 6);
  EXPECT_EQ(failed[0].run_id, started.back().run_id);
  EXPECT_EQ(failed[0].error, "provider answered 503");
  // A UI needs nothing but the event: "retry 2 of 5".
  EXPECT_EQ(rec.lines()[3], "run conv-1: retry 2 of 5 in 4s (provider answered 503)");
  EXPECT_FALSE(runs.active("conv-1"));
}

TEST(RunSupervisor, SucceedsOnALaterAttemptWithAFreshRunId) {
  rebound::testing::simulated_clock clock;
  run_supervisor runs(scenario_002(clock));
  recorder rec(runs);
  std::vector<std::string> ids;
  const auto r = runs.run({.key = "conv-2", .attempt = [&](const run_context& run) {
                             ids.push_back(run.run_id);
                             if (run.attempt < 3) throw provider_error(502);
                           }});
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.attempts, 3);
  ASSERT_EQ(ids.size(), 3U);
  EXPECT_EQ(r.run_id, ids[2]);
  EXPECT_EQ(ids[0].rfind("conv-2-1-", 0), 0U);
  const auto ok = rec.all<rebound::run_succeeded>();
  ASSERT_EQ(ok.size(), 1U);
  EXPECT_EQ(ok[0].run_id, ids[2]);
  EXPECT_EQ(ok[0].attempts, 3);
}

TEST(RunSupervisor, APermanentErrorIsNotRetried) {
  rebound::testing::simulated_clock clock;
  run_supervisor runs(scenario_002(clock));
  recorder rec(runs);
  int cleanups = 0;
  const auto r =
      runs.run({.key = "conv-3",
                .attempt = [](const run_context&) { throw provider_error(401); },
                .cleanup = [&](const run_context&, const std::exception_ptr&) { ++cleanups; }});
  EXPECT_EQ(r.failure, run_failure::not_retryable);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(cleanups, 0);
  EXPECT_TRUE(rec.all<rebound::run_retrying>().empty());
  EXPECT_THROW(std::rethrow_exception(r.error), provider_error);
}

TEST(RunSupervisor, CancelDuringAnAttemptAsksItToStopAndStartsNoOther) {
  rebound::testing::simulated_clock clock;
  run_supervisor runs(scenario_002(clock));
  recorder rec(runs);
  int attempts = 0;
  const auto r = runs.run({.key = "conv-4", .attempt = [&](const run_context& run) {
                             ++attempts;
                             EXPECT_FALSE(run.stop.stop_requested());
                             EXPECT_TRUE(runs.cancel("conv-4"));  // the user presses Stop
                             EXPECT_TRUE(run.stop.stop_requested());
                             throw provider_error(503);  // the stream aborts
                           }});
  EXPECT_EQ(r.state, run_result::status::cancelled);
  EXPECT_EQ(attempts, 1);
  const auto c = rec.all<rebound::run_cancelled>();
  ASSERT_EQ(c.size(), 1U);
  EXPECT_EQ(c[0].phase, run_phase::attempt);
  EXPECT_TRUE(rec.all<rebound::run_retrying>().empty());
  EXPECT_TRUE(rec.all<rebound::run_failed>().empty());
}

TEST(RunSupervisor, CancelDuringTheBackoffEndsTheWaitAtOnce) {
  rebound::testing::simulated_clock clock(rebound::testing::simulated_clock::mode::manual);
  run_supervisor runs(scenario_002(clock));
  recorder rec(runs);
  std::atomic<int> attempts{0};
  auto h = runs.start({.key = "conv-5", .attempt = [&](const run_context&) {
                         ++attempts;
                         throw provider_error(429);
                       }});
  ASSERT_TRUE(clock.wait_for_sleepers(1, 5s));  // real wait for the run's thread
  const auto t = clock.now();
  EXPECT_TRUE(runs.cancel("conv-5"));
  const auto& r = h.wait();
  EXPECT_EQ(r.state, run_result::status::cancelled);
  EXPECT_EQ(clock.now(), t);  // no time had to pass
  EXPECT_EQ(attempts.load(), 1);
  const auto c = rec.all<rebound::run_cancelled>();
  ASSERT_EQ(c.size(), 1U);
  EXPECT_EQ(c[0].phase, run_phase::backoff);
  EXPECT_EQ(rec.all<rebound::run_started>().size(), 1U);
}

// A clock whose every wake comes with a cancel that lands at the same
// moment, and which still reports a full sleep: only the check after the
// wake can catch it.
class cancel_at_wake_clock final : public rebound::clock {
 public:
  explicit cancel_at_wake_clock(std::function<void()> at_wake) : at_wake_(std::move(at_wake)) {}
  rebound::time_point now() const noexcept override { return inner_.now(); }
  bool sleep_until(rebound::time_point deadline, std::stop_token) override {
    inner_.advance_to(deadline);
    at_wake_();
    return true;
  }

 private:
  rebound::testing::simulated_clock inner_;
  std::function<void()> at_wake_;
};

TEST(RunSupervisor, ACancelThatLandsAsTheWaitEndsIsStillSeen) {
  run_supervisor* sup = nullptr;
  cancel_at_wake_clock clock([&] { sup->cancel("conv-6"); });
  run_supervisor runs(scenario_002(clock));
  sup = &runs;
  recorder rec(runs);
  int attempts = 0;
  const auto r = runs.run({.key = "conv-6", .attempt = [&](const run_context&) {
                             ++attempts;
                             throw provider_error(500);
                           }});
  EXPECT_EQ(r.state, run_result::status::cancelled);
  EXPECT_EQ(attempts, 1);
  ASSERT_EQ(rec.all<rebound::run_cancelled>().size(), 1U);
  EXPECT_EQ(rec.all<rebound::run_cancelled>()[0].phase, run_phase::backoff);
}

TEST(RunSupervisor, CancelDuringCleanupOrStartStopsBeforeTheNextAttempt) {
  rebound::testing::simulated_clock clock;
  run_supervisor runs(scenario_002(clock));
  recorder rec(runs);
  int attempts = 0;
  auto r = runs.run(
      {.key = "conv-7",
       .attempt =
           [&](const run_context&) {
             ++attempts;
             throw provider_error(503);
           },
       .cleanup = [&](const run_context&, const std::exception_ptr&) { runs.cancel("conv-7"); }});
  EXPECT_EQ(r.state, run_result::status::cancelled);
  EXPECT_EQ(attempts, 1);
  EXPECT_EQ(rec.all<rebound::run_cancelled>().back().phase, run_phase::cleanup);
  EXPECT_TRUE(rec.all<rebound::run_retrying>().empty());  // never said "retrying"

  attempts = 0;
  r = runs.run({.key = "conv-7b",
                .attempt = [&](const run_context&) { ++attempts; },
                .start =
                    [&](const std::string& key, int n) {
                      runs.cancel(key);  // lands while the attempt is being set up
                      return key + "-run-" + std::to_string(n);
                    }});
  EXPECT_EQ(r.state, run_result::status::cancelled);
  EXPECT_EQ(attempts, 0);
  EXPECT_EQ(r.run_id, "conv-7b-run-1");
  EXPECT_EQ(rec.all<rebound::run_cancelled>().back().phase, run_phase::starting);
}

TEST(RunSupervisor, AStaleCancelNeverAbortsANewRunUnderTheSameKey) {
  rebound::testing::simulated_clock clock;
  run_supervisor runs(scenario_002(clock));
  std::string first_id;
  auto r1 = runs.run(
      {.key = "conv-8", .attempt = [&](const run_context& run) { first_id = run.run_id; }});
  ASSERT_TRUE(r1.ok());
  // Cancels that arrive after the run ended are not remembered for the key.
  EXPECT_FALSE(runs.cancel("conv-8"));
  EXPECT_FALSE(runs.cancel("conv-8", first_id));

  auto h = runs.start({.key = "conv-8", .attempt = [](const run_context&) {}});
  ASSERT_TRUE(h.wait().ok());
  EXPECT_FALSE(h.cancel());  // this handle's run has ended: nothing to cancel

  bool stale_accepted = true;
  bool still_running = false;
  const auto r2 = runs.run({.key = "conv-8", .attempt = [&](const run_context& run) {
                              if (run.attempt == 1) {
                                // A UI's late cancel for the old run id.
                                stale_accepted = runs.cancel("conv-8", first_id);
                                still_running = !run.stop.stop_requested();
                                throw provider_error(503);
                              }
                            }});
  EXPECT_FALSE(stale_accepted);
  EXPECT_TRUE(still_running);
  EXPECT_TRUE(r2.ok());
  EXPECT_EQ(r2.attempts, 2);
}

TEST(RunSupervisor, ACancelByTheCurrentRunIdIsHonoured) {
  rebound::testing::simulated_clock clock;
  run_supervisor runs(scenario_002(clock));
  const auto r = runs.run({.key = "conv-9", .attempt = [&](const run_context& run) {
                             EXPECT_EQ(runs.current_run_id("conv-9"), run.run_id);
                             EXPECT_TRUE(runs.cancel("conv-9", run.run_id));
                             throw provider_error(503);
                           }});
  EXPECT_EQ(r.state, run_result::status::cancelled);
}

TEST(RunSupervisor, AFailedCleanupEndsTheRun) {
  rebound::testing::simulated_clock clock;
  run_supervisor runs(scenario_002(clock));
  recorder rec(runs);
  int attempts = 0;
  const auto r = runs.run({.key = "conv-10",
                           .attempt =
                               [&](const run_context&) {
                                 ++attempts;
                                 throw provider_error(503);
                               },
                           .cleanup =
                               [](const run_context&, const std::exception_ptr&) {
                                 throw std::runtime_error("database is locked");
                               }});
  EXPECT_EQ(r.failure, run_failure::cleanup_failed);
  EXPECT_EQ(attempts, 1);
  const auto f = rec.all<rebound::run_failed>();
  ASSERT_EQ(f.size(), 1U);
  EXPECT_EQ(f[0].error, "database is locked");
  EXPECT_EQ(f[0].reason, run_failure::cleanup_failed);
  EXPECT_TRUE(rec.all<rebound::run_retrying>().empty());
  EXPECT_FALSE(runs.active("conv-10"));
}

TEST(RunSupervisor, AFailedRestartEndsTheRunAndLeavesNothingRetrying) {
  rebound::testing::simulated_clock clock;
  run_supervisor runs(scenario_002(clock));
  recorder rec(runs);
  const auto r = runs.run({.key = "conv-11",
                           .attempt = [](const run_context&) { throw provider_error(503); },
                           .start = [](const std::string& key, int n) -> std::string {
                             if (n == 2) throw std::runtime_error("cannot create run row");
                             return key + "/" + std::to_string(n);
                           }});
  EXPECT_EQ(r.failure, run_failure::start_failed);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(r.run_id, "conv-11/1");
  // The last word is run_failed: a UI showing "retrying" moves on.
  ASSERT_FALSE(rec.events.empty());
  const auto* last = std::get_if<rebound::run_failed>(&rec.events.back());
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(last->reason, run_failure::start_failed);
  EXPECT_EQ(last->error, "cannot create run row");

  // The very first start failing is reported the same way.
  const auto r0 = runs.run({.key = "conv-11b",
                            .attempt = [](const run_context&) {},
                            .start = [](const std::string&, int) -> std::string {
                              throw std::runtime_error("no database");
                            }});
  EXPECT_EQ(r0.failure, run_failure::start_failed);
  EXPECT_EQ(r0.attempts, 0);
}

TEST(RunSupervisor, OneActiveRunPerKey) {
  rebound::testing::simulated_clock clock;
  run_supervisor runs(scenario_002(clock));
  std::promise<void> release;
  auto released = release.get_future().share();
  std::latch running(1);
  auto h = runs.start({.key = "conv-12", .attempt = [&](const run_context&) {
                         running.count_down();
                         released.wait();
                       }});
  running.wait();
  try {
    (void)runs.run({.key = "conv-12", .attempt = [](const run_context&) {}});
    FAIL() << "a second run under a busy key started";
  } catch (const rebound::run_busy_error& e) {
    EXPECT_EQ(e.key(), "conv-12");
    EXPECT_EQ(e.active_run_id(), *runs.current_run_id("conv-12"));
    EXPECT_NE(std::string(e.what()).find("conv-12 is already active"), std::string::npos);
  }
  EXPECT_THROW((void)runs.start({.key = "conv-12", .attempt = [](const run_context&) {}}),
               rebound::run_busy_error);
  EXPECT_TRUE(runs.run({.key = "other", .attempt = [](const run_context&) {}}).ok());
  release.set_value();
  ASSERT_TRUE(h.wait().ok());
  EXPECT_TRUE(runs.run({.key = "conv-12", .attempt = [](const run_context&) {}}).ok());
}

TEST(RunSupervisor, ConcurrentStartsOnOneKeyAdmitExactlyOne) {
  rebound::testing::simulated_clock clock;
  run_supervisor runs(scenario_002(clock));
  constexpr int threads = 8;
  std::latch go(threads);
  std::promise<void> release;
  auto released = release.get_future().share();
  std::atomic<int> ran{0};
  std::atomic<int> busy{0};
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) {
    pool.emplace_back([&] {
      go.arrive_and_wait();
      try {
        (void)runs.run({.key = "shared", .attempt = [&](const run_context&) {
                          ++ran;
                          released.wait();
                        }});
      } catch (const rebound::run_busy_error&) {
        if (++busy == threads - 1) release.set_value();
      }
    });
  }
  for (auto& t : pool) t.join();
  EXPECT_EQ(ran.load(), 1);
  EXPECT_EQ(busy.load(), threads - 1);
}

TEST(RunSupervisor, ASubscriberCanStartTheNextRunFromTheLastEvent) {
  rebound::testing::simulated_clock clock;
  run_supervisor runs(scenario_002(clock));
  std::optional<run_result> follow_up;
  bool started_follow_up = false;
  runs.subscribe([&](const run_event& e) {
    if (std::holds_alternative<rebound::run_succeeded>(e) && !started_follow_up) {
      started_follow_up = true;
      follow_up = runs.run({.key = "conv-13", .attempt = [](const run_context&) {}});
    }
  });
  EXPECT_TRUE(runs.run({.key = "conv-13", .attempt = [](const run_context&) {}}).ok());
  ASSERT_TRUE(follow_up);
  EXPECT_TRUE(follow_up->ok());
}

TEST(RunSupervisor, AThrowingSubscriberDoesNotBreakTheRun) {
  rebound::testing::simulated_clock clock;
  run_supervisor runs(scenario_002(clock));
  const auto id = runs.subscribe([](const run_event&) { throw std::runtime_error("ui gone"); });
  recorder rec(runs);
  EXPECT_TRUE(runs.run({.key = "conv-14",
                        .attempt =
                            [](const run_context& run) {
                              if (run.attempt == 1) throw provider_error(504);
                            }})
                  .ok());
  EXPECT_EQ(rec.events.size(), 4U);  // started, retrying, started, succeeded
  runs.unsubscribe(id);
}

TEST(RunSupervisor, RefusesAnIncompleteSpec) {
  run_supervisor runs;
  EXPECT_THROW((void)runs.run({.key = "", .attempt = [](const run_context&) {}}),
               std::invalid_argument);
  EXPECT_THROW((void)runs.run({.key = "k"}), std::invalid_argument);
  EXPECT_FALSE(runs.active("k"));
}

TEST(RunSupervisor, DescribesEveryEvent) {
  EXPECT_EQ(rebound::describe(rebound::run_started{"c", "c-1-ab", 1}),
            "run c: attempt 1 started (c-1-ab)");
  EXPECT_EQ(
      rebound::describe(rebound::run_failed{"c", "c-6", "503", 6, run_failure::retries_exhausted}),
      "run c: failed after 6 attempts (retries_exhausted): 503");
  EXPECT_EQ(rebound::describe(rebound::run_cancelled{"c", "c-2", 2, run_phase::backoff}),
            "run c: cancelled during backoff after 2 attempts");
  EXPECT_EQ(rebound::describe(rebound::run_succeeded{"c", "c-3", 3}),
            "run c: succeeded on attempt 3 (c-3)");
}

// The supervisor drives the call engine, as retry() does: a throttle on its
// policy is asked before every attempt, and an open circuit (or any
// overloaded verdict) ends the run at once, even where the policy's own
// rules would call the exception transient.
TEST(RunSupervisor, HonoursAThrottleAndTreatsAnOpenBreakerAsOverloadedLikeRetry) {
  rebound::testing::simulated_clock clock;
  auto throttle = std::make_shared<rebound::adaptive_throttle>(
      rebound::adaptive_throttle::options{.k = 1.0}, clock);
  for (int i = 0; i < 100000; ++i) (void)throttle->admit(0.9999999);  // requests, no accepts
  const auto throttled = run_supervisor::default_policy().clock(clock).throttle(throttle).seed(3);
  int attempts = 0;
  run_supervisor s(throttled);
  const auto r = s.run({.key = "t", .attempt = [&](const run_context&) { ++attempts; }});
  EXPECT_EQ(attempts, 0);
  EXPECT_EQ(r.state, run_result::status::failed);
  EXPECT_EQ(r.failure, run_failure::budget_exhausted);
  EXPECT_THROW(std::rethrow_exception(r.error), rebound::throttled_error);
  EXPECT_THROW(rebound::retry(throttled, [&] { ++attempts; }), rebound::throttled_error);
  EXPECT_EQ(attempts, 0);

  // The default policy retries every exception; an open circuit is not retried.
  const auto open = run_supervisor::default_policy().clock(clock);
  const auto circuit_open = [&] { throw rebound::circuit_open_error(clock.now() + 5s); };
  run_supervisor s2(open);
  const auto r2 = s2.run({.key = "b", .attempt = [&](const run_context&) {
                            ++attempts;
                            circuit_open();
                          }});
  EXPECT_EQ(attempts, 1);
  EXPECT_EQ(r2.failure, run_failure::not_retryable);
  EXPECT_TRUE(clock.sleeps().empty());
  rebound::call_report report;
  EXPECT_THROW(rebound::retry(open,
                              [&] {
                                ++attempts;
                                circuit_open();
                              },
                              {.report = &report}),
               rebound::circuit_open_error);
  EXPECT_EQ(attempts, 2);
  EXPECT_EQ(report.reason, rebound::stop_reason::overloaded);
}

}  // namespace
