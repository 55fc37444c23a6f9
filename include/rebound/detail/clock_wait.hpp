// Waiting for another thread, bounded on a rebound::clock. Not API.
#pragma once

#include <condition_variable>
#include <mutex>

#include "rebound/clock.hpp"

namespace rebound::detail {

/// Waits on `cv` (with `lock` held on entry and on return) until `ready()`
/// or until `c.now() >= deadline`. The clock wakes the waiter at the
/// deadline (clock::call_at: the timer thread on the system clock, the
/// advancing thread on a simulated one), so a bounded wait for another
/// thread runs on simulated time too. True when `ready()`.
template <class Ready>
bool wait_until(clock& c, std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                time_point deadline, Ready ready) {
  if (ready()) return true;
  if (c.now() >= deadline) return false;
  std::mutex* mu = lock.mutex();
  // Locks the mutex before notifying, so the wake cannot fall between the
  // waiter's check and its wait.
  const std::uint64_t id = c.call_at(deadline, [mu, &cv] {
    { const std::lock_guard<std::mutex> g(*mu); }
    cv.notify_all();
  });
  bool ok = false;
  for (;;) {
    if (ready()) {
      ok = true;
      break;
    }
    if (c.now() >= deadline) break;
    cv.wait(lock);
  }
  // cancel_call waits for a callback already running, which takes the mutex.
  lock.unlock();
  c.cancel_call(id);
  lock.lock();
  return ok || ready();
}

}  // namespace rebound::detail
