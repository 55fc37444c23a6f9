// rebound/pg/router.hpp: reads on a PostgreSQL read replica that survive its lag.
//
// Right after a write, a replica may not have the row yet (usually for well
// under 100 ms, sometimes for seconds). A read that answers "not found" then
// is wrong, and a client that polls again pays seconds for a lag of
// milliseconds (scenarios 000 and 001). The router reads the replica, and on
// a miss tries once more after a short jittered wait, then asks the primary.
// Only a miss on both is a real not-found.
//
//   rebound::pg::router db(primary_conninfo, replica_conninfo);
//   std::optional<std::string> body = db.read([&](rebound::pg::connection& c) {
//     auto r = c.exec("SELECT body FROM items WHERE id = $1", {id});
//     return r.empty() ? std::nullopt : std::optional<std::string>(r.get(0, 0));
//   });
//
// `fn` reports "not visible (yet)" by returning std::nullopt: a typed answer,
// not an exception text to match. Errors stay exceptions (pg::error).
//
// Read-your-writes: write through write() or a transaction with a
// session_token; a read given the token first waits (bounded, jittered
// polling of pg_last_wal_replay_lsn()) until the replica has replayed the
// write, then reads it there, or reads the primary when the wait runs out.
// The token is a string ("16/B374D848") a service can hand to its client.
//
// A replica that errors or is down sends reads to the primary. A circuit
// breaker (rebound::circuit_breaker) remembers it: after `failure_threshold`
// consecutive failures reads skip the replica until `open_duration` has
// passed, then one read probes it. Connection strings are never logged.
//
// Thread-safe: one router serves many threads; each read holds one pooled
// connection per server at a time.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "rebound/breaker.hpp"
#include "rebound/clock.hpp"
#include "rebound/pg/connection.hpp"
#include "rebound/pg/options.hpp"
#include "rebound/pg/pool.hpp"
#include "rebound/policy.hpp"

namespace rebound::pg {

/// How one read was served; each read has exactly one.
enum class read_outcome : std::uint8_t {
  replica,           ///< the replica had it on the first try
  replica_retry,     ///< the replica had it after the jittered retry (or the LSN wait)
  primary_fallback,  ///< the replica missed (or lagged past the wait); the primary had it
  not_found,         ///< neither had it: a genuine not-found
  replica_error,     ///< the replica failed or is known down; the primary answered
  primary,           ///< routed to the primary by design: replica reads off, no distinct
                     ///< replica, a transaction/connection was passed, or a token whose
                     ///< position is unknown
  failed,            ///< the read threw (an error on the primary, or fn's own exception)
};
inline constexpr std::size_t read_outcome_count = 7;
/// "replica", "replica_retry", "primary_fallback", "not_found", "replica_error",
/// "primary", "failed".
[[nodiscard]] std::string_view to_string(read_outcome o) noexcept;

/// The newest write a session has made, as a WAL position. Carry it between
/// requests as a string (to_string() / parse()).
class session_token {
 public:
  session_token() = default;
  explicit session_token(lsn position) noexcept : position_(position) {}
  /// Keeps the newer of the two positions.
  void observe(lsn position) noexcept {
    if (position > position_) position_ = position;
  }
  /// The session wrote, but its position could not be read (the query after
  /// the commit failed): reads with this token go to the primary.
  void mark_unknown() noexcept { unknown_ = true; }
  [[nodiscard]] bool unknown() const noexcept { return unknown_; }
  [[nodiscard]] bool empty() const noexcept { return position_.value == 0 && !unknown_; }
  [[nodiscard]] lsn position() const noexcept { return position_; }
  /// "16/B374D848", "primary" when unknown, or "" when empty.
  [[nodiscard]] std::string to_string() const {
    return unknown_ ? "primary" : empty() ? "" : position_.to_string();
  }
  /// The inverse of to_string(). Throws std::invalid_argument naming the text.
  [[nodiscard]] static session_token parse(std::string_view text) {
    if (text == "primary") {
      session_token t;
      t.mark_unknown();
      return t;
    }
    return text.empty() ? session_token{} : session_token{lsn::parse(text)};
  }

 private:
  lsn position_;
  bool unknown_ = false;
};

/// A transaction on the primary (BEGIN ... COMMIT). Rolled back when it ends
/// uncommitted. Pass it to router::read() to read inside it.
class transaction {
 public:
  explicit transaction(pool::lease lease);
  transaction(transaction&&) noexcept = default;
  transaction& operator=(transaction&&) = delete;
  transaction(const transaction&) = delete;
  ~transaction();
  [[nodiscard]] connection& conn() const noexcept { return *lease_; }
  /// COMMIT; then, with a token, records the commit's WAL position in it
  /// (or marks it unknown when that query fails: the commit stands). Throws
  /// pg::error 25P02 when an earlier error had aborted the transaction: it
  /// was rolled back, nothing was written.
  void commit(session_token* token = nullptr);
  void rollback();
  [[nodiscard]] bool open() const noexcept { return open_; }

 private:
  pool::lease lease_;
  bool open_ = true;
};

/// What happened to one read (read_options::report).
struct read_report {
  read_outcome outcome = read_outcome::primary;
  int replica_reads = 0;      ///< times fn ran on the replica
  int primary_reads = 0;      ///< times fn ran on the primary (0 or 1)
  int lsn_polls = 0;          ///< pg_last_wal_replay_lsn() queries
  duration waited{};          ///< time spent in the retry wait and the LSN wait
  std::string replica_error;  ///< what the replica said, for replica_error
};

struct read_options {
  /// Read-your-writes: wait for the replica to replay this session's writes.
  const session_token* token = nullptr;
  /// Read inside this transaction (on the primary); the replica is not touched.
  transaction* tx = nullptr;
  /// Read on this connection (e.g. the caller's primary connection); the replica is not touched.
  connection* on = nullptr;
  /// Filled in when not null.
  read_report* report = nullptr;
  /// Cancels the waits; a cancelled read throws rebound::retry_error (cancelled).
  std::stop_token stop{};
};

/// Totals since the router was made.
struct router_counters {
  std::array<std::uint64_t, read_outcome_count> reads{};  ///< by outcome
  std::uint64_t replica_reads = 0;
  std::uint64_t primary_reads = 0;
  std::uint64_t lsn_polls = 0;
  std::uint64_t replica_failures = 0;  ///< errors on the replica (connect or query)
  std::uint64_t primary_retries = 0;   ///< reads repeated on a fresh primary connection
  [[nodiscard]] std::uint64_t operator[](read_outcome o) const noexcept {
    return reads[static_cast<std::size_t>(o)];
  }
};

enum class log_level : std::uint8_t { info, warning };
/// Receives the router's log lines: a warning when the primary serves a read
/// the replica should have and when the replica goes down, info when it
/// comes back. Never a conninfo.
using log_sink = std::function<void(log_level, std::string_view message)>;

namespace detail {
template <class T>
inline constexpr bool is_optional = false;
template <class T>
inline constexpr bool is_optional<std::optional<T>> = true;

// Records the session's WAL position in `token` (if any); marks it unknown
// when the query fails.
void record_position(connection& c, session_token* token) noexcept;

// A non-owning callable: runs the caller's fn and says whether it found the row.
struct attempt_ref {
  void* object;
  bool (*call)(void*, connection&);
  bool operator()(connection& c) const { return call(object, c); }
};
}  // namespace detail

class router {
 public:
  /// `replica` may be empty (no replica: every read goes to the primary).
  /// Connections are opened on first use. Throws pg::error (42601) when a
  /// connection string does not parse, rebound::config_error for bad options.
  router(std::string primary, std::string replica, router_options options = {},
         clock& c = system_clock());
  router(const router&) = delete;
  router& operator=(const router&) = delete;
  ~router();

  /// Runs fn(connection&) -> std::optional<T> where the read belongs (see
  /// the top of this file) and returns what it found; std::nullopt is a
  /// genuine not-found. Errors on the primary (and errors of fn that are not
  /// pg::error) propagate.
  template <class Fn>
  auto read(Fn&& fn, const read_options& o = {}) {
    using result_type = std::remove_cvref_t<std::invoke_result_t<Fn&, connection&>>;
    static_assert(detail::is_optional<result_type>,
                  "router::read: fn must return std::optional<T>; std::nullopt means the row "
                  "is not there (yet)");
    using value_type = typename result_type::value_type;
    static_assert(!std::is_same_v<std::remove_cv_t<value_type>, std::string_view>,
                  "router::read: a string_view into a pg::result dangles once fn returns; "
                  "return std::optional<std::string>");
    result_type out;
    auto run = [&](connection& c) {
      out.reset();
      if (auto found = std::invoke(fn, c)) out.emplace(std::move(*found));
      return out.has_value();
    };
    run_read(detail::attempt_ref{&run,
                                 [](void* self, connection& c) {
                                   return (*static_cast<decltype(run)*>(self))(c);
                                 }},
             o);
    return out;
  }

  /// Runs fn(connection&) on the primary (autocommit, or fn's own
  /// transaction) and, with a token, records the resulting WAL position in
  /// it. If fn succeeded but the position cannot be read, the token is
  /// marked unknown (its reads go to the primary); the write is not
  /// reported as failed, since it happened.
  template <class Fn>
  decltype(auto) write(Fn&& fn, session_token* token = nullptr) {
    auto lease = primary_.acquire();
    if constexpr (std::is_void_v<std::invoke_result_t<Fn&, connection&>>) {
      std::invoke(fn, *lease);
      detail::record_position(*lease, token);
    } else {
      auto r = std::invoke(fn, *lease);
      detail::record_position(*lease, token);
      return r;
    }
  }

  /// BEGIN on a primary connection.
  [[nodiscard]] transaction begin();

  /// Replica reads are on and a replica distinct from the primary is configured.
  [[nodiscard]] bool replica_engaged() const noexcept {
    return has_replica_ && enabled_.load(std::memory_order_relaxed);
  }
  /// Turns replica reads on or off at run time (the `enabled` option).
  void set_enabled(bool on) noexcept { enabled_.store(on, std::memory_order_relaxed); }
  [[nodiscard]] router_counters counters() const noexcept;
  /// The replica's health as the router sees it.
  [[nodiscard]] breaker_state replica_state() const { return breaker_.state(); }
  /// Set before the router is shared between threads. Called without the
  /// router's locks held.
  void on_log(log_sink sink);
  [[nodiscard]] pool& primary_pool() noexcept { return primary_; }
  [[nodiscard]] const router_options& options() const noexcept { return options_; }

 private:
  void run_read(detail::attempt_ref attempt, const read_options& o);
  read_outcome read_replica_first(detail::attempt_ref attempt, const read_options& o,
                                  read_report& r);
  bool on_primary(detail::attempt_ref attempt, read_report& r);
  void log(log_level level, const std::string& message) const;
  void warn_served_by_primary(const std::string& why);
  void flush_breaker_log();

  router_options options_;
  clock& clock_;
  retry_policy replica_retry_;  // options_.replica_retry on clock_
  retry_policy lsn_wait_;       // options_.lsn_wait on clock_
  pool primary_;
  std::unique_ptr<pool> replica_;
  bool has_replica_ = false;
  std::atomic<bool> enabled_{true};
  circuit_breaker breaker_;
  log_sink log_;
  std::mutex log_mu_;
  std::vector<std::pair<log_level, std::string>> breaker_log_;  // written under the breaker's lock
  time_point last_warning_{};
  std::uint64_t unwarned_ = 0;
  std::atomic<std::uint64_t> seq_{0};
  std::array<std::atomic<std::uint64_t>, read_outcome_count> reads_{};
  std::atomic<std::uint64_t> replica_reads_{0};
  std::atomic<std::uint64_t> primary_reads_{0};
  std::atomic<std::uint64_t> lsn_polls_{0};
  std::atomic<std::uint64_t> replica_failures_{0};
  std::atomic<std::uint64_t> primary_retries_{0};
};

}  // namespace rebound::pg
