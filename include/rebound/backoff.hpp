// rebound/backoff.hpp: how long to wait before the next attempt, before jitter.
//
// With n the attempt about to start (n >= 2):
//   constant     d
//   linear       initial + (n - 2) * step
//   exponential  min(max, initial * multiplier^(n - 2))
//   list         delays[n - 2], the last value repeating
//   function     whatever the user function returns
// Linear, exponential and function schedules clamp to their max, and every
// kind saturates instead of overflowing: the delay before attempt 10,000 of
// an exponential schedule is simply `max`. Constant and list schedules have
// no cap (max() is duration::max()), so additive or proportional jitter can
// still spread them; jitter never pushes a delay past max().
//
//   auto b = rebound::backoff::exponential(500ms, 2.0, 3s);
//   b.delay({.next_attempt = 3});  // 1s
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "rebound/clock.hpp"

namespace rebound {

/// What a backoff (and a user backoff function) is told.
struct backoff_context {
  int next_attempt = 2;       ///< the attempt about to start, >= 2
  duration previous_delay{};  ///< the wait before the previous attempt (0 before attempt 2)
  duration elapsed{};         ///< since the first attempt started
};

/// An immutable delay schedule. Cheap to copy; safe to share across threads.
class backoff {
 public:
  enum class kind : std::uint8_t { constant, linear, exponential, list, function };

  /// Default: exponential(100ms, 2.0, 5s).
  backoff() noexcept;

  /// Always `d`.
  [[nodiscard]] static backoff constant(duration d) noexcept;
  /// `initial + (n - 2) * step`, clamped to `max`.
  [[nodiscard]] static backoff linear(duration initial, duration step,
                                      duration max = duration::max()) noexcept;
  /// `initial * multiplier^(n - 2)`, clamped to `max`. A multiplier below 1
  /// is treated as 1 (config loading rejects it with an error instead).
  [[nodiscard]] static backoff exponential(duration initial, double multiplier = 2.0,
                                           duration max = duration::max()) noexcept;
  /// The listed delays in order; the last one repeats. An empty list means 0.
  [[nodiscard]] static backoff list(std::vector<duration> delays);
  /// A user function of the attempt state, clamped to [0, max]. `initial` is
  /// what decorrelated jitter starts from.
  [[nodiscard]] static backoff function(std::function<duration(const backoff_context&)> fn,
                                        duration max = duration::max(),
                                        duration initial = duration::zero());

  /// The delay before `ctx.next_attempt`, in [0, max()].
  [[nodiscard]] duration delay(const backoff_context& ctx) const;

  [[nodiscard]] kind type() const noexcept { return kind_; }
  /// The first delay of the schedule (the list's first value; a function's `initial`).
  [[nodiscard]] duration initial() const noexcept { return initial_; }
  /// The cap on the delay, after jitter (duration::max() for constant and list).
  [[nodiscard]] duration max() const noexcept { return max_; }
  [[nodiscard]] duration step() const noexcept { return step_; }
  [[nodiscard]] double multiplier() const noexcept { return multiplier_; }
  /// The list of a `list` backoff (empty otherwise).
  [[nodiscard]] const std::vector<duration>& delays() const noexcept;

  /// Equal when kind and parameters are equal; function backoffs are equal
  /// only to copies of themselves.
  friend bool operator==(const backoff& a, const backoff& b) noexcept;

 private:
  kind kind_ = kind::exponential;
  duration initial_{};
  duration step_{};
  duration max_{};
  double multiplier_ = 2.0;
  std::shared_ptr<const std::vector<duration>> list_;
  std::shared_ptr<const std::function<duration(const backoff_context&)>> fn_;
};

}  // namespace rebound
