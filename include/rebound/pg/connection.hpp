// rebound/pg/connection.hpp: a small RAII layer over libpq, typed errors, WAL positions.
//
//   rebound::pg::connection c("host=127.0.0.1 port=5432 dbname=app");
//   auto r = c.exec("SELECT body FROM items WHERE id = $1", {"42"});
//   if (r.rows() == 1) use(r.get(0, 0));
//
// Errors are typed by SQLSTATE, never by message text: pg::error::sqlstate()
// and the questions built on it (connection_lost(), transient()).
// Connection strings may hold passwords; rebound never prints one: target()
// and redact_conninfo() show where a connection goes, without secrets.
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "rebound/classify.hpp"
#include "rebound/clock.hpp"

struct pg_conn;
struct pg_result;

namespace rebound::pg {

/// A failure reported by PostgreSQL or libpq. what() is libpq's message
/// (with the SQLSTATE in front); it never contains a password.
class error : public std::runtime_error {
 public:
  error(std::string sqlstate, const std::string& message);
  /// The five-character SQLSTATE ("23505", "08006", ...). libpq failures
  /// without one get 08001 (could not connect) or 08006 (connection lost).
  [[nodiscard]] const std::string& sqlstate() const noexcept { return sqlstate_; }
  /// The server is unreachable or went away: class 08, or 57P01..57P03
  /// (shutting down, crashed, not yet accepting connections).
  [[nodiscard]] bool connection_lost() const noexcept;
  /// Worth trying again elsewhere or later: classify(*this) is transient.
  [[nodiscard]] bool transient() const noexcept;

 private:
  std::string sqlstate_;
};

/// The PostgreSQL error table: how a SQLSTATE becomes a verdict, from its
/// class (the first two characters) and a few codes. Never from the text.
///   class 08 (connection exception), 57P01 admin_shutdown,
///   57P02 crash_shutdown, 57P03 cannot_connect_now ............ transient
///   40001 serialization_failure (also a standby's recovery
///   conflict), 40P01 deadlock_detected ......................... transient
///   class 53 insufficient_resources (53300 too_many_connections,
///   53200 out_of_memory, 53100 disk_full) ...................... transient
///   57014 query_canceled (statement_timeout, or the client's
///   statement bound) ........................................... transient, timed out
///   anything else (the caller's SQL, constraints, permissions,
///   25P02 in_failed_sql_transaction, ...) ...................... permanent
/// docs/reference.md shows every adapter's table side by side.
[[nodiscard]] verdict classify(std::string_view sqlstate) noexcept;
[[nodiscard]] inline verdict classify(const error& e) noexcept { return classify(e.sqlstate()); }

/// A position in the write-ahead log, as pg_lsn prints it: "16/B374D848".
struct lsn {
  std::uint64_t value = 0;
  /// Parses "X/Y" (hexadecimal halves). Throws std::invalid_argument naming the text.
  [[nodiscard]] static lsn parse(std::string_view text);
  [[nodiscard]] std::string to_string() const;
  friend auto operator<=>(const lsn&, const lsn&) = default;
};

/// The rows of one statement. Move-only; frees the libpq result.
class result {
 public:
  explicit result(pg_result* r) noexcept : r_(r) {}
  result(result&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  result& operator=(result&& o) noexcept;
  result(const result&) = delete;
  result& operator=(const result&) = delete;
  ~result();

  [[nodiscard]] int rows() const noexcept;
  [[nodiscard]] int columns() const noexcept;
  [[nodiscard]] bool empty() const noexcept { return rows() == 0; }
  [[nodiscard]] bool is_null(int row, int column) const noexcept;
  /// The text of a field ("" for NULL). Throws std::out_of_range outside the result.
  [[nodiscard]] std::string_view get(int row, int column) const;
  /// The field, or nullopt for NULL.
  [[nodiscard]] std::optional<std::string_view> value(int row, int column) const;
  /// The command tag: "SELECT 1", "INSERT 0 1", "COMMIT", "ROLLBACK", ...
  [[nodiscard]] std::string_view command_status() const noexcept;
  [[nodiscard]] pg_result* native() const noexcept { return r_; }

 private:
  pg_result* r_;
};

/// One libpq connection. Move-only; not thread-safe (one user at a time).
class connection {
 public:
  /// Connects (blocking). Throws pg::error with sqlstate 08001 when it cannot;
  /// the message names target(), never the password. `connect_timeout`
  /// applies unless the conninfo sets its own (libpq counts whole seconds, at least 2).
  explicit connection(const std::string& conninfo,
                      std::chrono::seconds connect_timeout = std::chrono::seconds(5));
  connection(connection&& o) noexcept;
  connection& operator=(connection&& o) noexcept;
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  ~connection();

  /// Runs one statement (or several, without parameters). Throws pg::error.
  result exec(std::string_view sql);
  /// Runs one statement with text parameters ($1, $2, ...; nullopt is NULL).
  result exec(std::string_view sql, std::initializer_list<std::optional<std::string_view>> params);
  result exec(std::string_view sql, std::span<const std::optional<std::string_view>> params);

  /// A bound on each statement this connection runs, kept by the client
  /// (0: none, the default). Past it the statement is cancelled (PQcancel,
  /// sent from a helper thread: against a hung server libpq's cancel itself
  /// blocks), the connection is closed, and exec throws pg::error 57014
  /// (query_canceled). It holds where a server-side statement_timeout cannot
  /// fire: a server stopped, or its host gone.
  void set_statement_bound(duration d) noexcept { bound_ = d; }
  [[nodiscard]] duration statement_bound() const noexcept { return bound_; }

  /// Connected, and not inside a transaction block (idle, ready for the next user).
  [[nodiscard]] bool idle() const noexcept;
  /// Inside a transaction block that an error aborted (only ROLLBACK works).
  [[nodiscard]] bool in_failed_transaction() const noexcept;
  /// The connection is usable (libpq's CONNECTION_OK).
  [[nodiscard]] bool healthy() const noexcept;
  /// Where it goes, for logs: "127.0.0.1:5433/app" (never user or password).
  [[nodiscard]] const std::string& target() const noexcept { return target_; }
  [[nodiscard]] pg_conn* native() const noexcept { return conn_; }

 private:
  result run(std::string_view sql, std::span<const std::optional<std::string_view>> params,
             bool with_params);
  result bounded(const std::string& text, const std::vector<const char*>& values, bool with_params);

  pg_conn* conn_ = nullptr;
  std::string target_;
  duration bound_{};
};

/// A conninfo string with its secrets replaced: "password=***" in key/value
/// form, "postgresql://user:***@host/db" in URI form. For logs and errors.
[[nodiscard]] std::string redact_conninfo(std::string_view conninfo);

/// "host:port/dbname" of a conninfo (key/value or URI), with libpq's defaults
/// filled in ("service NAME/dbname" for a service); no user, no password.
/// Throws pg::error (42601) when it does not parse; the message shows no
/// part of the string but keywords.
[[nodiscard]] std::string describe_target(const std::string& conninfo);

/// True when two conninfos name the same host, hostaddr, port, dbname and
/// service (who connects, and how, does not matter). "localhost" and
/// "127.0.0.1" count as different. Throws like describe_target().
[[nodiscard]] bool same_server(const std::string& a, const std::string& b);

/// The session's current WAL insert position (pg_current_wal_insert_lsn()),
/// for read-your-writes: call it on the connection that wrote, after commit.
/// Normalized (normalize_insert_lsn) so that a standby can reach it.
[[nodiscard]] lsn current_wal_lsn(connection& c);

/// An insert position at the start of a WAL page points past the page's
/// header, where no record ends; a standby's replay position stops at the
/// boundary before it. Returns that boundary for such positions, and
/// `position` otherwise.
[[nodiscard]] lsn normalize_insert_lsn(lsn position, std::uint64_t wal_block_size,
                                       std::uint64_t wal_segment_size);

/// The standby's replayed position (pg_last_wal_replay_lsn()); nullopt when
/// the server is not in recovery (a primary, or a promoted standby).
[[nodiscard]] std::optional<lsn> replay_lsn(connection& c);

}  // namespace rebound::pg
