// rebound/config.hpp: policies from JSON, environment variables and flags.
//
// Parameters change without code changes (scenario 000): load a policy from
// a JSON document, then let environment variables under a prefix of your
// choice override single fields.
//
//   {
//     "max_attempts": 10,
//     "max_elapsed": "5s",
//     "backoff": {"type": "exponential", "initial": "500ms", "multiplier": 2, "max": "3s"},
//     "jitter": "full"
//   }
//
//   auto s = rebound::settings_from_json_file("retry.json");
//   s = rebound::apply_env(s, "MYAPP_RETRY");   // MYAPP_RETRY_BACKOFF_MAX=3s ...
//   rebound::retry_policy p = s.to_policy().retry_on<not_found_error>();
//
// Keys (all optional):
//   max_attempts       integer 1..1000000          stop::after_attempts
//   max_elapsed        duration                    stop::after_elapsed
//   before_elapsed     duration                    stop::before_elapsed
//   backoff.type       constant|linear|exponential|list
//   backoff.initial    duration (the constant delay for constant)
//   backoff.multiplier number 1..1000 (exponential)
//   backoff.step       duration (linear)
//   backoff.max        duration >= initial
//   backoff.delays     array of durations (list), non-empty
//   jitter             "none"|"full"|"equal"|"decorrelated"|"proportional:F"|"additive:DUR",
//                      or {"type": ..., "factor": F, "amount": DUR}; F in 0..1
//   max_server_delay   duration; server_delay_exceeded: "clamp"|"give_up"
//   seed               integer 0..2^64-1
//   budget             {"type": "token_bucket", "capacity": 500, "retry_cost": 5,
//                        "timeout_retry_cost": 10, "success_refund": 1}
//                      {"type": "ratio", "ratio": 0.2, "min_per_second": 10, "window": "10s"}
//                      {"type": "throttle", "max_tokens": 10, "token_ratio": 0.1}
//   throttle           {"k": 2, "window": "2m"} (adaptive client-side throttling)
// Durations are strings: "250ms", "2s", "1.5m", "1h" (up to 87600h).
// Validation is strict: unknown keys, wrong types, negative or overflowing
// numbers, NaN/inf, max < initial, multiplier < 1, attempts 0 are errors
// naming the field and what is allowed. When neither max_attempts,
// max_elapsed nor before_elapsed is set, the policy stops after 3 attempts.
//
// Environment: PREFIX_ + the path in upper case with '_' for '.', e.g.
// PREFIX_MAX_ATTEMPTS, PREFIX_BACKOFF_TYPE, PREFIX_BACKOFF_MAX,
// PREFIX_BACKOFF_DELAYS (comma separated), PREFIX_JITTER (the string form),
// PREFIX_SEED, PREFIX_BUDGET_TYPE, PREFIX_BUDGET_CAPACITY, ..., PREFIX_THROTTLE_K,
// PREFIX_THROTTLE_WINDOW. A variable under the prefix that names no field is an error.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "rebound/backoff.hpp"
#include "rebound/breaker.hpp"
#include "rebound/budget.hpp"
#include "rebound/clock.hpp"
#include "rebound/jitter.hpp"
#include "rebound/policy.hpp"
#include "rebound/throttle.hpp"

namespace rebound {

/// A configuration problem. `field()` is the path ("backoff.max"), the
/// environment variable, or the flag that was wrong.
class config_error : public std::invalid_argument {
 public:
  config_error(std::string field, const std::string& problem);
  [[nodiscard]] const std::string& field() const noexcept { return field_; }

 private:
  std::string field_;
};

enum class budget_kind : std::uint8_t { token_bucket, ratio, throttle };

/// The data form of a retry budget ("budget" in a policy document).
struct budget_settings {
  budget_kind type = budget_kind::token_bucket;
  token_bucket_budget::options token_bucket;
  ratio_budget::options ratio;
  throttle_budget::options throttle;
  /// Checks the fields of `type`; throws config_error.
  void validate() const;
  /// A new budget of `type` (a ratio budget counts time on `c`).
  [[nodiscard]] std::shared_ptr<retry_budget> make(clock& c = system_clock()) const;
  friend bool operator==(const budget_settings&, const budget_settings&) = default;
};

/// The data form of a policy: what JSON, environment variables and CLI flags set.
/// Hedged attempts (see hedge.hpp), as configured.
struct hedge_settings {
  duration delay{};
  int max_hedges = 1;
  std::optional<double> percentile;
  int min_samples = 20;
  friend bool operator==(const hedge_settings&, const hedge_settings&) = default;
};

struct policy_settings {
  std::optional<int> max_attempts;
  std::optional<duration> max_elapsed;
  std::optional<duration> before_elapsed;
  backoff::kind backoff_type = backoff::kind::exponential;
  duration initial = std::chrono::milliseconds(100);
  double multiplier = 2.0;
  duration step = std::chrono::milliseconds(100);
  std::optional<duration> max_delay;  ///< default: 5s (initial when larger; constant: initial)
  std::vector<duration> delays;
  rebound::jitter jitter = rebound::jitter::full();
  duration max_server_delay = std::chrono::seconds(60);
  server_delay_mode server_delay = server_delay_mode::clamp;
  std::optional<std::uint64_t> seed;
  /// A retry budget; to_policy() makes a new one each time it is called.
  std::optional<budget_settings> budget;
  /// Adaptive client-side throttling; likewise a new one per to_policy().
  std::optional<adaptive_throttle::options> throttle;
  /// Per-attempt and whole-call time limits (> 0).
  std::optional<duration> attempt_timeout;
  std::optional<duration> total_timeout;
  /// Hedged attempts (async loop only); a new latency tracker per to_policy().
  std::optional<hedge_settings> hedge;

  /// Checks every field; throws config_error naming the first bad one.
  void validate() const;
  /// validate(), then the policy these settings describe. Budgets and
  /// throttles it makes run on the system clock; build the policy once and
  /// share it (or pass your own budget to .budget()) so calls share them.
  [[nodiscard]] retry_policy to_policy() const;
  /// Same, on clock `c`: the policy sleeps on it and its budget and throttle
  /// count time on it (the simulator passes its engine).
  [[nodiscard]] retry_policy to_policy(clock& c) const;
  /// The effective max delay.
  [[nodiscard]] duration effective_max_delay() const;

  friend bool operator==(const policy_settings&, const policy_settings&) = default;

 private:
  [[nodiscard]] retry_policy build(clock* c) const;
};

/// Policy settings read from several inputs in order: defaults (or `base`),
/// then a JSON file, the environment, command-line flags. Every value goes
/// through one schema (policy_setting_names()), and every error names the
/// input that set the field as the user wrote it: the flag ("--max-delay"),
/// the variable ("APP_RETRY_BACKOFF_MAX"), or the file and JSON path
/// ("retry.json: backoff.max"), also for checks across fields made at build().
///
///   auto s = rebound::settings_builder{}.json_file("retry.json").env("APP_RETRY").build();
class settings_builder {
 public:
  explicit settings_builder(policy_settings base = {});
  ~settings_builder();
  settings_builder(settings_builder&&) noexcept;
  settings_builder& operator=(settings_builder&&) noexcept;

  /// A JSON document (an object). Refuses unknown keys, a key given twice,
  /// wrong types and values out of range. Throws config_error.
  settings_builder& json(std::string_view text);
  /// A JSON file; errors name it ("retry.json: backoff.max").
  settings_builder& json_file(const std::filesystem::path& file);
  /// PREFIX_* variables of the process environment, or of `vars`.
  settings_builder& env(std::string_view prefix);
  settings_builder& env(std::string_view prefix, const std::map<std::string, std::string>& vars);
  /// One setting, by its schema path ("backoff.max"), as text written by
  /// `origin` (a flag: "--max-delay"), which errors name.
  settings_builder& text(std::string_view path, std::string_view value, const std::string& origin);
  /// Checks what applies to what and every range; returns the settings.
  [[nodiscard]] policy_settings build() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// One setting of the policy schema, as each input names it.
struct setting_name {
  std::string_view path;   ///< JSON: "backoff.max" is {"backoff": {"max": ...}}
  std::string env_suffix;  ///< after "PREFIX_": "BACKOFF_MAX"
  std::string_view flag;   ///< the CLI flag ("--max-delay"), or empty
  std::string_view help;   ///< what it sets
  std::string_view value;  ///< the value's form: "N", "DUR", "KIND", "X", "LIST", "MODE"
};
/// Every setting of the policy schema, in documentation order.
[[nodiscard]] std::vector<setting_name> policy_setting_names();

/// Reads a JSON document over `base`. Throws config_error.
[[nodiscard]] policy_settings settings_from_json(std::string_view json, policy_settings base = {});
/// Reads a JSON file over `base`. Throws config_error (also when unreadable).
[[nodiscard]] policy_settings settings_from_json_file(const std::filesystem::path& file,
                                                      policy_settings base = {});
/// Applies the process environment's PREFIX_* variables over `base`.
[[nodiscard]] policy_settings apply_env(policy_settings base, std::string_view prefix);
/// Applies the given variables (name -> value) over `base`; names not under
/// `prefix` are ignored.
[[nodiscard]] policy_settings apply_env(policy_settings base, std::string_view prefix,
                                        const std::map<std::string, std::string>& vars);

/// Parses the string form of a jitter ("full", "proportional:0.2",
/// "additive:100ms"). Throws config_error with `field`.
[[nodiscard]] rebound::jitter parse_jitter(std::string_view text, const std::string& field);
/// Parses a backoff type name. Throws config_error with `field`.
[[nodiscard]] backoff::kind parse_backoff_kind(std::string_view text, const std::string& field);
/// "constant", "linear", ...
[[nodiscard]] std::string_view to_string(backoff::kind k) noexcept;
/// "none", "full", "proportional:0.2", ...
[[nodiscard]] std::string to_string(const rebound::jitter& j);

/// Shortcut: settings_from_json(json).to_policy().
[[nodiscard]] retry_policy policy_from_json(std::string_view json);

/// Circuit breaker settings from JSON:
///   {"mode": "consecutive"|"sampling", "failure_threshold": 5, "failure_ratio": 0.5,
///    "minimum_calls": 20, "window": "10s", "open_duration": "30s", "half_open_probes": 1}
/// Throws config_error naming the field.
[[nodiscard]] breaker_options breaker_from_json(std::string_view json, breaker_options base = {});
/// PREFIX_MODE, PREFIX_FAILURE_THRESHOLD, PREFIX_FAILURE_RATIO, PREFIX_MINIMUM_CALLS,
/// PREFIX_WINDOW, PREFIX_OPEN_DURATION, PREFIX_HALF_OPEN_PROBES over `base`.
[[nodiscard]] breaker_options apply_breaker_env(breaker_options base, std::string_view prefix,
                                                const std::map<std::string, std::string>& vars);
[[nodiscard]] breaker_options apply_breaker_env(breaker_options base, std::string_view prefix);
/// Checks breaker settings; throws config_error.
void validate(const breaker_options& o);

}  // namespace rebound
