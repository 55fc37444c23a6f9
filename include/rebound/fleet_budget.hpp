// rebound/fleet_budget.hpp: one retry budget for a whole fleet of processes.
//
// A per-process budget bounds each process's retries, but its floor does not
// scale: 10 free retries per second per process is 10,000 per second across
// 1,000 processes, all aimed at a dependency that is already down. Here the
// budget's counts live in a store the fleet shares (Redis, through
// rebound::redis::shared_budget; or the simulator's model of it,
// rebound::sim::fleet_store), computed atomically there.
//
// The success path never touches the store: calls and refunds are counted in
// a local atomic and deposited in bulk when the owner calls flush() (every
// flush interval, and soon after `max_batch` of them wait). A retry decision
// spends a locally leased allowance when it has one, else asks the store for
// up to `lease_size` more, one thread at a time. While the store is away the
// budget decides with a local budget of the same settings, kept warm with the
// same calls and charged with every retry this process makes, shared or not,
// so it knows what was spent when the store goes. With `share`, that local
// budget holds this process's share of the fleet budget (divided by the
// largest fleet size it has reason to believe), so N processes do not get N
// budgets exactly when the dependency may be struggling too. After the store
// comes back from a new connection (it may have restarted and lost its
// counts), a retry needs both the store's grant and the local budget's for
// one window, so lost writes mean fewer retries, never more.
//
// This is the one implementation: the Redis adapter and the fleet simulation
// (`rebound simulate fleet`) both run it.
//
//   rebound::fleet_budget b(store, rebound::fleet_budget::ratio{.ratio = 0.1}, {}, clock);
//   b.on_flush_due([&] { wake_my_flusher(); });
//   every(100ms, [&] { b.flush(); });
//   auto policy = rebound::retry_policy{}.budget(shared_ptr_to_b);
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "rebound/budget.hpp"
#include "rebound/clock.hpp"

namespace rebound {

/// What a fleet budget (and breaker) does while its store is unavailable.
enum class fleet_fallback : std::uint8_t {
  local,  ///< decide with the process's own budget (the default)
  open,   ///< fail open: grant every retry
  closed  ///< fail closed: refuse every retry
};
[[nodiscard]] std::string_view to_string(fleet_fallback m) noexcept;

/// The settings of a fleet budget: a Finagle-style ratio over a sliding
/// window (the floor is for the whole fleet), or an AWS-style token bucket
/// the whole fleet draws from.
using fleet_budget_settings = std::variant<ratio_budget::options, token_bucket_budget::options>;

/// Where the fleet's budget lives. Each operation is one atomic step at the
/// store and bounded in time; nothing means not done: the store is down
/// (then available() is false) or stayed busy for its whole bound (then
/// available() is still true). Implementations must be thread-safe.
class fleet_budget_store {
 public:
  virtual ~fleet_budget_store() = default;
  /// This process's heartbeat, carried by a deposit.
  struct member {
    std::string_view id;  ///< unique within the fleet
    duration ttl;         ///< alive for this long unless refreshed
  };
  [[nodiscard]] virtual bool available() const noexcept = 0;
  /// Adds `n` calls (ratio) or returns `n` tokens, capped at the capacity
  /// (bucket); `n` may be 0. With a member, marks it alive for its ttl and
  /// returns the number of live members; else returns 0.
  [[nodiscard]] virtual std::optional<long long> deposit(const fleet_budget_settings& s,
                                                         long long n, const member* m) = 0;
  /// Grants up to `n` retries (ratio) or tokens (bucket: none unless `need`
  /// are there) and returns how many.
  [[nodiscard]] virtual std::optional<long long> take(const fleet_budget_settings& s, long long n,
                                                      long long need) = 0;
  /// The most one operation may take (a thread waiting for another's round
  /// trip waits no longer than this).
  [[nodiscard]] virtual duration bound() const noexcept = 0;
  /// True when the last operation that answered nothing certainly left the
  /// store unchanged: it was never sent (the store was down), or the server
  /// refused it with an error (a demoted master's READONLY). False when it
  /// may have been applied (a timeout after sending). A deposit that
  /// certainly was not applied is kept and sent again; one that may have
  /// been is dropped, so a deposit is never counted twice.
  [[nodiscard]] virtual bool last_failure_unapplied() const noexcept { return false; }
  /// Changes with every new connection to the store: a restart or a
  /// failover that may have lost what it held happens behind one (a FLUSHDB
  /// or an eviction on a live connection does not, and is not seen). 0
  /// means never reached. Default: never changes.
  [[nodiscard]] virtual std::uint64_t generation() const noexcept { return 1; }
};

struct fleet_budget_options {
  /// Deposits waiting locally before the owner is asked to flush early.
  int max_batch = 1000;
  /// Retries (ratio) or retry costs (bucket) leased per round trip, and how
  /// long an unused lease stays valid (a ratio lease at most half its window).
  int lease_size = 10;
  duration lease_ttl = std::chrono::seconds(1);
  /// After the store said the fleet's budget is spent, this process refuses
  /// retries locally for this long instead of asking again: in an outage a
  /// refusal then costs no round trip (zero: ask every time).
  duration refusal_hold = std::chrono::milliseconds(100);
  fleet_fallback fallback = fleet_fallback::local;
  /// While the store is away, the local fallback holds the fleet budget
  /// divided by the fleet's last known size (the ratio's floor, the bucket's
  /// capacity; see ratio_budget::share). False: a whole budget per process.
  bool share = true;
  /// The fleet size this process assumes until it has watched the member
  /// set for a whole member_ttl: before that, a fleet that is registering
  /// one by one (a start, a Redis restart) shows fewer members than it has.
  /// The share's divisor is never below it then, nor, at any time, below
  /// the largest size seen within the last member_ttl.
  int expected_fleet_size = 1;
  /// Membership: this process's id (empty: a random one) and how long it
  /// counts as alive after its last heartbeat. Heartbeats ride on flushes,
  /// at most one per member_ttl / 3.
  std::string member_id{};
  duration member_ttl = std::chrono::seconds(10);
  friend bool operator==(const fleet_budget_options&, const fleet_budget_options&) = default;
};

/// A retry budget shared by every process whose fleet_budget uses the same
/// store (and, for Redis, key prefix and dependency name).
class fleet_budget final : public retry_budget {
 public:
  using ratio = ratio_budget::options;
  using token_bucket = token_bucket_budget::options;

  /// Throws config_error for settings the store cannot share (a ratio's
  /// window must be whole seconds, 1s..60s). `store` and `c` must outlive it.
  fleet_budget(fleet_budget_store& store, fleet_budget_settings s, fleet_budget_options o,
               clock& c);
  fleet_budget(const fleet_budget&) = delete;
  fleet_budget& operator=(const fleet_budget&) = delete;
  /// Throws config_error naming the first field a store cannot share
  /// ("ratio", "min_per_second", "window"; "capacity", "retry_cost", ...).
  static void validate(const fleet_budget_settings& s);
  static void validate(const fleet_budget_options& o);

  void on_call() noexcept override;
  bool try_acquire(const retry_request& r) noexcept override;
  void on_success(const retry_request* last_retry) noexcept override;
  void on_failure() noexcept override;

  /// Deposits what waits (the owner calls it every flush interval, and
  /// soon after on_flush_due fires). Also returns expired leased bucket
  /// tokens, and sends a heartbeat when one is due.
  void flush();
  /// Called (on a caller's thread, without blocking) when max_batch deposits
  /// wait: the owner should flush soon. Set it before use.
  void on_flush_due(std::function<void()> f) { flush_due_ = std::move(f); }
  /// Before the process leaves: deposits what waits and gives unused leased
  /// bucket tokens back to the fleet (leased ratio retries were charged).
  void release();

  /// Retries granted from the store (leases included) and decided locally.
  [[nodiscard]] std::uint64_t shared_decisions() const noexcept { return shared_.load(); }
  [[nodiscard]] std::uint64_t fallback_decisions() const noexcept { return fallback_.load(); }
  /// The fleet's size as last seen (expected_fleet_size before that).
  [[nodiscard]] int fleet_size() const noexcept { return fleet_size_.load(); }
  [[nodiscard]] const fleet_budget_settings& settings() const noexcept { return settings_; }
  [[nodiscard]] const fleet_budget_options& options() const noexcept { return options_; }
  /// The local fallback (ratio_budget or token_bucket_budget).
  [[nodiscard]] const retry_budget& local() const noexcept { return *local_; }

 private:
  // `charged`: the local budget granted (and counted) this retry already.
  bool fallback(const retry_request& r, bool charged) noexcept;
  [[nodiscard]] int units(const retry_request& r) const noexcept;
  void set_fleet_size(long long n) noexcept;
  void observe_fleet_size(long long live, time_point now);  // under flush_mu_
  // Notes a new store generation; true while this process is cold after
  // one (grants then need the local budget too).
  bool cold(time_point now) noexcept;
  // Grants from the lease when it holds enough (under lease_mu_); charges
  // the local budget unless it was already (`charged`).
  std::optional<bool> spend_lease_locked(int need, bool charged) noexcept;
  void charge_local(int units) noexcept;

  fleet_budget_store& store_;
  fleet_budget_settings settings_;
  fleet_budget_options options_;
  clock& clock_;
  std::unique_ptr<retry_budget> local_;  // the fallback, kept warm
  duration lease_ttl_;
  std::function<void()> flush_due_;
  std::atomic<std::int64_t> pending_{0};  // calls (ratio) or refund tokens (bucket) to deposit
  std::mutex flush_mu_;
  // Deposits taken from pending_ (and, for the ratio, fed to the local
  // budget already) whose send was refused as busy: sent at the next flush,
  // never fed to the local budget twice. Under flush_mu_.
  std::int64_t unsent_ = 0;
  time_point unsent_since_{};  // when the oldest of unsent_ was kept (under flush_mu_)
  time_point next_beat_{};     // under flush_mu_
  std::mutex lease_mu_;
  std::condition_variable lease_cv_;
  bool refilling_ = false;      // one round trip for more at a time (under lease_mu_)
  int leased_ = 0;              // retries (ratio) or tokens (bucket) granted but not used
  time_point lease_until_{};    // on clock_
  time_point refused_until_{};  // on clock_: the fleet's budget was spent (under lease_mu_)
  std::atomic<int> fleet_size_;
  // The share's divisor (under flush_mu_): the largest live count seen, and
  // when it was last seen; the set is warm once watched for member_ttl.
  long long seen_max_ = 0;
  time_point seen_max_at_{};
  // The store's generation as last seen, and until when (clock_'s ticks)
  // grants need the local budget too, after it changed.
  std::atomic<std::uint64_t> generation_;
  std::atomic<duration::rep> cold_until_{0};
  std::atomic<duration::rep> warm_since_ticks_{0};
  duration cold_for_{};
  std::atomic<std::uint64_t> shared_{0};
  std::atomic<std::uint64_t> fallback_{0};
};

}  // namespace rebound
