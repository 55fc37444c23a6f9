#include "child.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace rebound::cli {

interrupts::interrupts() {
  if (::pipe2(pipe_, O_CLOEXEC | O_NONBLOCK) != 0) pipe_[0] = pipe_[1] = -1;
}

interrupts::~interrupts() {
  for (int fd : pipe_) {
    if (fd >= 0) ::close(fd);
  }
}

void interrupts::raise(int sig) noexcept {
  int expected = 0;
  signal_.compare_exchange_strong(expected, sig);
  const char byte = 1;
  if (pipe_[1] >= 0) (void)!::write(pipe_[1], &byte, 1);
}

namespace {

using clock_type = std::chrono::steady_clock;

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// Waits until the child is done or `until` (if set) passes. True when done.
bool wait_readable(int pidfd, int wake_fd, std::optional<clock_type::time_point> until,
                   bool watch_wake) {
  for (;;) {
    int wait_ms = -1;
    if (until) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(*until - clock_type::now());
      if (left.count() <= 0) return false;
      wait_ms = static_cast<int>(std::min<long long>(left.count() + 1, 1 << 30));
    }
    pollfd fds[2] = {{pidfd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    const int n = ::poll(fds, watch_wake && wake_fd >= 0 ? 2 : 1, wait_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (fds[0].revents != 0) return true;
    if (n > 0 && fds[1].revents != 0) return false;  // woken by a signal
  }
}

}  // namespace

child_result run_child(const std::vector<std::string>& argv,
                       std::optional<std::chrono::milliseconds> timeout,
                       std::chrono::milliseconds kill_after, interrupts& irq) {
  child_result r;
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    r.how = child_result::kind::spawn_failed;
    r.detail = std::strerror(errno);
    r.shell_status = 125;
    return r;
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid < 0) {
    r.how = child_result::kind::spawn_failed;
    r.detail = std::strerror(errno);
    r.shell_status = 125;
    ::close(report[0]);
    ::close(report[1]);
    return r;
  }
  if (pid == 0) {
    // Child: own process group, default signal handling, nothing blocked.
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT}) ::signal(s, SIG_DFL);
    ::execvp(args[0], args.data());
    const int err = errno;
    (void)!::write(report[1], &err, sizeof err);
    ::_exit(err == ENOENT ? 127 : 126);
  }
  ::setpgid(pid, pid);  // also in the parent, so the group exists before we signal it
  ::close(report[1]);
  int exec_errno = 0;
  const bool exec_failed = ::read(report[0], &exec_errno, sizeof exec_errno) == sizeof exec_errno;
  ::close(report[0]);
  irq.child_group.store(pid);
  // A signal that arrived before the group was published was not forwarded.
  if (const int sig = irq.signal(); sig != 0) ::kill(-pid, sig);

  const int pidfd = pidfd_open(pid);
  const auto start = clock_type::now();
  std::optional<clock_type::time_point> deadline;
  if (timeout) deadline = start + *timeout;

  bool timed_out = false;
  // Once a timeout or a cancellation asks the group to stop, everything in it
  // gets until kill_at; then the whole group is killed, even processes that
  // outlive the command's main process.
  std::optional<clock_type::time_point> kill_at;
  if (pidfd >= 0 && !exec_failed) {
    bool cancel_handled = false;
    for (;;) {
      const auto until = kill_at ? kill_at : deadline;
      if (wait_readable(pidfd, irq.wake_fd(), until, !cancel_handled)) break;  // main exited
      const auto now = clock_type::now();
      if (irq.signal() != 0 && !cancel_handled) {
        // The signal thread forwarded the signal; the group has kill_after to exit.
        cancel_handled = true;
        if (!kill_at) kill_at = now + kill_after;
        continue;
      }
      if (kill_at && now >= *kill_at) {
        ::kill(-pid, SIGKILL);
        break;
      }
      if (deadline && now >= *deadline && !timed_out) {
        // Per-attempt timeout: ask politely, then insist.
        timed_out = true;
        ::kill(-pid, SIGTERM);
        kill_at = now + kill_after;
        deadline.reset();
      }
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  // A cancellation that the main process obeyed at once still covers the group.
  if (irq.signal() != 0 && !kill_at) kill_at = clock_type::now() + kill_after;
  if (kill_at) {
    // Leftovers of the group (children that ignored SIGTERM) until kill_at.
    while (::kill(-pid, 0) == 0 && clock_type::now() < *kill_at) {
      ::poll(nullptr, 0, 10);  // a real 10 ms pause while other processes exit
    }
    ::kill(-pid, SIGKILL);
    // SIGKILL is delivered asynchronously: give the group up to 500 ms to be gone.
    const auto gone_by = clock_type::now() + std::chrono::milliseconds(500);
    while (::kill(-pid, 0) == 0 && clock_type::now() < gone_by) ::poll(nullptr, 0, 5);
  }
  irq.child_group.store(0);
  if (pidfd >= 0) ::close(pidfd);

  if (exec_failed) {
    r.how =
        exec_errno == ENOENT ? child_result::kind::not_found : child_result::kind::cannot_execute;
    r.detail = std::strerror(exec_errno);
    r.shell_status = exec_errno == ENOENT ? 127 : 126;
    return r;
  }
  if (timed_out) {
    r.how = child_result::kind::timed_out;
    r.shell_status = 124;
    return r;
  }
  if (WIFEXITED(status)) {
    r.how = child_result::kind::exited;
    r.code = WEXITSTATUS(status);
    r.shell_status = r.code;
  } else if (WIFSIGNALED(status)) {
    r.how = child_result::kind::signalled;
    r.code = WTERMSIG(status);
    r.shell_status = 128 + r.code;
  }
  if (irq.signal() != 0) r.how = child_result::kind::cancelled;
  return r;
}

}  // namespace rebound::cli
