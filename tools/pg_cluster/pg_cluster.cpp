#include "pg_cluster.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "rebound/pg/connection.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace rebound::testing {
namespace {

// A port that was free a moment ago on 127.0.0.1 (the kernel's choice).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("pg_cluster: socket(): " + std::string(strerror(errno)));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("pg_cluster: no free port: " + std::string(strerror(errno)));
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string tail(const fs::path& log, std::size_t lines = 20) {
  std::ifstream in(log);
  std::vector<std::string> all;
  for (std::string l; std::getline(in, l);) all.push_back(l);
  std::string out;
  for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) {
    out += "  | " + all[i] + "\n";
  }
  return out;
}

void append(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::app);
  out << text;
  if (!out) throw std::runtime_error("pg_cluster: cannot write " + file.string());
}

// The single-quoted form of a path for postgresql.conf.
std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

}  // namespace

fs::path pg_cluster::find_bindir() {
  if (const char* env = std::getenv("REBOUND_PG_BINDIR"); env != nullptr && *env != '\0') {
    return env;
  }
  fs::path best;
  int best_version = -1;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const auto name = e.path().filename().string();
    const int v = std::atoi(name.c_str());
    if (v > best_version && fs::exists(e.path() / "bin" / "initdb")) {
      best_version = v;
      best = e.path() / "bin";
    }
  }
  return best;
}

pg_cluster::pg_cluster() : pg_cluster(options{}) {}

pg_cluster::pg_cluster(options o) : options_(std::move(o)) {
  if (options_.bindir.empty()) options_.bindir = find_bindir();
  if (options_.bindir.empty() || !fs::exists(options_.bindir / "initdb")) {
    throw std::runtime_error(
        "pg_cluster: PostgreSQL server binaries not found (looked in REBOUND_PG_BINDIR and "
        "/usr/lib/postgresql/*/bin); install postgresql-15 (scripts/test does)");
  }
  std::string tmpl = (fs::temp_directory_path() / "rebound-pg-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    throw std::runtime_error("pg_cluster: mkdtemp: " + std::string(strerror(errno)));
  }
  dir_ = tmpl;
  primary_dir_ = dir_ / "primary";
  standby_dir_ = dir_ / "standby";

  if (::geteuid() == 0) {
    // PostgreSQL refuses to run as root: hand the directory to `postgres`.
    const passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) {
      fs::remove_all(dir_);
      throw std::runtime_error(
          "pg_cluster: running as root and there is no `postgres` user to run the servers as "
          "(the postgresql-15 package creates it)");
    }
    switch_user_ = true;
    run_as_uid_ = pw->pw_uid;
    run_as_gid_ = pw->pw_gid;
    if (::chown(dir_.c_str(), run_as_uid_, run_as_gid_) != 0) {
      fs::remove_all(dir_);
      throw std::runtime_error("pg_cluster: chown " + dir_.string() + ": " + strerror(errno));
    }
  }

  // The watchdog: a shell that waits for this process's end of a pipe to
  // close, then stops whatever servers are left and removes the directory.
  // Normally there is nothing left by then; it matters when a test crashes.
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    fs::remove_all(dir_);
    throw std::runtime_error("pg_cluster: pipe: " + std::string(strerror(errno)));
  }
  // It runs as the servers' user: it only signals processes that user owns.
  const std::string script =
      "while read -r _; do :; done\n"
      "killed=\n"
      "for d in \"$0/primary\" \"$0/standby\"; do\n"
      "  if [ -f \"$d/postmaster.pid\" ]; then\n"
      "    p=$(head -n 1 \"$d/postmaster.pid\")\n"
      "    kill -CONT \"$p\" 2>/dev/null; pkill -CONT -P \"$p\" 2>/dev/null\n"  // pause_standby()
      "    kill -QUIT \"$p\" 2>/dev/null && killed=1\n"
      "  fi\n"
      "done\n"
      "if [ -n \"$killed\" ]; then sleep 2; fi\n"
      "rm -rf \"$0\"\n";
  const std::string dir = dir_.string();
  const pid_t watchdog = ::fork();
  if (watchdog == 0) {
    ::dup2(fds[0], 0);
    ::setsid();  // not killed with the test's process group
    if (switch_user_ && (::setgroups(0, nullptr) != 0 || ::setgid(run_as_gid_) != 0 ||
                         ::setuid(run_as_uid_) != 0)) {
      ::_exit(126);
    }
    ::execl("/bin/sh", "sh", "-c", script.c_str(), dir.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  if (watchdog < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    fs::remove_all(dir_);
    throw std::runtime_error("pg_cluster: fork: " + std::string(strerror(errno)));
  }
  ::close(fds[0]);
  watchdog_pid_ = watchdog;
  watchdog_fd_ = fds[1];

  try {
    primary_port_ = free_port();
    run({(options_.bindir / "initdb").string(), "-D", primary_dir_.string(), "-U", "postgres", "-A",
         "trust", "-E", "UTF8", "--no-sync", "--no-instructions"},
        dir_ / "initdb.log", 120s);
    append(primary_dir_ / "postgresql.conf",
           "\n# rebound pg_cluster\n"
           "listen_addresses = '127.0.0.1'\n"
           "port = " +
               std::to_string(primary_port_) +
               "\n"
               "unix_socket_directories = " +
               quoted(dir_) +
               "\n"
               "fsync = off\n"
               "shared_buffers = 32MB\n"
               "max_connections = 60\n"
               "max_wal_senders = 4\n"
               "wal_keep_size = 64MB\n"
               "wal_writer_delay = 10ms\n"
               "log_min_messages = warning\n");
    run({(options_.bindir / "pg_ctl").string(), "-D", primary_dir_.string(), "-l",
         (dir_ / "primary.log").string(), "-w", "-t", "60", "start"},
        dir_ / "pg_ctl.log", 90s);
    primary_running_ = true;
    if (options_.standby) {
      standby_port_ = free_port();
      run({(options_.bindir / "pg_basebackup").string(), "-h", "127.0.0.1", "-p",
           std::to_string(primary_port_), "-U", "postgres", "-D", standby_dir_.string(), "-R", "-X",
           "stream", "-c", "fast", "--no-sync"},
          dir_ / "basebackup.log", 120s);
      append(standby_dir_ / "postgresql.conf", "port = " + std::to_string(standby_port_) +
                                                   "\n"
                                                   "hot_standby = on\n"
                                                   "wal_receiver_status_interval = 1s\n"
                                                   "hot_standby_feedback = on\n");
      start_standby();
    }
  } catch (...) {
    shutdown();
    throw;
  }
}

pg_cluster::~pg_cluster() { shutdown(); }

void pg_cluster::shutdown() noexcept {
  resume_standby();  // a stopped server cannot shut down
  // Stops what may have started, even half-way through the constructor.
  stop(standby_dir_);
  stop(primary_dir_);
  standby_running_ = primary_running_ = false;
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
    dir_.clear();
  }
  if (watchdog_fd_ >= 0) {
    ::close(watchdog_fd_);  // the watchdog finds nothing left, and exits
    watchdog_fd_ = -1;
  }
  if (watchdog_pid_ > 0) {
    ::waitpid(watchdog_pid_, nullptr, 0);
    watchdog_pid_ = -1;
  }
}

std::string pg_cluster::primary_conninfo() const {
  return "host=127.0.0.1 port=" + std::to_string(primary_port_) +
         " user=postgres dbname=postgres application_name=rebound-test";
}

std::string pg_cluster::standby_conninfo() const {
  return "host=127.0.0.1 port=" + std::to_string(standby_port_) +
         " user=postgres dbname=postgres application_name=rebound-test";
}

void pg_cluster::run(const std::vector<std::string>& argv, const fs::path& log,
                     std::chrono::seconds limit) const {
  // Everything the child needs is prepared before fork(): after it, only
  // async-signal-safe calls until exec.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const std::string log_path = log.string();
  const std::string cwd = dir_.string();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("pg_cluster: fork: " + std::string(strerror(errno)));
  if (pid == 0) {
    const int out = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (out >= 0) {
      if (switch_user_) (void)::fchown(out, run_as_uid_, run_as_gid_);
      ::dup2(out, 1);
      ::dup2(out, 2);
    }
    const int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, 0);
    if (switch_user_) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(run_as_gid_) != 0 ||
          ::setuid(run_as_uid_) != 0) {
        ::_exit(126);
      }
    }
    if (::chdir(cwd.c_str()) != 0) ::_exit(126);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  // Bounded: a step that hangs is killed and reported.
  const auto until = std::chrono::steady_clock::now() + limit;
  int status = 0;
  for (;;) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (std::chrono::steady_clock::now() > until) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      throw std::runtime_error("pg_cluster: " + argv[0] + " did not finish within " +
                               std::to_string(limit.count()) + "s; log:\n" + tail(log));
    }
    std::this_thread::sleep_for(20ms);  // polling a child process: a process boundary
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error("pg_cluster: " + argv[0] + " failed (status " +
                             std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
                             "); log " + log.string() + ":\n" + tail(log));
  }
}

void pg_cluster::stop(const fs::path& data, bool immediate) noexcept {
  std::error_code ec;
  if (data.empty() || !fs::exists(data / "postmaster.pid", ec)) return;
  try {
    run({(options_.bindir / "pg_ctl").string(), "-D", data.string(), "-m",
         immediate ? "immediate" : "fast", "-w", "-t", "30", "stop"},
        dir_ / "pg_ctl.log", 45s);
  } catch (...) {
    // Last resort: the postmaster's pid, SIGQUIT (immediate shutdown), and
    // a bounded wait for it to go.
    std::ifstream pidfile(data / "postmaster.pid");
    long pid = 0;
    if (pidfile >> pid && pid > 0 && ::kill(static_cast<pid_t>(pid), SIGQUIT) == 0) {
      for (int i = 0; i < 250 && ::kill(static_cast<pid_t>(pid), 0) == 0; ++i) {
        std::this_thread::sleep_for(20ms);  // waiting on another process
      }
    }
  }
}

void pg_cluster::start_standby() {
  if (!options_.standby) throw std::logic_error("pg_cluster: started without a standby");
  if (standby_running_) return;
  run({(options_.bindir / "pg_ctl").string(), "-D", standby_dir_.string(), "-l",
       (dir_ / "standby.log").string(), "-w", "-t", "60", "start"},
      dir_ / "pg_ctl.log", 90s);
  standby_running_ = true;
  // Streaming, not just accepting connections: asked of the standby's own
  // WAL receiver (the primary may still list the previous one).
  pg::connection standby(standby_conninfo());
  const auto until = std::chrono::steady_clock::now() + 30s;
  for (;;) {
    auto r = standby.exec("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'");
    if (r.get(0, 0) != "0") break;
    if (std::chrono::steady_clock::now() > until) {
      throw std::runtime_error("pg_cluster: the standby did not start streaming within 30s:\n" +
                               tail(dir_ / "standby.log"));
    }
    std::this_thread::sleep_for(20ms);  // waiting on another process
  }
}

void pg_cluster::stop_standby(bool immediate) {
  if (!standby_running_) return;
  standby_running_ = false;
  stop(standby_dir_, immediate);
}

namespace {

// The postmaster of a data directory, and its children (the backends, the
// WAL receiver, the startup process), from /proc.
std::vector<pid_t> server_processes(const fs::path& data) {
  std::vector<pid_t> out;
  std::ifstream pidfile(data / "postmaster.pid");
  long postmaster = 0;
  if (!(pidfile >> postmaster) || postmaster <= 0) return out;
  out.push_back(static_cast<pid_t>(postmaster));
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 1));
    std::string state;
    long ppid = 0;
    if (rest >> state >> ppid && ppid == postmaster) out.push_back(std::stoi(name));
  }
  return out;
}

}  // namespace

void pg_cluster::pause_standby() {
  auto pids = server_processes(standby_dir_);
  if (pids.empty()) throw std::runtime_error("pg_cluster: no standby to pause");
  // Children first, so the postmaster cannot notice them stopping.
  for (auto it = pids.rbegin(); it != pids.rend(); ++it) ::kill(*it, SIGSTOP);
  paused_ = pids;
}

void pg_cluster::resume_standby() {
  for (const pid_t pid : paused_) ::kill(pid, SIGCONT);
  paused_.clear();
}

void pg_cluster::promote_standby() {
  run({(options_.bindir / "pg_ctl").string(), "-D", standby_dir_.string(), "-w", "-t", "60",
       "promote"},
      dir_ / "pg_ctl.log", 90s);
}

void pg_cluster::set_apply_delay(std::chrono::milliseconds delay) {
  pg::connection standby(standby_conninfo());
  const std::string value = std::to_string(delay.count()) + "ms";
  standby.exec("ALTER SYSTEM SET recovery_min_apply_delay = '" + value + "'");
  standby.exec("SELECT pg_reload_conf()");
  // The reload is asynchronous; a new session sees the new value once the
  // postmaster has read the file (the startup process rereads it on SIGHUP too).
  const auto until = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    pg::connection probe(standby_conninfo());
    auto r = probe.exec(
        "SELECT setting::bigint FROM pg_settings WHERE name = "
        "'recovery_min_apply_delay'");
    if (r.get(0, 0) == std::to_string(delay.count())) break;
    if (std::chrono::steady_clock::now() > until) {
      throw std::runtime_error("pg_cluster: recovery_min_apply_delay did not become " + value);
    }
    std::this_thread::sleep_for(10ms);  // waiting on another process
  }
  // Sessions see the new value before the startup process (which applies
  // the WAL) has reread it. Proof that it has: a new commit is held back for
  // a while (delay > 0), or replayed at once (0).
  pg::connection primary(primary_conninfo());
  if (delay == 0ms) {
    primary.exec("SELECT txid_current()");
    wait_for_catch_up();
    return;
  }
  const auto hold = std::min<std::chrono::milliseconds>(delay / 2, 30ms);
  for (;;) {
    primary.exec("SELECT txid_current()");  // a commit record
    const auto committed = pg::current_wal_lsn(primary);
    std::this_thread::sleep_for(hold);  // waiting on another process
    const auto replayed = pg::replay_lsn(standby);
    if (replayed && *replayed < committed) return;
    if (std::chrono::steady_clock::now() > until) {
      throw std::runtime_error(
          "pg_cluster: the standby kept applying commits at once after "
          "recovery_min_apply_delay became " +
          value);
    }
  }
}

void pg_cluster::wait_for_catch_up(std::chrono::milliseconds limit) {
  pg::connection primary(primary_conninfo());
  pg::connection standby(standby_conninfo());
  const auto target = pg::lsn::parse(primary.exec("SELECT pg_current_wal_lsn()::text").get(0, 0));
  const auto until = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const auto replayed = pg::replay_lsn(standby);
    if (replayed && *replayed >= target) return;
    if (std::chrono::steady_clock::now() > until) {
      throw std::runtime_error("pg_cluster: the standby did not replay " + target.to_string() +
                               " within " + std::to_string(limit.count()) + "ms");
    }
    std::this_thread::sleep_for(5ms);  // waiting on another process
  }
}

}  // namespace rebound::testing
