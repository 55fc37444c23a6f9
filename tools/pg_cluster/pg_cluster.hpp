// A real PostgreSQL primary and streaming standby on loopback, for tests,
// benchmarks and the demo. Not installed.
//
//   rebound::testing::pg_cluster db;            // initdb, start, pg_basebackup -R, start
//   db.set_apply_delay(300ms);                  // recovery_min_apply_delay: real lag
//   rebound::pg::router r(db.primary_conninfo(), db.standby_conninfo());
//
// Everything lives in one temporary directory. Ports are chosen free. When
// run as root the servers run as the `postgres` user (PostgreSQL refuses
// root). The destructor stops both servers and removes the directory; a
// watchdog process does the same if this process dies first.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace rebound::testing {

class pg_cluster {
 public:
  struct options {
    /// Directory holding initdb, pg_ctl, postgres, pg_basebackup. Empty: the
    /// REBOUND_PG_BINDIR environment variable, else the newest
    /// /usr/lib/postgresql/<version>/bin.
    std::filesystem::path bindir;
    /// Start the standby (off: a primary alone).
    bool standby = true;
  };

  /// Starts the servers (a few seconds). Throws std::runtime_error with the
  /// failing step and the tail of its log.
  pg_cluster();
  explicit pg_cluster(options o);
  pg_cluster(const pg_cluster&) = delete;
  pg_cluster& operator=(const pg_cluster&) = delete;
  ~pg_cluster();

  [[nodiscard]] std::string primary_conninfo() const;
  [[nodiscard]] std::string standby_conninfo() const;
  [[nodiscard]] int primary_port() const noexcept { return primary_port_; }
  [[nodiscard]] int standby_port() const noexcept { return standby_port_; }

  /// Sets recovery_min_apply_delay on the standby and waits until it is in effect.
  void set_apply_delay(std::chrono::milliseconds delay);
  /// Waits until the standby has replayed everything the primary has written
  /// (bounded: throws after `limit`).
  void wait_for_catch_up(std::chrono::milliseconds limit = std::chrono::seconds(30));
  /// Stops the standby (fast shutdown, or immediate: a crash, no checkpoint)
  /// / starts it again.
  void stop_standby(bool immediate = false);
  void start_standby();
  /// Stops every process of the standby with SIGSTOP (a hung server: it
  /// accepts nothing it has not accepted, answers nothing, closes nothing) /
  /// lets them run again with SIGCONT.
  void pause_standby();
  void resume_standby();
  /// Promotes the standby to a primary (pg_ctl promote), waiting until it is one.
  void promote_standby();
  [[nodiscard]] bool standby_running() const noexcept { return standby_running_; }

  /// The newest PostgreSQL bin directory on this machine, or empty.
  [[nodiscard]] static std::filesystem::path find_bindir();

 private:
  void run(const std::vector<std::string>& argv, const std::filesystem::path& log,
           std::chrono::seconds limit) const;
  void stop(const std::filesystem::path& data, bool immediate = false) noexcept;
  void shutdown() noexcept;

  options options_;
  std::filesystem::path dir_;
  std::filesystem::path primary_dir_;
  std::filesystem::path standby_dir_;
  int primary_port_ = 0;
  int standby_port_ = 0;
  bool primary_running_ = false;
  bool standby_running_ = false;
  unsigned run_as_uid_ = 0;
  unsigned run_as_gid_ = 0;
  bool switch_user_ = false;
  int watchdog_pid_ = -1;
  int watchdog_fd_ = -1;
  std::vector<int> paused_;  // pids stopped by pause_standby()
};

}  // namespace rebound::testing
