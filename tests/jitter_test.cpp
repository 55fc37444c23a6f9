#include "rebound/jitter.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace {

using namespace std::chrono_literals;
using rebound::duration;
using rebound::jitter;
using rebound::jitter_input;

struct stats {
  double mean_ms = 0;
  double min_ms = 1e300;
  double max_ms = -1;
};

// Many seeded samples of one jitter on one input.
stats sample(const jitter& j, const jitter_input& in, int n = 100'000, std::uint64_t seed = 7) {
  rebound::random_stream rng(seed);
  stats s;
  double sum = 0;
  for (int i = 0; i < n; ++i) {
    const double ms = std::chrono::duration<double, std::milli>(j.apply(in, rng)).count();
    sum += ms;
    s.min_ms = std::min(s.min_ms, ms);
    s.max_ms = std::max(s.max_ms, ms);
  }
  s.mean_ms = sum / n;
  return s;
}

constexpr jitter_input in_1s{.computed = 1s, .previous = 0s, .initial = 100ms, .max = 10s};

TEST(JitterTest, NoneKeepsTheDelay) {
  const auto s = sample(jitter::none(), in_1s, 10);
  EXPECT_EQ(s.min_ms, 1000);
  EXPECT_EQ(s.max_ms, 1000);
  EXPECT_FALSE(jitter::none().is_random());
}

TEST(JitterTest, FullIsUniformFromZeroToTheDelay) {
  const auto s = sample(jitter::full(), in_1s);
  EXPECT_GE(s.min_ms, 0);
  EXPECT_LT(s.min_ms, 1);  // reaches near 0
  EXPECT_LE(s.max_ms, 1000);
  EXPECT_GT(s.max_ms, 999);
  EXPECT_NEAR(s.mean_ms, 500, 5);
}

TEST(JitterTest, EqualKeepsAtLeastHalf) {
  const auto s = sample(jitter::equal(), in_1s);
  EXPECT_GE(s.min_ms, 500);
  EXPECT_LT(s.min_ms, 501);
  EXPECT_LE(s.max_ms, 1000);
  EXPECT_NEAR(s.mean_ms, 750, 5);
}

TEST(JitterTest, DecorrelatedStartsFromInitialAndTriplesThePreviousWait) {
  // First retry: previous = initial, so U(initial, 3 * initial).
  const auto first = sample(jitter::decorrelated(), in_1s);
  EXPECT_GE(first.min_ms, 100);
  EXPECT_LE(first.max_ms, 300);
  EXPECT_NEAR(first.mean_ms, 200, 2);
  // Later: U(initial, 3 * previous).
  auto later_in = in_1s;
  later_in.previous = 1s;
  const auto later = sample(jitter::decorrelated(), later_in);
  EXPECT_GE(later.min_ms, 100);
  EXPECT_LE(later.max_ms, 3000);
  EXPECT_NEAR(later.mean_ms, 1550, 15);
  // Clamped to max.
  later_in.previous = 1h;
  const auto clamped = sample(jitter::decorrelated(), later_in, 1000);
  EXPECT_LE(clamped.max_ms, 10'000);
}

TEST(JitterTest, ProportionalSpreadsAroundTheDelay) {
  const auto s = sample(jitter::proportional(0.2), in_1s);
  EXPECT_GE(s.min_ms, 800);
  EXPECT_LE(s.max_ms, 1200);
  EXPECT_NEAR(s.mean_ms, 1000, 5);
  EXPECT_EQ(jitter::proportional(7).factor(), 1.0);
  EXPECT_EQ(jitter::proportional(-1).factor(), 0.0);
}

TEST(JitterTest, AdditiveAddsUpToItsAmount) {
  const auto s = sample(jitter::additive(100ms), in_1s);
  EXPECT_GE(s.min_ms, 1000);
  EXPECT_LE(s.max_ms, 1100);
  EXPECT_NEAR(s.mean_ms, 1050, 1);
}

TEST(JitterTest, EveryKindClampsToMax) {
  const jitter_input big{.computed = 9s, .previous = 9s, .initial = 1s, .max = 9s};
  for (const auto& j : {jitter::none(), jitter::full(), jitter::equal(), jitter::decorrelated(),
                        jitter::proportional(1.0), jitter::additive(1h)}) {
    EXPECT_LE(sample(j, big, 2000).max_ms, 9000) << static_cast<int>(j.type());
  }
  // And a delay at duration::max() does not overflow.
  const jitter_input huge{.computed = duration::max(),
                          .previous = duration::max(),
                          .initial = 1s,
                          .max = duration::max()};
  rebound::random_stream rng(1);
  for (const auto& j : {jitter::full(), jitter::equal(), jitter::decorrelated(),
                        jitter::proportional(1.0), jitter::additive(1h)}) {
    const duration d = j.apply(huge, rng);
    EXPECT_GE(d, duration::zero());
  }
}

TEST(JitterTest, SameSeedSameSequenceDifferentSeedDifferent) {
  rebound::random_stream a(42), b(42), c(43);
  int same = 0, differ = 0;
  for (int i = 0; i < 100; ++i) {
    const auto x = jitter::full().apply(in_1s, a);
    same += x == jitter::full().apply(in_1s, b) ? 1 : 0;
    differ += x != jitter::full().apply(in_1s, c) ? 1 : 0;
  }
  EXPECT_EQ(same, 100);
  EXPECT_GT(differ, 95);
}

}  // namespace
