// Scenario 002: an agent run that fails half-way, retried as a whole.
//
// A chat "run" makes three calls to a provider and stores each reply as a
// message in SQLite. The provider is rebound's fault server on loopback
// (started and stopped here), answering 503 in the middle of some runs. The
// run_supervisor retries a failed run with a fresh run id after a back-off,
// and its cleanup marks the failed attempt's messages discarded, so the next
// attempt's history holds only what really happened.
//
//   agent_run --db runs.sqlite [--initial 2s] [--max-retries 5]
//
// The file may exist: the three conversations below are written afresh.
//
// Three conversations:
//   retried    the provider fails step 2 twice; the third attempt succeeds
//   cancelled  step 2 trickles slowly; the user cancels the run mid-stream
//   gave-up    step 2 always fails; after max-retries retries the run fails
// The event stream is printed as it happens. Exit status 0 when the three
// conversations ended as described, 1 otherwise, 2 for bad arguments.
#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fault_server.hpp"
#include "rebound/duration.hpp"
#include "rebound/http/client.hpp"
#include "rebound/run_supervisor.hpp"

namespace {

// A provider error with its status as a field: classified by type and
// number, never by searching the message for digits.
struct provider_error : std::runtime_error {
  explicit provider_error(long s)
      : std::runtime_error("provider answered " + std::to_string(s)), status(s) {}
  long status;
};

// ---- a tiny SQLite layer -------------------------------------------------------

class database {
 public:
  explicit database(const std::string& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) {
      const std::string why = db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw std::runtime_error("cannot open " + path + ": " + why);
    }
    sqlite3_busy_timeout(db_, 5000);
  }
  database(const database&) = delete;
  database& operator=(const database&) = delete;
  ~database() { sqlite3_close(db_); }

  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      const std::string why = err != nullptr ? err : "unknown error";
      sqlite3_free(err);
      throw std::runtime_error("sqlite: " + why);
    }
  }

  // Runs one statement with text parameters; returns the rows as text.
  std::vector<std::vector<std::string>> query(const std::string& sql,
                                              const std::vector<std::string>& params = {}) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &raw, nullptr) != SQLITE_OK) {
      throw std::runtime_error("sqlite: " + std::string(sqlite3_errmsg(db_)) + " in: " + sql);
    }
    std::unique_ptr<sqlite3_stmt, decltype(&sqlite3_finalize)> stmt(raw, sqlite3_finalize);
    for (std::size_t i = 0; i < params.size(); ++i) {
      sqlite3_bind_text(raw, static_cast<int>(i) + 1, params[i].c_str(), -1, SQLITE_TRANSIENT);
    }
    std::vector<std::vector<std::string>> rows;
    for (;;) {
      const int rc = sqlite3_step(raw);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) throw std::runtime_error("sqlite: " + std::string(sqlite3_errmsg(db_)));
      std::vector<std::string> row;
      for (int c = 0; c < sqlite3_column_count(raw); ++c) {
        const auto* text = sqlite3_column_text(raw, c);
        row.emplace_back(text != nullptr ? reinterpret_cast<const char*>(text) : "");
      }
      rows.push_back(std::move(row));
    }
    return rows;
  }

 private:
  sqlite3* db_ = nullptr;
};

const char* const schema = R"(
CREATE TABLE IF NOT EXISTS conversations (
  id TEXT PRIMARY KEY,
  status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
  attempts INTEGER NOT NULL DEFAULT 0,
  error TEXT);
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY,
  conversation TEXT NOT NULL REFERENCES conversations(id),
  attempt INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
  error TEXT,
  history TEXT);            -- the message ids the attempt was given, in order
CREATE TABLE IF NOT EXISTS messages (
  id INTEGER PRIMARY KEY,
  conversation TEXT NOT NULL REFERENCES conversations(id),
  run_id TEXT,              -- NULL for the user's own messages
  role TEXT NOT NULL,
  content TEXT NOT NULL,
  discarded INTEGER NOT NULL DEFAULT 0);
)";

struct settings {
  std::string db_path;
  rebound::duration initial = std::chrono::seconds(2);
  int max_retries = 5;
};

constexpr const char* usage_text =
    "usage: agent_run --db FILE [--initial DURATION (2s), up to 10s] [--max-retries N (5), 2..20]\n"
    "exit status: 0 when the three conversations ended as described, 1 otherwise, 2 for bad "
    "arguments\n";

[[noreturn]] void usage(const std::string& problem) {
  std::fprintf(stderr, "agent_run: %s\n%s", problem.c_str(), usage_text);
  std::exit(2);
}

settings parse_args(int argc, char** argv) {
  settings s;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::printf("%s", usage_text);
      std::exit(0);
    }
    std::string value;
    if (const auto eq = flag.find('='); flag.starts_with("--") && eq != std::string::npos) {
      value = flag.substr(eq + 1);  // --db=FILE
      flag.resize(eq);
    } else {
      if (i + 1 >= argc) usage(flag + " needs a value");
      value = argv[++i];
    }
    if (flag == "--db") {
      s.db_path = value;
    } else if (flag == "--initial") {
      try {
        s.initial = rebound::parse_duration(value);
      } catch (const std::invalid_argument& e) {
        usage("--initial " + value + ": " + e.what());
      }
      if (s.initial <= rebound::duration::zero() || s.initial > std::chrono::seconds(10)) {
        usage("--initial " + value + ": allowed: above 0, up to 10s");
      }
    } else if (flag == "--max-retries") {
      char* end = nullptr;
      const long n = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || n < 2 || n > 20) {
        usage("--max-retries " + value +
              ": expected an integer in 2..20 (the retried conversation needs two retries)");
      }
      s.max_retries = static_cast<int>(n);
    } else {
      usage("unknown option " + flag);
    }
  }
  if (s.db_path.empty()) usage("--db is required");
  return s;
}

class agent {
 public:
  agent(database& db, rebound::fault::server& provider, const settings& s)
      : db_(db),
        provider_(provider),
        // One retry layer: the run is retried; its HTTP calls are not.
        http_({.policy = rebound::retry_policy{}.stop(rebound::stop::after_attempts(1))}),
        runs_(rebound::run_supervisor::default_policy()
                  .stop(rebound::stop::after_attempts(s.max_retries + 1))
                  .backoff(rebound::backoff::exponential(s.initial, 2.0, 16 * s.initial))
                  .retry_if_exception([](const provider_error& e) {
                    return e.status == 408 || e.status == 429 ||
                           (e.status >= 500 && e.status <= 504);
                  })
                  .retry_on<rebound::http::transport_error>()) {
    runs_.subscribe([](const rebound::run_event& e) {
      std::printf("  event: %s\n", rebound::describe(e).c_str());
      std::fflush(stdout);
    });
  }

  // Runs one conversation: `step2` is the provider path of the middle call.
  rebound::run_result converse(const std::string& conversation, const std::string& step2,
                               bool cancel_mid_stream) {
    db_.query("INSERT INTO conversations (id, status) VALUES (?, 'running')", {conversation});
    db_.query("INSERT INTO messages (conversation, role, content) VALUES (?, 'user', ?)",
              {conversation, "Summarise the incident report."});
    rebound::run_spec spec{
        .key = conversation,
        .attempt = [&](const rebound::run_context& run) { attempt(run, step2); },
        .start =
            [&](const std::string& key, int n) {
              const std::string id = key + "/run-" + std::to_string(n);
              db_.query(
                  "INSERT INTO runs (run_id, conversation, attempt, status) "
                  "VALUES (?, ?, ?, 'running')",
                  {id, key, std::to_string(n)});
              return id;
            },
        .cleanup =
            [&](const rebound::run_context& failed, const std::exception_ptr& error) {
              end_attempt(failed.run_id, "failed", error);
            },
    };
    rebound::run_result result;
    if (cancel_mid_stream) {
      auto handle = runs_.start(std::move(spec));
      // The user presses Stop while the reply is streaming (a real wait:
      // this stands for a person).
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      handle.cancel();
      result = handle.wait();
    } else {
      result = runs_.run(std::move(spec));
    }
    // The last attempt's row and the conversation take the run's outcome.
    const char* status = result.ok()                                           ? "succeeded"
                         : result.state == rebound::run_result::status::failed ? "failed"
                                                                               : "cancelled";
    if (!result.ok() && !result.run_id.empty() && result.attempts > 0) {
      const bool cleaned =
          !db_.query("SELECT 1 FROM runs WHERE run_id = ? AND status = 'running'", {result.run_id})
               .empty();
      if (cleaned) end_attempt(result.run_id, status, result.error);
    } else if (result.ok()) {
      db_.query("UPDATE runs SET status = 'succeeded' WHERE run_id = ?", {result.run_id});
    }
    db_.query("UPDATE conversations SET status = ?, attempts = ?, error = ? WHERE id = ?",
              {status, std::to_string(result.attempts), message_of(result.error), conversation});
    return result;
  }

 private:
  static std::string message_of(const std::exception_ptr& e) {
    if (!e) return "";
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      return x.what();
    } catch (...) {
      return "unknown error";
    }
  }

  // The attempt's partial messages leave the history; its row records why.
  void end_attempt(const std::string& run_id, const char* status, const std::exception_ptr& e) {
    db_.query("UPDATE messages SET discarded = 1 WHERE run_id = ?", {run_id});
    db_.query("UPDATE runs SET status = ?, error = ? WHERE run_id = ?",
              {status, message_of(e), run_id});
  }

  void attempt(const rebound::run_context& run, const std::string& step2) {
    // The history this attempt is given: everything not discarded.
    std::string history;
    for (const auto& row : db_.query("SELECT id FROM messages WHERE conversation = ? AND "
                                     "discarded = 0 ORDER BY id",
                                     {run.key})) {
      history += (history.empty() ? "" : ",") + row[0];
    }
    db_.query("UPDATE runs SET history = ? WHERE run_id = ?", {history, run.run_id});
    const std::vector<std::string> steps{"/status/200", step2, "/status/200"};
    for (std::size_t i = 0; i < steps.size(); ++i) {
      const auto reply = http_.get(provider_.url(steps[i]), {.stop = run.stop});
      if (reply.status != 200) throw provider_error(reply.status);
      db_.query(
          "INSERT INTO messages (conversation, run_id, role, content) "
          "VALUES (?, ?, 'assistant', ?)",
          {run.key, run.run_id, "part " + std::to_string(i + 1) + " of the summary"});
    }
  }

  database& db_;
  rebound::fault::server& provider_;
  rebound::http::client http_;
  rebound::run_supervisor runs_;
};

}  // namespace

int main(int argc, char** argv) try {
  const settings s = parse_args(argc, argv);
  database db(s.db_path);
  db.exec(schema);
  // Written afresh on every run, so the file may be reused.
  db.exec(
      "DELETE FROM messages WHERE conversation IN ('retried', 'cancelled', 'gave-up');"
      "DELETE FROM runs WHERE conversation IN ('retried', 'cancelled', 'gave-up');"
      "DELETE FROM conversations WHERE id IN ('retried', 'cancelled', 'gave-up');");
  rebound::fault::server provider;  // 127.0.0.1, a free port; stopped at exit
  agent a(db, provider, s);

  std::printf("retried: the provider fails the middle step twice, then recovers\n");
  const auto retried =
      a.converse("retried", "/retry-after/retried?status=503&seconds=0&times=2", false);
  std::printf("\ncancelled: the middle step streams slowly; the user cancels it\n");
  const auto cancelled =
      a.converse("cancelled", "/slow/cancelled?bytes=1000&ms=5000", /*cancel_mid_stream=*/true);
  std::printf("\ngave-up: the middle step always answers 503\n");
  const auto gave_up = a.converse("gave-up", "/status/503", false);

  std::printf("\nSQLite (%s):\n", s.db_path.c_str());
  for (const auto& r : db.query("SELECT run_id, status, COALESCE(history, ''), COALESCE(error, '') "
                                "FROM runs ORDER BY rowid")) {
    std::printf("  run %-18s %-9s history=[%s] %s\n", r[0].c_str(), r[1].c_str(), r[2].c_str(),
                r[3].c_str());
  }
  for (const auto& r : db.query("SELECT conversation, count(*), sum(discarded) FROM messages "
                                "GROUP BY conversation ORDER BY min(id)")) {
    std::printf("  conversation %-9s messages=%s discarded=%s\n", r[0].c_str(), r[1].c_str(),
                r[2].c_str());
  }
  const bool as_described = retried.ok() && retried.attempts == 3 &&
                            cancelled.state == rebound::run_result::status::cancelled &&
                            !gave_up.ok() &&
                            gave_up.failure == rebound::run_failure::retries_exhausted;
  return as_described ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "agent_run: %s\n", e.what());
  return 1;
}
