// rebound/stop.hpp: when a retry loop gives up, and why.
//
// A stop condition is checked after each failed attempt, with the delay that
// would come next. Conditions combine: `a | b` stops when either says stop,
// `a & b` only when both do.
//
//   auto s = rebound::stop::after_elapsed(5s) | rebound::stop::after_attempts(10);
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "rebound/clock.hpp"

namespace rebound {

/// Why a retried call ended. Every end has one.
enum class stop_reason : std::uint8_t {
  succeeded,              ///< an attempt succeeded
  permanent_error,        ///< the last failure was classified permanent
  attempts_exhausted,     ///< the attempt limit was reached
  time_exhausted,         ///< a time limit (elapsed, before_elapsed, deadline) was reached
  budget_exhausted,       ///< a retry budget refused the retry
  overloaded,             ///< the server said "overloaded, do not retry"
  not_idempotent,         ///< the operation is not safe to repeat
  cancelled,              ///< the caller's stop token was requested
  deferred_to_outer,      ///< an inner loop handed the failure to an enclosing loop
  server_delay_too_long,  ///< a server-given delay exceeded the policy's cap (give_up mode)
  throttled,              ///< adaptive client-side throttling refused the next attempt
};

/// The number of stop reasons (for arrays indexed by stop_reason).
inline constexpr std::size_t stop_reason_count = 11;

/// "succeeded", "permanent_error", ... (the enumerator's name).
[[nodiscard]] std::string_view to_string(stop_reason r) noexcept;

/// What a stop condition looks at after a failed attempt.
struct stop_context {
  int attempts = 0;       ///< attempts made so far (>= 1)
  duration elapsed{};     ///< since the first attempt started
  duration next_delay{};  ///< the wait that would precede the next attempt
  time_point now{};       ///< the current time
};

/// An immutable rule for giving up. Cheap to copy (composites share their
/// children); safe to share across threads. Default: never stop.
class stop_condition {
 public:
  stop_condition() noexcept = default;

  /// Returns the reason to stop, or nullopt to go on.
  [[nodiscard]] std::optional<stop_reason> check(const stop_context& ctx) const noexcept;

  /// The attempt limit this condition is known to impose, if any
  /// (used for "attempt 2/5" and for the attempt context).
  [[nodiscard]] std::optional<int> max_attempts() const noexcept;

  /// The latest time an attempt may still start, given the first start.
  [[nodiscard]] std::optional<time_point> time_limit(time_point start) const noexcept;

  /// True when the condition depends on time (elapsed, before_elapsed, deadline).
  [[nodiscard]] bool uses_time() const noexcept;

  friend stop_condition operator|(stop_condition a, stop_condition b);
  friend stop_condition operator&(stop_condition a, stop_condition b);
  friend bool operator==(const stop_condition& a, const stop_condition& b) noexcept;

 private:
  enum class kind : std::uint8_t { never, attempts, elapsed, before_elapsed, deadline, any, all };
  struct pair;
  stop_condition(kind k, std::int64_t v) noexcept : kind_(k), value_(v) {}

  kind kind_ = kind::never;
  std::int64_t value_ = 0;  // attempts, or nanoseconds, or time_since_epoch in ns
  std::shared_ptr<const pair> children_;

  friend struct detail_stop_factory;
};

namespace stop {
/// Stop once `n` attempts have been made (n >= 1; values below 1 act as 1).
[[nodiscard]] stop_condition after_attempts(int n) noexcept;
/// Stop once `d` has passed since the first attempt started (attempt time
/// included). Checked after each failure; a sleep may still end past `d`.
[[nodiscard]] stop_condition after_elapsed(duration d) noexcept;
/// Stop rather than start a sleep that would end past `d` after the first
/// attempt started: no attempt ever starts later than `d`.
[[nodiscard]] stop_condition before_elapsed(duration d) noexcept;
/// Stop rather than start a sleep that would end past `t`.
[[nodiscard]] stop_condition deadline(time_point t) noexcept;
/// Never stop on this condition (the default).
[[nodiscard]] stop_condition never() noexcept;
}  // namespace stop

}  // namespace rebound
