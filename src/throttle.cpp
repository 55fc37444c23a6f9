#include "rebound/throttle.hpp"

#include <algorithm>

namespace rebound {

namespace {
std::int64_t whole_seconds(time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}
}  // namespace

adaptive_throttle::adaptive_throttle(const options& o, clock& c)
    : options_(o),
      clock_(c),
      seconds_(static_cast<int>(std::clamp<std::int64_t>(
          std::chrono::duration_cast<std::chrono::seconds>(o.window).count(), 1, 600))) {}

adaptive_throttle::bucket& adaptive_throttle::current(std::int64_t second) {
  bucket& b = buckets_[static_cast<std::size_t>(second % seconds_)];
  if (b.second != second) b = bucket{second, 0, 0};
  return b;
}

std::pair<std::int64_t, std::int64_t> adaptive_throttle::sums(std::int64_t second) const {
  std::int64_t requests = 0;
  std::int64_t accepts = 0;
  for (int i = 0; i < seconds_; ++i) {
    const bucket& b = buckets_[static_cast<std::size_t>(i)];
    if (b.second > second - seconds_ && b.second <= second) {
      requests += b.requests;
      accepts += b.accepts;
    }
  }
  return {requests, accepts};
}

double adaptive_throttle::probability(std::int64_t requests, std::int64_t accepts) const {
  const double p = (static_cast<double>(requests) - options_.k * static_cast<double>(accepts)) /
                   (static_cast<double>(requests) + 1.0);
  return std::max(0.0, p);
}

bool adaptive_throttle::admit(double u) {
  const std::int64_t s = whole_seconds(clock_.now());
  std::lock_guard lock(mu_);
  const auto [requests, accepts] = sums(s);
  ++current(s).requests;
  return !(u < probability(requests, accepts));
}

void adaptive_throttle::record_accept() {
  const std::int64_t s = whole_seconds(clock_.now());
  std::lock_guard lock(mu_);
  ++current(s).accepts;
}

double adaptive_throttle::rejection_probability() const {
  const std::int64_t s = whole_seconds(clock_.now());
  std::lock_guard lock(mu_);
  const auto [requests, accepts] = sums(s);
  return probability(requests, accepts);
}

std::pair<std::int64_t, std::int64_t> adaptive_throttle::window_counts() const {
  const std::int64_t s = whole_seconds(clock_.now());
  std::lock_guard lock(mu_);
  return sums(s);
}

}  // namespace rebound
