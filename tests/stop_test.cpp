#include "rebound/stop.hpp"

#include <gtest/gtest.h>

namespace {

using namespace std::chrono_literals;
using rebound::stop_context;
using rebound::stop_reason;
namespace stop = rebound::stop;

stop_context at(int attempts, rebound::duration elapsed, rebound::duration next = 0s) {
  return {.attempts = attempts,
          .elapsed = elapsed,
          .next_delay = next,
          .now = rebound::time_point(1h) + elapsed};
}

TEST(StopTest, AfterAttemptsStopsAtTheLimit) {
  const auto s = stop::after_attempts(3);
  EXPECT_FALSE(s.check(at(1, 0s)));
  EXPECT_FALSE(s.check(at(2, 0s)));
  EXPECT_EQ(s.check(at(3, 0s)), stop_reason::attempts_exhausted);
  EXPECT_EQ(s.max_attempts(), 3);
  EXPECT_FALSE(s.uses_time());
}

TEST(StopTest, AfterAttemptsBelowOneActsAsOne) {
  EXPECT_EQ(stop::after_attempts(0).check(at(1, 0s)), stop_reason::attempts_exhausted);
  EXPECT_EQ(stop::after_attempts(-5).max_attempts(), 1);
}

TEST(StopTest, AfterElapsedLooksAtElapsedOnly) {
  const auto s = stop::after_elapsed(5s);
  EXPECT_FALSE(s.check(at(7, 4999ms, 10s)));  // a long next delay does not matter
  EXPECT_EQ(s.check(at(2, 5s)), stop_reason::time_exhausted);
  EXPECT_TRUE(s.uses_time());
  EXPECT_FALSE(s.max_attempts());
}

TEST(StopTest, BeforeElapsedNeverStartsASleepEndingPastTheLimit) {
  const auto s = stop::before_elapsed(5s);
  EXPECT_FALSE(s.check(at(1, 4s, 1s)));  // ends exactly at 5s: allowed
  EXPECT_EQ(s.check(at(1, 4s, 1001ms)), stop_reason::time_exhausted);
  EXPECT_EQ(s.check(at(1, 6s, 0s)), stop_reason::time_exhausted);
  // A huge delay must not overflow into "fits".
  EXPECT_EQ(s.check(at(1, 1s, rebound::duration::max())), stop_reason::time_exhausted);
}

TEST(StopTest, DeadlineComparesTheEndOfTheSleep) {
  const rebound::time_point t0(1h);
  const auto s = stop::deadline(t0 + 10s);
  EXPECT_FALSE(s.check({.attempts = 1, .elapsed = 0s, .next_delay = 10s, .now = t0}));
  EXPECT_EQ(s.check({.attempts = 1, .elapsed = 0s, .next_delay = 11s, .now = t0}),
            stop_reason::time_exhausted);
  EXPECT_EQ(
      s.check({.attempts = 1, .elapsed = 0s, .next_delay = rebound::duration::max(), .now = t0}),
      stop_reason::time_exhausted);
  EXPECT_EQ(s.time_limit(t0), t0 + 10s);
}

TEST(StopTest, NeverNeverStops) {
  const auto s = stop::never();
  EXPECT_FALSE(s.check(at(1'000'000, 1000h, 1000h)));
  EXPECT_FALSE(s.max_attempts());
  EXPECT_FALSE(s.time_limit(rebound::time_point{}));
}

TEST(StopTest, OrStopsWhenEitherStops) {
  const auto s = stop::after_elapsed(5s) | stop::after_attempts(10);
  EXPECT_FALSE(s.check(at(9, 4s)));
  EXPECT_EQ(s.check(at(10, 1s)), stop_reason::attempts_exhausted);
  EXPECT_EQ(s.check(at(2, 5s)), stop_reason::time_exhausted);
  EXPECT_EQ(s.max_attempts(), 10);
  EXPECT_EQ(s.time_limit(rebound::time_point(1h)), rebound::time_point(1h) + 5s);
  EXPECT_TRUE(s.uses_time());
}

TEST(StopTest, AndStopsOnlyWhenBothStop) {
  const auto s = stop::after_elapsed(5s) & stop::after_attempts(3);
  EXPECT_FALSE(s.check(at(3, 1s)));
  EXPECT_FALSE(s.check(at(2, 6s)));
  EXPECT_TRUE(s.check(at(3, 6s)));
  EXPECT_FALSE(s.max_attempts());  // time may stop it later than attempt 3
  const auto both = stop::after_attempts(3) & stop::after_attempts(5);
  EXPECT_EQ(both.max_attempts(), 5);
  EXPECT_EQ(both.check(at(4, 0s)), std::nullopt);
  EXPECT_EQ(both.check(at(5, 0s)), stop_reason::attempts_exhausted);
}

TEST(StopTest, NeverIsTheIdentityOfOrAndAbsorbsAnd) {
  EXPECT_EQ(stop::never() | stop::after_attempts(2), stop::after_attempts(2));
  EXPECT_EQ(stop::after_attempts(2) & stop::never(), stop::never());
}

TEST(StopTest, ComparesByValue) {
  EXPECT_EQ(stop::after_attempts(3) | stop::after_elapsed(2s),
            stop::after_attempts(3) | stop::after_elapsed(2s));
  EXPECT_NE(stop::after_attempts(3), stop::after_attempts(4));
  EXPECT_NE(stop::after_elapsed(3s), stop::before_elapsed(3s));
}

TEST(StopTest, ReasonsHaveNames) {
  EXPECT_EQ(rebound::to_string(stop_reason::attempts_exhausted), "attempts_exhausted");
  EXPECT_EQ(rebound::to_string(stop_reason::deferred_to_outer), "deferred_to_outer");
  EXPECT_EQ(rebound::to_string(stop_reason::cancelled), "cancelled");
}

}  // namespace
