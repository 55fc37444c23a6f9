// Slots shared by processes on one machine: `rebound run --max-concurrency N`.
//
// N lock files, <dir>/rebound-<key>.<i>.lock. A process holds a slot by
// holding an exclusive flock(2) on one of them; the kernel releases it when
// the process ends, however it ends, so a crash never leaks a slot. The
// waiting process looks again every 20 ms on the policy's clock (flock
// cannot wait for "any of N").
#pragma once

#include <optional>
#include <stop_token>
#include <string>
#include <utility>

#include "rebound/clock.hpp"

namespace rebound::cli {

class process_slots {
 public:
  /// Throws std::runtime_error naming the directory when it is unusable.
  process_slots(std::string dir, std::string key, int count);

  /// Held slot; closing the file releases it.
  class held {
   public:
    held() = default;
    explicit held(int fd) : fd_(fd) {}
    held(held&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    held& operator=(held&& o) noexcept;
    held(const held&) = delete;
    held& operator=(const held&) = delete;
    ~held();
    explicit operator bool() const noexcept { return fd_ >= 0; }
    /// The locked file (-1 when none): a child that keeps it open keeps the
    /// slot, even past our own death (the lock belongs to the open file).
    [[nodiscard]] int fd() const noexcept { return fd_; }

   private:
    int fd_ = -1;
  };

  /// A free slot now, or empty.
  [[nodiscard]] held try_take() const;
  /// A slot, waiting on `c` until one frees, `until` passes or `stop` is
  /// requested (then empty).
  [[nodiscard]] held take(clock& c, time_point until, const std::stop_token& stop) const;
  [[nodiscard]] std::string path(int i) const;

 private:
  std::string dir_;
  std::string key_;
  int count_;
};

}  // namespace rebound::cli
