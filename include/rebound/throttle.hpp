// rebound/throttle.hpp: adaptive client-side throttling (Google SRE book, "Handling Overload").
//
// Each client tracks, over a sliding window (2 minutes by default), how many
// requests it attempted and how many the backend accepted. It rejects a new
// request locally with probability
//     max(0, (requests - K * accepts) / (requests + 1))
// so a backend that rejects most work sees its offered load fall to about K
// times what it accepts, and a healthy backend (accepts == requests) is never
// throttled. Unlike a retry budget it can refuse even a first attempt.
//
//   auto t = std::make_shared<rebound::adaptive_throttle>();
//   auto p = policy.throttle(t);   // a refused first attempt throws rebound::throttled_error
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <stdexcept>

#include "rebound/clock.hpp"
#include "rebound/detail/window.hpp"

namespace rebound {

/// Thrown when adaptive throttling refuses the first attempt of a call.
class throttled_error : public std::runtime_error {
 public:
  explicit throttled_error(double p)
      : std::runtime_error("rejected locally by adaptive throttling (rejection probability " +
                           std::to_string(p) + ")"),
        probability_(p) {}
  [[nodiscard]] double probability() const noexcept { return probability_; }

 private:
  double probability_;
};

/// Thread-safe. Counts in one-second buckets on the injected clock.
class adaptive_throttle {
 public:
  struct options {
    double k = 2.0;                               ///< 1..10; lower throttles sooner
    duration window = std::chrono::seconds(120);  ///< 1s..600s, whole seconds
    friend bool operator==(const options&, const options&) = default;
  };
  explicit adaptive_throttle(const options& o, clock& c = system_clock());
  adaptive_throttle() : adaptive_throttle(options{}) {}

  /// Counts a request and decides whether to send it. `u` is uniform in
  /// [0, 1) (the caller's random draw); the request is rejected when u < p.
  [[nodiscard]] bool admit(double u);
  /// The backend accepted a request (it answered anything but "overloaded" or a transient failure).
  void record_accept();
  /// The current rejection probability.
  [[nodiscard]] double rejection_probability() const;
  /// Requests and accepts in the current window.
  [[nodiscard]] std::pair<std::int64_t, std::int64_t> window_counts() const;

 private:
  [[nodiscard]] double probability(std::int64_t requests, std::int64_t accepts) const;

  options options_;
  clock& clock_;
  mutable std::mutex mu_;
  detail::second_window<600> window_;  // requests, accepts
};

}  // namespace rebound
