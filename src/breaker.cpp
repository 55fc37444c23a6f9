#include "rebound/breaker.hpp"

#include <algorithm>

#include "rebound/duration.hpp"

namespace rebound {

std::string_view to_string(breaker_state s) noexcept {
  switch (s) {
    case breaker_state::closed:
      return "closed";
    case breaker_state::open:
      return "open";
    case breaker_state::half_open:
      return "half_open";
    case breaker_state::isolated:
      return "isolated";
  }
  return "unknown";
}

circuit_open_error::circuit_open_error(time_point retry_at)
    : std::runtime_error(retry_at == time_point::max()
                             ? std::string("circuit open (isolated until reset)")
                             : "circuit open; next probe allowed at steady time " +
                                   format_duration(retry_at.time_since_epoch())),
      retry_at_(retry_at) {}

using detail::whole_seconds;

circuit_breaker::circuit_breaker(const breaker_options& o, clock& c)
    : options_(o), clock_(c), window_(o.window) {
  options_.failure_threshold = std::max(1, options_.failure_threshold);
  options_.half_open_probes = std::max(1, options_.half_open_probes);
  options_.minimum_calls = std::max(1, options_.minimum_calls);
}

breaker_permit circuit_breaker::try_acquire() {
  // Closed, consecutive mode: no lock, no clock.
  const breaker_state s = state_.load(std::memory_order_acquire);
  if (s == breaker_state::closed) return {.allowed = true};
  if (s == breaker_state::isolated) return {.allowed = false, .retry_at = time_point::max()};
  const time_point now = clock_.now();
  std::unique_lock lock(mu_);
  switch (state_.load(std::memory_order_relaxed)) {
    case breaker_state::closed:
      return {.allowed = true};
    case breaker_state::isolated:
      return {.allowed = false, .retry_at = time_point::max()};
    case breaker_state::open:
      if (now < open_until_) return {.allowed = false, .retry_at = open_until_};
      probes_left_ = options_.half_open_probes;
      probes_succeeded_ = 0;
      ++generation_;
      transition(lock, breaker_state::half_open);
      lock.lock();
      [[fallthrough]];
    case breaker_state::half_open:
      if (state_.load(std::memory_order_relaxed) != breaker_state::half_open) {
        return {.allowed = false, .retry_at = open_until_};
      }
      if (probes_left_ == 0 && now >= half_open_since_ + options_.open_duration) {
        // Probes whose results never came back (a caller that did not record):
        // after another open_duration, issue a fresh set.
        ++generation_;
        probes_left_ = options_.half_open_probes;
        probes_succeeded_ = 0;
        half_open_since_ = now;
      }
      if (probes_left_ > 0) {
        --probes_left_;
        return {.allowed = true, .probe = true, .generation = generation_};
      }
      // All probes are out: wait for their results.
      return {.allowed = false, .retry_at = now};
  }
  return {.allowed = false, .retry_at = now};
}

bool circuit_breaker::should_trip(std::int64_t second) const {
  const auto [calls, failures] = window_.sums(second);
  return calls >= options_.minimum_calls &&
         static_cast<double>(failures) >= options_.failure_ratio * static_cast<double>(calls);
}

void circuit_breaker::release(const breaker_permit& permit) {
  if (!permit.allowed || !permit.probe) return;
  const std::lock_guard lock(mu_);
  if (state_.load(std::memory_order_relaxed) == breaker_state::half_open &&
      permit.generation == generation_ && probes_left_ < options_.half_open_probes) {
    ++probes_left_;
  }
}

void circuit_breaker::record(const breaker_permit& permit, bool succeeded) {
  if (!permit.allowed) return;
  if (!permit.probe && options_.mode == breaker_mode::consecutive && succeeded) {
    // The common case: a success while closed. Lock-free.
    if (consecutive_failures_.load(std::memory_order_relaxed) != 0) {
      consecutive_failures_.store(0, std::memory_order_relaxed);
    }
    return;
  }
  const time_point now = clock_.now();
  std::unique_lock lock(mu_);
  const breaker_state s = state_.load(std::memory_order_relaxed);
  if (permit.probe) {
    if (s != breaker_state::half_open || permit.generation != generation_) return;  // stale
    if (!succeeded) {
      open_until_ = now + options_.open_duration;
      transition(lock, breaker_state::open);
      return;
    }
    if (++probes_succeeded_ >= options_.half_open_probes) {
      consecutive_failures_.store(0, std::memory_order_relaxed);
      window_.clear();
      transition(lock, breaker_state::closed);
    }
    return;
  }
  if (s != breaker_state::closed) return;  // a call that started before the circuit opened
  bool trip = false;
  if (options_.mode == breaker_mode::consecutive) {
    const int n = consecutive_failures_.fetch_add(1, std::memory_order_relaxed) + 1;
    trip = n >= options_.failure_threshold;
  } else {
    const std::int64_t second = whole_seconds(now);
    window_.add(second, 1, succeeded ? 0 : 1);
    trip = !succeeded && should_trip(second);
  }
  if (trip) {
    open_until_ = now + options_.open_duration;
    transition(lock, breaker_state::open);
  }
}

void circuit_breaker::isolate() {
  std::unique_lock lock(mu_);
  transition(lock, breaker_state::isolated);
}

void circuit_breaker::reset() {
  std::unique_lock lock(mu_);
  consecutive_failures_.store(0, std::memory_order_relaxed);
  window_.clear();
  ++generation_;
  transition(lock, breaker_state::closed);
}

breaker_state circuit_breaker::state() const { return state_.load(std::memory_order_acquire); }

void circuit_breaker::on_state_change(state_listener listener) {
  std::lock_guard lock(mu_);
  listener_ = std::move(listener);
}

// Changes the state and tells the listener, both under the lock, so
// listeners see transitions in the order they happened; then unlocks.
void circuit_breaker::transition(std::unique_lock<std::mutex>& lock, breaker_state to) {
  const breaker_state from = state_.load(std::memory_order_relaxed);
  state_.store(to, std::memory_order_release);
  if (to == breaker_state::half_open) half_open_since_ = clock_.now();
  if (from != to && listener_) {
    try {
      listener_(from, to);
    } catch (...) {
      // A listener must not break the breaker.
    }
  }
  lock.unlock();
}

}  // namespace rebound
