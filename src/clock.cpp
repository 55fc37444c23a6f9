#include "rebound/clock.hpp"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "detail/arith.hpp"
#include "detail/call_queue.hpp"

namespace rebound {

bool clock::sleep_for(duration d, std::stop_token stop) {
  return sleep_until(now() + d, std::move(stop));
}

namespace {

using detail::steady_now;

// One thread for every call_at on real-time clocks, started on first use.
class timer_thread {
 public:
  static timer_thread& instance() {
    static timer_thread t;
    return t;
  }
  std::uint64_t add(time_point at, std::function<void()> fn) {
    return queue_.add(at, std::move(fn));
  }
  bool cancel(std::uint64_t id) noexcept { return queue_.cancel(id); }
  std::size_t pending() const { return queue_.size(); }

  ~timer_thread() {
    {
      std::lock_guard lock(queue_.mutex());
      done_ = true;
    }
    queue_.cv().notify_all();
    thread_.join();
  }
  timer_thread(const timer_thread&) = delete;
  timer_thread& operator=(const timer_thread&) = delete;

 private:
  timer_thread() : thread_([this] { run(); }) {}

  void run() {
    for (;;) {
      {
        std::unique_lock lock(queue_.mutex());
        for (;;) {
          if (done_) return;
          const auto next = queue_.next_locked();
          if (next && *next <= steady_now()) break;
          if (next) {
            // Bounded, so a far-away (or max) time cannot overflow the wait.
            const time_point until = std::min(*next, steady_now() + std::chrono::hours(1));
            queue_.cv().wait_until(lock, std::chrono::steady_clock::time_point(until));
          } else {
            queue_.cv().wait(lock);
          }
        }
      }
      while (queue_.run_one_due(steady_now())) {
      }
    }
  }

  detail::call_queue queue_;
  bool done_ = false;  // guarded by queue_.mutex()
  std::thread thread_;
};

class steady_system_clock final : public clock {
 public:
  [[nodiscard]] time_point now() const noexcept override { return steady_now(); }

  bool sleep_until(time_point deadline, std::stop_token stop) override {
    if (stop.stop_requested()) return false;
    if (!stop.stop_possible()) {
      std::this_thread::sleep_until(deadline);
      return true;
    }
    // A condition variable that a stop request notifies: the sleeper wakes
    // at once instead of at the next poll.
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock lock(mu);
    cv.wait_until(lock, stop, deadline, [] { return false; });
    return !stop.stop_requested();
  }
};

}  // namespace

std::uint64_t clock::call_at(time_point at, std::function<void()> fn) {
  // On the steady time line: `at - now()` from here.
  const time_point t = now();
  const duration wait = at > t ? at - t : duration::zero();
  return timer_thread::instance().add(detail::saturating_add(steady_now(), wait), std::move(fn));
}

bool clock::cancel_call(std::uint64_t id) noexcept { return timer_thread::instance().cancel(id); }

std::size_t detail::pending_timer_calls() { return timer_thread::instance().pending(); }

clock& system_clock() noexcept {
  static steady_system_clock instance;
  return instance;
}

}  // namespace rebound
