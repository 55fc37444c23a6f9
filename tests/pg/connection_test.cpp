// The parts of rebound::pg that need no server: WAL positions, redaction,
// option parsing and validation.
#include <gtest/gtest.h>

#include "rebound/config.hpp"
#include "rebound/pg/connection.hpp"
#include "rebound/pg/router.hpp"

namespace {

using namespace std::chrono_literals;
using rebound::pg::lsn;

TEST(Lsn, ParsesAndPrintsPgLsnText) {
  const auto l = lsn::parse("16/B374D848");
  EXPECT_EQ(l.value, (0x16ULL << 32) | 0xB374D848ULL);
  EXPECT_EQ(l.to_string(), "16/B374D848");
  EXPECT_EQ(lsn::parse("0/0").value, 0U);
  EXPECT_LT(lsn::parse("0/FFFFFFFF"), lsn::parse("1/0"));
}

TEST(Lsn, RejectsWhatIsNotAPosition) {
  for (const char* bad : {"", "16", "16/", "/1", "G/1", "1/2/3", "123456789/0", "-1/0"}) {
    try {
      (void)lsn::parse(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find('"' + std::string(bad) + '"'), std::string::npos);
    }
  }
}

TEST(SessionToken, KeepsTheNewestPositionAndRoundTrips) {
  rebound::pg::session_token t;
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.to_string(), "");
  t.observe(lsn::parse("0/200"));
  t.observe(lsn::parse("0/100"));
  EXPECT_EQ(t.to_string(), "0/200");
  EXPECT_EQ(rebound::pg::session_token::parse("0/200").position(), t.position());
  EXPECT_TRUE(rebound::pg::session_token::parse("").empty());
  rebound::pg::session_token unknown;
  unknown.mark_unknown();
  EXPECT_FALSE(unknown.empty());
  EXPECT_EQ(unknown.to_string(), "primary");
  EXPECT_TRUE(rebound::pg::session_token::parse("primary").unknown());
  EXPECT_THROW((void)rebound::pg::session_token::parse("cookie"), std::invalid_argument);
}

TEST(Redact, HidesPasswordsInEveryForm) {
  using rebound::pg::redact_conninfo;
  EXPECT_EQ(redact_conninfo("host=db password=s3cret user=app"), "host=db password=*** user=app");
  EXPECT_EQ(redact_conninfo("host=db password = 's3 cr\\'et' user=app"),
            "host=db password = *** user=app");
  EXPECT_EQ(redact_conninfo("postgresql://app:s3cret@db:5432/app"),
            "postgresql://app:***@db:5432/app");
  EXPECT_EQ(redact_conninfo("postgres://db/app?user=app&password=s3cret&sslmode=require"),
            "postgres://db/app?user=app&password=***&sslmode=require");
  EXPECT_EQ(redact_conninfo("host=db user=app"), "host=db user=app");
  EXPECT_EQ(redact_conninfo("host=db\tpassword\t=\tabc&def sslpassword=key-secret"),
            "host=db\tpassword\t=\t*** sslpassword=***");
  EXPECT_EQ(redact_conninfo("postgresql://app:pw?x@db/app"), "postgresql://app:***@db/app");
  EXPECT_EQ(redact_conninfo("host=db passwordfile=x"), "host=db passwordfile=x");
}

TEST(Target, ParseErrorsShowNoPartOfTheString) {
  // libpq quotes the part it could not parse; that part can be a password.
  for (const std::string bad :
       {"postgresql://app:hunter2@[::1/db", "postgresql://app:hunt%zzer2@db/x",
        "host=db password=my secretpart"}) {
    try {
      (void)rebound::pg::describe_target(bad);
      ADD_FAILURE() << "parsed " << bad;
    } catch (const rebound::pg::error& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.find("hunter2"), std::string::npos) << what;
      EXPECT_EQ(what.find("hunt%zzer2"), std::string::npos) << what;
      EXPECT_EQ(what.find("secretpart"), std::string::npos) << what;
      EXPECT_NE(what.find("does not parse"), std::string::npos) << what;
    }
  }
}

TEST(Target, SameServerComparesWhereNotWho) {
  using rebound::pg::same_server;
  EXPECT_TRUE(same_server("host=db port=5432 dbname=app user=a",
                          "host=db dbname=app user=b password=x"
                          " port=5432"));
  EXPECT_FALSE(same_server("host=db port=5432 dbname=app", "host=db port=5433 dbname=app"));
  EXPECT_FALSE(same_server("service=primary", "service=replica"));
  EXPECT_FALSE(same_server("host=db dbname=app", "host=db dbname=other"));
}

TEST(Lsn, AnInsertPositionAtAPageStartBecomesThePageBoundary) {
  using rebound::pg::normalize_insert_lsn;
  constexpr std::uint64_t page = 8192;
  constexpr std::uint64_t segment = 16 * 1024 * 1024;
  EXPECT_EQ(normalize_insert_lsn(lsn{3 * page + 24}, page, segment).value, 3 * page);
  EXPECT_EQ(normalize_insert_lsn(lsn{2 * segment + 40}, page, segment).value, 2 * segment);
  // A record may end 40 bytes into a page that is not a segment's first.
  EXPECT_EQ(normalize_insert_lsn(lsn{3 * page + 40}, page, segment).value, 3 * page + 40);
  EXPECT_EQ(normalize_insert_lsn(lsn{3 * page + 1000}, page, segment).value, 3 * page + 1000);
}

TEST(Target, NamesHostPortAndDatabaseOnly) {
  EXPECT_EQ(rebound::pg::describe_target("host=db port=6543 dbname=app password=x user=u"),
            "db:6543/app");
  EXPECT_EQ(rebound::pg::describe_target("postgresql://u:pw@replica:5433/app"), "replica:5433/app");
  EXPECT_EQ(rebound::pg::describe_target("dbname=app"), "(local socket):5432/app");
  EXPECT_EQ(rebound::pg::describe_target("service=reports dbname=app"), "service reports/app");
  try {
    (void)rebound::pg::describe_target("host=db password='pw-secret");
    FAIL();
  } catch (const rebound::pg::error& e) {
    EXPECT_EQ(e.sqlstate(), "42601");
    EXPECT_EQ(std::string(e.what()).find("pw-secret"), std::string::npos) << e.what();
  }
}

TEST(Errors, ClassifiedBySqlstate) {
  EXPECT_TRUE(rebound::pg::error("08006", "x").connection_lost());
  EXPECT_TRUE(rebound::pg::error("57P01", "x").connection_lost());
  EXPECT_TRUE(rebound::pg::error("40001", "x").transient());
  EXPECT_TRUE(rebound::pg::error("53300", "x").transient());
  EXPECT_FALSE(rebound::pg::error("40001", "x").connection_lost());
  EXPECT_FALSE(rebound::pg::error("42P01", "x").transient());
  EXPECT_FALSE(rebound::pg::error("23505", "x").transient());
}

TEST(RouterOptions, FromJson) {
  const auto o = rebound::pg::router_options_from_json(R"({
      "enabled": false, "replica_retry_min": "10ms", "replica_retry_max": "30ms",
      "lsn_wait_max": "2s", "lsn_poll_min": "1ms", "lsn_poll_max": "4ms",
      "pool_size": 8, "pool_wait": "1s", "seed": 7,
      "replica_breaker": {"failure_threshold": 1, "open_duration": "10s"}})");
  EXPECT_FALSE(o.enabled);
  // The shorthands of earlier versions stand for these policies.
  EXPECT_EQ(o.replica_retry, rebound::pg::one_replica_retry(10ms, 30ms));
  EXPECT_EQ(o.lsn_wait, rebound::pg::lsn_polling(2s, 1ms, 4ms));
  EXPECT_EQ(o.pool_size, 8);
  EXPECT_EQ(o.pool_wait, 1s);
  EXPECT_EQ(o.seed, 7U);
  EXPECT_EQ(o.replica_breaker.failure_threshold, 1);
  EXPECT_EQ(o.replica_breaker.open_duration, 10s);
  // A maximum of 0 is "no retry", whatever the minimum.
  EXPECT_EQ(rebound::pg::router_options_from_json(R"({"replica_retry_max": "0"})")
                .replica_retry.max_attempts,
            1);
}

void expect_field(const std::function<void()>& f, const std::string& field,
                  const std::string& text) {
  try {
    f();
    ADD_FAILURE() << "accepted; expected an error on " << field;
  } catch (const rebound::config_error& e) {
    EXPECT_EQ(e.field(), field) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

TEST(RouterOptions, BadJsonNamesTheField) {
  using rebound::pg::router_options_from_json;
  expect_field([] { (void)router_options_from_json(R"({"replica_retry_min": 50})"); },
               "replica_retry_min", "duration");
  expect_field([] { (void)router_options_from_json(R"({"replica_retry_min": "300ms"})"); },
               "replica_retry_min", "above replica_retry_max");
  expect_field([] { (void)router_options_from_json(R"({"lsn_poll_min": "0"})"); }, "lsn_poll_min",
               "out of range");
  expect_field([] { (void)router_options_from_json(R"({"pool_size": 0})"); }, "pool_size",
               "1..1000");
  expect_field([] { (void)router_options_from_json(R"({"enabled": "yes"})"); }, "enabled",
               "true or false");
  expect_field([] { (void)router_options_from_json(R"({"replica_rety_max": "1s"})"); },
               "replica_rety_max", "unknown key");
  expect_field(
      [] { (void)router_options_from_json(R"({"replica_breaker": {"failure_threshold": 0}})"); },
      "replica_breaker.failure_threshold", "");
  expect_field([] { (void)router_options_from_json(R"({"lsn_wait_max": "2h"})"); }, "lsn_wait_max",
               "0..1h");
  expect_field([] { (void)router_options_from_json("[1]"); }, "(document)", "object");
}

TEST(RouterOptions, TheRetryRulesArePolicyDocuments) {
  // The defaults are the scenario 001 retry and the 1 ms..20 ms LSN polling.
  const rebound::pg::router_options d;
  const auto retry = d.replica_retry.to_policy();
  EXPECT_EQ(retry.stop(), rebound::stop::after_attempts(2));
  EXPECT_EQ(retry.backoff(), rebound::backoff::constant(50ms));
  EXPECT_EQ(retry.jitter(), rebound::jitter::additive(150ms));
  const auto wait = d.lsn_wait.to_policy();
  EXPECT_EQ(wait.stop(), rebound::stop::before_elapsed(1s));
  EXPECT_EQ(wait.backoff(), rebound::backoff::exponential(2ms, 2.0, 20ms));
  EXPECT_EQ(wait.jitter(), rebound::jitter::equal());

  const auto o = rebound::pg::router_options_from_json(R"({
      "replica_retry": {"max_attempts": 3, "backoff": {"type": "constant", "initial": "20ms"}},
      "lsn_wait": {"before_elapsed": "2s"}})");
  EXPECT_EQ(o.replica_retry.max_attempts, 3);
  EXPECT_EQ(o.replica_retry.initial, 20ms);
  EXPECT_EQ(o.replica_retry.jitter, rebound::jitter::additive(150ms));  // kept from the default
  EXPECT_EQ(o.lsn_wait.before_elapsed, 2s);
  EXPECT_EQ(o.lsn_wait.max_delay, 20ms);

  const auto e = rebound::pg::apply_router_env(
      {}, "APP_PG",
      {{"APP_PG_REPLICA_RETRY_MAX_ATTEMPTS", "4"}, {"APP_PG_LSN_WAIT_BACKOFF_MAX", "50ms"}});
  EXPECT_EQ(e.replica_retry.max_attempts, 4);
  EXPECT_EQ(e.lsn_wait.max_delay, 50ms);

  // Errors name the nested path, or the variable.
  expect_field(
      [] {
        (void)rebound::pg::router_options_from_json(
            R"({"replica_retry": {"backoff": {"initial": "5s", "max": "1s"}}})");
      },
      "replica_retry.backoff.max", "not used by a constant backoff");
  expect_field(
      [] {
        (void)rebound::pg::router_options_from_json(
            R"({"lsn_wait": {"backoff": {"initial": "5s", "max": "1s"}}})");
      },
      "lsn_wait.backoff.max", "less than backoff.initial");
  expect_field(
      [] {
        (void)rebound::pg::apply_router_env({}, "APP_PG",
                                            {{"APP_PG_REPLICA_RETRY_MAX_ATTEMPTS", "0"}});
      },
      "APP_PG_REPLICA_RETRY_MAX_ATTEMPTS", "1..1000000");
}

TEST(RouterOptions, FromEnvironment) {
  using rebound::pg::apply_router_env;
  const auto o = apply_router_env({}, "APP_PG",
                                  {{"APP_PG_ENABLED", "off"},
                                   {"APP_PG_REPLICA_RETRY_MIN_MS", "20"},
                                   {"APP_PG_REPLICA_RETRY_MAX", "80ms"},
                                   {"APP_PG_LSN_WAIT_MAX_MS", "1500"},
                                   {"APP_PG_POOL_SIZE", "2"},
                                   {"APP_PG_REPLICA_BREAKER_OPEN_DURATION", "9s"},
                                   {"OTHER_THING", "ignored"}});
  EXPECT_FALSE(o.enabled);
  EXPECT_EQ(o.replica_retry, rebound::pg::one_replica_retry(20ms, 80ms));
  EXPECT_EQ(o.lsn_wait.before_elapsed, 1500ms);
  EXPECT_EQ(o.pool_size, 2);
  EXPECT_EQ(o.replica_breaker.open_duration, 9s);

  expect_field(
      [] {
        (void)apply_router_env({}, "APP_PG", {{"APP_PG_REPLICA_RETRY_MAX_MS", "x"}});
      },
      "APP_PG_REPLICA_RETRY_MAX_MS", "not an integer");
  expect_field(
      [] {
        (void)apply_router_env({}, "APP_PG", {{"APP_PG_RETRY_MAX", "1s"}});
      },
      "APP_PG_RETRY_MAX", "names no router option");
  expect_field(
      [] {
        (void)apply_router_env({}, "APP_PG", {{"APP_PG_ENABLED", "maybe"}});
      },
      "APP_PG_ENABLED", "not a boolean");
  expect_field(
      [] {
        (void)apply_router_env({}, "APP_PG",
                               {{"APP_PG_POOL_WAIT", "1s"}, {"APP_PG_POOL_WAIT_MS", "1000"}});
      },
      "APP_PG_POOL_WAIT_MS", "both");
  expect_field(
      [] {
        (void)apply_router_env({}, "APP_PG", {{"APP_PG_CONNECT_TIMEOUT", "10ms"}});
      },
      "APP_PG_CONNECT_TIMEOUT", "1s..1h");
  expect_field(
      [] {
        (void)apply_router_env({}, "APP_PG", {{"APP_PG_REPLICA_RETRY_MIN_MS", "500"}});
      },
      "APP_PG_REPLICA_RETRY_MIN_MS", "above replica_retry_max");  // named as written
}

TEST(RouterOptions, ARouterRefusesBadOptions) {
  rebound::pg::router_options o;
  o.pool_size = 0;
  EXPECT_THROW(rebound::pg::router("host=127.0.0.1 port=1", "", o), rebound::config_error);
}

}  // namespace

// Issue 25, item 16: with default router_options a hung standby (SIGSTOP, a
// host gone) blocked reads indefinitely: replica_query_timeout was 0.
// RouterTest.AHungStandbyCostsTheClientBoundAndTripsTheBreaker shows the
// bound at work on a stopped standby; here, that the default has one.
TEST(RouterOptions, TheDefaultBoundsAHungStandby) {
  const rebound::pg::router_options o;
  EXPECT_GT(o.replica_query_timeout, rebound::duration::zero());
  EXPECT_LE(o.replica_query_timeout, std::chrono::seconds(30));
  EXPECT_NO_THROW(o.validate());
}
