#include "rebound/events.hpp"

#include <gtest/gtest.h>

#include "rebound/retry.hpp"
#include "rebound/testing/simulated_clock.hpp"
#include "test_types.hpp"

namespace {

using namespace std::chrono_literals;
using rebound::event;
using rebound::event_kind;
using rebound::stop_reason;

struct recorded {
  event_kind kind;
  int attempt;
  rebound::duration delay;
  stop_reason reason;
  std::string cause;
};

class EventsTest : public ::testing::Test {
 protected:
  rebound::testing::simulated_clock clock_;
  std::vector<recorded> seen_;
  rebound::retry_policy policy_ =
      rebound::retry_policy{}
          .stop(rebound::stop::after_attempts(3))
          .backoff(rebound::backoff::constant(2s))
          .jitter(rebound::jitter::none())
          .clock(clock_)
          .observer(std::make_shared<rebound::function_observer>([this](const event& e) {
            seen_.push_back({e.kind, e.attempt, e.delay, e.reason, std::string(e.cause)});
            EXPECT_EQ(e.max_attempts, 3);
          }));
};

TEST_F(EventsTest, ARetriedSuccessTellsTheWholeStory) {
  int calls = 0;
  rebound::retry(policy_, [&] {
    if (++calls < 2) throw rebound_test::not_found_error();
  });
  ASSERT_EQ(seen_.size(), 5u);
  EXPECT_EQ(seen_[0].kind, event_kind::attempt_started);
  EXPECT_EQ(seen_[0].attempt, 1);
  EXPECT_EQ(seen_[1].kind, event_kind::attempt_failed);
  EXPECT_EQ(seen_[1].cause, "not found");
  EXPECT_EQ(seen_[2].kind, event_kind::retry_scheduled);
  EXPECT_EQ(seen_[2].attempt, 2);
  EXPECT_EQ(seen_[2].delay, 2s);
  EXPECT_EQ(seen_[3].kind, event_kind::attempt_started);
  EXPECT_EQ(seen_[3].attempt, 2);
  EXPECT_EQ(seen_[4].kind, event_kind::succeeded);
  EXPECT_EQ(seen_[4].attempt, 2);
}

TEST_F(EventsTest, GivingUpSaysWhy) {
  EXPECT_THROW(rebound::retry(policy_, [] { throw rebound_test::not_found_error(); }),
               rebound_test::not_found_error);
  ASSERT_FALSE(seen_.empty());
  EXPECT_EQ(seen_.back().kind, event_kind::gave_up);
  EXPECT_EQ(seen_.back().reason, stop_reason::attempts_exhausted);
  EXPECT_EQ(seen_.back().attempt, 3);
  EXPECT_EQ(seen_.back().cause, "not found");
}

TEST_F(EventsTest, ExpectedErrorsAreDescribedByTheirMessage) {
  using R = rebound_test::result<int, rebound_test::api_error>;
  (void)rebound::retry(policy_, [] { return R::failure({503}); });
  EXPECT_EQ(seen_[1].cause, "api error 503");
}

TEST(CountersObserverTest, CountsOutcomes) {
  rebound::testing::simulated_clock clock;
  auto counters = std::make_shared<rebound::counters_observer>();
  const auto p = rebound::retry_policy{}
                     .stop(rebound::stop::after_attempts(3))
                     .clock(clock)
                     .observer(counters);
  int calls = 0;
  rebound::retry(p, [&] {
    if (++calls < 3) throw rebound_test::not_found_error();
  });
  EXPECT_THROW(rebound::retry(p.retry_on<rebound_test::not_found_error>(),
                              [] { throw rebound_test::forbidden_error(); }),
               rebound_test::forbidden_error);
  const auto c = counters->snapshot();
  EXPECT_EQ(c.attempts, 4u);
  EXPECT_EQ(c.retries, 2u);
  EXPECT_EQ(c.failures_transient, 2u);
  EXPECT_EQ(c.failures_permanent, 1u);
  EXPECT_EQ(c.ended(stop_reason::succeeded), 1u);
  EXPECT_EQ(c.ended(stop_reason::permanent_error), 1u);
}

TEST(FunctionObserverTest, AThrowingObserverDoesNotChangeTheOutcome) {
  rebound::testing::simulated_clock clock;
  const auto p = rebound::retry_policy{}.clock(clock).observer(
      std::make_shared<rebound::function_observer>([](const event&) { throw 1; }));
  EXPECT_EQ(rebound::retry(p, [] { return 3; }), 3);
}

TEST(EventKindTest, HasNames) {
  EXPECT_EQ(rebound::to_string(event_kind::retry_scheduled), "retry_scheduled");
}

}  // namespace
