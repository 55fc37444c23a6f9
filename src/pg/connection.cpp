#include "rebound/pg/connection.hpp"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "rebound/duration.hpp"

namespace rebound::pg {
namespace {

// libpq's messages end with a newline; ours do not.
std::string trimmed(const char* message) {
  std::string s = message != nullptr ? message : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

struct conninfo_options_deleter {
  void operator()(PQconninfoOption* o) const noexcept { PQconninfoFree(o); }
};

}  // namespace

error::error(std::string sqlstate, const std::string& message)
    : std::runtime_error(sqlstate + ": " + message), sqlstate_(std::move(sqlstate)) {}

bool error::connection_lost() const noexcept {
  return sqlstate_.starts_with("08") || sqlstate_ == "57P01" || sqlstate_ == "57P02" ||
         sqlstate_ == "57P03";
}

bool error::transient() const noexcept { return classify(sqlstate_).retryable(); }

verdict classify(std::string_view s) noexcept {
  if (s.starts_with("08") || s == "57P01" || s == "57P02" || s == "57P03") {
    return verdict::transient();
  }
  if (s == "40001" || s == "40P01" || s.starts_with("53")) return verdict::transient();
  if (s == "57014") return verdict::timed_out();
  return verdict::permanent();
}

lsn lsn::parse(std::string_view text) {
  const auto bad = [&](const char* why) {
    return std::invalid_argument("\"" + std::string(text) + "\" is not a WAL position (" + why +
                                 "); expected two hexadecimal halves such as \"16/B374D848\"");
  };
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) throw bad("no '/'");
  const auto half = [&](std::string_view h) {
    std::uint32_t v = 0;
    if (h.empty() || h.size() > 8) throw bad("each half has 1 to 8 hex digits");
    const auto [end, ec] = std::from_chars(h.data(), h.data() + h.size(), v, 16);
    if (ec != std::errc{} || end != h.data() + h.size()) throw bad("not hexadecimal");
    return static_cast<std::uint64_t>(v);
  };
  return lsn{(half(text.substr(0, slash)) << 32) | half(text.substr(slash + 1))};
}

std::string lsn::to_string() const {
  std::array<char, 24> buf{};
  std::snprintf(buf.data(), buf.size(), "%X/%X", static_cast<unsigned>(value >> 32),
                static_cast<unsigned>(value & 0xffffffffU));
  return buf.data();
}

// ---- result ----------------------------------------------------------------

result& result::operator=(result&& o) noexcept {
  if (this != &o) {
    if (r_ != nullptr) PQclear(r_);
    r_ = std::exchange(o.r_, nullptr);
  }
  return *this;
}

result::~result() {
  if (r_ != nullptr) PQclear(r_);
}

int result::rows() const noexcept { return r_ != nullptr ? PQntuples(r_) : 0; }
int result::columns() const noexcept { return r_ != nullptr ? PQnfields(r_) : 0; }

bool result::is_null(int row, int column) const noexcept {
  return r_ == nullptr || row < 0 || column < 0 || row >= rows() || column >= columns() ||
         PQgetisnull(r_, row, column) != 0;
}

std::string_view result::command_status() const noexcept {
  return r_ != nullptr ? std::string_view(PQcmdStatus(r_)) : std::string_view();
}

std::string_view result::get(int row, int column) const {
  if (row < 0 || column < 0 || row >= rows() || column >= columns()) {
    throw std::out_of_range("pg::result: field (" + std::to_string(row) + ", " +
                            std::to_string(column) + ") is outside a result of " +
                            std::to_string(rows()) + " rows and " + std::to_string(columns()) +
                            " columns");
  }
  return {PQgetvalue(r_, row, column), static_cast<std::size_t>(PQgetlength(r_, row, column))};
}

std::optional<std::string_view> result::value(int row, int column) const {
  const auto v = get(row, column);
  if (PQgetisnull(r_, row, column) != 0) return std::nullopt;
  return v;
}

// ---- connection ------------------------------------------------------------

connection::connection(const std::string& conninfo, std::chrono::seconds connect_timeout)
    : target_(describe_target(conninfo)) {
  // connect_timeout comes first so that the caller's conninfo (expanded from
  // "dbname") overrides it: without one, an unreachable host would block for
  // the TCP timeout, minutes.
  const std::string timeout = std::to_string(std::max<long long>(connect_timeout.count(), 1));
  const std::array<const char*, 3> keys{"connect_timeout", "dbname", nullptr};
  const std::array<const char*, 3> values{timeout.c_str(), conninfo.c_str(), nullptr};
  conn_ = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  if (conn_ == nullptr) throw error("08001", "cannot connect to " + target_ + ": out of memory");
  if (PQstatus(conn_) != CONNECTION_OK) {
    const std::string why = trimmed(PQerrorMessage(conn_));
    PQfinish(conn_);
    conn_ = nullptr;
    throw error("08001", "cannot connect to " + target_ + ": " + why);
  }
}

connection::connection(connection&& o) noexcept
    : conn_(std::exchange(o.conn_, nullptr)), target_(std::move(o.target_)) {}

connection& connection::operator=(connection&& o) noexcept {
  if (this != &o) {
    if (conn_ != nullptr) PQfinish(conn_);
    conn_ = std::exchange(o.conn_, nullptr);
    target_ = std::move(o.target_);
  }
  return *this;
}

connection::~connection() {
  if (conn_ != nullptr) PQfinish(conn_);
}

bool connection::healthy() const noexcept {
  return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK;
}

bool connection::in_failed_transaction() const noexcept {
  return conn_ != nullptr && PQtransactionStatus(conn_) == PQTRANS_INERROR;
}

bool connection::idle() const noexcept {
  return healthy() && PQtransactionStatus(conn_) == PQTRANS_IDLE;
}

namespace {

result checked(pg_conn* conn, PGresult* r, const std::string& target) {
  result owned(r);
  if (r == nullptr) {
    throw error(PQstatus(conn) == CONNECTION_OK ? "XX000" : "08006",
                target + ": " + trimmed(PQerrorMessage(conn)));
  }
  switch (PQresultStatus(r)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_EMPTY_QUERY:
      return owned;
    default:
      break;
  }
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  std::string sqlstate = state != nullptr ? state : "";
  // No SQLSTATE: libpq itself failed, usually because the server went away.
  if (sqlstate.empty()) sqlstate = PQstatus(conn) == CONNECTION_OK ? "XX000" : "08006";
  throw error(std::move(sqlstate), target + ": " + trimmed(PQresultErrorMessage(r)));
}

}  // namespace

result connection::exec(std::string_view sql) { return run(sql, {}, false); }

result connection::exec(std::string_view sql,
                        std::initializer_list<std::optional<std::string_view>> params) {
  return exec(sql, std::span<const std::optional<std::string_view>>(params.begin(), params.size()));
}

result connection::exec(std::string_view sql,
                        std::span<const std::optional<std::string_view>> params) {
  return run(sql, params, true);
}

result connection::run(std::string_view sql,
                       std::span<const std::optional<std::string_view>> params, bool with_params) {
  if (conn_ == nullptr) throw error("08003", "exec on a closed connection (" + target_ + ")");
  const std::string text(sql);
  std::vector<std::string> storage;
  storage.reserve(params.size());
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) {
    if (p) {
      storage.emplace_back(*p);
      values.push_back(storage.back().c_str());
    } else {
      values.push_back(nullptr);
    }
  }
  if (bound_ > duration::zero()) return bounded(text, values, with_params);
  if (!with_params) return checked(conn_, PQexec(conn_, text.c_str()), target_);
  return checked(conn_,
                 PQexecParams(conn_, text.c_str(), static_cast<int>(values.size()), nullptr,
                              values.data(), nullptr, nullptr, 0),
                 target_);
}

namespace {

// Cancels a statement from a helper thread: PQcancel connects to the server
// and waits for it to close that connection, which a hung server never does
// until it runs again. At most a few such threads at a time.
std::atomic<int> cancels_in_flight{0};

void cancel_in_background(pg_conn* conn) {
  if (cancels_in_flight.fetch_add(1) >= 4) {
    cancels_in_flight.fetch_sub(1);
    return;  // closing the connection ends the statement once the server runs again
  }
  PGcancel* c = PQgetCancel(conn);
  if (c == nullptr) {
    cancels_in_flight.fetch_sub(1);
    return;
  }
  try {
    std::thread([c] {
      std::array<char, 256> why{};
      PQcancel(c, why.data(), static_cast<int>(why.size()));
      PQfreeCancel(c);
      cancels_in_flight.fetch_sub(1);
    }).detach();
  } catch (...) {  // no thread: the connection is closed all the same
    PQfreeCancel(c);
    cancels_in_flight.fetch_sub(1);
  }
}

}  // namespace

result connection::bounded(const std::string& text, const std::vector<const char*>& values,
                           bool with_params) {
  // The network is the boundary here: the bound is real time, measured on
  // the system clock, whatever clock the caller's policies run on.
  clock& real = system_clock();
  const time_point deadline = real.now() + bound_;
  const int sent = with_params
                       ? PQsendQueryParams(conn_, text.c_str(), static_cast<int>(values.size()),
                                           nullptr, values.data(), nullptr, nullptr, 0)
                       : PQsendQuery(conn_, text.c_str());
  if (sent == 0) return checked(conn_, nullptr, target_);
  const int fd = PQsocket(conn_);
  // Waits until the socket is ready for `events`, or the deadline.
  const auto ready = [&](short events) {
    for (;;) {
      const duration left = deadline - real.now();
      if (left <= duration::zero()) return false;
      pollfd p{fd, events, 0};
      const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
      const int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(ms, 60'000)));
      if (n > 0) return true;
      if (n < 0 && errno != EINTR) return true;  // let libpq report the socket's error
    }
  };
  bool in_time = true;
  // Send what libpq buffered, then read until the statement's results are in.
  for (int f = PQflush(conn_); f == 1 && in_time; f = PQflush(conn_)) in_time = ready(POLLOUT);
  PGresult* last = nullptr;
  while (in_time) {
    while (PQisBusy(conn_) != 0 && in_time) {
      in_time = ready(POLLIN);
      if (in_time && PQconsumeInput(conn_) == 0)
        break;  // the connection failed: PQgetResult says how
    }
    if (!in_time) break;
    PGresult* r = PQgetResult(conn_);
    if (r == nullptr) break;
    // As PQexec: the last result, but an error is kept over later results.
    if (last != nullptr && PQresultStatus(last) == PGRES_FATAL_ERROR) {
      PQclear(r);
    } else {
      if (last != nullptr) PQclear(last);
      last = r;
    }
  }
  if (!in_time) {
    if (last != nullptr) PQclear(last);
    cancel_in_background(conn_);
    PQfinish(conn_);
    conn_ = nullptr;
    throw error("57014", "no answer from " + target_ + " within " + format_duration(bound_) +
                             " (the client's bound): the statement was cancelled and the "
                             "connection closed");
  }
  return checked(conn_, last, target_);
}

// ---- conninfo helpers --------------------------------------------------------

namespace {

bool is_conninfo_keyword(std::string_view word) {
  static const std::vector<std::string> keywords = [] {
    std::vector<std::string> k;
    std::unique_ptr<PQconninfoOption, conninfo_options_deleter> d(PQconndefaults());
    for (auto* o = d.get(); o != nullptr && o->keyword != nullptr; ++o) k.emplace_back(o->keyword);
    return k;
  }();
  return std::find(keywords.begin(), keywords.end(), word) != keywords.end();
}

// libpq's parse errors quote parts of the string they could not parse, and
// those parts can be a password ("missing \"=\" after \"secretpart\""). Every
// quoted part that is not a conninfo keyword becomes "***".
std::string redact_parse_error(const std::string& message) {
  std::string out;
  std::size_t i = 0;
  while (i < message.size()) {
    const auto open = message.find('"', i);
    if (open == std::string::npos) {
      out += message.substr(i);
      break;
    }
    const auto close = message.find('"', open + 1);
    if (close == std::string::npos) {
      out += message.substr(i, open - i) + "\"***";
      break;
    }
    const std::string inner = message.substr(open + 1, close - open - 1);
    out += message.substr(i, open - i);
    out += "\"" + (inner == "=" || is_conninfo_keyword(inner) ? inner : std::string("***")) + "\"";
    i = close + 1;
  }
  return out;
}

using parsed_options = std::unique_ptr<PQconninfoOption, conninfo_options_deleter>;

parsed_options parse_conninfo(const std::string& conninfo) {
  char* err = nullptr;
  parsed_options opts(PQconninfoParse(conninfo.c_str(), &err));
  if (!opts) {
    const std::string why = err != nullptr ? redact_parse_error(trimmed(err)) : "out of memory";
    if (err != nullptr) PQfreemem(err);
    throw error("42601", "connection string does not parse: " + why);
  }
  return opts;
}

}  // namespace

std::string describe_target(const std::string& conninfo) {
  const auto opts = parse_conninfo(conninfo);
  std::string host;
  std::string port;
  std::string db;
  std::string service;
  for (auto* o = opts.get(); o->keyword != nullptr; ++o) {
    if (o->val == nullptr || *o->val == '\0') continue;
    const std::string_view k = o->keyword;
    if (k == "hostaddr" || (k == "host" && host.empty())) host = o->val;
    if (k == "port") port = o->val;
    if (k == "dbname") db = o->val;
    if (k == "service") service = o->val;
  }
  if (host.empty() && !service.empty()) return "service " + service + (db.empty() ? "" : "/" + db);
  if (host.empty()) host = "(local socket)";
  if (port.empty()) port = "5432";
  return host + ":" + port + "/" + db;
}

bool same_server(const std::string& a, const std::string& b) {
  // What picks the server and the database; not who connects or how.
  static constexpr std::array<std::string_view, 5> where{"host", "hostaddr", "port", "dbname",
                                                         "service"};
  const auto pick = [](const std::string& conninfo) {
    std::array<std::string, where.size()> v{};
    const auto opts = parse_conninfo(conninfo);
    for (auto* o = opts.get(); o->keyword != nullptr; ++o) {
      for (std::size_t i = 0; i < where.size(); ++i) {
        if (o->keyword == where[i] && o->val != nullptr) v[i] = o->val;
      }
    }
    return v;
  };
  return pick(a) == pick(b);
}

std::string redact_conninfo(std::string_view conninfo) {
  std::string out(conninfo);
  // URI form: scheme://user:secret@host... (the host part holds no '@', so
  // the last '@' before the path ends the user info)
  if (const auto scheme = out.find("://"); scheme != std::string::npos) {
    const auto path = out.find('/', scheme + 3);
    const auto at = out.rfind('@', path == std::string::npos ? std::string::npos : path);
    if (at != std::string::npos && at > scheme) {
      const auto colon = out.find(':', scheme + 3);
      if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
    }
  }
  const bool uri = out.find("://") != std::string::npos;
  const auto space = [](char ch) { return std::isspace(static_cast<unsigned char>(ch)) != 0; };
  // password=... and sslpassword=... in key/value form, or as URI parameters.
  for (const std::string_view key :
       {std::string_view("sslpassword"), std::string_view("password")}) {
    std::size_t from = 0;
    while ((from = out.find(key, from)) != std::string::npos) {
      const bool starts_word =
          from == 0 || space(out[from - 1]) || out[from - 1] == '?' || out[from - 1] == '&';
      std::size_t i = from + key.size();
      while (i < out.size() && space(out[i])) ++i;
      if (!starts_word || i >= out.size() || out[i] != '=') {
        from += key.size();
        continue;
      }
      ++i;
      while (i < out.size() && space(out[i])) ++i;
      std::size_t end = i;
      if (!uri && end < out.size() && out[end] == '\'') {  // quoted, with \' and \\ escapes
        ++end;
        while (end < out.size() && out[end] != '\'') end += out[end] == '\\' ? 2 : 1;
        end = std::min(end + 1, out.size());
      } else {
        while (end < out.size() && !space(out[end]) && !(uri && out[end] == '&')) ++end;
      }
      if (!(end == i + 3 && out.compare(i, 3, "***") == 0)) out.replace(i, end - i, "***");
      from = i + 3;
    }
  }
  return out;
}

lsn normalize_insert_lsn(lsn position, std::uint64_t wal_block_size,
                         std::uint64_t wal_segment_size) {
  // An insert position at the start of a page's content points past the
  // page header, where no record ends; the last record ended at the page
  // boundary, which is where a standby's replay position stops.
  constexpr std::uint64_t short_header = 24;  // SizeOfXLogShortPHD
  constexpr std::uint64_t long_header = 40;   // SizeOfXLogLongPHD (first page of a segment)
  const auto v = position.value;
  if (wal_segment_size != 0 && v % wal_segment_size == long_header) return lsn{v - long_header};
  if (wal_block_size != 0 && v % wal_block_size == short_header && v >= short_header) {
    return lsn{v - short_header};
  }
  return position;
}

lsn current_wal_lsn(connection& c) {
  auto r = c.exec(
      "SELECT pg_current_wal_insert_lsn()::text, current_setting('wal_block_size')::bigint, "
      "(SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')");
  const auto number = [&](int column) {
    return static_cast<std::uint64_t>(std::stoull(std::string(r.get(0, column))));
  };
  return normalize_insert_lsn(lsn::parse(r.get(0, 0)), number(1), number(2));
}

std::optional<lsn> replay_lsn(connection& c) {
  // A promoted standby keeps its last replayed position forever: ask whether
  // it still is one.
  auto r = c.exec("SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text END");
  const auto v = r.value(0, 0);
  if (!v) return std::nullopt;
  return lsn::parse(*v);
}

}  // namespace rebound::pg
