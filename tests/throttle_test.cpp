#include "rebound/throttle.hpp"

#include <gtest/gtest.h>

#include "rebound/retry.hpp"
#include "rebound/testing/simulated_clock.hpp"

namespace {

using namespace std::chrono_literals;

// Builds `requests` admitted requests of which `accepts` were accepted.
void load(rebound::adaptive_throttle& t, int requests, int accepts) {
  for (int i = 0; i < requests; ++i) ASSERT_TRUE(t.admit(0.9999999));
  for (int i = 0; i < accepts; ++i) t.record_accept();
}

TEST(AdaptiveThrottleTest, TheSreFormulaOnHandComputedCases) {
  rebound::testing::simulated_clock clock;
  rebound::adaptive_throttle t({.k = 2.0, .window = 120s}, clock);
  EXPECT_EQ(t.rejection_probability(), 0.0);
  load(t, 100, 20);
  EXPECT_DOUBLE_EQ(t.rejection_probability(), (100.0 - 2 * 20) / 101);  // 0.594
  rebound::adaptive_throttle healthy({.k = 2.0, .window = 120s}, clock);
  load(healthy, 100, 100);
  EXPECT_EQ(healthy.rejection_probability(), 0.0);  // max(0, negative)
  rebound::adaptive_throttle half({.k = 2.0, .window = 120s}, clock);
  load(half, 100, 50);
  EXPECT_EQ(half.rejection_probability(), 0.0);  // exactly K times the accepts
  rebound::adaptive_throttle k1({.k = 1.0, .window = 120s}, clock);
  load(k1, 9, 4);
  EXPECT_DOUBLE_EQ(k1.rejection_probability(), 0.5);  // (9 - 4) / 10
}

TEST(AdaptiveThrottleTest, RejectsWithThatProbability) {
  rebound::testing::simulated_clock clock;
  rebound::adaptive_throttle t({.k = 2.0, .window = 120s}, clock);
  load(t, 100, 20);
  const double p = t.rejection_probability();
  EXPECT_FALSE(t.admit(p - 0.01));  // u < p: rejected
  // The rejected request counted as a request.
  EXPECT_EQ(t.window_counts(), (std::pair<std::int64_t, std::int64_t>{101, 20}));
  EXPECT_TRUE(t.admit(0.99));
}

TEST(AdaptiveThrottleTest, TheWindowForgets) {
  rebound::testing::simulated_clock clock;
  rebound::adaptive_throttle t({.k = 2.0, .window = 120s}, clock);
  load(t, 100, 0);
  EXPECT_GT(t.rejection_probability(), 0.9);
  clock.advance(119s);
  EXPECT_GT(t.rejection_probability(), 0.9);
  clock.advance(1s);
  EXPECT_EQ(t.rejection_probability(), 0.0);
}

TEST(AdaptiveThrottleTest, RefusesEvenAFirstAttemptWithItsOwnError) {
  rebound::testing::simulated_clock clock;
  auto t = std::make_shared<rebound::adaptive_throttle>(
      rebound::adaptive_throttle::options{.k = 1.0, .window = 120s}, clock);
  for (int i = 0; i < 1000; ++i)
    ASSERT_TRUE(t->admit(0.9999999));  // a backend that accepts nothing
  const auto p = rebound::retry_policy{}.clock(clock).throttle(t).seed(3);
  int calls = 0;
  int refused = 0;
  for (int i = 0; i < 100; ++i) {
    try {
      rebound::retry(p, [&] { ++calls; });
    } catch (const rebound::throttled_error& e) {
      EXPECT_GT(e.probability(), 0.9);
      ++refused;
    }
  }
  EXPECT_GT(refused, 90);
  EXPECT_EQ(calls + refused, 100);
}

TEST(AdaptiveThrottleTest, ASeededPolicyStillRejectsAFractionNotAll) {
  rebound::testing::simulated_clock clock;
  auto t = std::make_shared<rebound::adaptive_throttle>(
      rebound::adaptive_throttle::options{.k = 2.0, .window = 120s}, clock);
  load(*t, 100, 30);  // p = (100 - 60) / 101, about 0.4
  // One attempt per call, always failing: p only grows (0.4 to 0.8) during the loop.
  const auto p = rebound::retry_policy{}.clock(clock).throttle(t).seed(1).stop(
      rebound::stop::after_attempts(1));
  int refused = 0;
  for (int i = 0; i < 200; ++i) {
    try {
      rebound::retry(p, [] { throw std::runtime_error("503"); });
    } catch (const rebound::throttled_error&) {
      ++refused;
    } catch (const std::runtime_error&) {
    }
  }
  EXPECT_GT(refused, 20);   // not none...
  EXPECT_LT(refused, 180);  // ...and not all: each call draws its own number
}

TEST(AdaptiveThrottleTest, AcceptedOutcomesAreRecordedByTheLoop) {
  rebound::testing::simulated_clock clock;
  auto t =
      std::make_shared<rebound::adaptive_throttle>(rebound::adaptive_throttle::options{}, clock);
  load(*t, 10, 10);  // a healthy history, so two failures do not throttle yet
  const auto p =
      rebound::retry_policy{}.clock(clock).throttle(t).stop(rebound::stop::after_attempts(3));
  int calls = 0;
  rebound::retry(p, [&] {
    if (++calls < 3) throw std::runtime_error("503");
  });
  // Three more requests, one more accepted (the success); the two 503s were not.
  EXPECT_EQ(t->window_counts(), (std::pair<std::int64_t, std::int64_t>{13, 11}));
}

}  // namespace
