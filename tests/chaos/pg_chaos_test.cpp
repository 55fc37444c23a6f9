// Chaos against a real PostgreSQL primary and streaming standby while three
// threads read through the router: the standby crashes (immediate stop) and
// restarts mid-load, then it is promoted. What pg.md promises, measured: no
// read fails or misses (the primary serves what the replica cannot), the
// replica serves again within the breaker's probe time after it returns,
// and a promoted standby sends read-your-writes reads to the primary.
// Real time: real servers, each phase bounded.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "pg_cluster.hpp"
#include "rebound/pg/router.hpp"

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using rebound::pg::connection;
using rebound::pg::read_outcome;

TEST(PgChaos, AStandbyThatCrashesRestartsAndIsPromotedNeverFailsARead) {
  rebound::testing::pg_cluster cluster;
  {
    connection c(cluster.primary_conninfo());
    c.exec("CREATE TABLE items (id bigserial PRIMARY KEY, body text NOT NULL)");
    c.exec("INSERT INTO items (body) SELECT 'row ' || g FROM generate_series(1, 100) g");
  }
  cluster.wait_for_catch_up();
  rebound::pg::router_options o;
  o.replica_query_timeout = 500ms;
  o.connect_timeout = 1s;
  o.replica_breaker.open_duration = 300ms;
  o.warning_interval = 10s;
  rebound::pg::router r(cluster.primary_conninfo(), cluster.standby_conninfo(), o);
  const std::string standby = rebound::pg::describe_target(cluster.standby_conninfo());

  std::atomic<bool> stop{false};
  std::atomic<int> phase{0};  // 0 normal, 1 standby down, 2 standby back
  std::atomic<long> reads{0}, failures{0}, on_replica_after_restart{0};
  std::atomic<std::int64_t> first_replica_after_restart_ns{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      long n = t;
      while (!stop) {
        const std::string id = std::to_string(1 + (n++ % 100));
        try {
          std::string served_by;
          const auto row = r.read([&](connection& c) -> std::optional<std::string> {
            auto res = c.exec("SELECT body FROM items WHERE id = $1", {id});
            served_by = c.target();
            if (res.empty()) return std::nullopt;
            return std::string(res.get(0, 0));
          });
          if (!row) ++failures;  // a row that exists, reported missing
          if (phase == 2 && served_by == standby) {
            if (on_replica_after_restart++ == 0) {
              first_replica_after_restart_ns = steady::now().time_since_epoch().count();
            }
          }
        } catch (const std::exception&) {
          ++failures;
        }
        ++reads;
      }
    });
  }
  std::this_thread::sleep_for(500ms);  // phases of real time: the servers are other processes
  phase = 1;
  cluster.stop_standby(true);  // a crash: no shutdown checkpoint, connections cut
  std::this_thread::sleep_for(1500ms);
  cluster.start_standby();
  const auto back = steady::now();
  phase = 2;
  while (on_replica_after_restart == 0 && steady::now() - back < 10s) {
    std::this_thread::sleep_for(10ms);  // polling the readers' progress
  }
  const auto recovered =
      steady::time_point(steady::duration(first_replica_after_restart_ns.load())) - back;
  std::this_thread::sleep_for(300ms);
  // Promoted: a primary of its own now. Plain reads go on; a read with a
  // session token finds it "not in recovery" and reads the primary.
  cluster.promote_standby();
  std::this_thread::sleep_for(500ms);
  stop = true;
  for (auto& t : threads) t.join();

  EXPECT_EQ(failures.load(), 0) << "reads that failed or missed a row, of " << reads.load();
  EXPECT_GT(reads.load(), 100);
  EXPECT_GT(on_replica_after_restart.load(), 0) << "the replica never served again";
  // The breaker probes 300 ms after it opened; a new connection takes a moment.
  EXPECT_LT(recovered, 5s);
  std::printf("%ld reads, 0 failed; the replica served again %lld ms after it restarted\n",
              reads.load(),
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(recovered).count()));

  rebound::pg::session_token token;
  r.write([](connection& c) { c.exec("INSERT INTO items (body) VALUES ('after promotion')"); },
          &token);
  rebound::pg::read_report rep;
  const auto last = r.read(
      [&](connection& c) -> std::optional<std::string> {
        auto res = c.exec("SELECT body FROM items WHERE body = 'after promotion'");
        if (res.empty()) return std::nullopt;
        return std::string(res.get(0, 0));
      },
      {.token = &token, .report = &rep});
  ASSERT_TRUE(last);  // on the primary: the promoted standby never saw this write
  EXPECT_EQ(rep.outcome, read_outcome::primary_fallback);
}

}  // namespace
