// rebound/http/client.hpp: HTTP requests under a retry policy, on libcurl.
//
// Reads ride through a provider's or a gateway's short failure window (408,
// 425, 429, 500, 502, 503, 504, dropped connections); writes are never
// replayed unsafely.
//
//   rebound::http::client c({.policy =
//   rebound::retry_policy{}.stop(rebound::stop::after_attempts(5))}); auto r = c.send({.url =
//   "http://127.0.0.1:8080/runs/42"}); if (r.status == 200) use(r.body);
//
// What is retried:
//   - a status in `retry_statuses` (default 408, 425, 429, 500, 502, 503,
//     504; never 501), honouring Retry-After (delta-seconds or an HTTP-date)
//     for `retry_after_statuses` (default 429, 503), up to `max_retry_after`
//     (default 60s): past it the call ends at once (server_delay_too_long);
//   - a transport failure (refused, reset, timeout, empty reply, partial
//     body, TLS handshake reset), classified by kind, never by message;
//   - only when the request is safe to repeat: GET, HEAD, OPTIONS, TRACE,
//     PUT, DELETE; POST and PATCH only with an Idempotency-Key; any method
//     when the connection failed before a byte of the request was sent.
//     Otherwise the call stops with reason not_idempotent.
// Any other status (200, 404, 501, ...) is the answer, returned at once.
//
// A client owns one libcurl handle and reuses its connections: use one
// client per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rebound/policy.hpp"
#include "rebound/retry.hpp"

namespace rebound::http {

/// How a request failed below HTTP.
enum class transport_kind : std::uint8_t {
  connect_refused,  ///< nothing listens (or a firewall refused)
  connect_timeout,  ///< no connection within the time limit
  resolve,          ///< the host name did not resolve
  reset,            ///< the connection was reset or closed while sending or receiving
  timeout,          ///< the attempt's time limit passed mid-transfer
  empty_reply,      ///< the server closed the connection without answering
  partial_body,     ///< the body ended before its announced length
  tls,              ///< the TLS handshake failed (reset, not a bad certificate)
  tls_certificate,  ///< the peer's certificate was refused: permanent
  cancelled,        ///< the caller's stop token was requested
  other,            ///< anything else libcurl reports: permanent
};

/// "connect_refused", ... (the enumerator's name).
[[nodiscard]] std::string_view to_string(transport_kind k) noexcept;

/// A request that got no complete response.
class transport_error : public std::runtime_error {
 public:
  transport_error(transport_kind kind, int curl_code, bool request_sent, const std::string& what);
  [[nodiscard]] transport_kind kind() const noexcept { return kind_; }
  /// libcurl's CURLcode, for logs.
  [[nodiscard]] int curl_code() const noexcept { return curl_code_; }
  /// False when not a byte of the request was sent (safe to retry for any method).
  [[nodiscard]] bool request_sent() const noexcept { return sent_; }
  /// Worth retrying: classify(kind()) is transient.
  [[nodiscard]] bool transient() const noexcept;

 private:
  transport_kind kind_;
  int curl_code_;
  bool sent_;
};

using header_list = std::vector<std::pair<std::string, std::string>>;

/// A request that must not be sent as it is: a malformed URL, a method or
/// header name that is not an RFC 9110 token, a header value (or an
/// idempotency key) holding CR, LF, NUL or another control character (which
/// would let it write headers of its own). Thrown before any attempt;
/// nothing is sent. `field()` names what is wrong ("url", "method",
/// "headers[2]", "idempotency_key", "attempt_header").
class invalid_request : public std::invalid_argument {
 public:
  invalid_request(std::string field, const std::string& problem)
      : std::invalid_argument(field + ": " + problem), field_(std::move(field)) {}
  [[nodiscard]] const std::string& field() const noexcept { return field_; }

 private:
  std::string field_;
};

/// Overrides the idempotency rules for one request.
enum class retry_mode : std::uint8_t {
  automatic,  ///< by method and Idempotency-Key (the default)
  always,     ///< the caller knows the request is safe to repeat
  never,      ///< one attempt only
};

struct request {
  std::string method = "GET";
  std::string url;
  header_list headers{};
  std::string body{};
  /// Sent as the Idempotency-Key header; makes POST and PATCH retryable.
  std::optional<std::string> idempotency_key{};
  retry_mode retry = retry_mode::automatic;
};

struct response {
  long status = 0;
  header_list headers{};  ///< the final attempt's, in order
  std::string body{};     ///< the final attempt's (failed attempts' bodies are discarded)
  int attempts = 0;
  stop_reason reason = stop_reason::succeeded;  ///< why the loop ended
  duration elapsed{};
  /// The first header with this name (case-insensitive), if any.
  [[nodiscard]] std::optional<std::string> header(std::string_view name) const;
};

struct client_options {
  /// Attempts, back-off, jitter, budget, observer, clock. Its attempt_timeout
  /// and total_timeout bound each transfer and the whole call.
  retry_policy policy{};
  std::vector<int> retry_statuses{408, 425, 429, 500, 502, 503, 504};
  std::vector<int> retry_after_statuses{429, 503};
  /// A Retry-After longer than this ends the call at once (server_delay_too_long).
  duration max_retry_after = std::chrono::seconds(60);
  /// When set, each attempt carries its number in this header (e.g. "X-Attempt").
  std::optional<std::string> attempt_header{};
  /// POST and PATCH without an idempotency key get a fresh random one
  /// (and so become retryable). Off by default.
  bool generate_idempotency_key = false;
  /// Wall-clock time, for Retry-After dates. Default: rebound::wall_clock_now().
  std::function<std::chrono::system_clock::time_point()> wall_clock{};
  /// Connect timeout per attempt (also bounded by the attempt timeout).
  duration connect_timeout = std::chrono::seconds(10);
};

/// The HTTP error table: how a transport failure becomes a verdict.
///   connect_refused, connect_timeout, resolve, reset, empty_reply,
///   partial_body, tls ........................ transient
///   timeout .................................. transient, timed out
///   tls_certificate, other ................... permanent
///   cancelled ................................ (the call ends: cancelled)
/// docs/reference.md shows every adapter's table side by side.
[[nodiscard]] verdict classify(transport_kind k) noexcept;
/// The HTTP error table for a response: a status in `o.retry_statuses` is
/// transient (with the Retry-After delay for `o.retry_after_statuses`, which
/// the caller parses); any other status is the answer (success for the
/// retry loop, whatever the status).
[[nodiscard]] verdict classify_status(long status, const client_options& o) noexcept;

/// Parses a Retry-After value: delta-seconds ("120") or an HTTP-date
/// (IMF-fixdate, RFC 850 or asctime form), against `now`. Nullopt when
/// malformed. A date in the past gives zero.
[[nodiscard]] std::optional<duration> parse_retry_after(std::string_view value,
                                                        std::chrono::system_clock::time_point now);

/// Throws invalid_request when `r` must not be sent (see invalid_request);
/// every send() does this before its first attempt.
void validate(const request& r, const client_options& o = {});

/// True for methods that are safe to repeat by definition (RFC 9110 9.2.2).
[[nodiscard]] bool idempotent_method(std::string_view method) noexcept;

class client {
 public:
  explicit client(client_options options = {});
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;
  client(client&&) noexcept;
  client& operator=(client&&) noexcept;

  /// Sends `r` under the policy. Returns the final response (for a retried
  /// status that never cleared, the last one, with its reason). Throws the
  /// last transport_error when the last attempt got no response (or
  /// retry_error, per policy.on_give_up; reason in options.report).
  response send(const request& r, const call_options& options = {});
  /// GET `url`.
  response get(std::string url, const call_options& options = {});

  [[nodiscard]] const client_options& options() const noexcept;

  /// A random idempotency key (32 hex digits).
  [[nodiscard]] static std::string new_idempotency_key();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace rebound::http
