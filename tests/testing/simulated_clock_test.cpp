#include "rebound/testing/simulated_clock.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace {

using namespace std::chrono_literals;
using rebound::testing::simulated_clock;

TEST(SimulatedClockTest, AutoAdvanceMovesTimeAtOnceAndRecords) {
  simulated_clock c;
  const auto t0 = c.now();
  EXPECT_TRUE(c.sleep_until(t0 + 5s, {}));
  EXPECT_EQ(c.now(), t0 + 5s);
  EXPECT_TRUE(c.sleep_for(250ms, {}));
  EXPECT_EQ(c.now(), t0 + 5250ms);
  EXPECT_EQ(c.sleeps(), (std::vector<rebound::duration>{5s, 250ms}));
}

TEST(SimulatedClockTest, AutoAdvanceNeverGoesBack) {
  simulated_clock c;
  const auto t0 = c.now();
  c.advance(10s);
  EXPECT_TRUE(c.sleep_until(t0 + 1s, {}));
  EXPECT_EQ(c.now(), t0 + 10s);
  c.advance(-5s);
  EXPECT_EQ(c.now(), t0 + 10s);
}

TEST(SimulatedClockTest, HookCanCancelASleep) {
  simulated_clock c;
  std::stop_source s;
  c.on_sleep([&](rebound::duration d) {
    EXPECT_EQ(d, 3s);
    s.request_stop();
  });
  const auto t0 = c.now();
  EXPECT_FALSE(c.sleep_until(t0 + 3s, s.get_token()));
  EXPECT_EQ(c.now(), t0);
}

TEST(SimulatedClockTest, ManualModeBlocksUntilAdvanced) {
  simulated_clock c(simulated_clock::mode::manual);
  const auto t0 = c.now();
  bool result = false;
  std::thread t([&] { result = c.sleep_until(t0 + 10s, {}); });
  // Real waits below are bounded and only synchronise with the thread.
  ASSERT_TRUE(c.wait_for_sleepers(1, std::chrono::milliseconds(10'000)));
  c.advance(5s);
  EXPECT_EQ(c.sleepers(), 1u);  // not yet
  c.advance(5s);
  t.join();
  EXPECT_TRUE(result);
  EXPECT_EQ(c.sleepers(), 0u);
}

TEST(SimulatedClockTest, ManualModeWakesOnStop) {
  simulated_clock c(simulated_clock::mode::manual);
  std::stop_source s;
  bool result = true;
  std::thread t([&] { result = c.sleep_until(c.now() + 1h, s.get_token()); });
  ASSERT_TRUE(c.wait_for_sleepers(1, std::chrono::milliseconds(10'000)));
  s.request_stop();
  t.join();
  EXPECT_FALSE(result);
}

}  // namespace
