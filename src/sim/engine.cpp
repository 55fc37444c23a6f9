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
  running_ = true;
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
  running_ = false;
  return n;
}

std::uint64_t engine::run() { return run_until(time_point::max()); }

bool engine::sleep_until(time_point deadline, std::stop_token stop) {
  if (running_) {
    throw std::logic_error(
        "rebound::sim::engine: an event cannot sleep (it would run the events after it); "
        "schedule instead");
  }
  if (stop.stop_requested()) return false;
  run_until(deadline);
  return !stop.stop_requested();
}

std::uint64_t engine::call_at(time_point t, std::function<void()> fn) {
  const std::uint64_t id = next_call_++;
  calls_.emplace(id, std::move(fn));
  at(t, &engine::run_call, this, id);
  return id;
}

bool engine::cancel_call(std::uint64_t id) noexcept { return calls_.erase(id) > 0; }

void engine::run_call(void* self, std::uint64_t id) {
  auto* e = static_cast<engine*>(self);
  const auto it = e->calls_.find(id);
  if (it == e->calls_.end()) return;  // cancelled
  auto fn = std::move(it->second);
  e->calls_.erase(it);
  fn();
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
