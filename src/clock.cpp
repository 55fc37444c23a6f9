#include "rebound/clock.hpp"

#include <condition_variable>
#include <mutex>
#include <thread>

namespace rebound {

bool clock::sleep_for(duration d, std::stop_token stop) {
  return sleep_until(now() + d, std::move(stop));
}

namespace {

class steady_system_clock final : public clock {
 public:
  [[nodiscard]] time_point now() const noexcept override {
    return std::chrono::time_point_cast<duration>(std::chrono::steady_clock::now());
  }

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

clock& system_clock() noexcept {
  static steady_system_clock instance;
  return instance;
}

}  // namespace rebound
