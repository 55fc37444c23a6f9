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
#include <cstddef>
#include <cstdint>
#include <functional>
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

  /// Runs `fn` once, as soon as `now() >= at`, unless cancel_call() stops it
  /// first. Used for timeouts (a blocking loop's attempt timer) and by the
  /// async loop on clocks that are not the system clock. `fn` runs on a
  /// thread of the clock's choosing, must be short and must not throw.
  /// The default runs `fn` on one process-wide timer thread after `at - now()`
  /// of real time; simulated clocks run it when time is advanced past `at`.
  /// Returns an id for cancel_call() (never 0).
  virtual std::uint64_t call_at(time_point at, std::function<void()> fn);

  /// Cancels a call scheduled with call_at(). True when `fn` will not run.
  /// False when it has run; when it is running on another thread, waits for
  /// it to return first (so whatever `fn` touches may be destroyed after).
  virtual bool cancel_call(std::uint64_t id) noexcept;
};

namespace detail {
/// The steady clock's time line, read directly: the one place (with
/// coarse_clock.hpp) where rebound reads a system clock. Everything else asks
/// a rebound::clock, or the call engine, which asks one.
inline time_point steady_now() noexcept {
  return std::chrono::time_point_cast<duration>(std::chrono::steady_clock::now());
}
/// Calls waiting on the process-wide timer thread (clock::call_at on a real
/// clock): the soak test counts them to show that no timer leaks.
[[nodiscard]] std::size_t pending_timer_calls();
}  // namespace detail

/// Wall-clock time (std::chrono::system_clock), for dates a protocol carries
/// (an HTTP Retry-After date). Only protocol dates use it: every interval is
/// measured on a rebound::clock.
[[nodiscard]] inline std::chrono::system_clock::time_point wall_clock_now() noexcept {
  return std::chrono::system_clock::now();
}

/// The process-wide clock backed by std::chrono::steady_clock. A stop request
/// wakes a sleeper at once (a condition variable wait, not a polling loop).
[[nodiscard]] clock& system_clock() noexcept;

}  // namespace rebound
