// rebound/testing/simulated_clock.hpp: time that moves only when a test says so.
//
// Two modes:
//   - auto_advance (default): a sleep moves time forward to its deadline at
//     once and returns. A retry schedule of minutes runs in microseconds.
//   - manual: a sleep blocks (for real) until another thread calls advance()
//     past its deadline, or its stop token is requested. For tests that need
//     to act while a loop is mid-back-off.
// Both modes record every sleep that was asked for.
//
// Calls scheduled with call_at() (attempt timeouts, the async loop's timers)
// run when time is advanced past them, in time order, on the advancing
// thread; advance_to_next_call() jumps straight to the next one (the async
// test driver, rebound/testing/async.hpp, is built on it).
//
//   rebound::testing::simulated_clock clock;
//   auto p = policy.clock(clock);
//   rebound::retry(p, fn);          // returns at once; clock.now() moved on
//   EXPECT_EQ(clock.sleeps().size(), 2u);
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include <memory>
#include <optional>

#include "rebound/clock.hpp"

namespace rebound::detail {
class call_queue;
}

namespace rebound::testing {

class simulated_clock final : public clock {
 public:
  enum class mode { auto_advance, manual };

  /// Starts at `start` (an arbitrary non-zero point by default).
  explicit simulated_clock(mode m = mode::auto_advance,
                           time_point start = time_point(std::chrono::hours(1000)));
  ~simulated_clock() override;
  simulated_clock(const simulated_clock&) = delete;
  simulated_clock& operator=(const simulated_clock&) = delete;

  [[nodiscard]] time_point now() const noexcept override;
  bool sleep_until(time_point deadline, std::stop_token stop) override;
  std::uint64_t call_at(time_point at, std::function<void()> fn) override;
  bool cancel_call(std::uint64_t id) noexcept override;

  /// The time of the earliest call scheduled with call_at(), if any.
  [[nodiscard]] std::optional<time_point> next_call() const;
  /// Moves time to the earliest scheduled call (if later than now) and runs
  /// every call due then. False when nothing is scheduled.
  bool advance_to_next_call();

  /// Moves time forward by `d` (negative values are ignored) and wakes the
  /// sleepers whose deadline has come.
  void advance(duration d);
  /// Moves time to `t` if it is later than now.
  void advance_to(time_point t);

  /// Called at the start of each sleep with the requested duration, before
  /// time moves (auto mode) or the sleeper blocks (manual mode). A test may
  /// request a stop from it to cancel mid-sleep deterministically.
  void on_sleep(std::function<void(duration)> hook);

  /// Every sleep asked for so far, in order (deadline - now at the call).
  [[nodiscard]] std::vector<duration> sleeps() const;
  /// The number of threads blocked in sleep_until now (manual mode).
  [[nodiscard]] std::size_t sleepers() const;
  /// Blocks until at least `n` threads are sleeping, or `real_timeout` passes
  /// (a real wait, for synchronising with a loop thread). True if reached.
  bool wait_for_sleepers(std::size_t n, std::chrono::milliseconds real_timeout) const;
  /// Blocks until at least `n` sleeps have begun since the clock was made
  /// (sleeps().size() >= n), or `real_timeout` passes. True if reached. A
  /// sleep that has begun reacts to advance() and to stop requests even if
  /// its thread has not blocked yet, so this is enough to synchronise with.
  bool wait_for_sleeps(std::size_t n, std::chrono::milliseconds real_timeout) const;

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable_any cv_;
  mode mode_;
  std::atomic<std::int64_t> now_ns_;
  std::vector<duration> sleeps_;
  std::size_t sleepers_ = 0;
  std::function<void(duration)> hook_;
  std::unique_ptr<detail::call_queue> calls_;
};

}  // namespace rebound::testing
