// Scenario 001: a poll right after a write, on a read replica that lags.
//
// Starts a real PostgreSQL primary and streaming standby on loopback (in a
// temporary directory; both stopped at the end), holds commits back on the
// standby for 300 ms (recovery_min_apply_delay), then reads a fresh row
// three ways: a naive replica read, the router, and the router with the
// write's session token. Router settings come from REPLICA_* variables
// (e.g. REPLICA_REPLICA_RETRY_MAX_MS=0 goes straight to the primary).
#include <cstdio>
#include <string>

#include "pg_cluster.hpp"
#include "rebound/pg/router.hpp"

namespace {

using rebound::pg::connection;

std::optional<std::string> find_snapshot(connection& c, const std::string& id) {
  auto r = c.exec("SELECT body FROM snapshots WHERE id = $1", {id});
  if (r.empty()) return std::nullopt;  // not there, or not there *yet*
  return std::string(r.get(0, 0));
}

void show(const char* how, const std::optional<std::string>& row,
          const rebound::pg::read_report& rep) {
  std::printf(
      "  %-28s %-10s outcome=%-16s replica_reads=%d primary_reads=%d lsn_polls=%d "
      "waited=%lldms\n",
      how, row ? "found" : "NOT FOUND", std::string(to_string(rep.outcome)).c_str(),
      rep.replica_reads, rep.primary_reads, rep.lsn_polls,
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(rep.waited).count()));
}

}  // namespace

int main() try {
  using namespace std::chrono_literals;
  const auto options = rebound::pg::apply_router_env({}, "REPLICA");  // bad settings: fail first
  std::printf("starting a PostgreSQL primary and streaming standby on loopback...\n");
  rebound::testing::pg_cluster db;
  connection primary(db.primary_conninfo());
  primary.exec("CREATE TABLE snapshots (id text PRIMARY KEY, body text NOT NULL)");
  db.wait_for_catch_up();
  db.set_apply_delay(300ms);
  std::printf("standby applies commits 300 ms late (recovery_min_apply_delay)\n\n");

  rebound::pg::router router(db.primary_conninfo(), db.standby_conninfo(), options);
  router.on_log([](rebound::pg::log_level level, std::string_view m) {
    std::printf("    [%s] %.*s\n", level == rebound::pg::log_level::warning ? "warn" : "info",
                static_cast<int>(m.size()), m.data());
  });

  int n = 0;
  const auto write = [&](rebound::pg::session_token* token) {
    const std::string id = "snap-" + std::to_string(++n);
    router.write([&](connection& c) { c.exec("INSERT INTO snapshots VALUES ($1, 'v1')", {id}); },
                 token);
    return id;
  };

  {
    const auto id = write(nullptr);
    connection replica(db.standby_conninfo());
    const auto row = find_snapshot(replica, id);
    std::printf("  %-28s %-10s (the 404 of scenario 001)\n",
                "naive replica read:", row ? "found" : "NOT FOUND");
  }
  {
    const auto id = write(nullptr);
    rebound::pg::read_report rep;
    const auto row =
        router.read([&](connection& c) { return find_snapshot(c, id); }, {.report = &rep});
    show("router (retry, then primary):", row, rep);
  }
  {
    rebound::pg::session_token token;
    const auto id = write(&token);
    rebound::pg::read_report rep;
    const auto row = router.read([&](connection& c) { return find_snapshot(c, id); },
                                 {.token = &token, .report = &rep});
    show(("router + token " + token.to_string() + ":").c_str(), row, rep);
  }
  {
    rebound::pg::read_report rep;
    const auto row = router.read([&](connection& c) { return find_snapshot(c, "no-such-id"); },
                                 {.report = &rep});
    show("router, a row that never was:", row, rep);
  }
  const auto c = router.counters();
  std::printf("\ncounters:");
  for (std::size_t i = 0; i < rebound::pg::read_outcome_count; ++i) {
    std::printf(" %s=%llu",
                std::string(to_string(static_cast<rebound::pg::read_outcome>(i))).c_str(),
                static_cast<unsigned long long>(c.reads[i]));
  }
  std::printf("\nstopping both servers.\n");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "replica_router: %s\n", e.what());
  return 1;
}
