// rebound/fleet_breaker.hpp: a circuit breaker whose open state a fleet shares.
//
// Each process keeps its own circuit_breaker. When it opens, the process
// publishes the open state to a store the fleet shares (Redis, through
// rebound::redis::shared_breaker; or the simulator's model of it), and every
// other process learns of it at its next poll and rejects at once. When the
// open time ends, the fleet is half-open: at most `fleet_probes` probes run
// across the whole fleet; the first to succeed closes it for everyone, one
// that fails opens it again. While the store is unreachable each process
// decides with its own breaker.
//
// This is the one state machine: the Redis adapter and the fleet simulation
// (`rebound simulate fleet`) both run it.
//
//   rebound::fleet_breaker b(store, {.failure_threshold = 5}, 1, clock);
//   link.every(100ms, [&] { b.poll(); });
//   if (auto permit = b.try_acquire()) { ...; b.record(permit, ok); }
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>

#include "rebound/breaker.hpp"
#include "rebound/clock.hpp"

namespace rebound {

/// What a fleet shares for its breaker. Implementations must be thread-safe
/// and bounded in time (a call that cannot answer quickly answers nothing).
class fleet_breaker_store {
 public:
  virtual ~fleet_breaker_store() = default;
  /// The shared state, as of now.
  struct view {
    duration open_left{};  ///< how long the published open state still lasts (<= 0: not open)
    bool outage = false;   ///< an outage is in progress: once not open, the fleet is half-open
    long long probes = 0;  ///< probes taken in the current half-open round
  };
  /// False: unreachable now (the breaker decides locally, at no cost).
  [[nodiscard]] virtual bool available() const noexcept = 0;
  /// Reads the shared state; nothing when it cannot.
  [[nodiscard]] virtual std::optional<view> read() = 0;
  /// Takes a probe slot in the current half-open round (the round lasts
  /// `round`); returns the number of probes taken, this one included; -1
  /// when the fleet is open again (the published open state still lasts:
  /// no probe); nothing when it cannot answer.
  [[nodiscard]] virtual std::optional<long long> take_probe(duration round) = 0;
  /// Publishes "open for `open`", an outage marker lasting `outage`, and a
  /// fresh probe round. Best effort.
  virtual void publish_open(duration open, duration outage) = 0;
  /// Publishes "closed": no open state, no outage, no probe round. Best effort.
  virtual void publish_closed() = 0;
};

class fleet_breaker {
 public:
  /// `store` must outlive the breaker. `poll_interval` is how often the
  /// caller polls (a half-open rejection asks the caller to come back then).
  fleet_breaker(fleet_breaker_store& store, const breaker_options& o, int fleet_probes, clock& c,
                duration poll_interval);
  fleet_breaker(const fleet_breaker&) = delete;
  fleet_breaker& operator=(const fleet_breaker&) = delete;

  /// Refreshes the shared view (call every poll interval).
  void poll();
  [[nodiscard]] breaker_permit try_acquire();
  void record(const breaker_permit& permit, bool succeeded);
  /// This process's view: open while the shared state (or the local breaker) is open.
  [[nodiscard]] breaker_state state() const;
  /// A permit whose call never reached the dependency (a local limit
  /// refused it): nothing is counted, a probe is handed back.
  void release(const breaker_permit& permit);
  /// Opens the circuit for the whole fleet until reset(): this process is
  /// isolated, and the fleet sees the circuit open (for up to `isolate_for`,
  /// a year by default). For maintenance and incidents.
  void isolate(duration isolate_for = std::chrono::hours(24 * 365));
  /// Closes the circuit for the whole fleet and forgets this process's counts.
  void reset();
  /// Called with (from, to) when this process's view of the fleet's state
  /// changes, as seen at each poll, outcome and isolate/reset, on the thread
  /// that saw it. One listener; it replaces another. It must not call the breaker.
  void on_state_change(circuit_breaker::state_listener listener);
  [[nodiscard]] const circuit_breaker& local() const noexcept { return local_; }
  [[nodiscard]] circuit_breaker& local() noexcept { return local_; }

 private:
  void publish_open();
  void publish_closed();
  void notice();  // calls the listener when state() changed

  fleet_breaker_store& store_;
  breaker_options options_;
  int fleet_probes_;
  clock& clock_;
  duration poll_interval_;
  circuit_breaker local_;
  // The shared view, on clock_ (ns since its epoch); 0: not open.
  std::atomic<std::int64_t> shared_open_until_{0};
  std::atomic<bool> shared_half_open_{false};
  std::atomic<bool> probes_taken_{false};     // this round's fleet probes are all out
  std::atomic<bool> observed_shared_{false};  // the last poll read an open state or an outage
  std::mutex listen_mu_;
  breaker_state seen_ = breaker_state::closed;  // under listen_mu_
  circuit_breaker::state_listener listener_;    // under listen_mu_
};

}  // namespace rebound
