#include "rebound/testing/simulated_clock.hpp"

#include "../detail/call_queue.hpp"

namespace rebound::testing {

simulated_clock::simulated_clock(mode m, time_point start)
    : mode_(m),
      now_ns_(start.time_since_epoch().count()),
      calls_(std::make_unique<detail::call_queue>()) {}

simulated_clock::~simulated_clock() = default;

std::uint64_t simulated_clock::call_at(time_point at, std::function<void()> fn) {
  return calls_->add(at, std::move(fn));
}

bool simulated_clock::cancel_call(std::uint64_t id) noexcept { return calls_->cancel(id); }

std::optional<time_point> simulated_clock::next_call() const { return calls_->next(); }

bool simulated_clock::advance_to_next_call() {
  const auto next = calls_->next();
  if (!next) return false;
  advance_to(*next);
  return true;
}

time_point simulated_clock::now() const noexcept {
  return time_point(duration(now_ns_.load(std::memory_order_acquire)));
}

bool simulated_clock::sleep_until(time_point deadline, std::stop_token stop) {
  std::function<void(duration)> hook;
  {
    std::lock_guard lock(mu_);
    sleeps_.push_back(deadline - now());
    hook = hook_;
  }
  cv_.notify_all();
  if (hook) hook(deadline - now());
  if (stop.stop_requested()) return false;
  if (mode_ == mode::auto_advance) {
    advance_to(deadline);
    return true;
  }
  std::unique_lock lock(mu_);
  ++sleepers_;
  cv_.notify_all();
  const bool reached = cv_.wait(lock, stop, [&] { return now() >= deadline; });
  --sleepers_;
  return reached;
}

void simulated_clock::advance(duration d) {
  if (d <= duration::zero()) return;
  advance_to(now() + d);
}

void simulated_clock::advance_to(time_point t) {
  // Scheduled calls run in time order, each with the clock at its own time.
  while (const auto next = calls_->next()) {
    if (*next > t) break;
    {
      std::lock_guard lock(mu_);
      if (next->time_since_epoch().count() > now_ns_.load(std::memory_order_acquire)) {
        now_ns_.store(next->time_since_epoch().count(), std::memory_order_release);
      }
    }
    cv_.notify_all();
    calls_->run_one_due(now());
  }
  {
    std::lock_guard lock(mu_);
    if (t.time_since_epoch().count() > now_ns_.load(std::memory_order_acquire)) {
      now_ns_.store(t.time_since_epoch().count(), std::memory_order_release);
    }
  }
  cv_.notify_all();
}

void simulated_clock::on_sleep(std::function<void(duration)> hook) {
  std::lock_guard lock(mu_);
  hook_ = std::move(hook);
}

std::vector<duration> simulated_clock::sleeps() const {
  std::lock_guard lock(mu_);
  return sleeps_;
}

std::size_t simulated_clock::sleepers() const {
  std::lock_guard lock(mu_);
  return sleepers_;
}

bool simulated_clock::wait_for_sleepers(std::size_t n,
                                        std::chrono::milliseconds real_timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, real_timeout, [&] { return sleepers_ >= n; });
}

bool simulated_clock::wait_for_sleeps(std::size_t n, std::chrono::milliseconds real_timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, real_timeout, [&] { return sleeps_.size() >= n; });
}

}  // namespace rebound::testing
