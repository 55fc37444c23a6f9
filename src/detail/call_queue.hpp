// The callbacks scheduled with clock::call_at, in time order. Shared by the
// system clock's timer thread and the simulated clock. Not API.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>

#include "rebound/clock.hpp"

namespace rebound::detail {

class call_queue {
 public:
  /// Adds a call; returns its id. Caller holds no lock.
  std::uint64_t add(time_point at, std::function<void()> fn) {
    std::lock_guard lock(mu_);
    const std::uint64_t id = ++last_id_;
    calls_.emplace(key{at, id}, std::move(fn));
    where_.emplace(id, at);
    cv_.notify_all();
    return id;
  }

  /// See clock::cancel_call.
  bool cancel(std::uint64_t id) noexcept {
    std::unique_lock lock(mu_);
    if (auto w = where_.find(id); w != where_.end()) {
      calls_.erase(key{w->second, id});
      where_.erase(w);
      return true;
    }
    if (running_ == id && running_thread_ != std::this_thread::get_id()) {
      cv_.wait(lock, [&] { return running_ != id; });
    }
    return false;
  }

  /// The earliest scheduled time, if any.
  std::optional<time_point> next() const {
    std::lock_guard lock(mu_);
    if (calls_.empty()) return std::nullopt;
    return calls_.begin()->first.at;
  }

  /// Runs the earliest call if it is due at `now`. True if one ran.
  bool run_one_due(time_point now) {
    std::function<void()> fn;
    std::uint64_t id = 0;
    {
      std::lock_guard lock(mu_);
      if (calls_.empty() || calls_.begin()->first.at > now) return false;
      auto node = calls_.extract(calls_.begin());
      id = node.key().id;
      fn = std::move(node.mapped());
      where_.erase(id);
      running_ = id;
      running_thread_ = std::this_thread::get_id();
    }
    fn();
    {
      std::lock_guard lock(mu_);
      running_ = 0;
      running_thread_ = {};
    }
    cv_.notify_all();
    return true;
  }

  /// Calls scheduled and not yet run or cancelled.
  std::size_t size() const {
    std::lock_guard lock(mu_);
    return calls_.size();
  }

  std::mutex& mutex() noexcept { return mu_; }
  std::condition_variable& cv() noexcept { return cv_; }
  /// With mutex() held.
  std::optional<time_point> next_locked() const {
    if (calls_.empty()) return std::nullopt;
    return calls_.begin()->first.at;
  }

 private:
  struct key {
    time_point at;
    std::uint64_t id;
    friend bool operator<(const key& a, const key& b) noexcept {
      return a.at != b.at ? a.at < b.at : a.id < b.id;
    }
  };
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<key, std::function<void()>> calls_;
  std::unordered_map<std::uint64_t, time_point> where_;
  std::uint64_t last_id_ = 0;
  std::uint64_t running_ = 0;
  std::thread::id running_thread_{};
};

}  // namespace rebound::detail
