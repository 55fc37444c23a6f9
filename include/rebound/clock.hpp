// rebound/clock.hpp: the injected source of time and of sleeping.
//
// Nothing in rebound reads std::chrono::steady_clock or sleeps directly: the
// retry loop asks a `rebound::clock`. Production code uses `system_clock()`;
// tests pass a `rebound::testing::simulated_clock` so that a five-second
// schedule runs in microseconds.
//
//   rebound::clock& c = rebound::system_clock();
//   std::stop_source stop;
//   bool slept = c.sleep_until(c.now() + 2s, stop.get_token());  // false if stopped early
#pragma once

#include <chrono>
#include <stop_token>

namespace rebound {

/// All of rebound's durations are nanoseconds.
using duration = std::chrono::nanoseconds;
/// A point on a monotonic time line (the steady clock's, or a simulated one).
using time_point = std::chrono::time_point<std::chrono::steady_clock, duration>;

/// Source of monotonic time and of interruptible sleep. Implementations must
/// be thread-safe: several calls may share one clock.
class clock {
 public:
  virtual ~clock() = default;

  /// The current time. Never goes backwards.
  [[nodiscard]] virtual time_point now() const noexcept = 0;

  /// Blocks until `now() >= deadline` or until `stop` is requested, whichever
  /// comes first. Returns true when the deadline was reached, false when the
  /// sleep was cut short by a stop request (also when it was already
  /// requested on entry, in which case it returns at once).
  virtual bool sleep_until(time_point deadline, std::stop_token stop) = 0;

  /// Same as `sleep_until(now() + d, stop)`.
  bool sleep_for(duration d, std::stop_token stop);
};

/// The process-wide clock backed by std::chrono::steady_clock. A stop request
/// wakes a sleeper at once (a condition variable wait, not a polling loop).
[[nodiscard]] clock& system_clock() noexcept;

}  // namespace rebound
