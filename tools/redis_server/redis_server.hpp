// A real redis-server on loopback, for tests and benchmarks. Not installed.
//
//   rebound::testing::redis_server redis;        // a free port, no persistence
//   options.port = redis.port();
//   redis.stop(); ... redis.start();             // the same port again
//
// The server is this process's child and dies with it (PR_SET_PDEATHSIG,
// which fires when the thread that started it ends: start it from the
// thread that outlives it, as tests do).
#pragma once

#include <chrono>
#include <string>

namespace rebound::testing {

class redis_server {
 public:
  struct options {
    std::string password{};  ///< requirepass, when not empty
    int replica_of = 0;      ///< a replica of the server on this loopback port (0: a master)
    /// A Sentinel (redis-server --sentinel, with its config in a temporary
    /// file) monitoring the master on this loopback port as `master_name`,
    /// quorum 2, down after 400 ms (0: not a Sentinel).
    int sentinel_for = 0;
    std::string master_name = "rebound";
  };
  redis_server();
  explicit redis_server(options o);
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;
  ~redis_server();

  [[nodiscard]] int port() const noexcept { return port_; }
  /// Stops the server (SIGTERM, bounded wait, then SIGKILL).
  void stop();
  /// Starts it again on the same port; waits until it answers PING.
  void start();
  /// SIGSTOP / SIGCONT: a server that hangs without closing connections.
  void pause();
  void resume();
  [[nodiscard]] bool running() const noexcept { return pid_ > 0; }
  /// Kills it at once (SIGKILL): a crash, with no chance to hand over.
  void kill();

 private:
  options options_;
  std::string config_file_;  // a Sentinel's
  int port_ = 0;
  int pid_ = -1;
};

}  // namespace rebound::testing
