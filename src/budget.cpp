#include "rebound/budget.hpp"

#include <algorithm>
#include <cmath>

namespace rebound {

token_bucket_budget::token_bucket_budget(const options& o)
    : options_(o), capacity_(std::max(0, o.capacity)), tokens_(std::max(0, o.capacity)) {}

void token_bucket_budget::share(int parts) noexcept {
  const int whole = std::max(0, options_.capacity);
  const int cap = std::min(whole, std::max(options_.retry_cost, whole / std::max(1, parts)));
  capacity_.store(cap, std::memory_order_relaxed);
  int cur = tokens_.load(std::memory_order_relaxed);
  while (cur > cap && !tokens_.compare_exchange_weak(cur, cap, std::memory_order_relaxed)) {
  }
}

void token_bucket_budget::charge(int n) noexcept {
  if (n <= 0) return;
  int cur = tokens_.load(std::memory_order_relaxed);
  while (cur > 0 &&
         !tokens_.compare_exchange_weak(cur, std::max(0, cur - n), std::memory_order_relaxed)) {
  }
}

bool token_bucket_budget::try_acquire(const retry_request& r) noexcept {
  const int c = cost(r);
  int cur = tokens_.load(std::memory_order_relaxed);
  do {
    if (cur < c) return false;
  } while (!tokens_.compare_exchange_weak(cur, cur - c, std::memory_order_relaxed));
  return true;
}

void token_bucket_budget::refund(int n) noexcept {
  if (n <= 0) return;
  int cur = tokens_.load(std::memory_order_relaxed);
  // A full bucket (the common case) costs two loads and no write.
  const int cap = capacity_.load(std::memory_order_relaxed);
  while (cur < cap &&
         !tokens_.compare_exchange_weak(cur, std::min(cap, cur + n), std::memory_order_relaxed)) {
  }
}

void token_bucket_budget::on_success(const retry_request* last_retry) noexcept {
  refund(last_retry != nullptr ? cost(*last_retry) : options_.success_refund);
}

ratio_budget::ratio_budget(const options& o, clock& c)
    : options_(o),
      clock_(c),
      window_(o.window),
      floor_(static_cast<double>(o.min_per_second) * window_.seconds()) {}

void ratio_budget::share(int parts) noexcept {
  const double whole = static_cast<double>(options_.min_per_second) * window_.seconds();
  std::lock_guard lock(mu_);
  floor_ = std::min(whole, std::max(1.0, std::floor(whole / std::max(1, parts))));
}

double ratio_budget::floor_per_window() const {
  std::lock_guard lock(mu_);
  return floor_;
}

void ratio_budget::on_call() noexcept { on_calls(1); }

void ratio_budget::on_calls(std::int64_t n) noexcept {
  if (n <= 0) return;
  const std::int64_t s = detail::whole_seconds(clock_.now());
  std::lock_guard lock(mu_);
  window_.add(s, n, 0);
}

void ratio_budget::charge(std::int64_t n) noexcept {
  if (n <= 0) return;
  const std::int64_t s = detail::whole_seconds(clock_.now());
  std::lock_guard lock(mu_);
  window_.add(s, 0, n);
}

bool ratio_budget::try_acquire(const retry_request&) noexcept {
  const std::int64_t s = detail::whole_seconds(clock_.now());
  std::lock_guard lock(mu_);
  const auto [calls, retries] = window_.sums(s);
  const double allowed = options_.ratio * static_cast<double>(calls) + floor_;
  if (static_cast<double>(retries + 1) > allowed) return false;
  window_.add(s, 0, 1);
  return true;
}

std::pair<std::int64_t, std::int64_t> ratio_budget::window_counts() const {
  const std::int64_t s = detail::whole_seconds(clock_.now());
  std::lock_guard lock(mu_);
  return window_.sums(s);
}

throttle_budget::throttle_budget(const options& o)
    : options_(o),
      max_milli_(static_cast<std::int64_t>(
          std::floor(std::clamp(o.max_tokens, 0.001, 1000.0) * 1000 + 1e-6))),
      // gRFC A6: "Up to 3 decimal places are supported": truncated, not
      // rounded (0.1239 is 0.123). The epsilon keeps 0.29 (0.28999...) at 0.290.
      ratio_milli_(static_cast<std::int64_t>(std::floor(
          std::clamp(o.token_ratio, 0.001, static_cast<double>(max_milli_) / 1000) * 1000 + 1e-6))),
      milli_(max_milli_) {}

bool throttle_budget::try_acquire(const retry_request&) noexcept {
  return milli_.load(std::memory_order_relaxed) > max_milli_ / 2;
}

void throttle_budget::on_success(const retry_request*) noexcept {
  std::int64_t cur = milli_.load(std::memory_order_relaxed);
  while (cur < max_milli_ &&
         !milli_.compare_exchange_weak(cur, std::min(max_milli_, cur + ratio_milli_),
                                       std::memory_order_relaxed)) {
  }
}

void throttle_budget::on_failure() noexcept {
  std::int64_t cur = milli_.load(std::memory_order_relaxed);
  while (cur > 0 && !milli_.compare_exchange_weak(cur, std::max<std::int64_t>(0, cur - 1000),
                                                  std::memory_order_relaxed)) {
  }
}

}  // namespace rebound
