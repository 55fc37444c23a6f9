#include "rebound/sim/engine.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace rebound::sim {

engine::engine(std::uint64_t seed, time_point start) : start_(start), now_(start), rng_(seed) {
  queue_.reserve(1024);
}

void engine::at(time_point t, handler fn, void* context, std::uint64_t arg) {
  queue_.push_back(event{std::max(t, now_), seq_++, fn, context, arg});
  std::push_heap(queue_.begin(), queue_.end(), later{});
}

std::uint64_t engine::run_until(time_point end) {
  std::uint64_t n = 0;
  while (!queue_.empty() && queue_.front().t <= end) {
    std::pop_heap(queue_.begin(), queue_.end(), later{});
    const event e = queue_.back();
    queue_.pop_back();
    now_ = e.t;
    e.fn(e.context, e.arg);
    ++n;
  }
  if (end != time_point::max()) now_ = std::max(now_, end);
  events_run_ += n;
  return n;
}

std::uint64_t engine::run() { return run_until(time_point::max()); }

bool engine::sleep_until(time_point, std::stop_token) {
  throw std::logic_error("rebound::sim::engine: simulated code schedules events, it never sleeps");
}

duration engine::abs_normal(duration mean, duration sd) {
  // Box-Muller: one normal draw from two uniforms.
  double u1 = rng_.uniform();
  if (u1 <= 0) u1 = 0x1.0p-53;
  const double u2 = rng_.uniform();
  const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * 3.141592653589793 * u2);
  const double ns = static_cast<double>(mean.count()) + z * static_cast<double>(sd.count());
  return duration(static_cast<duration::rep>(std::fabs(ns)));
}

duration engine::exponential(duration mean) {
  double u = rng_.uniform();
  if (u <= 0) u = 0x1.0p-53;
  return duration(static_cast<duration::rep>(-std::log(u) * static_cast<double>(mean.count())));
}

}  // namespace rebound::sim
