#include "rebound/throttle.hpp"

#include <algorithm>

namespace rebound {

using detail::whole_seconds;

adaptive_throttle::adaptive_throttle(const options& o, clock& c)
    : options_(o), clock_(c), window_(o.window) {}

double adaptive_throttle::probability(std::int64_t requests, std::int64_t accepts) const {
  const double p = (static_cast<double>(requests) - options_.k * static_cast<double>(accepts)) /
                   (static_cast<double>(requests) + 1.0);
  return std::max(0.0, p);
}

bool adaptive_throttle::admit(double u) {
  const std::int64_t s = whole_seconds(clock_.now());
  std::lock_guard lock(mu_);
  const auto [requests, accepts] = window_.sums(s);
  window_.add(s, 1, 0);
  return !(u < probability(requests, accepts));
}

void adaptive_throttle::record_accept() {
  const std::int64_t s = whole_seconds(clock_.now());
  std::lock_guard lock(mu_);
  window_.add(s, 0, 1);
}

double adaptive_throttle::rejection_probability() const {
  const std::int64_t s = whole_seconds(clock_.now());
  std::lock_guard lock(mu_);
  const auto [requests, accepts] = window_.sums(s);
  return probability(requests, accepts);
}

std::pair<std::int64_t, std::int64_t> adaptive_throttle::window_counts() const {
  const std::int64_t s = whole_seconds(clock_.now());
  std::lock_guard lock(mu_);
  return window_.sums(s);
}

}  // namespace rebound
