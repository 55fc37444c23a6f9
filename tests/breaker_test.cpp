#include "rebound/breaker.hpp"

#include <gtest/gtest.h>

#include <barrier>
#include <thread>

#include "rebound/testing/simulated_clock.hpp"

namespace {

using namespace std::chrono_literals;
using rebound::breaker_state;

class BreakerTest : public ::testing::Test {
 protected:
  void fail(rebound::circuit_breaker& b) {
    auto p = b.try_acquire();
    ASSERT_TRUE(p);
    b.record(p, false);
  }
  void succeed(rebound::circuit_breaker& b) {
    auto p = b.try_acquire();
    ASSERT_TRUE(p);
    b.record(p, true);
  }
  rebound::testing::simulated_clock clock_;
};

TEST_F(BreakerTest, ConsecutiveFailuresOpenIt) {
  rebound::circuit_breaker b({.failure_threshold = 3, .open_duration = 30s}, clock_);
  fail(b);
  fail(b);
  succeed(b);  // resets the count
  fail(b);
  fail(b);
  EXPECT_EQ(b.state(), breaker_state::closed);
  fail(b);
  EXPECT_EQ(b.state(), breaker_state::open);
  const auto refused = b.try_acquire();
  EXPECT_FALSE(refused);
  EXPECT_EQ(refused.retry_at, clock_.now() + 30s);  // says when the next probe may pass
}

TEST_F(BreakerTest, HalfOpenAdmitsExactlyTheProbesThenCloses) {
  rebound::circuit_breaker b({.failure_threshold = 1, .open_duration = 10s, .half_open_probes = 2},
                             clock_);
  fail(b);
  clock_.advance(9s);
  EXPECT_FALSE(b.try_acquire());
  clock_.advance(1s);
  const auto p1 = b.try_acquire();
  const auto p2 = b.try_acquire();
  EXPECT_TRUE(p1 && p1.probe);
  EXPECT_TRUE(p2 && p2.probe);
  EXPECT_FALSE(b.try_acquire());  // no third
  EXPECT_EQ(b.state(), breaker_state::half_open);
  b.record(p1, true);
  EXPECT_EQ(b.state(), breaker_state::half_open);
  b.record(p2, true);
  EXPECT_EQ(b.state(), breaker_state::closed);
  EXPECT_TRUE(b.try_acquire());
}

TEST_F(BreakerTest, AFailedProbeOpensItAgain) {
  rebound::circuit_breaker b({.failure_threshold = 1, .open_duration = 10s}, clock_);
  fail(b);
  clock_.advance(10s);
  const auto probe = b.try_acquire();
  ASSERT_TRUE(probe.probe);
  b.record(probe, false);
  EXPECT_EQ(b.state(), breaker_state::open);
  EXPECT_EQ(b.try_acquire().retry_at, clock_.now() + 10s);
}

TEST_F(BreakerTest, HalfOpenAdmitsExactlyNProbesWithEightThreadsRacing) {
  for (int round = 0; round < 20; ++round) {
    rebound::circuit_breaker b({.failure_threshold = 1, .open_duration = 1s, .half_open_probes = 3},
                               clock_);
    fail(b);
    clock_.advance(1s);
    std::atomic<int> allowed{0};
    std::barrier start(8);
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&] {
        start.arrive_and_wait();
        for (int i = 0; i < 100; ++i) {
          if (b.try_acquire()) allowed.fetch_add(1);
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(allowed.load(), 3) << "round " << round;
  }
}

TEST_F(BreakerTest, SamplingNeedsMinimumThroughputAndARatio) {
  rebound::circuit_breaker b({.mode = rebound::breaker_mode::sampling,
                              .failure_ratio = 0.5,
                              .minimum_calls = 10,
                              .window = 10s,
                              .open_duration = 5s},
                             clock_);
  for (int i = 0; i < 9; ++i) fail(b);
  EXPECT_EQ(b.state(), breaker_state::closed);  // 9 calls: below the minimum
  fail(b);
  EXPECT_EQ(b.state(), breaker_state::open);  // 10 calls, 100% failed
}

TEST_F(BreakerTest, SamplingRatioBelowThresholdStaysClosedAndOldCallsLeave) {
  rebound::circuit_breaker b({.mode = rebound::breaker_mode::sampling,
                              .failure_ratio = 0.5,
                              .minimum_calls = 4,
                              .window = 10s},
                             clock_);
  for (int i = 0; i < 6; ++i) succeed(b);
  for (int i = 0; i < 5; ++i) fail(b);  // 5 of 11 < 50%
  EXPECT_EQ(b.state(), breaker_state::closed);
  clock_.advance(10s);  // all of that leaves the window
  fail(b);
  fail(b);
  fail(b);
  EXPECT_EQ(b.state(), breaker_state::closed);  // 3 calls < minimum 4
  fail(b);
  EXPECT_EQ(b.state(), breaker_state::open);
}

TEST_F(BreakerTest, IsolateAndResetWithStateEvents) {
  rebound::circuit_breaker b({.failure_threshold = 1, .open_duration = 1s}, clock_);
  std::vector<std::pair<breaker_state, breaker_state>> changes;
  b.on_state_change([&](breaker_state from, breaker_state to) { changes.emplace_back(from, to); });
  b.isolate();
  clock_.advance(1h);
  const auto refused = b.try_acquire();
  EXPECT_FALSE(refused);
  EXPECT_EQ(refused.retry_at, rebound::time_point::max());
  b.reset();
  EXPECT_TRUE(b.try_acquire());
  fail(b);
  clock_.advance(1s);
  auto probe = b.try_acquire();
  b.record(probe, true);
  using S = breaker_state;
  EXPECT_EQ(changes, (std::vector<std::pair<S, S>>{{S::closed, S::isolated},
                                                   {S::isolated, S::closed},
                                                   {S::closed, S::open},
                                                   {S::open, S::half_open},
                                                   {S::half_open, S::closed}}));
  EXPECT_EQ(rebound::to_string(S::half_open), "half_open");
}

TEST_F(BreakerTest, ProbesThatNeverReportAreReissuedAfterAnotherOpenDuration) {
  rebound::circuit_breaker b({.failure_threshold = 1, .open_duration = 10s}, clock_);
  fail(b);
  clock_.advance(10s);
  const auto lost = b.try_acquire();  // the caller crashes and never records it
  ASSERT_TRUE(lost.probe);
  EXPECT_FALSE(b.try_acquire());
  clock_.advance(9s);
  EXPECT_FALSE(b.try_acquire());
  clock_.advance(1s);
  const auto fresh = b.try_acquire();
  ASSERT_TRUE(fresh.probe);
  b.record(lost, true);  // a result from the abandoned set is ignored
  EXPECT_EQ(b.state(), breaker_state::half_open);
  b.record(fresh, true);
  EXPECT_EQ(b.state(), breaker_state::closed);
}

TEST_F(BreakerTest, AStaleProbeFromAnEarlierCycleIsIgnored) {
  rebound::circuit_breaker b({.failure_threshold = 1, .open_duration = 1s}, clock_);
  fail(b);
  clock_.advance(1s);
  const auto old_probe = b.try_acquire();
  b.reset();
  fail(b);
  clock_.advance(1s);
  const auto new_probe = b.try_acquire();
  b.record(old_probe, true);  // must not close the new cycle
  EXPECT_EQ(b.state(), breaker_state::half_open);
  b.record(new_probe, true);
  EXPECT_EQ(b.state(), breaker_state::closed);
}

}  // namespace
