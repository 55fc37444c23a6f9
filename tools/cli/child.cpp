#include "child.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
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
  last_signal_.store(sig);
  received_.fetch_add(1);
  const char byte = 1;
  if (pipe_[1] >= 0) (void)!::write(pipe_[1], &byte, 1);
}

void interrupts::forward_pending(pid_t group) noexcept {
  if (group <= 0) return;
  int done = forwarded_.load();
  while (done < received_.load()) {
    if (forwarded_.compare_exchange_weak(done, done + 1)) {
      ::kill(-group, last_signal_.load());
      done = forwarded_.load();
    }
  }
}

namespace {

using clock_type = std::chrono::steady_clock;

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// True when the child has exited (without reaping it).
bool exited(pid_t pid) {
  siginfo_t info{};
  return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
         info.si_pid == pid;
}

// Waits until the child is done or `until` (if set) passes. True when done.
// Without a pidfd (kernels before 5.3) it polls every 10 ms.
bool wait_readable(pid_t pid, int pidfd, int wake_fd, std::optional<clock_type::time_point> until,
                   bool watch_wake) {
  for (;;) {
    if (pidfd < 0) {
      if (exited(pid)) return true;
      if (until && clock_type::now() >= *until) return false;
      pollfd wake{wake_fd, POLLIN, 0};
      if (::poll(&wake, watch_wake && wake_fd >= 0 ? 1 : 0, 10) > 0) return false;
      continue;
    }
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
      return true;  // cannot wait here: let waitpid block instead of spinning
    }
    if (fds[0].revents != 0) return true;
    if (n > 0 && fds[1].revents != 0) return false;  // woken by a signal
  }
}

// With a --max-concurrency slot, the child is a guard that runs the command
// (a fork of it, in the same process group) and ends with its status. The
// guard keeps the slot's lock open (inherited across the fork; the command
// itself gets it closed at exec), and when rebound dies, even by SIGKILL,
// the kernel tells the guard (PR_SET_PDEATHSIG), which kills the whole
// group, itself included: the slot is free only once the attempt is gone,
// and a process the command left running in the background after it ended
// holds no slot. Async-signal-safe calls only.
[[noreturn]] void attempt_guard(pid_t parent, char* const* args, int report_fd) {
  struct sigaction on_parent_death {};
  on_parent_death.sa_handler = [](int) { ::kill(0, SIGKILL); };
  sigemptyset(&on_parent_death.sa_mask);
  ::sigaction(SIGUSR2, &on_parent_death, nullptr);
  // Signals rebound forwards to the group are the command's to answer.
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT}) ::signal(s, SIG_IGN);
  ::prctl(PR_SET_PDEATHSIG, SIGUSR2);
  if (::getppid() != parent) ::kill(0, SIGKILL);  // rebound died before the prctl
  const pid_t cmd = ::fork();
  if (cmd < 0) {
    const int err = errno;
    (void)!::write(report_fd, &err, sizeof err);
    ::_exit(126);
  }
  if (cmd == 0) {
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT, SIGUSR2}) ::signal(s, SIG_DFL);
    ::prctl(PR_SET_PDEATHSIG, 0);
    ::execvp(args[0], args);
    const int err = errno;
    (void)!::write(report_fd, &err, sizeof err);
    ::_exit(err == ENOENT ? 127 : 126);
  }
  ::close(report_fd);  // rebound reads EOF once the command's exec succeeded
  int status = 0;
  while (::waitpid(cmd, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) ::_exit(WEXITSTATUS(status));
  // Killed by a signal: end the same way, so rebound sees what the command did.
  const int sig = WTERMSIG(status);
  const rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  ::signal(sig, SIG_DFL);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  ::sigprocmask(SIG_UNBLOCK, &one, nullptr);
  ::raise(sig);
  ::_exit(128 + sig);
}

}  // namespace

child_result run_child(const std::vector<std::string>& argv,
                       std::optional<std::chrono::milliseconds> timeout,
                       std::chrono::milliseconds kill_after, interrupts& irq, int slot_fd) {
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

  const pid_t parent = ::getpid();
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
    // Only async-signal-safe calls from here to the exec (rebound has threads).
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT}) ::signal(s, SIG_DFL);
    if (slot_fd >= 0) attempt_guard(parent, args.data(), report[1]);  // never returns
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
  // A signal that arrived before the group was published is forwarded now (once).
  irq.forward_pending(pid);

  const int pidfd = pidfd_open(pid);
  const auto start = clock_type::now();
  std::optional<clock_type::time_point> deadline;
  if (timeout) deadline = start + *timeout;

  bool timed_out = false;
  // Once a timeout or a cancellation asks the group to stop, everything in it
  // gets until kill_at; then the whole group is killed, even processes that
  // outlive the command's main process.
  std::optional<clock_type::time_point> kill_at;
  if (!exec_failed) {
    bool cancel_handled = false;
    for (;;) {
      const auto until = kill_at ? kill_at : deadline;
      if (wait_readable(pid, pidfd, irq.wake_fd(), until, !cancel_handled)) break;  // main exited
      const auto now = clock_type::now();
      if (irq.signal() != 0 && !cancel_handled) {
        // The signal thread forwarded the signal; the group has kill_after to exit.
        cancel_handled = true;
        if (!kill_at) kill_at = now + kill_after;
        continue;
      }
      if (kill_at && now >= *kill_at) {
        ::kill(-pid, SIGKILL);  // the leader is alive (not reaped): the group is ours
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
    // Only a group that still exists (ESRCH otherwise): never a reused id's.
    if (::kill(-pid, 0) == 0) ::kill(-pid, SIGKILL);
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
