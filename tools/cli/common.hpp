// Shared parts of the rebound command-line tool: exit codes and policy flags.
#pragma once

#include <CLI/CLI.hpp>
#include <map>
#include <optional>
#include <string>

#include "rebound/config.hpp"

namespace rebound::cli {

/// Exit statuses of the rebound tool (documented in docs/cli.md).
namespace exit_code {
inline constexpr int ok = 0;
inline constexpr int usage = 2;             ///< bad flags, bad configuration
inline constexpr int time_exhausted = 123;  ///< gave up: --max-time ran out
inline constexpr int timeout = 124;         ///< gave up: the last attempt hit --timeout
inline constexpr int internal = 125;        ///< rebound itself failed (fork, pipe, ...)
inline constexpr int cannot_execute = 126;  ///< the command exists but cannot run
inline constexpr int not_found = 127;       ///< the command was not found
inline constexpr int cancelled = 130;       ///< SIGINT/SIGTERM/SIGHUP ended the retries
}  // namespace exit_code

/// Exit statuses of rebound http (besides 0, 2, 123, 124, 125, 130).
namespace http_exit {
inline constexpr int transport = 7;    ///< no response: refused, reset, ... (as curl's 7)
inline constexpr int http_error = 22;  ///< the final status was >= 400 (as curl --fail)
}  // namespace http_exit

/// The policy flags every subcommand shares: one per setting of the policy
/// schema that has a flag (rebound::policy_setting_names()), kept as text by
/// schema path and parsed by the schema itself, so errors name the flag and
/// what is allowed.
struct policy_flags {
  std::map<std::string, std::optional<std::string>> values;  ///< by schema path
  std::optional<std::string> config;
  /// The text given for the setting at `path`, if its flag was given.
  [[nodiscard]] const std::optional<std::string>& given(const std::string& path) const;
};

/// Adds the schema's flags (--attempts, --max-time, --backoff, --initial,
/// --multiplier, --max-delay, --step, --delays, --jitter, --seed) and --config to `app`.
void add_policy_flags(CLI::App& app, policy_flags& flags);

/// Defaults, then --config FILE, then the flags. Throws config_error whose
/// field names the flag (or the file and key) that is wrong.
[[nodiscard]] policy_settings settings_from_flags(const policy_flags& flags,
                                                  policy_settings base = {});

/// One line describing a policy: "stop after 5 attempts; exponential 500ms x2 up to 3s; full
/// jitter".
[[nodiscard]] std::string describe(const policy_settings& s);

/// Prints "rebound: <message>" to stderr and returns exit_code::usage.
int usage_error(const std::string& message);

}  // namespace rebound::cli
