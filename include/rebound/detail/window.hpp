// rebound/detail/window.hpp: counts over a sliding window of whole seconds. Not API.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <utility>

#include "rebound/clock.hpp"

namespace rebound::detail {

/// The whole second a time point falls in.
inline std::int64_t whole_seconds(time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

/// Two counters per second over the last `seconds` seconds (1..MaxSeconds),
/// in a ring of one-second buckets. Not thread-safe: callers lock.
template <std::size_t MaxSeconds>
class second_window {
 public:
  explicit second_window(duration window)
      : seconds_(static_cast<int>(std::clamp<std::int64_t>(
            std::chrono::duration_cast<std::chrono::seconds>(window).count(), 1,
            static_cast<std::int64_t>(MaxSeconds)))) {}

  /// Adds to the counters of `second`.
  void add(std::int64_t second, std::int64_t first, std::int64_t second_counter) {
    bucket& b = buckets_[static_cast<std::size_t>(((second % seconds_) + seconds_) % seconds_)];
    if (b.second != second) b = bucket{second, 0, 0};
    b.a += first;
    b.b += second_counter;
  }
  /// Both counters summed over the window that ends with `second`.
  [[nodiscard]] std::pair<std::int64_t, std::int64_t> sums(std::int64_t second) const {
    std::int64_t a = 0;
    std::int64_t b = 0;
    for (int i = 0; i < seconds_; ++i) {
      const bucket& k = buckets_[static_cast<std::size_t>(i)];
      if (k.second > second - seconds_ && k.second <= second) {
        a += k.a;
        b += k.b;
      }
    }
    return {a, b};
  }
  void clear() { buckets_.fill(bucket{}); }
  [[nodiscard]] int seconds() const noexcept { return seconds_; }

 private:
  struct bucket {
    std::int64_t second = -1;
    std::int64_t a = 0;
    std::int64_t b = 0;
  };
  int seconds_;
  std::array<bucket, MaxSeconds> buckets_{};
};

}  // namespace rebound::detail
