// The fleet budget measured with real processes: 16 rebound-fleet-worker
// processes share one budget (in a real redis-server) in front of the fault
// server during an outage (every request answered 503). Each mode runs
// 4 s of real time: the processes and the network are the subject.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "fault_server.hpp"
#include "fleet_run.hpp"
#include "redis_server.hpp"

namespace {

constexpr int processes = 16;
constexpr double rate = 40;  // requests per second, per process
constexpr double seconds = 4;

struct FleetProcesses : ::testing::Test {
  rebound::fault::server server;
  rebound::testing::redis_server redis;

  rebound::fleet::fleet_result run(const std::string& mode) {
    const std::string path = "/resume/" + mode;
    const auto r = rebound::fleet::run_fleet(REBOUND_FLEET_WORKER, mode,
                                             server.url(path + "?ms=600000&status=503"), rate,
                                             seconds, processes, redis.port());
    std::printf(
        "%-11s %2d processes: %6lld requests, %6lld attempts, amplification %.3f, "
        "decision p50 %.1f us p99 %.1f us, Redis %.1f commands/s per process\n",
        mode.c_str(), r.processes, r.requests, r.attempts, r.amplification(), r.p50_us, r.p99_us,
        r.redis_commands_per_s);
    EXPECT_EQ(r.failed_processes, 0) << mode;
    // What the workers report is what the server saw.
    const auto seen = server.executed().by_path;
    EXPECT_EQ(seen.count(path) ? seen.at(path) : 0, r.attempts) << mode;
    return r;
  }
};

TEST_F(FleetProcesses, OneBudgetForSixteenProcessesWithRedisUpAndDown) {
  const auto local = run("local");
  const auto shared = run("shared");
  const auto down_share = run("down-share");
  const auto down_whole = run("down-whole");
  // The targets of issue 20.
  EXPECT_LE(shared.amplification(), 1.10);
  EXPECT_LE(down_share.amplification(), 1.25);
  // Without sharing, each process spends a floor of its own: 16 floors.
  EXPECT_GT(local.amplification(), shared.amplification() + 0.1);
  EXPECT_GT(down_whole.amplification(), down_share.amplification() + 0.1);
  // Each worker ran its share of the requests.
  for (const auto* r : {&local, &shared, &down_share, &down_whole}) {
    EXPECT_GE(r->requests, static_cast<long long>(processes * rate * seconds * 0.9)) << r->mode;
  }
  EXPECT_GT(shared.redis_commands_per_s, 0);
  EXPECT_EQ(local.redis_commands_per_s, 0);
}

// Issue 25, items 2 and 3, on 16 real processes: Redis is killed (SIGKILL)
// mid-run, then started again with no data. Before the fix the fleet
// retried 220 to 240 times in the first second after the loss (each
// fallback granted its share again), 1.72 to 1.83x what the budget allows
// over an 8 s window containing the loss; and the first process back after
// the restart took 58 retries in its first second (a fresh window and a
// fleet of one). Real time: the processes, Redis and its loss are the subject.
// Measured on 2026-12-08 (2 cores), the same test on the code before and
// after: first second after SIGKILL 256 -> 61..70 retries; worst 8 s window
// containing it 2.26x -> 1.07..1.10x; containing the empty restart 2.26x ->
// 1.05..1.07x (the budget allows 37 a second; with Redis up the fleet used
// 0.86x).
TEST_F(FleetProcesses, LosingRedisStartsFromWhatTheFleetSpent) {
  constexpr double run_s = 16;
  constexpr double kill_at = 6;
  constexpr double restart_at = 9;
  const std::string path = "/resume/lost";
  const auto r = rebound::fleet::run_fleet(
      REBOUND_FLEET_WORKER, "lost", server.url(path + "?ms=600000&status=503"), rate, run_s,
      processes, redis.port(), 60,
      {{kill_at, [&] { redis.kill(); }}, {restart_at, [&] { redis.start(); }}});
  ASSERT_EQ(r.failed_processes, 0);
  ASSERT_EQ(r.events_ms.size(), 2U);
  const long long kill = r.events_ms[0];
  const long long restart = r.events_ms[1];
  // What the budget allows the fleet per second: 5% of its calls, plus a
  // floor of 5 retries per second (tools/fleet_worker).
  const double calls_per_s = static_cast<double>(r.requests) / r.seconds;
  const double allowed_per_s = 0.05 * calls_per_s + 5;
  // The worst 8 s window that contains `at`, against what the budget allows.
  const auto worst_window = [&](long long at) {
    double worst = 0;
    for (long long from = at - 8000 + 100; from <= at; from += 100) {
      if (from < 0 || from + 8000 > static_cast<long long>(run_s * 1000)) continue;
      worst = std::max(
          worst, static_cast<double>(r.grants_between(from, from + 8000)) / (allowed_per_s * 8));
    }
    return worst;
  };
  const long long first_second = r.grants_between(kill, kill + 1000);
  const long long after_restart = r.grants_between(restart, restart + 1000);
  const double before = static_cast<double>(r.grants_between(1000, kill)) /
                        (allowed_per_s * static_cast<double>(kill - 1000) / 1000);
  std::printf(
      "lost: %lld requests, %lld retries; allowed %.1f/s; Redis up: %.2fx; first second after "
      "SIGKILL: %lld retries, worst 8 s window containing it %.2fx; first second after the "
      "empty restart: %lld, worst 8 s window containing it %.2fx\n",
      r.requests, r.retries, allowed_per_s, before, first_second, worst_window(kill), after_restart,
      worst_window(restart));
  // The loss: no burst of what was spent already (220 to 240 before).
  EXPECT_LT(first_second, 2 * allowed_per_s + 20);
  EXPECT_LE(worst_window(kill), 1.25);
  // The restart that lost the counts: the fleet as a whole stays within the
  // budget over any window containing it. (Which process came back first is
  // not told apart here; FleetBudget.ARestartThatLostTheCountsGrants-
  // FewerRetriesNeverMore holds that on simulated time.)
  EXPECT_LT(after_restart, 2 * allowed_per_s + 20);
  EXPECT_LE(worst_window(restart), 1.25);
}

}  // namespace
