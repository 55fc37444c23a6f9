#include "rebound/backoff.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace {

using namespace std::chrono_literals;
using rebound::backoff;
using rebound::duration;

duration before(const backoff& b, int n) { return b.delay({.next_attempt = n}); }

TEST(BackoffTest, ConstantIsConstant) {
  const auto b = backoff::constant(250ms);
  for (int n : {2, 3, 10, 10'000}) EXPECT_EQ(before(b, n), 250ms);
  EXPECT_EQ(b.max(), duration::max());  // uncapped: jitter may spread it
}

TEST(BackoffTest, LinearAddsAStepPerRetry) {
  const auto b = backoff::linear(100ms, 50ms, 300ms);
  EXPECT_EQ(before(b, 2), 100ms);
  EXPECT_EQ(before(b, 3), 150ms);
  EXPECT_EQ(before(b, 6), 300ms);
  EXPECT_EQ(before(b, 7), 300ms);  // clamped
  EXPECT_EQ(before(b, 10'000), 300ms);
}

TEST(BackoffTest, ExponentialFollowsTheDefinition) {
  // min(max, initial * multiplier^(n-2))
  const auto b = backoff::exponential(500ms, 2.0, 3s);
  EXPECT_EQ(before(b, 2), 500ms);
  EXPECT_EQ(before(b, 3), 1s);
  EXPECT_EQ(before(b, 4), 2s);
  EXPECT_EQ(before(b, 5), 3s);
  EXPECT_EQ(before(b, 6), 3s);
  const auto c = backoff::exponential(100ms, 1.5, 1h);
  EXPECT_EQ(before(c, 4), 225ms);
}

TEST(BackoffTest, SaturatesInsteadOfOverflowing) {
  const auto b = backoff::exponential(1s, 10.0, 30s);
  EXPECT_EQ(before(b, 10'000), 30s);
  EXPECT_EQ(before(b, std::numeric_limits<int>::max()), 30s);
  const auto unbounded = backoff::exponential(1s, 2.0);
  EXPECT_EQ(before(unbounded, 10'000), duration::max());
  const auto lin = backoff::linear(1s, 1h);
  EXPECT_EQ(before(lin, std::numeric_limits<int>::max()), duration::max());
}

TEST(BackoffTest, ExponentialRejectsShrinkingMultipliers) {
  EXPECT_EQ(before(backoff::exponential(1s, 0.5, 1h), 5), 1s);
  EXPECT_EQ(before(backoff::exponential(1s, std::nan(""), 1h), 5), 1s);
}

TEST(BackoffTest, ListRepeatsItsLastValue) {
  const auto b = backoff::list({1s, 2s, 5s});
  EXPECT_EQ(before(b, 2), 1s);
  EXPECT_EQ(before(b, 3), 2s);
  EXPECT_EQ(before(b, 4), 5s);
  EXPECT_EQ(before(b, 5), 5s);
  EXPECT_EQ(before(b, 10'000), 5s);
  EXPECT_EQ(b.initial(), 1s);
  EXPECT_EQ(b.max(), duration::max());
  EXPECT_EQ(before(backoff::list({}), 3), 0s);
}

TEST(BackoffTest, FunctionSeesTheAttemptStateAndIsClamped) {
  const auto b = backoff::function(
      [](const rebound::backoff_context& c) {
        return c.previous_delay + std::chrono::milliseconds(c.next_attempt);
      },
      10ms);
  EXPECT_EQ(b.delay({.next_attempt = 3, .previous_delay = 2ms}), 5ms);
  EXPECT_EQ(b.delay({.next_attempt = 30, .previous_delay = 2ms}), 10ms);
  const auto negative = backoff::function([](const auto&) { return -5s; });
  EXPECT_EQ(negative.delay({.next_attempt = 2}), 0s);
}

TEST(BackoffTest, DefaultIsExponential100msTo5s) {
  const backoff b;
  EXPECT_EQ(b.type(), backoff::kind::exponential);
  EXPECT_EQ(before(b, 2), 100ms);
  EXPECT_EQ(before(b, 20), 5s);
}

TEST(BackoffTest, ComparesByValue) {
  EXPECT_EQ(backoff::exponential(1s, 2, 5s), backoff::exponential(1s, 2, 5s));
  EXPECT_NE(backoff::exponential(1s, 2, 5s), backoff::exponential(1s, 3, 5s));
  EXPECT_EQ(backoff::list({1s, 2s}), backoff::list({1s, 2s}));
  EXPECT_NE(backoff::list({1s, 2s}), backoff::list({1s, 3s}));
  const auto f = backoff::function([](const auto&) { return 1s; });
  const auto f_copy = f;
  EXPECT_EQ(f, f_copy);
  EXPECT_NE(f, backoff::function([](const auto&) { return 1s; }));
}

}  // namespace
