// rebound/grpc/service_config.hpp: a gRPC service config's retry rules as rebound values.
//
// gRPC clients configure retries in the service config (gRFC A6):
// `retryPolicy`, `hedgingPolicy` and the channel's `retryThrottling`. This
// reads them and makes what they mean in rebound: a retry_policy (attempts,
// back-off with gRPC's full jitter, the method's timeout, the hedge), the
// status codes that are worth another attempt, and gRPC's throttle. It needs
// no gRPC library: `rebound policy show --grpc-service-config` uses it, and
// rebound::grpc (rebound/grpc/client.hpp) runs what it makes.
//
//   auto m = rebound::grpc::policy_from_service_config(json, "helloworld.Greeter/SayHello");
//   rebound::grpc::options o{.policy = m.policy, .retryable_codes = m.retryable_codes};
//
// gRFC A6's validation rules apply, and every error names the field as it
// is in the document ("methodConfig[0].retryPolicy.maxAttempts"):
//   - maxAttempts > 1 (more than 5 is clamped to 5);
//   - initialBackoff and maxBackoff positive, backoffMultiplier positive;
//   - retryableStatusCodes not empty;
//   - a method config has a retryPolicy or a hedgingPolicy, not both;
//   - retryThrottling: maxTokens in (0, 1000], tokenRatio > 0 (truncated to
//     3 decimals by throttle_budget).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rebound/budget.hpp"
#include "rebound/policy.hpp"

namespace rebound::grpc {

/// gRPC's status codes, by number (the same values as grpc::StatusCode).
enum class code : int {
  ok = 0,
  cancelled = 1,
  unknown = 2,
  invalid_argument = 3,
  deadline_exceeded = 4,
  not_found = 5,
  already_exists = 6,
  permission_denied = 7,
  resource_exhausted = 8,
  failed_precondition = 9,
  aborted = 10,
  out_of_range = 11,
  unimplemented = 12,
  internal = 13,
  unavailable = 14,
  data_loss = 15,
  unauthenticated = 16,
};
/// "UNAVAILABLE", as the service config spells it.
[[nodiscard]] std::string_view to_string(code c) noexcept;
/// A code from its name ("UNAVAILABLE", any case) or number ("14"); nothing otherwise.
[[nodiscard]] std::optional<code> code_from_string(std::string_view s) noexcept;

/// What a service config says about one method.
struct method_config {
  /// Attempts, back-off and full jitter (retryPolicy), or the hedge
  /// (hedgingPolicy); the method's `timeout` as the total timeout;
  /// retryThrottling as the budget; perAttemptRecvTimeout as the attempt timeout.
  retry_policy policy;
  /// retryPolicy.retryableStatusCodes, or hedgingPolicy.nonFatalStatusCodes.
  std::vector<code> retryable_codes;
  /// The channel's throttle (also in policy's budget), if the config has one.
  std::shared_ptr<throttle_budget> throttle;
  /// Which name entry matched: "pkg.Service/Method", "pkg.Service/" (the
  /// whole service), "" (the default config), or nothing matched at all (no
  /// retries: one attempt).
  std::optional<std::string> matched;
  /// maxAttempts above 5 were clamped to 5, as gRPC does.
  bool clamped = false;
  /// One line for people and logs: what was matched and what it means.
  std::string summary;
};

/// Reads a service config (JSON) for `method` ("pkg.Service/Method"):
/// the exact name first, then the service, then the default. Throws
/// rebound::config_error naming the field.
[[nodiscard]] method_config policy_from_service_config(std::string_view json,
                                                       std::string_view method);

/// The same, from a file (at most 1 MiB; the error names the file).
[[nodiscard]] method_config policy_from_service_config_file(const std::filesystem::path& file,
                                                            std::string_view method);

/// A google.protobuf.Duration in its JSON form ("1.5s", "0.000001s"): seconds
/// with up to 9 decimals and an "s". Nothing when malformed.
[[nodiscard]] std::optional<duration> parse_proto_duration(std::string_view s) noexcept;

}  // namespace rebound::grpc
