// rebound/hedge.hpp: hedged attempts for idempotent operations (async loop only).
//
// A hedge is another attempt started while the previous one is still running,
// because it has taken longer than usual. The first success wins and the
// others are cancelled. Hedging cuts tail latency at the cost of extra load,
// so every hedge is an attempt of the call (it counts against the stop
// condition's attempt limit) and draws from the policy's retry budget and
// adaptive throttle like a retry does.
//
//   auto p = policy.hedge({.delay = 50ms, .max_hedges = 2});
//   // or: hedge once the attempt is slower than 95% of recent ones
//   auto q = policy.hedge({.delay = 50ms, .percentile = 0.95});
//
// Only for operations that are safe to run twice at once. The blocking
// retry() runs one attempt at a time and refuses a hedging policy.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "rebound/clock.hpp"

namespace rebound {

/// The latencies of recent successful attempts, for percentile hedge delays.
/// Thread-safe; share one per operation kind.
class latency_tracker {
 public:
  /// Keeps the last `window` samples (at least 1).
  explicit latency_tracker(std::size_t window = 1000);

  void record(duration latency);
  /// The q-quantile (0 < q <= 1, nearest rank) of the recent samples, or
  /// nullopt while fewer than `min_samples` have been recorded.
  [[nodiscard]] std::optional<duration> percentile(double q, std::size_t min_samples = 1) const;
  [[nodiscard]] std::size_t size() const;

 private:
  mutable std::mutex mu_;
  std::vector<duration> ring_;
  std::size_t next_ = 0;
  std::size_t window_;
};

/// When to start hedged attempts.
struct hedge_policy {
  /// The wait after an attempt starts before the next hedge starts; also the
  /// delay used while a percentile has too few samples. Must be >= 0.
  duration delay{};
  /// At most this many hedges per call (attempts beyond the first that run
  /// concurrently with it). Must be >= 1.
  int max_hedges = 1;
  /// When set (0 < q < 1): hedge after the q-quantile of the latencies of
  /// recent successful attempts, once `min_samples` are known.
  std::optional<double> percentile{};
  std::size_t min_samples = 20;
  /// Where latencies are recorded for `percentile`; made by
  /// retry_policy::hedge() when missing. Share it to pool observations.
  std::shared_ptr<latency_tracker> tracker{};

  /// The delay before the next hedge, given what the tracker has seen.
  [[nodiscard]] duration current_delay() const;

  friend bool operator==(const hedge_policy&, const hedge_policy&) noexcept = default;
};

}  // namespace rebound
