#include "slots.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace rebound::cli {

process_slots::process_slots(std::string dir, std::string key, int count)
    : dir_(std::move(dir)), key_(std::move(key)), count_(count) {
  if (::access(dir_.c_str(), W_OK | X_OK) != 0) {
    throw std::runtime_error("cannot use \"" + dir_ +
                             "\" for the slot files: " + std::strerror(errno));
  }
  // Every slot file must be ours to lock: one another user left behind
  // would otherwise be skipped in silence, and a wait could never end.
  for (int i = 0; i < count_; ++i) {
    const int fd = ::open(path(i).c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      throw std::runtime_error("cannot open the slot file \"" + path(i) +
                               "\": " + std::strerror(errno));
    }
    ::close(fd);
  }
}

std::string process_slots::path(int i) const {
  return dir_ + "/rebound-" + key_ + "." + std::to_string(i) + ".lock";
}

process_slots::held& process_slots::held::operator=(held&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

process_slots::held::~held() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

process_slots::held process_slots::try_take() const {
  for (int i = 0; i < count_; ++i) {
    const int fd = ::open(path(i).c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) continue;
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return held(fd);
    ::close(fd);
  }
  return {};
}

process_slots::held process_slots::take(clock& c, time_point until,
                                        const std::stop_token& stop) const {
  for (;;) {
    if (held h = try_take()) return h;
    const time_point now = c.now();
    if (now >= until || stop.stop_requested()) return {};
    // Another process's slot frees without telling us: look again soon.
    const time_point next = std::min(until, now + std::chrono::milliseconds(20));
    if (!c.sleep_until(next, stop)) return {};
  }
}

}  // namespace rebound::cli
