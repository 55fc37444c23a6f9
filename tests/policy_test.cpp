#include "rebound/policy.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

namespace {

using namespace std::chrono_literals;
using rebound::decision;
using rebound::retry_policy;
using rebound::retry_state;
using rebound::stop_reason;
using rebound::verdict;
namespace stop = rebound::stop;

const rebound::time_point t0(1h);

TEST(PolicyTest, DefaultsAreDocumented) {
  const retry_policy p;
  EXPECT_EQ(p.stop(), stop::after_attempts(3));
  EXPECT_EQ(p.backoff(), rebound::backoff::exponential(100ms, 2.0, 5s));
  EXPECT_EQ(p.jitter(), rebound::jitter::full());
  EXPECT_EQ(p.max_server_delay(), 60s);
  EXPECT_FALSE(p.seed());
  EXPECT_EQ(&p.clock(), &rebound::system_clock());
  EXPECT_EQ(p.on_give_up(), rebound::give_up_mode::rethrow_last);
}

TEST(PolicyTest, SettersReturnCopiesAndLeaveTheOriginal) {
  const retry_policy a;
  const auto b = a.stop(stop::after_attempts(9));
  EXPECT_EQ(a.stop(), stop::after_attempts(3));
  EXPECT_EQ(b.stop(), stop::after_attempts(9));
  EXPECT_NE(a, b);
  EXPECT_EQ(a, retry_policy{});
}

TEST(PolicyTest, DecideWalksTheScheduleWithoutJitter) {
  const auto p = retry_policy{}
                     .stop(stop::after_attempts(5))
                     .backoff(rebound::backoff::exponential(1s, 2.0, 5s))
                     .jitter(rebound::jitter::none());
  retry_state s(p, t0);
  std::vector<rebound::duration> delays;
  decision d;
  while ((d = s.decide(verdict::transient(), t0)).retry) delays.push_back(d.delay);
  EXPECT_EQ(delays, (std::vector<rebound::duration>{1s, 2s, 4s, 5s}));
  EXPECT_EQ(d.reason, stop_reason::attempts_exhausted);
  EXPECT_EQ(s.attempt(), 5);
  EXPECT_EQ(s.previous_delay(), 5s);
}

TEST(PolicyTest, SuccessPermanentAndOverloadedStopAtOnce) {
  const retry_policy p;
  retry_state s(p, t0);
  EXPECT_EQ(s.decide(verdict::success(), t0).reason, stop_reason::succeeded);
  EXPECT_EQ(s.decide(verdict::permanent(), t0).reason, stop_reason::permanent_error);
  EXPECT_EQ(s.decide(verdict::overloaded(), t0).reason, stop_reason::overloaded);
  EXPECT_EQ(s.attempt(), 1);
}

TEST(PolicyTest, ServerDelayReplacesTheBackoff) {
  const auto p = retry_policy{}.jitter(rebound::jitter::none());
  retry_state s(p, t0);
  const auto d = s.decide(verdict::transient_after(7s), t0);
  ASSERT_TRUE(d.retry);
  EXPECT_EQ(d.delay, 7s);
}

TEST(PolicyTest, ServerDelayIsCappedOrGivesUp) {
  const auto clamp = retry_policy{}.max_server_delay(10s);
  retry_state a(clamp, t0);
  EXPECT_EQ(a.decide(verdict::transient_after(1h), t0).delay, 10s);

  const auto give_up = retry_policy{}.max_server_delay(10s, rebound::server_delay_mode::give_up);
  retry_state b(give_up, t0);
  const auto d = b.decide(verdict::transient_after(11s), t0);
  EXPECT_FALSE(d.retry);
  EXPECT_EQ(d.reason, stop_reason::server_delay_too_long);
}

TEST(PolicyTest, ServerDelayStillRespectsTimeLimits) {
  const auto p = retry_policy{}.stop(stop::before_elapsed(5s));
  retry_state s(p, t0);
  const auto d = s.decide(verdict::transient_after(6s), t0);
  EXPECT_EQ(d.reason, stop_reason::time_exhausted);
}

TEST(PolicyTest, ElapsedIsMeasuredFromTheStart) {
  const auto p = retry_policy{}.stop(stop::after_elapsed(5s));
  retry_state s(p, t0);
  EXPECT_TRUE(s.decide(verdict::transient(), t0 + 4s).retry);
  EXPECT_EQ(s.decide(verdict::transient(), t0 + 5s).reason, stop_reason::time_exhausted);
}

std::vector<rebound::duration> schedule(const retry_policy& p) {
  retry_state s(p, t0);
  std::vector<rebound::duration> out;
  decision d;
  while ((d = s.decide(verdict::transient(), t0)).retry) out.push_back(d.delay);
  return out;
}

TEST(PolicyTest, SeededPoliciesRepeatTheirSchedule) {
  const auto p = retry_policy{}.stop(stop::after_attempts(8)).seed(42);
  EXPECT_EQ(schedule(p), schedule(p));
  EXPECT_NE(schedule(p), schedule(p.seed(43)));
}

TEST(PolicyTest, UnseededCallsGetTheirOwnStreams) {
  // Copies of one policy never share a stream: eight calls, eight schedules.
  const auto p =
      retry_policy{}.stop(stop::after_attempts(6)).backoff(rebound::backoff::constant(1s));
  std::set<std::vector<rebound::duration>> seen;
  for (int i = 0; i < 8; ++i) {
    const retry_policy copy = p;
    seen.insert(schedule(copy));
  }
  EXPECT_EQ(seen.size(), 8u);
}

TEST(PolicyTest, JitterSpreadsAConstantDelay) {
  // A constant schedule has no cap, so additive jitter is not clamped away.
  const auto p = retry_policy{}
                     .stop(stop::after_attempts(200))
                     .backoff(rebound::backoff::constant(1s))
                     .jitter(rebound::jitter::additive(500ms))
                     .seed(5);
  const auto delays = schedule(p);
  ASSERT_EQ(delays.size(), 199u);
  const auto [lo, hi] = std::minmax_element(delays.begin(), delays.end());
  EXPECT_GE(*lo, 1s);
  EXPECT_LE(*hi, 1500ms);
  EXPECT_GT(*hi - *lo, 400ms);
}

TEST(PolicyTest, AttemptTenThousandIsFine) {
  const auto p = retry_policy{}
                     .stop(stop::after_attempts(10'001))
                     .backoff(rebound::backoff::exponential(1ms, 3.0, 2s))
                     .jitter(rebound::jitter::none());
  retry_state s(p, t0);
  decision d;
  for (int i = 0; i < 10'000; ++i) d = s.decide(verdict::transient(), t0);
  EXPECT_TRUE(d.retry);
  EXPECT_EQ(d.delay, 2s);
  EXPECT_EQ(s.attempt(), 10'001);
}

TEST(PolicyTest, DecorrelatedJitterUsesThePreviousDelay) {
  const auto p = retry_policy{}
                     .stop(stop::after_attempts(50))
                     .backoff(rebound::backoff::exponential(100ms, 2.0, 10s))
                     .jitter(rebound::jitter::decorrelated())
                     .seed(9);
  retry_state s(p, t0);
  rebound::duration prev = 100ms;
  for (int i = 0; i < 40; ++i) {
    const auto d = s.decide(verdict::transient(), t0);
    ASSERT_TRUE(d.retry);
    EXPECT_GE(d.delay, 100ms);
    EXPECT_LE(d.delay, std::min<rebound::duration>(10s, 3 * prev));
    prev = d.delay;
  }
}

}  // namespace
