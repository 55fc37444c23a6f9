// rebound/redis/shared.hpp: one retry budget and one breaker view for a whole fleet.
//
// A per-process budget bounds each process's retry ratio, but its floor does
// not scale: 10 free retries per second per process is 10,000 per second
// across 1,000 processes, all aimed at a dependency that is already down. And
// each process's breaker has to discover an outage on its own. Here the
// budget's counts and the breaker's open state live in Redis, keyed by the
// dependency's name, and are computed atomically there (Lua).
//
//   auto link = std::make_shared<rebound::redis::link>(redis_options);
//   auto budget = std::make_shared<rebound::redis::shared_budget>(
//       link, "payments-api", rebound::redis::shared_budget::ratio{.ratio = 0.1, .min_per_second =
//       10});
//   auto policy = rebound::retry_policy{}.budget(budget);   // same interface as the local budgets
//
// The success path never waits on Redis: calls and refunds are counted in
// local atomics and flushed in the background (every flush_interval, or at
// max_batch). A retry decision uses a locally leased allowance when it has
// one, else one round trip that leases up to lease_size more. While Redis is
// unavailable the budget decides with its share of the fleet budget (the
// budget divided by the fleet's last known size; or fails open or closed,
// as configured), and shares again once it is back.
#pragma once

#include <atomic>

#include <memory>
#include <string>

#include "rebound/breaker.hpp"
#include "rebound/budget.hpp"
#include "rebound/fleet_breaker.hpp"
#include "rebound/fleet_budget.hpp"
#include "rebound/redis/client.hpp"

namespace rebound::redis {

/// A retry budget shared by every process that uses the same Redis, key
/// prefix and dependency name: the fleet budget (rebound/fleet_budget.hpp)
/// on a Redis store, flushed by the link's thread.
class shared_budget final : public retry_budget {
 public:
  /// Finagle-style: fleet-wide retries over the last `window` <= ratio * calls
  /// + min_per_second * window seconds. The floor is for the whole fleet.
  using ratio = ratio_budget::options;
  /// AWS-style token bucket shared by the fleet: a retry costs retry_cost
  /// (timeout_retry_cost after a timeout), a first-try success refunds success_refund.
  using token_bucket = token_bucket_budget::options;

  /// The kind and settings of the link's options().budget.
  shared_budget(std::shared_ptr<link> l, std::string dependency);
  shared_budget(std::shared_ptr<link> l, std::string dependency, ratio o);
  shared_budget(std::shared_ptr<link> l, std::string dependency, token_bucket o);
  ~shared_budget() override;

  void on_call() noexcept override { fleet_.on_call(); }
  bool try_acquire(const retry_request& r) noexcept override { return fleet_.try_acquire(r); }
  void on_success(const retry_request* last_retry) noexcept override {
    fleet_.on_success(last_retry);
  }
  void on_failure() noexcept override { fleet_.on_failure(); }

  /// Sends the pending deposits now (normally the link's thread does).
  void flush() { fleet_.flush(); }
  /// Retries granted from Redis (leases included) and decided locally.
  [[nodiscard]] std::uint64_t shared_decisions() const noexcept {
    return fleet_.shared_decisions();
  }
  [[nodiscard]] std::uint64_t fallback_decisions() const noexcept {
    return fleet_.fallback_decisions();
  }
  /// The fleet's size as last seen in Redis (expected_fleet_size before).
  [[nodiscard]] int fleet_size() const noexcept { return fleet_.fleet_size(); }
  [[nodiscard]] const std::string& dependency() const noexcept { return dependency_; }
  [[nodiscard]] const fleet_budget& fleet() const noexcept { return fleet_; }
  /// Whether the link to Redis is up now (decisions are shared while it is).
  [[nodiscard]] bool redis_available() const noexcept { return store_.available(); }

 private:
  // The budget's counts in Redis, computed by Lua scripts on Redis's clock:
  // per-second call and retry counters (ratio) or a token count (bucket),
  // and the fleet's members with their expiry times (a sorted set).
  class store final : public fleet_budget_store {
   public:
    store(link& l, std::string key, std::string members_key);
    [[nodiscard]] bool available() const noexcept override { return link_.available(); }
    [[nodiscard]] std::optional<long long> deposit(const fleet_budget_settings& s, long long n,
                                                   const member* m) override;
    [[nodiscard]] std::optional<long long> take(const fleet_budget_settings& s, long long n,
                                                long long need) override;
    [[nodiscard]] duration bound() const noexcept override;
    [[nodiscard]] bool last_failure_unapplied() const noexcept override {
      return unapplied_.load(std::memory_order_relaxed);
    }
    [[nodiscard]] std::uint64_t generation() const noexcept override { return link_.connections(); }

   private:
    // The script's integer, or nothing; notes whether "nothing" certainly
    // changed nothing (never sent, or an error reply).
    std::optional<long long> run(std::string_view script, const std::vector<std::string>& args);
    link& link_;
    std::string key_, members_key_;
    std::atomic<bool> unapplied_{false};
  };
  shared_budget(std::shared_ptr<link> l, std::string dependency, fleet_budget_settings s);

  std::shared_ptr<link> link_;
  std::string dependency_;
  store store_;
  fleet_budget fleet_;
  std::uint64_t task_ = 0;  // the link's flush task
};

/// A circuit breaker whose open state is shared through Redis: the fleet
/// breaker's state machine (rebound/fleet_breaker.hpp) on a Redis store.
/// When one process's breaker opens, it publishes the open state until its
/// next probe time; every process then rejects at once. In half-open, at
/// most `fleet_probes` probes run across the fleet (the first to succeed
/// closes it for everyone; one that fails opens it again). A pipeline takes
/// it as its breaker: `pipeline(policy).breaker(shared)`.
class shared_breaker final : public breaker_gate {
 public:
  /// `fleet_probes`: default, the link's options().fleet_probes.
  shared_breaker(std::shared_ptr<link> l, std::string dependency, const breaker_options& o = {},
                 std::optional<int> fleet_probes = std::nullopt);
  ~shared_breaker();
  shared_breaker(const shared_breaker&) = delete;
  shared_breaker& operator=(const shared_breaker&) = delete;

  [[nodiscard]] breaker_permit try_acquire() override { return fleet_.try_acquire(); }
  void record(const breaker_permit& permit, bool succeeded) override {
    fleet_.record(permit, succeeded);
  }
  void release(const breaker_permit& permit) override { fleet_.release(permit); }
  /// This process's view: open while the shared state (or the local breaker) is open.
  [[nodiscard]] breaker_state state() const override { return fleet_.state(); }
  /// Opens the circuit for the whole fleet until reset() (see fleet_breaker::isolate).
  void isolate() { fleet_.isolate(); }
  /// Closes it for the whole fleet.
  void reset() { fleet_.reset(); }
  /// This process's view of the fleet's state changed (checked at each poll,
  /// outcome, isolate and reset). It must not call the breaker.
  void on_state_change(circuit_breaker::state_listener l) { fleet_.on_state_change(std::move(l)); }
  /// Reads the shared state now (normally every poll_interval).
  void poll() { fleet_.poll(); }
  [[nodiscard]] const circuit_breaker& local() const noexcept { return fleet_.local(); }

 private:
  // The fleet's shared breaker state in Redis: an open key whose TTL is the
  // open time, an outage marker that outlives it, and a probe counter.
  class store final : public fleet_breaker_store {
   public:
    store(link& l, const std::string& dependency);
    [[nodiscard]] bool available() const noexcept override { return link_.available(); }
    [[nodiscard]] std::optional<view> read() override;
    [[nodiscard]] std::optional<long long> take_probe(duration round) override;
    void publish_open(duration open, duration outage) override;
    void publish_closed() override;

   private:
    link& link_;
    std::string open_key_, outage_key_, probes_key_;
  };

  std::shared_ptr<link> link_;
  std::string dependency_;
  store store_;
  fleet_breaker fleet_;
  std::uint64_t task_ = 0;  // the link's poll task
};

}  // namespace rebound::redis
