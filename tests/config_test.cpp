#include "rebound/config.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "rebound/testing/simulated_clock.hpp"

namespace {

using namespace std::chrono_literals;
using rebound::config_error;
using rebound::policy_settings;
using rebound::settings_from_json;

TEST(ConfigTest, ReadsEveryField) {
  const auto s = settings_from_json(R"({
    "max_attempts": 7, "max_elapsed": "5s", "before_elapsed": "1m",
    "backoff": {"type": "exponential", "initial": "500ms", "multiplier": 1.5, "max": "3s"},
    "jitter": {"type": "proportional", "factor": 0.25},
    "max_server_delay": "20s", "server_delay_exceeded": "give_up", "seed": 18446744073709551615
  })");
  EXPECT_EQ(s.max_attempts, 7);
  EXPECT_EQ(s.max_elapsed, 5s);
  EXPECT_EQ(s.before_elapsed, 60s);
  EXPECT_EQ(s.backoff_type, rebound::backoff::kind::exponential);
  EXPECT_EQ(s.initial, 500ms);
  EXPECT_EQ(s.multiplier, 1.5);
  EXPECT_EQ(s.max_delay, 3s);
  EXPECT_EQ(s.jitter, rebound::jitter::proportional(0.25));
  EXPECT_EQ(s.max_server_delay, 20s);
  EXPECT_EQ(s.server_delay, rebound::server_delay_mode::give_up);
  EXPECT_EQ(s.seed, 18446744073709551615ULL);

  const auto p = s.to_policy();
  EXPECT_EQ(p.stop(), rebound::stop::after_attempts(7) | rebound::stop::after_elapsed(5s) |
                          rebound::stop::before_elapsed(60s));
  EXPECT_EQ(p.backoff(), rebound::backoff::exponential(500ms, 1.5, 3s));
  EXPECT_EQ(p.seed(), 18446744073709551615ULL);
}

TEST(ConfigTest, OtherBackoffsAndJitterForms) {
  auto s = settings_from_json(R"({"backoff": {"type": "list", "delays": ["1s", "2s", "5s"]},
                                  "jitter": "none"})");
  EXPECT_EQ(s.to_policy().backoff(), rebound::backoff::list({1s, 2s, 5s}));
  s = settings_from_json(R"({"backoff": {"type": "linear", "initial": "1s", "step": "500ms",
                             "max": "4s"}, "jitter": "additive:100ms"})");
  EXPECT_EQ(s.to_policy().backoff(), rebound::backoff::linear(1s, 500ms, 4s));
  EXPECT_EQ(s.jitter, rebound::jitter::additive(100ms));
  s = settings_from_json(R"({"backoff": {"type": "constant", "initial": "2s"},
                             "jitter": {"type": "additive", "amount": "1s"}})");
  EXPECT_EQ(s.to_policy().backoff(), rebound::backoff::constant(2s));
  EXPECT_EQ(settings_from_json(R"({"jitter": "proportional:0.5"})").jitter,
            rebound::jitter::proportional(0.5));
  EXPECT_EQ(settings_from_json(R"({"jitter": "decorrelated"})").jitter,
            rebound::jitter::decorrelated());
}

TEST(ConfigTest, EmptyDocumentGivesTheDefaults) {
  const auto p = settings_from_json("{}").to_policy();
  EXPECT_EQ(p.stop(), rebound::stop::after_attempts(3));
  EXPECT_EQ(p.backoff(), rebound::backoff::exponential(100ms, 2.0, 5s));
}

// Every bad input: the error names the field and says what is allowed.
struct bad_case {
  const char* json;
  const char* field;
  const char* fragment;
};

void PrintTo(const bad_case& c, std::ostream* os) { *os << c.json; }

class ConfigErrorTest : public ::testing::TestWithParam<bad_case> {};

TEST_P(ConfigErrorTest, NamesTheFieldAndTheProblem) {
  const auto& c = GetParam();
  try {
    (void)settings_from_json(c.json).to_policy();
    ADD_FAILURE() << "accepted " << c.json;
  } catch (const config_error& e) {
    EXPECT_EQ(e.field(), c.field) << e.what();
    EXPECT_NE(std::string(e.what()).find(c.fragment), std::string::npos) << "message: " << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllCases, ConfigErrorTest,
    ::testing::Values(
        bad_case{R"({"max_atempts": 3})", "max_atempts", "unknown key; allowed: max_attempts"},
        bad_case{R"({"backoff": {"intial": "1s"}})", "backoff.intial", "unknown key"},
        bad_case{R"({"jitter": {"type": "full", "spread": 1}})", "jitter.spread", "unknown key"},
        bad_case{R"({"max_elapsed": "-1s"})", "max_elapsed", "negative"},
        bad_case{R"({"backoff": {"initial": "-5ms"}})", "backoff.initial", "negative"},
        bad_case{R"({"backoff": {"initial": "5s", "max": "1s"}})", "backoff.max",
                 "less than backoff.initial"},
        bad_case{R"({"backoff": {"multiplier": 0.5}})", "backoff.multiplier", "allowed: 1..1000"},
        bad_case{R"({"backoff": {"multiplier": 1e308}})", "backoff.multiplier", "out of range"},
        bad_case{R"({"max_attempts": 0})", "max_attempts", "allowed: 1..1000000"},
        bad_case{R"({"max_attempts": -3})", "max_attempts", "out of range"},
        bad_case{R"({"max_attempts": 2.5})", "max_attempts", "expected an integer"},
        bad_case{R"({"max_attempts": 99999999999999999999999})", "max_attempts",
                 "expected an integer"},
        bad_case{R"({"max_attempts": 18446744073709551615})", "max_attempts", "out of range"},
        bad_case{R"({"max_attempts": "3"})", "max_attempts", "got a string"},
        bad_case{R"({"max_elapsed": 5})", "max_elapsed", "expected a duration string"},
        bad_case{R"({"max_elapsed": "5"})", "max_elapsed", "no unit"},
        bad_case{R"({"max_elapsed": "5 parsecs"})", "max_elapsed", "unknown unit"},
        bad_case{R"({"max_elapsed": "1000000h"})", "max_elapsed", "too large"},
        bad_case{R"({"backoff": {"type": "fibonacci"}})", "backoff.type",
                 "allowed: constant, linear, exponential, list"},
        bad_case{R"({"backoff": {"type": "list"}})", "backoff.delays", "at least one delay"},
        bad_case{R"({"backoff": {"delays": "1s"}})", "backoff.delays", "expected an array"},
        bad_case{R"({"backoff": {"delays": ["1s", 2]}})", "backoff.delays[1]",
                 "expected a duration"},
        bad_case{R"({"backoff": 3})", "backoff", "expected an object"},
        bad_case{R"({"backoff": {"type": "constant", "initial": "1s", "multiplier": 3}})",
                 "backoff.multiplier", "not used by a constant backoff"},
        bad_case{R"({"backoff": {"type": "list", "delays": ["1s"], "max": "5s"}})", "backoff.max",
                 "not used by a list backoff"},
        bad_case{R"({"backoff": {"step": "1s"}})", "backoff.step",
                 "not used by an exponential backoff"},
        bad_case{R"({"jitter": "wobbly"})", "jitter", "allowed: none, full"},
        bad_case{R"({"jitter": "proportional:1.5"})", "jitter", "allowed: 0..1"},
        bad_case{R"({"jitter": "proportional:nan"})", "jitter", "out of range"},
        bad_case{R"({"jitter": "proportional"})", "jitter", "needs a factor"},
        bad_case{R"({"jitter": "full:3"})", "jitter", "takes no parameter"},
        bad_case{R"({"jitter": {"type": "proportional"}})", "jitter.factor", "required"},
        bad_case{R"({"jitter": {"type": "proportional", "factor": -0.1}})", "jitter.factor",
                 "allowed: 0..1"},
        bad_case{R"({"seed": -1})", "seed", "negative"},
        bad_case{R"({"seed": "x"})", "seed", "expected an integer"},
        bad_case{R"({"server_delay_exceeded": "wait"})", "server_delay_exceeded",
                 "allowed: clamp, give_up"},
        bad_case{R"({"attempt_timeout": "0s"})", "attempt_timeout", "allowed: > 0"},
        bad_case{R"({"total_timeout": "-1s"})", "total_timeout", "negative"},
        bad_case{R"({"hedge": {"delay": "10ms", "max_hedges": 0}})", "hedge.max_hedges",
                 "out of range"},
        bad_case{R"({"hedge": {"percentile": 1.5}})", "hedge.percentile", "out of range"},
        bad_case{R"({"hedge": {"dealy": "10ms"}})", "hedge.dealy", "allowed: delay, max_hedges"},
        bad_case{R"({"hedge": 5})", "hedge", "expected an object"},
        bad_case{R"([1, 2])", "(document)", "expected a JSON object"},
        // Numbers past a double's range once aborted the process (an
        // uncaught parser exception): now an error like any other.
        bad_case{R"({"max_attempts": 1e400})", "(document)", "out of range"},
        bad_case{R"({"backoff": {"multiplier": -1e999}})", "(document)", "out of range"},
        // A key given twice: which one was meant? Refused, named.
        bad_case{R"({"backoff": {"initial": "1s", "initial": "2s"}})", "backoff.initial",
                 "given twice"},
        bad_case{R"({"seed": 1, "seed": 1})", "seed", "given twice"},
        bad_case{R"({"max_attempts": 3,})", "(document)", "not valid JSON"}),
    [](const ::testing::TestParamInfo<bad_case>& param) {
      return "case" + std::to_string(param.index);
    });

TEST(ConfigTest, ProgrammaticSettingsAreValidatedToo) {
  policy_settings s;
  s.multiplier = std::numeric_limits<double>::infinity();
  EXPECT_THROW((void)s.to_policy(), config_error);
  s = {};
  s.initial = -1s;
  EXPECT_THROW((void)s.to_policy(), config_error);
  s = {};
  s.max_attempts = 0;
  EXPECT_THROW((void)s.to_policy(), config_error);
}

TEST(ConfigEnvTest, OverridesSingleFields) {
  const auto base = settings_from_json(R"({"max_attempts": 3, "backoff": {"max": "10s"}})");
  const auto s = rebound::apply_env(base, "MYAPP_RETRY",
                                    {{"MYAPP_RETRY_MAX_ATTEMPTS", "8"},
                                     {"MYAPP_RETRY_BACKOFF_MAX", "3s"},
                                     {"MYAPP_RETRY_BACKOFF_INITIAL", "500ms"},
                                     {"MYAPP_RETRY_BACKOFF_MULTIPLIER", "3"},
                                     {"MYAPP_RETRY_JITTER", "equal"},
                                     {"MYAPP_RETRY_SEED", "12"},
                                     {"OTHER_VAR", "ignored"}});
  EXPECT_EQ(s.max_attempts, 8);
  EXPECT_EQ(s.max_delay, 3s);
  EXPECT_EQ(s.initial, 500ms);
  EXPECT_EQ(s.multiplier, 3.0);
  EXPECT_EQ(s.jitter, rebound::jitter::equal());
  EXPECT_EQ(s.seed, 12u);
  const auto list =
      rebound::apply_env({}, "X", {{"X_BACKOFF_TYPE", "list"}, {"X_BACKOFF_DELAYS", "1s,2s,3s"}});
  EXPECT_EQ(list.delays, (std::vector<rebound::duration>{1s, 2s, 3s}));
}

struct env_case {
  const char* name;
  const char* value;
  const char* fragment;
};

void PrintTo(const env_case& c, std::ostream* os) { *os << c.name << '=' << c.value; }

class ConfigEnvErrorTest : public ::testing::TestWithParam<env_case> {};

TEST_P(ConfigEnvErrorTest, NamesTheVariable) {
  const auto& c = GetParam();
  try {
    (void)rebound::apply_env({}, "APP_RETRY", {{c.name, c.value}});
    ADD_FAILURE() << "accepted " << c.name << "=" << c.value;
  } catch (const config_error& e) {
    EXPECT_NE(std::string(e.what()).find(c.name), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(c.fragment), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllCases, ConfigEnvErrorTest,
    ::testing::Values(env_case{"APP_RETRY_MAX_ATEMPTS", "3", "unknown setting"},
                      env_case{"APP_RETRY_MAX_ATTEMPTS", "0", "allowed: 1..1000000"},
                      env_case{"APP_RETRY_MAX_ATTEMPTS", "ten", "not an integer"},
                      env_case{"APP_RETRY_MAX_ATTEMPTS", "99999999999999999999", "out of range"},
                      env_case{"APP_RETRY_BACKOFF_MAX", "3", "no unit"},
                      env_case{"APP_RETRY_BACKOFF_MAX", "-3s", "negative"},
                      env_case{"APP_RETRY_BACKOFF_MULTIPLIER", "nan", "finite"},
                      env_case{"APP_RETRY_BACKOFF_MULTIPLIER", "inf", "finite"},
                      env_case{"APP_RETRY_BACKOFF_MULTIPLIER", "0.9", "allowed: 1..1000"},
                      env_case{"APP_RETRY_BACKOFF_MULTIPLIER", "2x", "not a number"},
                      env_case{"APP_RETRY_BACKOFF_TYPE", "random", "allowed: constant"},
                      env_case{"APP_RETRY_BACKOFF_DELAYS", "1s,,2s", "APP_RETRY_BACKOFF_DELAYS[1]"},
                      env_case{"APP_RETRY_SEED", "-4", "not an integer"},
                      env_case{"APP_RETRY_BACKOFF_MAX", "1ms", "less than backoff.initial"}),
    [](const ::testing::TestParamInfo<env_case>& param) {
      return "case" + std::to_string(param.index);
    });

TEST(ConfigEnvTest, ReadsTheProcessEnvironment) {
  ::setenv("REBOUND_CONFIG_TEST_MAX_ELAPSED", "9s", 1);
  const auto s = rebound::apply_env({}, "REBOUND_CONFIG_TEST");
  ::unsetenv("REBOUND_CONFIG_TEST_MAX_ELAPSED");
  EXPECT_EQ(s.max_elapsed, 9s);
}

TEST(ConfigFileTest, ReadsAFileAndNamesItInErrors) {
  const auto dir = std::filesystem::temp_directory_path();
  const auto good = dir / "rebound_config_test_good.json";
  const auto bad = dir / "rebound_config_test_bad.json";
  std::ofstream(good) << R"({"max_attempts": 4})";
  std::ofstream(bad) << R"({"max_attempts": "many"})";
  EXPECT_EQ(rebound::settings_from_json_file(good).max_attempts, 4);
  try {
    (void)rebound::settings_from_json_file(bad);
    ADD_FAILURE();
  } catch (const config_error& e) {
    EXPECT_EQ(e.field(), bad.string() + ": max_attempts");
  }
  EXPECT_THROW((void)rebound::settings_from_json_file(dir / "no_such_rebound_file.json"),
               config_error);
  std::filesystem::remove(good);
  std::filesystem::remove(bad);
}

}  // namespace

namespace {

TEST(ConfigBudgetTest, ReadsEachBudgetTypeAndMakesIt) {
  auto s = settings_from_json(R"({"budget": {"type": "token_bucket", "capacity": 100,
                                  "retry_cost": 4, "timeout_retry_cost": 8, "success_refund": 2}})");
  ASSERT_TRUE(s.budget);
  EXPECT_EQ(s.budget->token_bucket.capacity, 100);
  auto p = s.to_policy();
  auto* bucket = dynamic_cast<rebound::token_bucket_budget*>(p.budget().get());
  ASSERT_NE(bucket, nullptr);
  EXPECT_EQ(bucket->tokens(), 100);
  EXPECT_EQ(bucket->settings().timeout_retry_cost, 8);

  s = settings_from_json(R"({"budget": {"type": "ratio", "ratio": 0.1, "min_per_second": 5,
                              "window": "30s"}})");
  const auto ratio_policy = s.to_policy();  // keeps the budget alive
  auto* ratio = dynamic_cast<rebound::ratio_budget*>(ratio_policy.budget().get());
  ASSERT_NE(ratio, nullptr);
  EXPECT_EQ(ratio->settings().window, 30s);

  s = settings_from_json(R"({"budget": {"type": "throttle", "max_tokens": 20, "token_ratio": 0.5},
                             "throttle": {"k": 1.5, "window": "1m"}})");
  EXPECT_NE(dynamic_cast<rebound::throttle_budget*>(s.to_policy().budget().get()), nullptr);
  ASSERT_TRUE(s.throttle);
  EXPECT_EQ(s.throttle->k, 1.5);
  EXPECT_NE(s.to_policy().throttle(), nullptr);
  // gRFC A6 sets no upper bound on tokenRatio: above max_tokens is accepted.
  s = settings_from_json(R"({"budget": {"type": "throttle", "max_tokens": 2, "token_ratio": 5}})");
  EXPECT_NE(dynamic_cast<rebound::throttle_budget*>(s.to_policy().budget().get()), nullptr);
}

INSTANTIATE_TEST_SUITE_P(
    Budgets, ConfigErrorTest,
    ::testing::Values(
        bad_case{R"({"budget": {"type": "leaky"}})", "budget.type",
                 "allowed: token_bucket, ratio, throttle"},
        bad_case{R"({"budget": {"capacity": 0}})", "budget.capacity", "allowed: 1..1e+06"},
        bad_case{R"({"budget": {"capacity": 2.5}})", "budget.capacity", "expected an integer"},
        bad_case{R"({"budget": {"capacity": 10, "retry_cost": 11}})", "budget.retry_cost",
                 "would never be granted"},
        bad_case{R"({"budget": {"type": "ratio", "capacity": 10}})", "budget.capacity",
                 "not used by a budget of type ratio"},
        bad_case{R"({"budget": {"type": "ratio", "window": "1500ms"}})", "budget.window",
                 "whole seconds"},
        bad_case{R"({"budget": {"type": "ratio", "window": "2m"}})", "budget.window", "1s..60s"},
        bad_case{R"({"budget": {"type": "ratio", "ratio": -0.5}})", "budget.ratio", "out of range"},
        bad_case{R"({"budget": {"type": "throttle", "max_tokens": 0}})", "budget.max_tokens",
                 "allowed: 1..1000"},  // gRFC A6: maxTokens must be greater than zero
        // Issue 25, item 14: A6's maxTokens is a uint32; 0.5 and 2.5 were accepted.
        bad_case{R"({"budget": {"type": "throttle", "max_tokens": 0.5}})", "budget.max_tokens",
                 "expected an integer in 1..1000, got a number 0.5"},
        bad_case{R"({"budget": {"type": "throttle", "max_tokens": 2.5}})", "budget.max_tokens",
                 "expected an integer in 1..1000, got a number 2.5"},
        bad_case{R"({"budget": {"spare": 1}})", "budget.spare", "unknown key"},
        bad_case{R"({"budget": "lots"})", "budget", "expected an object"},
        bad_case{R"({"throttle": {"k": 0.5}})", "throttle.k", "allowed: 1..10"},
        bad_case{R"({"throttle": {"window": "0s"}})", "throttle.window", "whole seconds"},
        bad_case{R"({"throttle": {"K": 2}})", "throttle.K", "unknown key"}),
    [](const ::testing::TestParamInfo<bad_case>& param) {
      return "case" + std::to_string(param.index);
    });

TEST(ConfigBudgetTest, ToPolicyOnAClockPutsTheBudgetOnThatClock) {
  auto s = settings_from_json(R"({"budget": {"type": "ratio", "min_per_second": 1,
                                  "window": "10s"}})");
  EXPECT_EQ(s.to_policy().custom_clock(), nullptr);  // system clock: the fast start stamp
  rebound::testing::simulated_clock clock;
  const auto p = s.to_policy(clock);
  EXPECT_EQ(p.custom_clock(), &clock);
  auto& ratio = dynamic_cast<rebound::ratio_budget&>(*p.budget());
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(ratio.try_acquire({}));  // the 10 s floor
  EXPECT_FALSE(ratio.try_acquire({}));
  clock.advance(10s);  // only the simulated clock can empty its window
  EXPECT_TRUE(ratio.try_acquire({}));
}

TEST(ConfigBudgetTest, EnvironmentSetsBudgetAndThrottle) {
  const auto s = rebound::apply_env({}, "APP",
                                    {{"APP_BUDGET_TYPE", "ratio"},
                                     {"APP_BUDGET_RATIO", "0.3"},
                                     {"APP_BUDGET_WINDOW", "5s"},
                                     {"APP_THROTTLE_K", "3"}});
  ASSERT_TRUE(s.budget);
  EXPECT_EQ(s.budget->type, rebound::budget_kind::ratio);
  EXPECT_EQ(s.budget->ratio.ratio, 0.3);
  EXPECT_EQ(s.budget->ratio.window, 5s);
  EXPECT_EQ(s.throttle->k, 3.0);
  try {
    (void)rebound::apply_env({}, "APP",
                             {{"APP_BUDGET_CAPACITY", "50"}, {"APP_BUDGET_TYPE", "ratio"}});
    ADD_FAILURE();
  } catch (const config_error& e) {
    EXPECT_EQ(e.field(), "APP_BUDGET_CAPACITY");
  }
  EXPECT_THROW((void)rebound::apply_env({}, "APP", {{"APP_BUDGET_CAPACITY", "lots"}}),
               config_error);
  EXPECT_THROW((void)rebound::apply_env({}, "APP", {{"APP_BUDGET_RATIO", "nan"}}), config_error);
}

TEST(ConfigBreakerTest, ReadsAndValidatesBreakerSettings) {
  const auto b = rebound::breaker_from_json(R"({"mode": "sampling", "failure_ratio": 0.25,
      "minimum_calls": 50, "window": "1m", "open_duration": "10s", "half_open_probes": 3})");
  EXPECT_EQ(b.mode, rebound::breaker_mode::sampling);
  EXPECT_EQ(b.failure_ratio, 0.25);
  EXPECT_EQ(b.minimum_calls, 50);
  EXPECT_EQ(b.window, 60s);
  EXPECT_EQ(b.open_duration, 10s);
  EXPECT_EQ(b.half_open_probes, 3);
  const auto e = rebound::apply_breaker_env(
      b, "DB_BREAKER", {{"DB_BREAKER_MODE", "consecutive"}, {"DB_BREAKER_FAILURE_THRESHOLD", "7"}});
  EXPECT_EQ(e.mode, rebound::breaker_mode::consecutive);
  EXPECT_EQ(e.failure_threshold, 7);

  auto expect_error = [](std::string_view json, const std::string& field, const std::string& part) {
    try {
      (void)rebound::breaker_from_json(json);
      ADD_FAILURE() << json;
    } catch (const config_error& err) {
      EXPECT_EQ(err.field(), field) << err.what();
      EXPECT_NE(std::string(err.what()).find(part), std::string::npos) << err.what();
    }
  };
  expect_error(R"({"mode": "panic"})", "mode", "allowed: consecutive, sampling");
  expect_error(R"({"failure_threshold": 0})", "failure_threshold", "allowed: 1..1e+06");
  expect_error(R"({"failure_ratio": 1.5})", "failure_ratio", "out of range");
  expect_error(R"({"half_open_probes": 0})", "half_open_probes", "allowed: 1..1000");
  expect_error(R"({"open_duration": "0s"})", "open_duration", "allowed: 1ms..87600h");
  expect_error(R"({"window": "0.5s"})", "window", "whole seconds");
  expect_error(R"({"probes": 2})", "probes", "unknown key");
  try {
    (void)rebound::apply_breaker_env({}, "B", {{"B_HALF_OPEN_PROBES", "many"}});
    ADD_FAILURE();
  } catch (const config_error& err) {
    EXPECT_EQ(err.field(), "B_HALF_OPEN_PROBES");
  }
  EXPECT_THROW((void)rebound::apply_breaker_env({}, "B", {{"B_PROBES", "1"}}), config_error);
}

}  // namespace

namespace {

TEST(ConfigTimeoutsAndHedging, ReadFromJsonAndEnvironment) {
  const auto s = rebound::settings_from_json(
      R"({"attempt_timeout": "2s", "total_timeout": "30s",
          "hedge": {"delay": "50ms", "max_hedges": 2, "percentile": 0.95, "min_samples": 10}})");
  EXPECT_EQ(s.attempt_timeout, rebound::duration(std::chrono::seconds(2)));
  EXPECT_EQ(s.total_timeout, rebound::duration(std::chrono::seconds(30)));
  ASSERT_TRUE(s.hedge);
  EXPECT_EQ(s.hedge->max_hedges, 2);
  const auto p = s.to_policy();
  EXPECT_EQ(p.attempt_timeout(), rebound::duration(std::chrono::seconds(2)));
  ASSERT_TRUE(p.hedge());
  EXPECT_EQ(p.hedge()->delay, rebound::duration(std::chrono::milliseconds(50)));
  EXPECT_EQ(p.hedge()->percentile, 0.95);
  EXPECT_TRUE(p.hedge()->tracker);  // made for the percentile

  const auto e = rebound::apply_env({}, "APP",
                                    {{"APP_ATTEMPT_TIMEOUT", "750ms"},
                                     {"APP_HEDGE_DELAY", "20ms"},
                                     {"APP_HEDGE_MAX_HEDGES", "3"}});
  EXPECT_EQ(e.attempt_timeout, rebound::duration(std::chrono::milliseconds(750)));
  ASSERT_TRUE(e.hedge);
  EXPECT_EQ(e.hedge->max_hedges, 3);
  EXPECT_THROW((void)rebound::apply_env({}, "APP", {{"APP_HEDGE_MAX_HEDGES", "many"}}),
               rebound::config_error);
}

}  // namespace
