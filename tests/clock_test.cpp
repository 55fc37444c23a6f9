#include "rebound/clock.hpp"

#include <gtest/gtest.h>

#include <latch>
#include <thread>

namespace {

using namespace std::chrono_literals;

TEST(ClockTest, SystemClockIsMonotonic) {
  auto& c = rebound::system_clock();
  const auto a = c.now();
  const auto b = c.now();
  EXPECT_LE(a, b);
  EXPECT_EQ(&c, &rebound::system_clock());
}

TEST(ClockTest, SleepWithStopAlreadyRequestedReturnsAtOnce) {
  std::stop_source s;
  s.request_stop();
  auto& c = rebound::system_clock();
  EXPECT_FALSE(c.sleep_until(c.now() + 1h, s.get_token()));
}

TEST(ClockTest, PastDeadlineReturnsTrue) {
  auto& c = rebound::system_clock();
  EXPECT_TRUE(c.sleep_until(c.now() - 1s, {}));
  std::stop_source s;
  EXPECT_TRUE(c.sleep_until(c.now() - 1s, s.get_token()));
}

// The one test on the real clock: a stop request must wake a one-hour sleep.
// Its wake-up latency is measured in bench/ (BM_cancel_wakeup), not asserted here.
TEST(ClockTest, StopRequestWakesARealSleeper) {
  auto& c = rebound::system_clock();
  std::stop_source s;
  std::latch ready(1);
  bool slept = true;
  std::thread sleeper([&] {
    ready.count_down();
    slept = c.sleep_until(c.now() + 1h, s.get_token());
  });
  ready.wait();
  s.request_stop();
  sleeper.join();  // would hang for an hour (and time out in ctest) if the stop did not wake it
  EXPECT_FALSE(slept);
}

}  // namespace
