// Scenario 000 (shared/SCENARIOS.md): a test submits a run and reads it back;
// the read hits a lagging replica and gets NotFound. The fix: retry NotFound
// for up to 5 s, exponential wait with jitter from 0.5 s to 3 s; Forbidden is
// never retried. On simulated time, the whole schedule runs in microseconds.
#include <gtest/gtest.h>

#include "rebound/config.hpp"
#include "rebound/retry.hpp"
#include "rebound/testing/simulated_clock.hpp"
#include "test_types.hpp"

namespace {

using namespace std::chrono_literals;
using namespace rebound_test;
using rebound::stop_reason;

// A run store whose replica shows a run only `lag` after it was written.
class lagging_api {
 public:
  lagging_api(rebound::clock& c, rebound::duration lag) : clock_(c), lag_(lag) {}
  void submit() { written_ = clock_.now(); }
  std::string details() {
    ++calls;
    if (forbidden) throw forbidden_error();
    if (clock_.now() - written_ < lag_) throw not_found_error();
    return "run-1";
  }
  int calls = 0;
  bool forbidden = false;

 private:
  rebound::clock& clock_;
  rebound::duration lag_;
  rebound::time_point written_{};
};

rebound::retry_policy scenario_000_policy(rebound::clock& c) {
  return rebound::retry_policy{}
      .stop(rebound::stop::after_elapsed(5s))
      .backoff(rebound::backoff::exponential(500ms, 2.0, 3s))
      .jitter(rebound::jitter::full())
      .retry_on<not_found_error>()
      .clock(c);
}

TEST(Scenario000Test, ReadAfterWriteRidesThroughReplicaLag) {
  rebound::testing::simulated_clock clock;
  lagging_api api(clock, 1200ms);
  api.submit();
  rebound::call_report report;
  const auto policy = scenario_000_policy(clock).seed(1);
  EXPECT_EQ(rebound::retry(policy, [&] { return api.details(); }, {.report = &report}), "run-1");
  EXPECT_GE(api.calls, 2);
  EXPECT_EQ(report.reason, stop_reason::succeeded);
  EXPECT_GE(report.elapsed, 1200ms);
  for (auto d : clock.sleeps()) EXPECT_LE(d, 3s);
}

TEST(Scenario000Test, PersistentNotFoundGivesUpAfterFiveSecondsWithFewCalls) {
  // Over many seeds: the loop stops once 5 s have passed, never sleeps more
  // than 3 s at a time, and makes a bounded number of calls (one retry layer).
  for (std::uint64_t seed = 1; seed <= 200; ++seed) {
    rebound::testing::simulated_clock clock;
    lagging_api api(clock, 1h);
    api.submit();
    rebound::call_report report;
    const auto policy =
        scenario_000_policy(clock).seed(seed).on_give_up(rebound::give_up_mode::throw_retry_error);
    try {
      (void)rebound::retry(policy, [&] { return api.details(); }, {.report = &report});
      FAIL() << "a run that never appears cannot be read";
    } catch (const rebound::retry_error& e) {
      EXPECT_EQ(e.reason(), stop_reason::time_exhausted);
      EXPECT_THROW(e.rethrow_last_error(), not_found_error);
    }
    EXPECT_GE(report.elapsed, 5s);
    EXPECT_LT(report.elapsed, 8s);  // the last sleep started before 5 s and is <= 3 s
    EXPECT_EQ(report.attempts, api.calls);
    // Full jitter can draw short waits; still, 5 s of waits needs few calls.
    EXPECT_LE(api.calls, 40) << "seed " << seed;
    for (auto d : clock.sleeps()) EXPECT_LE(d, 3s);
  }
}

TEST(Scenario000Test, ForbiddenIsNeverRetried) {
  rebound::testing::simulated_clock clock;
  lagging_api api(clock, 0s);
  api.forbidden = true;
  EXPECT_THROW((void)rebound::retry(scenario_000_policy(clock), [&] { return api.details(); }),
               forbidden_error);
  EXPECT_EQ(api.calls, 1);
  EXPECT_TRUE(clock.sleeps().empty());
}

TEST(Scenario000Test, TheSameScheduleComesFromConfiguration) {
  // Scenario 000's reviewers asked for settings instead of hard-coded numbers.
  rebound::testing::simulated_clock clock;
  const auto from_config = rebound::policy_from_json(R"({"max_elapsed": "5s",
          "backoff": {"type": "exponential", "initial": "500ms", "multiplier": 2, "max": "3s"},
          "jitter": "full"})")
                               .retry_on<not_found_error>()
                               .clock(clock);
  EXPECT_EQ(from_config.stop(), scenario_000_policy(clock).stop());
  EXPECT_EQ(from_config.backoff(), scenario_000_policy(clock).backoff());
  EXPECT_EQ(from_config.jitter(), scenario_000_policy(clock).jitter());
}

}  // namespace
