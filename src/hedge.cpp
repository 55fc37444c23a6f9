#include "rebound/hedge.hpp"

#include <algorithm>
#include <cmath>

namespace rebound {

latency_tracker::latency_tracker(std::size_t window) : window_(std::max<std::size_t>(window, 1)) {
  ring_.reserve(window_);
}

void latency_tracker::record(duration latency) {
  std::lock_guard lock(mu_);
  if (ring_.size() < window_) {
    ring_.push_back(latency);
  } else {
    ring_[next_] = latency;
  }
  next_ = (next_ + 1) % window_;
}

std::optional<duration> latency_tracker::percentile(double q, std::size_t min_samples) const {
  std::vector<duration> copy;
  {
    std::lock_guard lock(mu_);
    if (ring_.empty() || ring_.size() < min_samples) return std::nullopt;
    copy = ring_;
  }
  const double clamped = std::clamp(q, 0.0, 1.0);
  auto rank = static_cast<std::size_t>(std::ceil(clamped * static_cast<double>(copy.size())));
  rank = std::clamp<std::size_t>(rank, 1, copy.size());
  std::nth_element(copy.begin(), copy.begin() + static_cast<std::ptrdiff_t>(rank - 1), copy.end());
  return copy[rank - 1];
}

std::size_t latency_tracker::size() const {
  std::lock_guard lock(mu_);
  return ring_.size();
}

duration hedge_policy::current_delay() const {
  if (percentile && tracker) {
    if (auto d = tracker->percentile(*percentile, min_samples)) return *d;
  }
  return delay;
}

}  // namespace rebound
