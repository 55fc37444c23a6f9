// rebound/sim/fleet_store.hpp: the Redis keys a fleet shares, modelled on any clock.
//
// rebound::redis keeps a fleet's budget and breaker state in Redis and
// computes them there with Lua scripts (src/redis/shared.cpp). This store
// computes the same things in memory, on the clock it is given (simulated
// time in `rebound simulate fleet` and in tests), and can be made unavailable
// or busy, so that fleet_budget and fleet_breaker, the objects production
// runs, can be driven through outages without a Redis:
//
//   rebound::sim::fleet_store store(clock);
//   rebound::fleet_budget a(store, rebound::fleet_budget::ratio{.ratio = 0.1}, {}, clock);
//   store.set_available(false);     // Redis went away: every operation answers nothing
//   store.busy_for(3);              // up, but the next 3 operations find the link busy
//
// Redis answers at once here; the flush and poll delays are the owners'.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "rebound/clock.hpp"
#include "rebound/fleet_breaker.hpp"
#include "rebound/fleet_budget.hpp"

namespace rebound::sim {

class fleet_store final : public fleet_budget_store, public fleet_breaker_store {
 public:
  explicit fleet_store(const clock& c) : clock_(c) {}

  /// Unavailable: every operation answers nothing and available() is false.
  void set_available(bool up);
  /// Never reached yet (generation 0), and unavailable: as a Redis link
  /// before its first connection. set_available(true) is then the first one.
  void start_unreached();
  /// Redis restarted: its data is gone unless `keep_data` (a restart that
  /// reloaded its snapshot), and the link reconnects (a new generation).
  void restart(bool keep_data);
  /// The next `n` operations answer nothing while available() stays true
  /// (the link was busy for a whole command timeout).
  void busy_for(int n);

  /// The next deposit is applied, then answers nothing and the store goes
  /// down: a command that timed out after Redis ran it.
  void time_out_after_next_deposit();

  [[nodiscard]] bool available() const noexcept override;
  /// A refusal while down changed nothing; a timed-out deposit may have.
  [[nodiscard]] bool last_failure_unapplied() const noexcept override {
    return unapplied_.load(std::memory_order_relaxed);
  }
  /// Changes when the store comes back after being unavailable, as a Redis
  /// link's reconnection does.
  [[nodiscard]] std::uint64_t generation() const noexcept override {
    return generation_.load(std::memory_order_relaxed);
  }

  // fleet_budget_store (the ratio and bucket scripts, and the members set)
  [[nodiscard]] std::optional<long long> deposit(const fleet_budget_settings& s, long long n,
                                                 const member* m) override;
  [[nodiscard]] std::optional<long long> take(const fleet_budget_settings& s, long long n,
                                              long long need) override;
  [[nodiscard]] duration bound() const noexcept override { return std::chrono::milliseconds(20); }

  // fleet_breaker_store (an open key with a TTL, an outage marker, a probe counter)
  [[nodiscard]] std::optional<view> read() override;
  [[nodiscard]] std::optional<long long> take_probe(duration round) override;
  void publish_open(duration open, duration outage) override;
  void publish_closed() override;

  struct counts {
    std::uint64_t operations = 0;  ///< answered (what Redis would have run)
    std::uint64_t refused = 0;     ///< answered nothing (down or busy)
    std::uint64_t calls = 0;       ///< ratio: calls deposited
    std::uint64_t retries = 0;     ///< ratio: retries granted (leases included)
    std::uint64_t probes_granted = 0;
    std::uint64_t opens = 0;
  };
  [[nodiscard]] counts totals() const;
  /// Live members now.
  [[nodiscard]] long long members() const;
  /// Ratio: calls and retries in the window ending now.
  [[nodiscard]] std::pair<long long, long long> window(duration w) const;

 private:
  bool answers();  // under mu_; counts the operation
  long long live_members(time_point now);

  const clock& clock_;
  mutable std::mutex mu_;
  std::atomic<bool> up_{true};
  std::atomic<bool> unapplied_{false};
  std::atomic<std::uint64_t> generation_{1};
  bool time_out_next_ = false;
  int busy_ = 0;
  counts counts_;
  // ratio: per whole second of the clock, calls and retries
  std::map<std::int64_t, std::pair<long long, long long>> seconds_;
  std::optional<long long> tokens_;  // bucket: unset means full
  std::map<std::string, time_point, std::less<>> members_;
  time_point open_until_{}, outage_until_{}, probes_until_{};
  long long probes_ = 0;
};

}  // namespace rebound::sim
