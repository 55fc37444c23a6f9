// Running one attempt of a command as a child process in its own process group.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "rebound/clock.hpp"

namespace rebound::cli {

/// How one run of the child ended.
struct child_result {
  enum class kind {
    exited,
    signalled,
    timed_out,
    cancelled,
    not_found,
    cannot_execute,
    spawn_failed
  };
  kind how = kind::exited;
  int code = 0;          ///< exit code, or signal number when signalled
  int shell_status = 0;  ///< the shell's view: code, 128 + signal, 124, 126, 127
  std::string detail;    ///< for spawn failures: strerror
};

/// Interrupts from the signal thread: which signal arrived, and a pipe the
/// child waiter polls so it wakes at once.
class interrupts {
 public:
  interrupts();
  ~interrupts();
  interrupts(const interrupts&) = delete;
  interrupts& operator=(const interrupts&) = delete;

  /// Called by the signal thread: records `sig` and wakes the waiter.
  void raise(int sig) noexcept;
  /// Sends the signals received but not yet forwarded to `group`. Both the
  /// signal thread and the child's starter call it; each signal goes once.
  void forward_pending(pid_t group) noexcept;
  /// 0 while no signal arrived.
  [[nodiscard]] int signal() const noexcept { return signal_.load(); }
  [[nodiscard]] int wake_fd() const noexcept { return pipe_[0]; }
  /// The process group of the running child (0 when none), for forwarding.
  std::atomic<pid_t> child_group{0};

 private:
  std::atomic<int> signal_{0};
  std::atomic<int> received_{0};
  std::atomic<int> forwarded_{0};
  std::atomic<int> last_signal_{0};
  int pipe_[2] = {-1, -1};
};

/// Runs `argv` once. `timeout` (if any) ends it with SIGTERM to its process
/// group, then SIGKILL after `kill_after`. A signal recorded in `irq` is
/// forwarded to the child's group (the signal thread does that) and, if the
/// child is still alive `kill_after` later, it is killed. With `slot_fd`
/// (a --max-concurrency slot's lock, not -1) the command runs under a guard
/// that holds the slot and kills the command's process group if rebound
/// dies, even by SIGKILL: the slot is never free while the attempt runs.
child_result run_child(const std::vector<std::string>& argv,
                       std::optional<std::chrono::milliseconds> timeout,
                       std::chrono::milliseconds kill_after, interrupts& irq, int slot_fd = -1);

}  // namespace rebound::cli
