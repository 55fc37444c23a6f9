// rebound/breaker.hpp: a circuit breaker, so a failing dependency gets rest instead of load.
//
// Closed: calls flow; failures are counted. Open: calls are rejected at once
// (circuit_open_error says when the next probe is allowed). After
// `open_duration`, half-open: exactly `half_open_probes` calls are let through
// as probes; if they all succeed the circuit closes, if one fails it opens
// again. Thread-safe; the closed-state success path takes no lock in
// consecutive mode.
//
//   auto breaker = std::make_shared<rebound::circuit_breaker>(rebound::breaker_options{
//       .mode = rebound::breaker_mode::consecutive, .failure_threshold = 5,
//       .open_duration = 30s, .half_open_probes = 1});
//   auto permit = breaker->try_acquire();
//   if (!permit) throw rebound::circuit_open_error(permit.retry_at);
//   ... call ...
//   breaker->record(permit, succeeded);
//
// Two ways to trip:
//   consecutive  `failure_threshold` failures in a row;
//   sampling     over the last `window`, at least `minimum_calls` calls and a
//                failure ratio >= `failure_ratio`.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string_view>

#include "rebound/clock.hpp"
#include "rebound/detail/window.hpp"

namespace rebound {

enum class breaker_state : std::uint8_t { closed, open, half_open, isolated };
/// "closed", "open", "half_open", "isolated".
[[nodiscard]] std::string_view to_string(breaker_state s) noexcept;

enum class breaker_mode : std::uint8_t { consecutive, sampling };

struct breaker_options {
  breaker_mode mode = breaker_mode::consecutive;
  int failure_threshold = 5;                   ///< consecutive: failures in a row, >= 1
  double failure_ratio = 0.5;                  ///< sampling: (0, 1]
  int minimum_calls = 20;                      ///< sampling: calls in the window before it may trip
  duration window = std::chrono::seconds(10);  ///< sampling: 1s..600s, whole seconds
  duration open_duration = std::chrono::seconds(30);  ///< open before half-open
  int half_open_probes = 1;                           ///< calls let through when half-open, >= 1
  friend bool operator==(const breaker_options&, const breaker_options&) = default;
};

/// Thrown (by pipelines, or by you) when the breaker rejects a call.
class circuit_open_error : public std::runtime_error {
 public:
  explicit circuit_open_error(time_point retry_at);
  /// When the breaker will next let a probe through (time_point::max() while isolated).
  [[nodiscard]] time_point retry_at() const noexcept { return retry_at_; }

 private:
  time_point retry_at_;
};

/// The answer of try_acquire().
struct breaker_permit {
  bool allowed = false;
  bool probe = false;            ///< a half-open probe: its result decides the state
  time_point retry_at{};         ///< when refused: the next time a probe may pass
  std::uint64_t generation = 0;  ///< internal: which open/half-open cycle issued the probe
  explicit operator bool() const noexcept { return allowed; }
};

/// What a pipeline asks of a breaker whose state lives elsewhere: a fleet
/// breaker shared through Redis (redis::shared_breaker) implements it. The
/// local circuit_breaker needs no such interface: pipelines call it directly.
class breaker_gate {
 public:
  virtual ~breaker_gate() = default;
  [[nodiscard]] virtual breaker_permit try_acquire() = 0;
  virtual void record(const breaker_permit& permit, bool succeeded) = 0;
  /// A permit whose call never reached the dependency: count nothing.
  virtual void release(const breaker_permit& permit) = 0;
  [[nodiscard]] virtual breaker_state state() const = 0;
};

class circuit_breaker {
 public:
  using state_listener = std::function<void(breaker_state from, breaker_state to)>;

  explicit circuit_breaker(const breaker_options& o = {}, clock& c = system_clock());

  /// May a call go through now? Never blocks for long.
  [[nodiscard]] breaker_permit try_acquire();
  /// The outcome of a call that try_acquire() allowed.
  void record(const breaker_permit& permit, bool succeeded);
  /// A permit whose call never reached the dependency (a local limit
  /// refused it): nothing is counted, and a half-open probe is handed back.
  void release(const breaker_permit& permit);

  /// Opens the circuit until reset(), whatever the calls do (maintenance, incidents).
  void isolate();
  /// Closes the circuit and forgets all counts.
  void reset();

  [[nodiscard]] breaker_state state() const;
  /// Called on every state change, in order, on the thread that caused it,
  /// while the breaker's lock is held: the listener must not call the breaker.
  void on_state_change(state_listener listener);
  [[nodiscard]] const breaker_options& settings() const noexcept { return options_; }

 private:
  void transition(std::unique_lock<std::mutex>& lock, breaker_state to);
  [[nodiscard]] bool should_trip(std::int64_t second) const;

  breaker_options options_;
  clock& clock_;
  mutable std::mutex mu_;
  std::atomic<breaker_state> state_{breaker_state::closed};
  std::atomic<int> consecutive_failures_{0};
  time_point open_until_{};
  time_point half_open_since_{};
  int probes_left_ = 0;
  int probes_succeeded_ = 0;
  std::uint64_t generation_ = 0;
  detail::second_window<600> window_;  // calls, failures (sampling mode)
  state_listener listener_;
};

}  // namespace rebound
