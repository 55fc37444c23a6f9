// rebound/budget.hpp: retry budgets, so retries cannot multiply load in an outage.
//
// A budget decides, for the whole population of calls that share it, whether
// one more retry may happen. Many policies (and threads) may share one budget.
// A retry is charged when it is decided, before its back-off sleep: retries
// waiting in back-off already count (Envoy's users found budgets overshooting
// when they did not).
//
//   auto budget = std::make_shared<rebound::token_bucket_budget>();   // AWS SDK defaults
//   auto p = policy.budget(budget);
//   // a refused retry ends the call: stop_reason::budget_exhausted, event budget_rejected
//
// Three kinds:
//   token_bucket_budget  AWS SDKs' standard mode: capacity 500, a retry costs 5,
//                        a retry after a timeout 10, a first-try success refunds 1
//                        and a success after retries refunds what its last retry cost.
//   ratio_budget         Finagle/Linkerd: retries at most `ratio` of the requests seen
//                        over a sliding window, plus a floor of `min_per_second`.
//   throttle_budget      gRPC retryThrottling: tokens start at max; a failure costs 1,
//                        a success adds token_ratio; retries only while tokens > max/2.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>

#include "rebound/clock.hpp"
#include "rebound/detail/window.hpp"

namespace rebound {

/// What a budget is told about a retry it is asked for.
struct retry_request {
  int attempt = 2;             ///< the attempt the retry would start
  bool after_timeout = false;  ///< the failed attempt timed out
};

/// A thread-safe retry budget. Implementations must be safe to call from
/// many threads at once and must not block for long: the local budgets do no
/// I/O; the Redis budget (rebound/redis/shared.hpp) makes at most one round
/// trip per retry decision, bounded by its command timeout, and none on the
/// success path.
class retry_budget {
 public:
  virtual ~retry_budget() = default;
  /// A logical call starts (its first attempt). Default: nothing.
  virtual void on_call() noexcept {}
  /// May this retry happen? True charges the budget.
  virtual bool try_acquire(const retry_request& r) noexcept = 0;
  /// An attempt succeeded. `last_retry` is the granted retry that started it,
  /// or null for a first attempt.
  virtual void on_success(const retry_request* last_retry) noexcept = 0;
  /// An attempt failed (transient, permanent or overloaded). Default: nothing.
  virtual void on_failure() noexcept {}
};

/// The AWS SDKs' standard retry quota. Lock-free.
class token_bucket_budget final : public retry_budget {
 public:
  struct options {
    int capacity = 500;
    int retry_cost = 5;
    int timeout_retry_cost = 10;
    int success_refund = 1;  ///< on a first-try success
    friend bool operator==(const options&, const options&) = default;
  };
  token_bucket_budget() : token_bucket_budget(options{}) {}
  explicit token_bucket_budget(const options& o);

  bool try_acquire(const retry_request& r) noexcept override;
  /// A first-try success adds success_refund; a retried success returns what its retry cost.
  void on_success(const retry_request* last_retry) noexcept override;
  [[nodiscard]] int tokens() const noexcept { return tokens_.load(std::memory_order_relaxed); }
  [[nodiscard]] const options& settings() const noexcept { return options_; }
  /// This process's share of a fleet's bucket (rebound/fleet_budget.hpp):
  /// the capacity divided among `parts` processes, never below one retry's
  /// cost. Tokens above the new capacity are dropped. 1 restores it whole.
  void share(int parts) noexcept;
  /// Takes `n` tokens spent elsewhere (a fleet's store granted them), without
  /// asking and never below zero: the bucket knows what was spent when it
  /// must decide alone.
  void charge(int n) noexcept;
  [[nodiscard]] int capacity() const noexcept { return capacity_.load(std::memory_order_relaxed); }

 private:
  [[nodiscard]] int cost(const retry_request& r) const noexcept {
    return r.after_timeout ? options_.timeout_retry_cost : options_.retry_cost;
  }
  void refund(int n) noexcept;
  options options_;
  std::atomic<int> capacity_;
  std::atomic<int> tokens_;
};

/// Finagle's RetryBudget: over the last `window`, retries <= ratio * calls +
/// min_per_second * window seconds. Counts in one-second buckets on `clock`.
class ratio_budget final : public retry_budget {
 public:
  struct options {
    double ratio = 0.2;
    int min_per_second = 10;
    duration window = std::chrono::seconds(10);  ///< 1s..60s, whole seconds
    friend bool operator==(const options&, const options&) = default;
  };
  explicit ratio_budget(const options& o, clock& c = system_clock());
  ratio_budget() : ratio_budget(options{}) {}

  void on_call() noexcept override;
  /// `n` calls at once (a batch counted elsewhere, e.g. by the Redis budget).
  void on_calls(std::int64_t n) noexcept;
  /// Counts `n` retries decided elsewhere (a fleet's store granted them)
  /// without asking: the budget knows what was spent when it must decide alone.
  void charge(std::int64_t n) noexcept;
  bool try_acquire(const retry_request& r) noexcept override;
  void on_success(const retry_request*) noexcept override {}

  /// Calls and retries counted in the current window.
  [[nodiscard]] std::pair<std::int64_t, std::int64_t> window_counts() const;
  [[nodiscard]] const options& settings() const noexcept { return options_; }
  /// This process's share of a fleet's budget (rebound/fleet_budget.hpp):
  /// the floor (min_per_second x window) divided among `parts` processes,
  /// never below one retry per window. The ratio part needs no dividing:
  /// each process already counts only its own calls. 1 restores it whole.
  void share(int parts) noexcept;
  /// Retries the floor allows per window (after share()).
  [[nodiscard]] double floor_per_window() const;

 private:
  options options_;
  clock& clock_;
  mutable std::mutex mu_;
  detail::second_window<60> window_;  // calls, retries
  double floor_;                      // retries per window beyond the ratio; under mu_
};

/// gRPC's retryThrottling. Lock-free; tokens kept in thousandths.
class throttle_budget final : public retry_budget {
 public:
  struct options {
    /// Whole, 1..1000 when loaded from settings or a service config (gRFC
    /// A6's uint32; grpc-go's cap of 1000); kept to 3 decimals here.
    double max_tokens = 10;
    /// 0.001 or more, truncated to 3 decimals (gRFC A6); above max_tokens a
    /// success refills the count to max_tokens.
    double token_ratio = 0.1;
    friend bool operator==(const options&, const options&) = default;
  };
  throttle_budget() : throttle_budget(options{}) {}
  explicit throttle_budget(const options& o);

  bool try_acquire(const retry_request& r) noexcept override;
  void on_success(const retry_request* last_retry) noexcept override;
  void on_failure() noexcept override;
  [[nodiscard]] double tokens() const noexcept {
    return static_cast<double>(milli_.load(std::memory_order_relaxed)) / 1000.0;
  }
  /// The settings as given (the token counts use them truncated to 3 decimals).
  [[nodiscard]] const options& settings() const noexcept { return options_; }

 private:
  options options_;
  std::int64_t max_milli_;
  std::int64_t ratio_milli_;
  std::atomic<std::int64_t> milli_;
};

}  // namespace rebound
