// The replica router on a real PostgreSQL 15 primary and streaming standby
// (tools/pg_cluster). Lag is real: recovery_min_apply_delay holds commits
// back on the standby. One cluster serves the whole file.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "pg_cluster.hpp"
#include "rebound/pg/metrics.hpp"
#include "rebound/pg/router.hpp"
#include "rebound/retry.hpp"
#include "rebound/testing/simulated_clock.hpp"

namespace {

using namespace std::chrono_literals;
using rebound::pg::connection;
using rebound::pg::read_outcome;
using rebound::pg::read_report;
using rebound::pg::router;
using rebound::pg::router_options;

rebound::testing::pg_cluster* cluster = nullptr;

class cluster_env : public ::testing::Environment {
 public:
  void SetUp() override {
    cluster = new rebound::testing::pg_cluster();
    connection c(cluster->primary_conninfo());
    c.exec("CREATE TABLE items (id bigint PRIMARY KEY, body text NOT NULL)");
    c.exec("INSERT INTO items (id, body) VALUES (0, 'warm')");  // for warm_up()
    cluster->wait_for_catch_up();
  }
  void TearDown() override {
    delete cluster;
    cluster = nullptr;
  }
};
[[maybe_unused]] auto* const env = ::testing::AddGlobalTestEnvironment(new cluster_env);

std::atomic<long> next_id{1};

// Inserts a row on the primary and returns its id.
long insert_row(const std::string& body = "hello") {
  const long id = next_id++;
  connection c(cluster->primary_conninfo());
  c.exec("INSERT INTO items (id, body) VALUES ($1, $2)", {std::to_string(id), body});
  return id;
}

// A read that also says which server answered (by port), independently of
// the router's own bookkeeping.
struct found_row {
  std::string body;
  std::string served_by;  // target() of the connection that found it
};

auto read_item(long id) {
  return [id](connection& c) -> std::optional<found_row> {
    auto r = c.exec("SELECT body FROM items WHERE id = $1", {std::to_string(id)});
    if (r.empty()) return std::nullopt;
    return found_row{std::string(r.get(0, 0)), c.target()};
  };
}

std::string primary_target() {
  return "127.0.0.1:" + std::to_string(cluster->primary_port()) + "/postgres";
}
std::string standby_target() {
  return "127.0.0.1:" + std::to_string(cluster->standby_port()) + "/postgres";
}

struct captured_log {
  std::mutex mu;
  std::vector<std::pair<rebound::pg::log_level, std::string>> lines;
  rebound::pg::log_sink sink() {
    return [this](rebound::pg::log_level l, std::string_view m) {
      std::lock_guard lock(mu);
      lines.emplace_back(l, std::string(m));
    };
  }
  int warnings() {
    std::lock_guard lock(mu);
    int n = 0;
    for (const auto& [l, m] : lines) n += l == rebound::pg::log_level::warning ? 1 : 0;
    return n;
  }
};

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(cluster, nullptr);
    if (!cluster->standby_running()) cluster->start_standby();
    cluster->set_apply_delay(0ms);
    cluster->wait_for_catch_up();
  }
};

TEST_F(RouterTest, ServesFromTheReplicaWhenTheRowIsThere) {
  const long id = insert_row("present");
  cluster->wait_for_catch_up();
  router r(cluster->primary_conninfo(), cluster->standby_conninfo());
  ASSERT_TRUE(r.replica_engaged());
  read_report rep;
  const auto row = r.read(read_item(id), {.report = &rep});
  ASSERT_TRUE(row);
  EXPECT_EQ(row->body, "present");
  EXPECT_EQ(row->served_by, standby_target());
  EXPECT_EQ(rep.outcome, read_outcome::replica);
  EXPECT_EQ(r.counters()[read_outcome::replica], 1U);
  EXPECT_EQ(r.counters().primary_reads, 0U);
}

// Opens the router's connections before the timed part of a test, so that a
// slow first connect (ASan, a loaded machine) does not eat the lag window.
// Row 0 is on both servers from the start.
void warm_up(router& r) { ASSERT_TRUE(r.read(read_item(0))); }

TEST_F(RouterTest, ReplicaCatchesUpWithinTheRetryWindow) {
  // The commit is applied on the standby 500 ms late; the retry comes 1.5 s
  // after the first miss, by when it is there.
  cluster->set_apply_delay(500ms);
  router_options o;
  o.replica_retry = rebound::pg::one_replica_retry(1500ms, 1500ms);
  router r(cluster->primary_conninfo(), cluster->standby_conninfo(), o);
  warm_up(r);
  const auto before = r.counters();
  captured_log log;
  r.on_log(log.sink());
  const long id = insert_row("lagging");
  read_report rep;
  const auto row = r.read(read_item(id), {.report = &rep});
  ASSERT_TRUE(row);
  EXPECT_EQ(row->served_by, standby_target());
  EXPECT_EQ(rep.outcome, read_outcome::replica_retry);
  EXPECT_EQ(rep.replica_reads, 2);
  EXPECT_EQ(rep.primary_reads, 0);
  EXPECT_EQ(rep.waited, 1500ms);
  const auto c = r.counters();
  EXPECT_EQ(c[read_outcome::replica_retry], 1U);
  EXPECT_EQ(c[read_outcome::primary_fallback], 0U);
  EXPECT_EQ(c.primary_reads, before.primary_reads);  // the primary was not queried
  EXPECT_EQ(log.warnings(), 0);
}

TEST_F(RouterTest, LagLongerThanTheWindowFallsBackToThePrimary) {
  cluster->set_apply_delay(3000ms);
  router_options o;
  o.replica_retry = rebound::pg::one_replica_retry(50ms, 100ms);
  router r(cluster->primary_conninfo(), cluster->standby_conninfo(), o);
  warm_up(r);
  captured_log log;
  r.on_log(log.sink());
  const long id = insert_row("only on the primary yet");
  read_report rep;
  const auto row = r.read(read_item(id), {.report = &rep});
  ASSERT_TRUE(row);
  EXPECT_EQ(row->body, "only on the primary yet");
  EXPECT_EQ(row->served_by, primary_target());
  EXPECT_EQ(rep.outcome, read_outcome::primary_fallback);
  EXPECT_EQ(rep.replica_reads, 2);
  EXPECT_EQ(rep.primary_reads, 1);
  EXPECT_GE(rep.waited, 50ms);
  EXPECT_LE(rep.waited, 100ms);
  EXPECT_EQ(r.counters()[read_outcome::primary_fallback], 1U);
  EXPECT_EQ(log.warnings(), 1);  // a warning exactly when the primary serves
  // The same counts in a metrics registry, as Prometheus would scrape them.
  rebound::metrics::registry reg;
  const auto handle = rebound::pg::track(reg, r, "items");
  const std::string text = reg.expose();
  EXPECT_NE(text.find("rebound_pg_reads_total{router=\"items\",outcome=\"primary_fallback\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("rebound_pg_replica_state{router=\"items\",state=\"closed\"} 1\n"),
            std::string::npos)
      << text;
}

TEST_F(RouterTest, MaxZeroSkipsTheReplicaRetry) {
  cluster->set_apply_delay(3000ms);
  router_options o;
  o.replica_retry = rebound::pg::one_replica_retry(0ms, 0ms);
  router r(cluster->primary_conninfo(), cluster->standby_conninfo(), o);
  warm_up(r);
  const long id = insert_row();
  read_report rep;
  ASSERT_TRUE(r.read(read_item(id), {.report = &rep}));
  EXPECT_EQ(rep.outcome, read_outcome::primary_fallback);
  EXPECT_EQ(rep.replica_reads, 1);
  EXPECT_EQ(rep.waited, 0ms);
}

TEST_F(RouterTest, ARowOnNeitherIsAGenuineNotFound) {
  router_options o;
  o.replica_retry = rebound::pg::one_replica_retry(20ms, 20ms);
  router r(cluster->primary_conninfo(), cluster->standby_conninfo(), o);
  captured_log log;
  r.on_log(log.sink());
  read_report rep;
  const auto row = r.read(read_item(-1), {.report = &rep});
  EXPECT_FALSE(row);
  EXPECT_EQ(rep.outcome, read_outcome::not_found);
  EXPECT_EQ(rep.replica_reads, 2);
  EXPECT_EQ(rep.primary_reads, 1);
  const auto c = r.counters();
  EXPECT_EQ(c[read_outcome::not_found], 1U);
  // Lag outcomes are untouched: a permanent miss is not a lag event.
  EXPECT_EQ(c[read_outcome::replica_retry], 0U);
  EXPECT_EQ(c[read_outcome::primary_fallback], 0U);
  EXPECT_EQ(c[read_outcome::replica], 0U);
  EXPECT_EQ(log.warnings(), 0);
}

TEST_F(RouterTest, FlagOffReadsThePrimary) {
  cluster->set_apply_delay(3000ms);
  router_options o;
  o.enabled = false;
  router r(cluster->primary_conninfo(), cluster->standby_conninfo(), o);
  EXPECT_FALSE(r.replica_engaged());
  const long id = insert_row();
  read_report rep;
  const auto row = r.read(read_item(id), {.report = &rep});
  ASSERT_TRUE(row);
  EXPECT_EQ(row->served_by, primary_target());
  EXPECT_EQ(rep.outcome, read_outcome::primary);
  EXPECT_EQ(r.counters().replica_reads, 0U);
}

TEST_F(RouterTest, NoDistinctReplicaReadsThePrimary) {
  router same(cluster->primary_conninfo(), cluster->primary_conninfo());
  EXPECT_FALSE(same.replica_engaged());
  router none(cluster->primary_conninfo(), "");
  EXPECT_FALSE(none.replica_engaged());
  const long id = insert_row();
  read_report rep;
  ASSERT_TRUE(none.read(read_item(id), {.report = &rep}));
  EXPECT_EQ(rep.outcome, read_outcome::primary);
  EXPECT_EQ(rep.replica_reads, 0);
}

TEST_F(RouterTest, ATransactionReadRunsInsideItAndNeverOnTheReplica) {
  router r(cluster->primary_conninfo(), cluster->standby_conninfo());
  auto tx = r.begin();
  const long id = next_id++;
  tx.conn().exec("INSERT INTO items (id, body) VALUES ($1, 'uncommitted')", {std::to_string(id)});
  read_report rep;
  // Only the transaction itself can see an uncommitted row.
  const auto row = r.read(read_item(id), {.tx = &tx, .report = &rep});
  ASSERT_TRUE(row);
  EXPECT_EQ(row->body, "uncommitted");
  EXPECT_EQ(rep.outcome, read_outcome::primary);
  EXPECT_EQ(r.counters().replica_reads, 0U);
  tx.rollback();
  EXPECT_FALSE(r.read(read_item(id), {}));  // rolled back: nowhere
}

TEST_F(RouterTest, APassedConnectionIsUsedAsIs) {
  router r(cluster->primary_conninfo(), cluster->standby_conninfo());
  cluster->set_apply_delay(3000ms);
  connection mine(cluster->primary_conninfo());
  const long id = insert_row();
  read_report rep;
  const auto row = r.read(read_item(id), {.on = &mine, .report = &rep});
  ASSERT_TRUE(row);
  EXPECT_EQ(row->served_by, primary_target());
  EXPECT_EQ(rep.replica_reads, 0);
  EXPECT_EQ(r.counters().replica_reads, 0U);
}

TEST_F(RouterTest, ReadYourWritesWaitsForReplayInsteadOfErring) {
  // 300 ms of apply delay, a 2 s wait bound: every write is read back from
  // the replica, with no miss and no primary read.
  cluster->set_apply_delay(300ms);
  router_options o;
  o.lsn_wait.before_elapsed = 2s;
  router r(cluster->primary_conninfo(), cluster->standby_conninfo(), o);
  warm_up(r);
  const auto before = r.counters();
  int errors = 0;
  for (int i = 0; i < 5; ++i) {
    rebound::pg::session_token token;
    const long id = next_id++;
    r.write(
        [&](connection& c) {
          c.exec("INSERT INTO items (id, body) VALUES ($1, 'mine')", {std::to_string(id)});
        },
        &token);
    ASSERT_FALSE(token.empty());
    // The token travels as a string, e.g. in a cookie.
    const auto carried = rebound::pg::session_token::parse(token.to_string());
    read_report rep;
    const auto row = r.read(read_item(id), {.token = &carried, .report = &rep});
    if (!row || row->served_by != standby_target()) ++errors;
    EXPECT_EQ(rep.outcome, read_outcome::replica_retry) << "write " << i;
    EXPECT_GE(rep.lsn_polls, 2);
    EXPECT_GE(rep.waited, 100ms);  // it really waited for the delay
  }
  EXPECT_EQ(errors, 0);
  EXPECT_EQ(r.counters().primary_reads, before.primary_reads);
  EXPECT_EQ(r.counters()[read_outcome::primary_fallback], 0U);
}

TEST_F(RouterTest, ReadYourWritesReadsThePrimaryWhenTheWaitRunsOut) {
  cluster->set_apply_delay(2000ms);
  router_options o;
  o.lsn_wait.before_elapsed = 100ms;
  router r(cluster->primary_conninfo(), cluster->standby_conninfo(), o);
  rebound::pg::session_token token;
  auto tx = r.begin();
  const long id = next_id++;
  tx.conn().exec("INSERT INTO items (id, body) VALUES ($1, 'late')", {std::to_string(id)});
  tx.commit(&token);
  read_report rep;
  const auto row = r.read(read_item(id), {.token = &token, .report = &rep});
  ASSERT_TRUE(row);
  EXPECT_EQ(row->served_by, primary_target());
  EXPECT_EQ(rep.outcome, read_outcome::primary_fallback);
  EXPECT_EQ(rep.replica_reads, 0);  // not read on a replica known to be behind
  EXPECT_LE(rep.waited, 100ms);
}

TEST_F(RouterTest, AStoppedStandbySendsReadsToThePrimaryAndIsNotHammered) {
  rebound::testing::simulated_clock clock;  // the breaker's open time, without sleeping
  router_options o;
  o.replica_breaker.failure_threshold = 2;
  o.replica_breaker.open_duration = 30s;
  router r(cluster->primary_conninfo(), cluster->standby_conninfo(), o, clock);
  captured_log log;
  r.on_log(log.sink());
  const long id = insert_row("durable");
  cluster->wait_for_catch_up();
  ASSERT_TRUE(r.read(read_item(id)));  // the pool now holds a live replica connection

  cluster->stop_standby();
  for (int i = 0; i < 20; ++i) {
    read_report rep;
    const auto row = r.read(read_item(id), {.report = &rep});
    ASSERT_TRUE(row) << "read " << i;
    EXPECT_EQ(row->served_by, primary_target());
    EXPECT_EQ(rep.outcome, read_outcome::replica_error);
    EXPECT_FALSE(rep.replica_error.empty());
  }
  // Two failures open the breaker; the other 18 reads skip the replica.
  EXPECT_EQ(r.counters().replica_failures, 2U);
  EXPECT_EQ(r.replica_state(), rebound::breaker_state::open);
  EXPECT_GE(log.warnings(), 1);

  // Back up, and after the open time one read probes it and closes the breaker.
  cluster->start_standby();
  cluster->wait_for_catch_up();
  clock.advance(31s);
  read_report rep;
  const auto row = r.read(read_item(id), {.report = &rep});
  ASSERT_TRUE(row);
  EXPECT_EQ(row->served_by, standby_target());
  EXPECT_EQ(rep.outcome, read_outcome::replica);
  EXPECT_EQ(r.replica_state(), rebound::breaker_state::closed);
}

TEST_F(RouterTest, AnSqlErrorOnTheReplicaIsNotAReplicaOutage) {
  router r(cluster->primary_conninfo(), cluster->standby_conninfo());
  const auto broken = [](connection& c) -> std::optional<int> {
    c.exec("SELEC 1");  // a bug in the caller's SQL: the primary fails the same way
    return 1;
  };
  try {
    (void)r.read(broken);
    FAIL() << "expected pg::error";
  } catch (const rebound::pg::error& e) {
    EXPECT_EQ(e.sqlstate(), "42601");
    EXPECT_FALSE(e.transient());
  }
  EXPECT_EQ(r.replica_state(), rebound::breaker_state::closed);
}

TEST_F(RouterTest, TheCallersOwnExceptionPropagatesWithoutTouchingThePrimary) {
  router r(cluster->primary_conninfo(), cluster->standby_conninfo());
  EXPECT_THROW((void)r.read([](connection&) -> std::optional<int> {
    throw std::domain_error("parse failure in the caller");
  }),
               std::domain_error);
  EXPECT_EQ(r.counters().primary_reads, 0U);
}

TEST_F(RouterTest, PasswordsNeverReachLogsOrErrors) {
  const std::string secret = "hunter2-secret";
  // A replica address where nothing listens, with a password in it.
  rebound::testing::simulated_clock clock;
  router r(cluster->primary_conninfo(),
           "host=127.0.0.1 port=1 user=postgres password=" + secret + " dbname=postgres", {},
           clock);
  captured_log log;
  r.on_log(log.sink());
  const long id = insert_row();
  read_report rep;
  ASSERT_TRUE(r.read(read_item(id), {.report = &rep}));
  EXPECT_EQ(rep.outcome, read_outcome::replica_error);
  EXPECT_NE(rep.replica_error.find("127.0.0.1:1/postgres"), std::string::npos) << rep.replica_error;
  EXPECT_EQ(rep.replica_error.find(secret), std::string::npos);
  ASSERT_GE(log.warnings(), 1);
  for (const auto& [level, line] : log.lines)
    EXPECT_EQ(line.find(secret), std::string::npos) << line;
}

TEST_F(RouterTest, CancellingDuringTheRetryWaitEndsTheRead) {
  rebound::testing::simulated_clock clock;
  std::stop_source stop;
  clock.on_sleep([&](rebound::duration) { stop.request_stop(); });
  router r(cluster->primary_conninfo(), cluster->standby_conninfo(), {}, clock);
  try {
    (void)r.read(read_item(-2), {.stop = stop.get_token()});
    FAIL() << "expected retry_error";
  } catch (const rebound::retry_error& e) {
    EXPECT_EQ(e.reason(), rebound::stop_reason::cancelled);
  }
  EXPECT_EQ(r.counters().primary_reads, 0U);  // no new step after the cancel
}

TEST_F(RouterTest, ConcurrentReadsShareTheRouter) {
  const long id = insert_row("shared");
  cluster->wait_for_catch_up();
  router r(cluster->primary_conninfo(), cluster->standby_conninfo());
  std::atomic<int> found{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) found += r.read(read_item(id)) ? 1 : 0;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(found.load(), 120);
  EXPECT_EQ(r.counters()[read_outcome::replica], 120U);
  EXPECT_LE(r.counters().replica_reads, 120U);
}

TEST_F(RouterTest, CommittingAnAbortedTransactionFailsLoudly) {
  router r(cluster->primary_conninfo(), cluster->standby_conninfo());
  rebound::pg::session_token token;
  const long id = next_id++;
  {
    auto tx = r.begin();
    tx.conn().exec("INSERT INTO items (id, body) VALUES ($1, 'lost')", {std::to_string(id)});
    EXPECT_THROW(tx.conn().exec("SELECT no_such_column FROM items"), rebound::pg::error);
    try {
      tx.commit(&token);
      FAIL() << "commit of an aborted transaction succeeded";
    } catch (const rebound::pg::error& e) {
      EXPECT_EQ(e.sqlstate(), "25P02");
    }
  }
  EXPECT_TRUE(token.empty());
  EXPECT_FALSE(r.read(read_item(id), {}));  // nothing was written
}

TEST_F(RouterTest, AnUnknownTokenReadsThePrimary) {
  cluster->set_apply_delay(3000ms);
  router r(cluster->primary_conninfo(), cluster->standby_conninfo());
  const long id = insert_row();
  const auto token = rebound::pg::session_token::parse("primary");
  ASSERT_TRUE(token.unknown());
  read_report rep;
  const auto row = r.read(read_item(id), {.token = &token, .report = &rep});
  ASSERT_TRUE(row);
  EXPECT_EQ(row->served_by, primary_target());
  EXPECT_EQ(rep.outcome, read_outcome::primary);
  EXPECT_EQ(rep.replica_reads, 0);
}

TEST_F(RouterTest, AFailingReadIsCountedAsFailed) {
  router r(cluster->primary_conninfo(), "");
  read_report rep;
  EXPECT_THROW((void)r.read(
                   [](connection& c) -> std::optional<int> {
                     c.exec("SELECT 1/0");
                     return 1;
                   },
                   {.report = &rep}),
               rebound::pg::error);
  EXPECT_EQ(rep.outcome, read_outcome::failed);
  EXPECT_EQ(r.counters()[read_outcome::failed], 1U);
}

TEST_F(RouterTest, APooledPrimaryConnectionThatDiedIsReplacedOnce) {
  router_options o;
  o.enabled = false;
  router r(cluster->primary_conninfo(), cluster->standby_conninfo(), o);
  const long id = insert_row();
  ASSERT_TRUE(r.read(read_item(id)));  // one idle primary connection in the pool
  {
    // Kill it server-side, as a primary restart or an idle timeout would.
    connection admin(cluster->primary_conninfo());
    admin.exec(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
        "'rebound-test' AND pid <> pg_backend_pid() AND backend_type = 'client backend'");
  }
  ASSERT_TRUE(r.read(read_item(id)));
  EXPECT_EQ(r.counters().primary_retries, 1U);
}

TEST_F(RouterTest, ABusyReplicaPoolGoesToThePrimaryWithoutMarkingTheReplicaDown) {
  router_options o;
  o.pool_size = 1;
  o.pool_wait = 50ms;
  o.replica_breaker.failure_threshold = 1;
  router r(cluster->primary_conninfo(), cluster->standby_conninfo(), o);
  const long id = insert_row();
  cluster->wait_for_catch_up();
  std::atomic<bool> holding{false};
  std::thread slow([&] {
    (void)r.read([&](connection& c) -> std::optional<int> {
      holding = true;
      c.exec("SELECT pg_sleep(0.5)");  // a slow query holds the only replica connection
      return 1;
    });
  });
  while (!holding) std::this_thread::yield();
  read_report rep;
  const auto row = r.read(read_item(id), {.report = &rep});
  slow.join();
  ASSERT_TRUE(row);
  EXPECT_EQ(rep.outcome, read_outcome::replica_error);
  EXPECT_NE(rep.replica_error.find("stayed busy"), std::string::npos) << rep.replica_error;
  EXPECT_EQ(r.replica_state(), rebound::breaker_state::closed);
}

TEST_F(RouterTest, AReplicaQueryTimeoutSendsASlowReadToThePrimary) {
  router_options o;
  o.replica_query_timeout = 100ms;
  router r(cluster->primary_conninfo(), cluster->standby_conninfo(), o);
  read_report rep;
  const auto row = r.read(
      [&](connection& c) -> std::optional<std::string> {
        if (c.target() == standby_target()) c.exec("SELECT pg_sleep(5)");  // the replica hangs
        return c.target();
      },
      {.report = &rep});
  ASSERT_TRUE(row);
  EXPECT_EQ(*row, primary_target());
  EXPECT_EQ(rep.outcome, read_outcome::replica_error);
  EXPECT_NE(rep.replica_error.find("57014"), std::string::npos) << rep.replica_error;
}

// A standby whose every process is stopped (SIGSTOP) answers nothing: a
// server-side statement_timeout cannot fire. The client's own bound holds
// each read to about replica_query_timeout (new connections to the hung
// server to connect_timeout, 2 s for libpq), counts each as a replica
// failure, and after three the breaker keeps reads off the replica.
TEST_F(RouterTest, AHungStandbyCostsTheClientBoundAndTripsTheBreaker) {
  router_options o;
  o.replica_query_timeout = 300ms;
  o.connect_timeout = 1s;
  router r(cluster->primary_conninfo(), cluster->standby_conninfo(), o);
  warm_up(r);  // a pooled replica connection
  const long id = insert_row("present");
  cluster->wait_for_catch_up();
  cluster->pause_standby();
  struct resume_at_exit {
    rebound::testing::pg_cluster& c;
    ~resume_at_exit() { c.resume_standby(); }
  } resume{*cluster};
  const auto before = r.counters();
  for (int i = 0; i < 4; ++i) {
    read_report rep;
    // Real time here: the bound is on a network boundary, a stopped server.
    const auto start = std::chrono::steady_clock::now();
    const auto row = r.read(read_item(id), {.report = &rep});
    const auto took = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(row) << "read " << i;
    EXPECT_EQ(row->served_by, primary_target()) << "read " << i;
    EXPECT_EQ(rep.outcome, read_outcome::replica_error) << "read " << i;
    // The first on the pooled connection: the statement bound; then new
    // connections: libpq's connect_timeout (1s, which libpq makes 2s).
    EXPECT_LT(took, i == 0 ? 1500ms : 4s) << "read " << i << ": " << rep.replica_error;
    if (i == 0) {
      EXPECT_NE(rep.replica_error.find("57014"), std::string::npos) << rep.replica_error;
    }
  }
  const auto after = r.counters();
  EXPECT_GE(after.replica_failures - before.replica_failures, 3U);
  EXPECT_EQ(r.replica_state(), rebound::breaker_state::open);
  // Once open, a read does not touch the replica at all.
  const auto start = std::chrono::steady_clock::now();
  read_report rep;
  ASSERT_TRUE(r.read(read_item(id), {.report = &rep}));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 500ms);
  EXPECT_NE(rep.replica_error.find("circuit open"), std::string::npos) << rep.replica_error;
}

TEST_F(RouterTest, WarningsAreRateLimitedWithACount) {
  cluster->set_apply_delay(3000ms);
  rebound::testing::simulated_clock clock;
  router_options o;
  o.replica_retry = rebound::pg::one_replica_retry(0ms, 0ms);
  o.warning_interval = 1s;
  router r(cluster->primary_conninfo(), cluster->standby_conninfo(), o, clock);
  captured_log log;
  r.on_log(log.sink());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(r.read(read_item(insert_row())));
  EXPECT_EQ(log.warnings(), 1);
  clock.advance(2s);
  ASSERT_TRUE(r.read(read_item(insert_row())));
  ASSERT_EQ(log.warnings(), 2);
  EXPECT_NE(log.lines.back().second.find("(5 such reads since the last warning)"),
            std::string::npos)
      << log.lines.back().second;
}

TEST_F(RouterTest, TogglingReplicaReadsAtRunTime) {
  router r(cluster->primary_conninfo(), cluster->standby_conninfo());
  EXPECT_TRUE(r.replica_engaged());
  r.set_enabled(false);
  read_report rep;
  (void)r.read(read_item(0), {.report = &rep});
  EXPECT_EQ(rep.replica_reads, 0);
  r.set_enabled(true);
  (void)r.read(read_item(0), {.report = &rep});
  EXPECT_GE(rep.replica_reads, 1);
}

}  // namespace
