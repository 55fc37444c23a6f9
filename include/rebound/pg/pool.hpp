// rebound/pg/pool.hpp: a few connections to one server, opened on demand.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "rebound/clock.hpp"
#include "rebound/pg/connection.hpp"

namespace rebound::pg {

struct pool_options {
  int max_size = 4;
  /// How long acquire() waits for a connection when all are busy (on the pool's clock).
  duration wait = std::chrono::seconds(5);
  duration connect_timeout = std::chrono::seconds(5);
  /// SQL run on every new connection (e.g. SET statement_timeout).
  std::string on_connect{};
  /// connection::set_statement_bound on every new connection (0: none).
  duration statement_bound{};
};

/// Thrown by pool::acquire() when every connection stayed busy for the
/// pool's wait (SQLSTATE 53300): a local condition, not the server's.
class pool_exhausted : public error {
 public:
  using error::error;
};

/// A few connections to one server, opened on demand. Thread-safe. Session
/// state (SET, temporary tables, prepared statements) stays with a pooled
/// connection for its next user. Leases and transactions must end before
/// their pool (their router) does.
class pool {
 public:
  using options = pool_options;
  explicit pool(std::string conninfo, options o = {}, clock& c = system_clock());
  pool(const pool&) = delete;
  pool& operator=(const pool&) = delete;

  /// One connection, returned to the pool when the lease ends (dropped when
  /// it broke or was left inside a transaction).
  class lease {
   public:
    lease() = default;
    lease(lease&& o) noexcept
        : pool_(std::exchange(o.pool_, nullptr)),
          conn_(std::move(o.conn_)),
          generation_(o.generation_),
          reused_(o.reused_) {}
    lease& operator=(lease&& o) noexcept;
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;
    ~lease() { release(); }
    connection& operator*() const noexcept { return *conn_; }
    connection* operator->() const noexcept { return conn_.get(); }
    explicit operator bool() const noexcept { return conn_ != nullptr; }
    /// The connection was idle in the pool (it may have died there unnoticed).
    [[nodiscard]] bool reused() const noexcept { return reused_; }
    void release() noexcept;

   private:
    friend class pool;
    lease(pool* p, std::unique_ptr<connection> c, std::uint64_t generation, bool reused) noexcept
        : pool_(p), conn_(std::move(c)), generation_(generation), reused_(reused) {}
    pool* pool_ = nullptr;
    std::unique_ptr<connection> conn_;
    std::uint64_t generation_ = 0;
    bool reused_ = false;
  };

  /// A connection: an idle one, a new one while fewer than max_size are open,
  /// or the first returned within `wait`. Throws pg::error 08001 when it
  /// cannot connect, pool_exhausted when all stayed busy for `wait`.
  [[nodiscard]] lease acquire();
  /// A new connection, never an idle one (counts against max_size).
  [[nodiscard]] lease acquire_fresh();
  /// Closes the idle connections, and those in use when they come back
  /// (after a connection error: they are likely dead too).
  void discard_idle() noexcept;
  /// "host:port/db" (no secrets).
  [[nodiscard]] const std::string& target() const noexcept { return target_; }
  [[nodiscard]] int open_connections() const;

 private:
  void give_back(std::unique_ptr<connection> c, std::uint64_t generation) noexcept;
  [[nodiscard]] pool_exhausted busy() const;
  lease open_new(std::unique_lock<std::mutex>& lock);

  std::string conninfo_;
  std::string target_;
  options options_;
  clock& clock_;
  std::uint64_t generation_ = 0;
  mutable std::mutex mu_;
  std::condition_variable cv_;  // a connection came back
  std::vector<std::unique_ptr<connection>> idle_;
  int open_ = 0;
};

}  // namespace rebound::pg
