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
// Durations are strings: "250ms", "2s", "1.5m", "1h" (up to 87600h).
// Validation is strict: unknown keys, wrong types, negative or overflowing
// numbers, NaN/inf, max < initial, multiplier < 1, attempts 0 are errors
// naming the field and what is allowed. When neither max_attempts,
// max_elapsed nor before_elapsed is set, the policy stops after 3 attempts.
//
// Environment: PREFIX_ + the path in upper case with '_' for '.', e.g.
// PREFIX_MAX_ATTEMPTS, PREFIX_BACKOFF_TYPE, PREFIX_BACKOFF_MAX,
// PREFIX_BACKOFF_DELAYS (comma separated), PREFIX_JITTER (the string form),
// PREFIX_SEED. A variable under the prefix that names no field is an error.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "rebound/backoff.hpp"
#include "rebound/clock.hpp"
#include "rebound/jitter.hpp"
#include "rebound/policy.hpp"

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

/// The data form of a policy: what JSON, environment variables and CLI flags set.
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

  /// Checks every field; throws config_error naming the first bad one.
  void validate() const;
  /// validate(), then the policy these settings describe.
  [[nodiscard]] retry_policy to_policy() const;
  /// The effective max delay.
  [[nodiscard]] duration effective_max_delay() const;

  friend bool operator==(const policy_settings&, const policy_settings&) = default;
};

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

}  // namespace rebound
