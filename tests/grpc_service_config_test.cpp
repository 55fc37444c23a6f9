// gRPC service configs (gRFC A6) as rebound values: rebound/grpc/service_config.hpp.
// Each rule cites the section of gRFC A6 ("gRPC Retry Design") it follows.
#include "rebound/grpc/service_config.hpp"

#include <gtest/gtest.h>

#include "rebound/config.hpp"
#include "rebound/testing/simulated_clock.hpp"

namespace {

using namespace std::chrono_literals;
using rebound::grpc::code;
using rebound::grpc::policy_from_service_config;

constexpr const char* retry_config = R"({
  "methodConfig": [
    {"name": [{"service": "shop.Cart", "method": "Get"}],
     "timeout": "2.5s",
     "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.1s", "maxBackoff": "1s",
                     "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE", 10]}},
    {"name": [{"service": "shop.Cart"}],
     "hedgingPolicy": {"maxAttempts": 3, "hedgingDelay": "0.5s",
                       "nonFatalStatusCodes": ["UNAVAILABLE"]}},
    {"name": [{}],
     "retryPolicy": {"maxAttempts": 2, "initialBackoff": "1s", "maxBackoff": "1s",
                     "backoffMultiplier": 1, "retryableStatusCodes": ["UNAVAILABLE"]}}
  ],
  "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1239}
})";

// "Retry Policy": maxAttempts, the back-off rule random(0, min(initial *
// multiplier^(n-1), max)), retryableStatusCodes by name or number.
TEST(GrpcServiceConfig, RetryPolicyForAnExactMethod) {
  const auto m = policy_from_service_config(retry_config, "shop.Cart/Get");
  ASSERT_TRUE(m.matched);
  EXPECT_EQ(*m.matched, "shop.Cart/Get");
  EXPECT_EQ(m.policy.stop().max_attempts(), 4);
  EXPECT_EQ(m.policy.total_timeout(), 2500ms);
  EXPECT_FALSE(m.policy.hedge());
  EXPECT_EQ(m.retryable_codes, (std::vector<code>{code::unavailable, code::aborted}));
  // The waits: full jitter under 100 ms, 200 ms, 400 ms (seeded, simulated).
  rebound::testing::simulated_clock clock;
  const auto seeded = m.policy.clock(clock).seed(7);
  rebound::retry_state s(seeded, clock.now());
  const rebound::duration caps[] = {100ms, 200ms, 400ms};
  for (const auto cap : caps) {
    const auto d = s.decide(rebound::verdict::transient(), clock.now());
    ASSERT_TRUE(d.retry);
    EXPECT_LE(d.delay, cap);
  }
  EXPECT_FALSE(s.decide(rebound::verdict::transient(), clock.now()).retry);  // 4 attempts made
}

// "Hedging Policy": maxAttempts in all, hedgingDelay between them.
TEST(GrpcServiceConfig, HedgingPolicyForTheWholeService) {
  const auto m = policy_from_service_config(retry_config, "shop.Cart/Put");
  ASSERT_TRUE(m.matched);
  EXPECT_EQ(*m.matched, "shop.Cart/");
  ASSERT_TRUE(m.policy.hedge());
  EXPECT_EQ(m.policy.hedge()->delay, 500ms);
  EXPECT_EQ(m.policy.hedge()->max_hedges, 2);
  EXPECT_EQ(m.policy.stop().max_attempts(), 3);
  EXPECT_EQ(m.retryable_codes, std::vector<code>{code::unavailable});
}

// "Retry Throttling": maxTokens and tokenRatio, up to 3 decimals.
TEST(GrpcServiceConfig, TheDefaultConfigAndTheThrottle) {
  const auto m = policy_from_service_config(retry_config, "other.Service/Call");
  ASSERT_TRUE(m.matched);
  EXPECT_EQ(*m.matched, "");
  EXPECT_EQ(m.policy.stop().max_attempts(), 2);
  ASSERT_TRUE(m.throttle);
  EXPECT_EQ(m.throttle->tokens(), 10.0);
  EXPECT_EQ(m.policy.budget(), m.throttle);
}

TEST(GrpcServiceConfig, NoMatchMeansOneAttempt) {
  const auto m = policy_from_service_config(R"({"methodConfig": []})", "a.B/C");
  EXPECT_FALSE(m.matched);
  EXPECT_EQ(m.policy.stop().max_attempts(), 1);
}

// "Validation of retryPolicy": maxAttempts > 1 (values over 5 are treated as 5).
TEST(GrpcServiceConfig, MaxAttemptsIsClampedToFive) {
  const auto m = policy_from_service_config(
      R"({"methodConfig": [{"name": [{"service": "a.B"}], "retryPolicy": {"maxAttempts": 7,
          "initialBackoff": "0.1s", "maxBackoff": "1s", "backoffMultiplier": 2,
          "retryableStatusCodes": ["UNAVAILABLE"]}}]})",
      "a.B/C");
  EXPECT_EQ(m.policy.stop().max_attempts(), 5);
  EXPECT_TRUE(m.clamped);
}

TEST(GrpcServiceConfig, EveryErrorNamesTheField) {
  const auto field_of = [](const std::string& retry_policy, const std::string& extra = "") {
    const std::string doc = R"({"methodConfig": [{"name": [{"service": "a.B"}], "retryPolicy": )" +
                            retry_policy + "}]" + extra + "}";
    try {
      (void)policy_from_service_config(doc, "a.B/C");
    } catch (const rebound::config_error& e) {
      return e.field();
    }
    return std::string("accepted");
  };
  const std::string ok_rest =
      R"("initialBackoff": "0.1s", "maxBackoff": "1s", "backoffMultiplier": 2,
         "retryableStatusCodes": ["UNAVAILABLE"])";
  EXPECT_EQ(field_of("{\"maxAttempts\": 1, " + ok_rest + "}"),
            "methodConfig[0].retryPolicy.maxAttempts");
  EXPECT_EQ(field_of("{" + ok_rest + "}"), "methodConfig[0].retryPolicy.maxAttempts");
  EXPECT_EQ(field_of(R"({"maxAttempts": 3, "initialBackoff": "0s", "maxBackoff": "1s",
                         "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]})"),
            "methodConfig[0].retryPolicy.initialBackoff");
  EXPECT_EQ(field_of(R"({"maxAttempts": 3, "initialBackoff": "1", "maxBackoff": "1s",
                         "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]})"),
            "methodConfig[0].retryPolicy.initialBackoff");
  EXPECT_EQ(field_of(R"({"maxAttempts": 3, "initialBackoff": "1s", "maxBackoff": "-1s",
                         "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]})"),
            "methodConfig[0].retryPolicy.maxBackoff");
  EXPECT_EQ(field_of(R"({"maxAttempts": 3, "initialBackoff": "1s", "maxBackoff": "1s",
                         "backoffMultiplier": 0, "retryableStatusCodes": ["UNAVAILABLE"]})"),
            "methodConfig[0].retryPolicy.backoffMultiplier");
  EXPECT_EQ(field_of(R"({"maxAttempts": 3, "initialBackoff": "1s", "maxBackoff": "1s",
                         "backoffMultiplier": 2, "retryableStatusCodes": []})"),
            "methodConfig[0].retryPolicy.retryableStatusCodes");
  EXPECT_EQ(field_of(R"({"maxAttempts": 3, "initialBackoff": "1s", "maxBackoff": "1s",
                         "backoffMultiplier": 2, "retryableStatusCodes": ["SOMETIMES"]})"),
            "methodConfig[0].retryPolicy.retryableStatusCodes[0]");
  EXPECT_EQ(field_of("{\"maxAttempts\": 3, " + ok_rest + "}",
                     R"(, "retryThrottling": {"maxTokens": 0, "tokenRatio": 0.1})"),
            "retryThrottling.maxTokens");
  EXPECT_EQ(field_of("{\"maxAttempts\": 3, " + ok_rest + "}",
                     R"(, "retryThrottling": {"maxTokens": 1001, "tokenRatio": 0.1})"),
            "retryThrottling.maxTokens");
  // Issue 25, item 14: gRFC A6's maxTokens is a uint32 (service_config.proto):
  // 0.5 and 2.5 are refused, not rounded.
  EXPECT_EQ(field_of("{\"maxAttempts\": 3, " + ok_rest + "}",
                     R"(, "retryThrottling": {"maxTokens": 0.5, "tokenRatio": 0.1})"),
            "retryThrottling.maxTokens");
  EXPECT_EQ(field_of("{\"maxAttempts\": 3, " + ok_rest + "}",
                     R"(, "retryThrottling": {"maxTokens": 2.5, "tokenRatio": 0.1})"),
            "retryThrottling.maxTokens");
  // A6 puts no upper bound on tokenRatio: above maxTokens it is accepted.
  EXPECT_EQ(field_of("{\"maxAttempts\": 3, " + ok_rest + "}",
                     R"(, "retryThrottling": {"maxTokens": 2, "tokenRatio": 5})"),
            "accepted");
  EXPECT_EQ(field_of("{\"maxAttempts\": 3, " + ok_rest + "}",
                     R"(, "retryThrottling": {"maxTokens": 10, "tokenRatio": 0})"),
            "retryThrottling.tokenRatio");
  EXPECT_EQ(field_of("{\"maxAttempts\": 3, " + ok_rest + "}",
                     R"(, "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.0004})"),
            "retryThrottling.tokenRatio");  // 0.000 after gRFC A6's truncation
  EXPECT_EQ(field_of("{\"maxAttempts\": 3, " + ok_rest + "}"), "accepted");
  // Both policies in one method config.
  try {
    (void)policy_from_service_config(
        R"({"methodConfig": [{"name": [{"service": "a.B"}], "retryPolicy": {},
            "hedgingPolicy": {"maxAttempts": 2}}]})",
        "a.B/C");
    ADD_FAILURE();
  } catch (const rebound::config_error& e) {
    EXPECT_EQ(e.field(), "methodConfig[0]");
  }
  EXPECT_THROW((void)policy_from_service_config("{}", "NoSlash"), rebound::config_error);
  EXPECT_THROW((void)policy_from_service_config("[1", "a.B/C"), rebound::config_error);
}

TEST(GrpcServiceConfig, ProtoDurationsAndCodes) {
  using rebound::grpc::parse_proto_duration;
  EXPECT_EQ(parse_proto_duration("1s"), 1s);
  EXPECT_EQ(parse_proto_duration("0.1s"), 100ms);
  EXPECT_EQ(parse_proto_duration("1.000000001s"), 1s + 1ns);
  EXPECT_EQ(parse_proto_duration("-2s"), -2s);
  EXPECT_EQ(parse_proto_duration("1"), std::nullopt);
  EXPECT_EQ(parse_proto_duration("1.s"), std::nullopt);
  EXPECT_EQ(parse_proto_duration("1.0000000001s"), std::nullopt);
  EXPECT_EQ(parse_proto_duration("s"), std::nullopt);
  EXPECT_EQ(parse_proto_duration("99999999999999s"), std::nullopt);
  EXPECT_EQ(rebound::grpc::code_from_string("unavailable"), code::unavailable);
  EXPECT_EQ(rebound::grpc::code_from_string("14"), code::unavailable);
  EXPECT_EQ(rebound::grpc::code_from_string("17"), std::nullopt);
  EXPECT_EQ(rebound::grpc::to_string(code::resource_exhausted), "RESOURCE_EXHAUSTED");
}

}  // namespace
