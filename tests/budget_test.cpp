#include "rebound/budget.hpp"

#include <gtest/gtest.h>

#include <thread>

#include "rebound/retry.hpp"
#include "rebound/testing/simulated_clock.hpp"
#include "test_types.hpp"

namespace {

using namespace std::chrono_literals;
using rebound::retry_request;
using rebound::stop_reason;

TEST(TokenBucketBudgetTest, ExactArithmeticWithAwsDefaults) {
  rebound::token_bucket_budget b;
  EXPECT_EQ(b.tokens(), 500);
  EXPECT_TRUE(b.try_acquire({.attempt = 2}));
  EXPECT_EQ(b.tokens(), 495);
  EXPECT_TRUE(b.try_acquire({.attempt = 2, .after_timeout = true}));
  EXPECT_EQ(b.tokens(), 485);
  b.on_success(nullptr);  // first-try success refunds 1
  EXPECT_EQ(b.tokens(), 486);
  const retry_request timed_out{.attempt = 3, .after_timeout = true};
  b.on_success(&timed_out);  // a retried success refunds what its retry cost
  EXPECT_EQ(b.tokens(), 496);
  for (int i = 0; i < 10; ++i) b.on_success(nullptr);
  EXPECT_EQ(b.tokens(), 500);  // never above capacity
}

TEST(TokenBucketBudgetTest, RefusesWhenEmptyAndKeepsWhatIsLeft) {
  rebound::token_bucket_budget b(
      {.capacity = 12, .retry_cost = 5, .timeout_retry_cost = 10, .success_refund = 1});
  EXPECT_TRUE(b.try_acquire({}));
  EXPECT_TRUE(b.try_acquire({}));
  EXPECT_EQ(b.tokens(), 2);
  EXPECT_FALSE(b.try_acquire({}));
  EXPECT_EQ(b.tokens(), 2);
  EXPECT_FALSE(b.try_acquire({.after_timeout = true}));
}

TEST(TokenBucketBudgetTest, TwoThreadsNeverOverdraw) {
  rebound::token_bucket_budget b(
      {.capacity = 1000, .retry_cost = 5, .timeout_retry_cost = 10, .success_refund = 1});
  std::atomic<int> granted{0};
  auto work = [&] {
    for (int i = 0; i < 20'000; ++i) {
      if (b.try_acquire({})) granted.fetch_add(1);
      if (i % 3 == 0) b.on_success(nullptr);
    }
  };
  std::thread t1(work), t2(work);
  t1.join();
  t2.join();
  EXPECT_GE(b.tokens(), 0);
  EXPECT_LE(b.tokens(), 1000);
  // Every token granted came from the initial 1000 or a refund (13,334 of 1).
  EXPECT_LE(granted.load() * 5, 1000 + 2 * 6667);
}

TEST(RatioBudgetTest, FloorThenRatioOverASlidingWindow) {
  rebound::testing::simulated_clock clock;
  rebound::ratio_budget b({.ratio = 0.2, .min_per_second = 1, .window = 10s}, clock);
  // No calls yet: only the floor, 1/s over 10 s.
  int granted = 0;
  while (b.try_acquire({})) ++granted;
  EXPECT_EQ(granted, 10);
  // 100 calls: 20% of them more.
  for (int i = 0; i < 100; ++i) b.on_call();
  granted = 0;
  while (b.try_acquire({})) ++granted;
  EXPECT_EQ(granted, 20);
  EXPECT_EQ(b.window_counts(), (std::pair<std::int64_t, std::int64_t>{100, 30}));
  // Ten seconds later the window has moved past all of it.
  clock.advance(10s);
  EXPECT_EQ(b.window_counts(), (std::pair<std::int64_t, std::int64_t>{0, 0}));
  granted = 0;
  while (b.try_acquire({})) ++granted;
  EXPECT_EQ(granted, 10);
}

TEST(RatioBudgetTest, OldBucketsLeaveTheWindowOneSecondAtATime) {
  rebound::testing::simulated_clock clock;
  rebound::ratio_budget b({.ratio = 1.0, .min_per_second = 0, .window = 3s}, clock);
  b.on_call();  // second 0
  clock.advance(1s);
  b.on_call();  // second 1
  EXPECT_EQ(b.window_counts().first, 2);
  clock.advance(2s);  // second 3: second 0 has left a 3 s window
  EXPECT_EQ(b.window_counts().first, 1);
  EXPECT_TRUE(b.try_acquire({}));
  EXPECT_FALSE(b.try_acquire({}));
}

TEST(ThrottleBudgetTest, GrpcRetryThrottling) {
  rebound::throttle_budget b({.max_tokens = 10, .token_ratio = 0.1});
  EXPECT_EQ(b.tokens(), 10);
  EXPECT_TRUE(b.try_acquire({}));
  for (int i = 0; i < 4; ++i) b.on_failure();
  EXPECT_EQ(b.tokens(), 6);
  EXPECT_TRUE(b.try_acquire({}));  // 6 > 5
  b.on_failure();
  EXPECT_EQ(b.tokens(), 5);
  EXPECT_FALSE(b.try_acquire({}));  // 5 is not > 5
  for (int i = 0; i < 3; ++i) b.on_success(nullptr);
  EXPECT_NEAR(b.tokens(), 5.3, 1e-9);
  EXPECT_TRUE(b.try_acquire({}));
  for (int i = 0; i < 100; ++i) b.on_failure();
  EXPECT_EQ(b.tokens(), 0);  // never below zero
  for (int i = 0; i < 1000; ++i) b.on_success(nullptr);
  EXPECT_EQ(b.tokens(), 10);  // never above max
}

// gRFC A6, "Throttling Retry Attempts and Hedged RPCs" and "Throttling
// Configuration": tokenRatio "Up to 3 decimal places are supported" (the
// rest is truncated, not rounded), and "The only RPCs that are counted as
// failures for the throttling policy are RPCs that fail with a status code
// that qualifies as a retryable or non-fatal status code, or that receive a
// pushback response indicating not to retry."
TEST(ThrottleBudgetTest, GrfcA6TokenRatioIsTruncatedToThreeDecimals) {
  rebound::throttle_budget b({.max_tokens = 10, .token_ratio = 0.1239});
  for (int i = 0; i < 10; ++i) b.on_failure();
  EXPECT_EQ(b.tokens(), 0);
  b.on_success(nullptr);
  EXPECT_DOUBLE_EQ(b.tokens(), 0.123);                                  // not 0.124
  rebound::throttle_budget c({.max_tokens = 10, .token_ratio = 0.29});  // 0.28999... as a double
  for (int i = 0; i < 10; ++i) c.on_failure();
  c.on_success(nullptr);
  EXPECT_DOUBLE_EQ(c.tokens(), 0.29);
}

TEST(ThrottleBudgetTest, GrfcA6OnlyRetryableFailuresAndPushbackCostTokens) {
  auto b = std::make_shared<rebound::throttle_budget>();
  rebound::testing::simulated_clock clock;
  const auto p = rebound::retry_policy{}.clock(clock).budget(b);
  // A permanent failure (say INVALID_ARGUMENT) is the caller's, not the server's.
  for (int i = 0; i < 20; ++i) {
    rebound::retry_state s(p, clock.now());
    (void)s.decide(rebound::verdict::permanent(), clock.now());
  }
  EXPECT_EQ(b->tokens(), 10);
  // A retryable failure costs one; so does pushback that says "do not retry".
  rebound::retry_state t(p, clock.now());
  (void)t.decide(rebound::verdict::transient(), clock.now());
  EXPECT_EQ(b->tokens(), 9);
  rebound::retry_state u(p, clock.now());
  (void)u.decide(rebound::verdict::overloaded(), clock.now());
  EXPECT_EQ(b->tokens(), 8);
}

class BudgetPolicyTest : public ::testing::Test {
 protected:
  rebound::testing::simulated_clock clock_;
  std::shared_ptr<rebound::token_bucket_budget> budget_ =
      std::make_shared<rebound::token_bucket_budget>(rebound::token_bucket_budget::options{
          .capacity = 15, .retry_cost = 5, .timeout_retry_cost = 10, .success_refund = 1});
  rebound::retry_policy policy_ = rebound::retry_policy{}
                                      .stop(rebound::stop::after_attempts(10))
                                      .backoff(rebound::backoff::constant(1s))
                                      .clock(clock_)
                                      .budget(budget_);
};

TEST_F(BudgetPolicyTest, ARefusedRetryEndsTheCallWithBudgetExhausted) {
  auto counters = std::make_shared<rebound::counters_observer>();
  int calls = 0;
  rebound::call_report report;
  EXPECT_THROW(rebound::retry(policy_.observer(counters),
                              [&] {
                                ++calls;
                                throw rebound_test::not_found_error();
                              },
                              {.report = &report}),
               rebound_test::not_found_error);
  EXPECT_EQ(calls, 4);  // 3 retries of 5 tokens
  EXPECT_EQ(report.reason, stop_reason::budget_exhausted);
  EXPECT_EQ(budget_->tokens(), 0);
  EXPECT_EQ(counters->snapshot().budget_rejections, 1u);
  EXPECT_EQ(counters->snapshot().ended(stop_reason::budget_exhausted), 1u);
}

TEST_F(BudgetPolicyTest, TimeoutsCostMore) {
  using R = rebound_test::result<int, rebound_test::api_error>;
  const auto p = policy_.retry_if_error(
      [](const rebound_test::api_error&) { return rebound::verdict::timed_out(); });
  int calls = 0;
  (void)rebound::retry(p, [&] { return ++calls, R::failure({504}); });
  EXPECT_EQ(calls, 2);  // one retry of 10 tokens; 5 left is not enough for another
  EXPECT_EQ(budget_->tokens(), 5);
}

TEST_F(BudgetPolicyTest, PoliciesShareOneBudget) {
  const auto other = rebound::retry_policy{}.clock(clock_).budget(budget_);
  int calls = 0;
  EXPECT_THROW(rebound::retry(policy_, [&] { ++calls, throw rebound_test::not_found_error(); }),
               rebound_test::not_found_error);
  rebound::call_report report;
  EXPECT_THROW(rebound::retry(other, [&] { ++calls, throw rebound_test::not_found_error(); },
                              {.report = &report}),
               rebound_test::not_found_error);
  EXPECT_EQ(report.reason, stop_reason::budget_exhausted);
  EXPECT_EQ(report.attempts, 1);  // the first policy drained it
}

TEST_F(BudgetPolicyTest, RetriesWaitingInBackoffAlreadyCount) {
  // Three calls fail at the same moment; the budget (15) pays for three retries
  // that are all still sleeping, so a fourth call's retry is refused now.
  rebound::retry_state a(policy_, clock_.now()), b(policy_, clock_.now()), c(policy_, clock_.now()),
      d(policy_, clock_.now());
  EXPECT_TRUE(a.decide(rebound::verdict::transient(), clock_.now()).retry);
  EXPECT_TRUE(b.decide(rebound::verdict::transient(), clock_.now()).retry);
  EXPECT_TRUE(c.decide(rebound::verdict::transient(), clock_.now()).retry);
  EXPECT_EQ(d.decide(rebound::verdict::transient(), clock_.now()).reason,
            stop_reason::budget_exhausted);
}

TEST_F(BudgetPolicyTest, SuccessesRefill) {
  EXPECT_THROW(rebound::retry(policy_, [] { throw rebound_test::not_found_error(); }),
               rebound_test::not_found_error);
  EXPECT_EQ(budget_->tokens(), 0);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(rebound::retry(policy_, [] { return 1; }), 1);
  EXPECT_EQ(budget_->tokens(), 5);
  int calls = 0;
  EXPECT_EQ(rebound::retry(policy_,
                           [&] {
                             if (++calls < 2) throw rebound_test::not_found_error();
                             return 7;
                           }),
            7);
  EXPECT_EQ(budget_->tokens(), 5);  // charged 5, refunded 5 on the retried success
}

}  // namespace
