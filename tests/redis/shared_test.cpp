// The fleet-wide budget and breaker against a real redis-server on loopback
// (tools/redis_server), started by the tests and stopped afterwards.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "../../src/redis/internal.hpp"
#include "rebound/config.hpp"
#include "rebound/pipeline.hpp"
#include "rebound/redis/metrics.hpp"
#include "rebound/redis/shared.hpp"
#include "rebound/testing/simulated_clock.hpp"
#include "redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using rebound::redis::link;
using rebound::redis::shared_breaker;
using rebound::redis::shared_budget;

rebound::redis::options options_for(const rebound::testing::redis_server& s,
                                    const std::string& prefix) {
  rebound::redis::options o;
  o.port = s.port();
  o.key_prefix = prefix;
  o.reconnect = rebound::redis::reconnect_backoff(20ms, 100ms);
  return o;
}

// Waits until `done()` holds, at most `limit`. A real wait: what it waits for
// happens on the link's thread, in conversation with a real redis-server.
template <class F>
bool eventually(F done, std::chrono::milliseconds limit = 2s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(5ms);  // polling another thread and a server process
  }
  return true;
}

std::shared_ptr<link> connected(const rebound::redis::options& o) {
  auto l = std::make_shared<link>(o);
  EXPECT_TRUE(l->wait_until_available(5s));  // a real wait: the link connects in the background
  return l;
}

TEST(SharedBudget, TwoClientsTogetherNeverExceedTheRatioBudget) {
  rebound::testing::redis_server server;
  auto o = options_for(server, "t1");
  o.lease_size = 3;
  auto a_link = connected(o);
  auto b_link = connected(o);
  // No calls deposited: the fleet's floor alone, 2/s over 10 s = 20 retries.
  const shared_budget::ratio r{.ratio = 0.1, .min_per_second = 2, .window = 10s};
  shared_budget a(a_link, "payments", r);
  shared_budget b(b_link, "payments", r);
  int granted = 0;
  for (int i = 0; i < 100; ++i) {
    granted += a.try_acquire({}) ? 1 : 0;
    granted += b.try_acquire({}) ? 1 : 0;
  }
  EXPECT_LE(granted, 20);
  EXPECT_GE(granted, 20 - 2 * (o.lease_size - 1));  // leases may hold a few back
  EXPECT_EQ(a.fallback_decisions() + b.fallback_decisions(), 0U);
  // Two local budgets would have granted 20 each.
  rebound::ratio_budget local_a(r);
  rebound::ratio_budget local_b(r);
  int local = 0;
  for (int i = 0; i < 100; ++i)
    local += (local_a.try_acquire({}) ? 1 : 0) + (local_b.try_acquire({}) ? 1 : 0);
  EXPECT_EQ(local, 40);
}

TEST(SharedBudget, TwoClientsShareOneTokenBucket) {
  rebound::testing::redis_server server;
  auto o = options_for(server, "t2");
  o.lease_size = 2;
  o.refusal_hold = 0ms;  // ask Redis at every decision: the refunds below count at once
  auto a_link = connected(o);
  auto b_link = connected(o);
  const shared_budget::token_bucket tb{.capacity = 50, .retry_cost = 5};
  shared_budget a(a_link, "search", tb);
  shared_budget b(b_link, "search", tb);
  int granted = 0;
  for (int i = 0; i < 40; ++i) granted += (a.try_acquire({}) ? 1 : 0) + (b.try_acquire({}) ? 1 : 0);
  EXPECT_LE(granted, 10);  // 50 tokens / 5
  EXPECT_GE(granted, 8);
  // Successes refund the fleet (batched): 40 first-try successes = 40 tokens = 8 retries.
  for (int i = 0; i < 40; ++i) a.on_success(nullptr);
  a.flush();
  int after = 0;
  for (int i = 0; i < 20; ++i) after += b.try_acquire({}) ? 1 : 0;
  EXPECT_GE(after, 7);
  EXPECT_LE(after, 8 + 1);
}

TEST(SharedBudget, TheSuccessPathBatchesItsDeposits) {
  rebound::testing::redis_server server;
  auto o = options_for(server, "t3");
  o.flush_interval = 50ms;
  auto l = connected(o);
  shared_budget budget(l, "catalog", shared_budget::ratio{});
  const auto before = l->commands();
  constexpr int calls = 20000;
  for (int i = 0; i < calls; ++i) {
    budget.on_call();
    budget.on_success(nullptr);
  }
  budget.flush();
  const auto used = l->commands() - before;
  EXPECT_LT(static_cast<double>(used) / calls, 0.01)
      << used << " commands for " << calls << " calls";
  // The deposits arrived: the hash holds all the calls.
  const auto fields = l->call({"HGETALL", "t3:budget:catalog"});
  ASSERT_TRUE(fields);
  long long deposited = 0;
  for (std::size_t i = 0; i + 1 < fields->elements.size(); i += 2) {
    if (fields->elements[i].text.starts_with("c"))
      deposited += std::stoll(fields->elements[i + 1].text);
  }
  EXPECT_EQ(deposited, calls);
}

TEST(SharedBudget, RedisStoppedMidTestFallsBackLocallyThenSharesAgain) {
  rebound::testing::redis_server server;
  auto o = options_for(server, "t4");
  o.command_timeout = 20ms;
  o.lease_size = 1;
  auto l = connected(o);
  std::atomic<int> down_events{0};
  l->on_status([&](const rebound::redis::status_event& e) {
    if (e.type == rebound::redis::status_event::kind::unavailable) ++down_events;
  });
  shared_budget budget(l, "orders", shared_budget::ratio{.ratio = 0.5, .min_per_second = 100});
  ASSERT_TRUE(budget.try_acquire({}));
  EXPECT_EQ(budget.shared_decisions(), 1U);

  server.stop();
  for (int i = 0; i < 20; ++i) {
    const auto start = std::chrono::steady_clock::now();
    (void)budget.try_acquire({});
    // Never more than the command timeout (plus scheduling slack) per decision.
    EXPECT_LT(std::chrono::steady_clock::now() - start, o.command_timeout + 200ms);
  }
  EXPECT_GE(budget.fallback_decisions(), 19U);
  {
    rebound::metrics::registry reg;
    const auto handle = rebound::redis::track(reg, budget);
    const std::string text = reg.expose();
    EXPECT_NE(
        text.find(
            "rebound_fleet_budget_decisions_total{dependency=\"orders\",source=\"shared\"} 1\n"),
        std::string::npos)
        << text;
    EXPECT_NE(
        text.find(
            "rebound_fleet_budget_decisions_total{dependency=\"orders\",source=\"fallback\"} " +
            std::to_string(budget.fallback_decisions()) + "\n"),
        std::string::npos)
        << text;
  }
  EXPECT_TRUE(eventually([&] { return down_events.load() > 0; }));  // on the link's thread
  EXPECT_EQ(down_events.load(), 1);
  rebound::metrics::registry up_reg;
  const auto up_handle = rebound::redis::track(up_reg, budget);
  EXPECT_NE(up_reg.expose().find("rebound_redis_up{dependency=\"orders\"} 0\n"), std::string::npos);

  server.start();
  ASSERT_TRUE(l->wait_until_available(5s));
  EXPECT_NE(up_reg.expose().find("rebound_redis_up{dependency=\"orders\"} 1\n"), std::string::npos);
  const auto shared_before = budget.shared_decisions();
  EXPECT_TRUE(budget.try_acquire({}));
  EXPECT_EQ(budget.shared_decisions(), shared_before + 1);
}

// Replies as the link's contexts read them (hiredis' reader, bounded).
std::optional<rebound::redis::reply> read_one(std::string_view wire, int* err) {
  redisReader* r = redisReaderCreate();
  rebound::redis::detail::limit_reply_size(r);
  std::optional<rebound::redis::reply> out;
  void* obj = nullptr;
  if (redisReaderFeed(r, wire.data(), wire.size()) == REDIS_OK &&
      redisReaderGetReply(r, &obj) == REDIS_OK && obj != nullptr) {
    out = rebound::redis::detail::convert(static_cast<redisReply*>(obj));
    freeReplyObject(obj);
  }
  *err = r->err;
  redisReaderFree(r);
  return out;
}

TEST(RedisReplies, AnArrayDeclaringMoreThanAMillionElementsIsRefusedBeforeAnyIsAllocated) {
  // hiredis 0.14 would allocate 7 GB of element pointers for this header
  // alone (fuzz_redis_reply found it); the link refuses it as hiredis
  // refuses a failed allocation: REDIS_ERR_OOM, and the connection breaks.
  int err = 0;
  EXPECT_FALSE(read_one("*888888881\r\n", &err));
  EXPECT_EQ(err, REDIS_ERR_OOM);
  const std::string over =
      "*" + std::to_string(rebound::redis::detail::max_reply_elements + 1) + "\r\n";
  EXPECT_FALSE(read_one(over, &err));
  EXPECT_EQ(err, REDIS_ERR_OOM);
  // Up to the limit, and everything else, reads as before.
  const std::string at = "*" + std::to_string(rebound::redis::detail::max_reply_elements) + "\r\n";
  EXPECT_FALSE(read_one(at, &err));  // incomplete: waits for its elements
  EXPECT_EQ(err, 0);
  const auto a = read_one("*3\r\n:1\r\n$2\r\nok\r\n*1\r\n+x\r\n", &err);
  ASSERT_TRUE(a);
  EXPECT_EQ(err, 0);
  ASSERT_EQ(a->elements.size(), 3U);
  EXPECT_EQ(a->elements[1].text, "ok");
  ASSERT_EQ(a->elements[2].elements.size(), 1U);
  const auto nil = read_one("*-1\r\n", &err);
  ASSERT_TRUE(nil);
  EXPECT_EQ(nil->type, rebound::redis::reply::kind::nil);
  EXPECT_EQ(err, 0);
}

TEST(SharedBudget, AHungRedisCostsAtMostTheTimeout) {
  rebound::testing::redis_server server;
  auto o = options_for(server, "t5");
  o.command_timeout = 30ms;
  o.lease_size = 1;
  o.fallback = rebound::redis::fallback_mode::closed;
  auto l = connected(o);
  shared_budget budget(l, "ledger", shared_budget::ratio{.ratio = 0.5, .min_per_second = 100});
  ASSERT_TRUE(budget.try_acquire({}));
  server.pause();  // accepts nothing, answers nothing, closes nothing
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(budget.try_acquire({}));  // fail closed
  EXPECT_LT(std::chrono::steady_clock::now() - start, o.command_timeout + 200ms);
  // Marked down by this call's timeout, or by the link thread's own command
  // (a flush) that held the link meanwhile and timed out at the same moment.
  EXPECT_TRUE(eventually([&] { return !l->available(); }, 1s));
  const auto again = std::chrono::steady_clock::now();
  EXPECT_FALSE(budget.try_acquire({}));  // known down: no wait at all
  EXPECT_LT(std::chrono::steady_clock::now() - again, 50ms);
  server.resume();
}

TEST(SharedBreaker, AnOpenBreakerPublishedByOneClientIsSeenByAnother) {
  rebound::testing::redis_server server;
  auto o = options_for(server, "t6");
  o.poll_interval = 20ms;
  auto a_link = connected(o);
  auto b_link = connected(o);
  const rebound::breaker_options bo{.failure_threshold = 3, .open_duration = 400ms};
  shared_breaker a(a_link, "inventory", bo);
  shared_breaker b(b_link, "inventory", bo);
  for (int i = 0; i < 3; ++i) {
    auto p = a.try_acquire();
    ASSERT_TRUE(p);
    a.record(p, false);
  }
  EXPECT_EQ(a.state(), rebound::breaker_state::open);
  // b's own poll task (every 20 ms) brings the news; a real wait, bounded.
  EXPECT_TRUE(eventually([&] { return b.state() == rebound::breaker_state::open; }));
  EXPECT_FALSE(b.try_acquire());  // rejected at once, without a call of its own
  EXPECT_EQ(b.local().state(), rebound::breaker_state::closed);  // b itself saw no failure

  // After the open time (no poll needed: each knows when it ends), one probe
  // for the whole fleet; every other call is rejected.
  std::this_thread::sleep_for(450ms);  // bounded: the open key's TTL runs in Redis, in real time
  auto pa = a.try_acquire();
  auto pb = b.try_acquire();
  EXPECT_EQ((pa ? 1 : 0) + (pb ? 1 : 0), 1);
  EXPECT_FALSE(a.try_acquire());
  EXPECT_FALSE(b.try_acquire());
  auto& prober = pa ? a : b;
  prober.record(pa ? pa : pb, true);  // the probe succeeded: closed for everyone
  auto& other = pa ? b : a;
  EXPECT_TRUE(eventually([&] { return other.state() == rebound::breaker_state::closed; }));
  EXPECT_TRUE(b.try_acquire());
  EXPECT_TRUE(a.try_acquire());
}

TEST(RedisLink, WrongPasswordNeverShowsThePassword) {
  rebound::testing::redis_server server({.password = "right-secret"});
  auto o = options_for(server, "t7");
  o.password = "wrong-secret-123";
  std::vector<std::string> messages;
  std::mutex mu;
  link l(o);
  l.on_status([&](const rebound::redis::status_event& e) {
    std::lock_guard lock(mu);
    messages.push_back(e.message);
  });
  EXPECT_FALSE(l.wait_until_available(300ms));
  std::lock_guard lock(mu);
  ASSERT_FALSE(messages.empty());  // the failed first connection is reported
  EXPECT_NE(messages.front().find("authentication failed"), std::string::npos) << messages.front();
  for (const auto& m : messages) EXPECT_EQ(m.find("secret"), std::string::npos) << m;

  o.password = "right-secret";
  link good(o);
  EXPECT_TRUE(good.wait_until_available(5s));
  const auto pong = good.call({"PING"});
  ASSERT_TRUE(pong);
  EXPECT_EQ(pong->text, "PONG");
}

TEST(RedisOptions, FromJsonAndEnvironment) {
  auto o = rebound::redis::options_from_json(
      R"({"host": "10.0.0.5", "port": 6380, "password": "p", "key_prefix": "app",
          "command_timeout": "15ms", "lease_size": 20, "fallback": "closed"})");
  EXPECT_EQ(o.host, "10.0.0.5");
  EXPECT_EQ(o.port, 6380);
  EXPECT_EQ(o.command_timeout, 15ms);
  EXPECT_EQ(o.lease_size, 20);
  EXPECT_EQ(o.fallback, rebound::redis::fallback_mode::closed);
  o = rebound::redis::apply_env(o, "APP_REDIS",
                                {{"APP_REDIS_PORT", "7000"},
                                 {"APP_REDIS_FALLBACK", "open"},
                                 {"APP_REDIS_FLUSH_INTERVAL", "250ms"}});
  EXPECT_EQ(o.port, 7000);
  EXPECT_EQ(o.fallback, rebound::redis::fallback_mode::open);
  EXPECT_EQ(o.flush_interval, 250ms);
  // The budget's kind and settings, the share and the fleet's membership.
  o = rebound::redis::options_from_json(
      R"({"budget": {"kind": "token_bucket", "capacity": 200, "retry_cost": 4},
          "share": false, "expected_fleet_size": 32, "member_ttl": "30s", "fleet_probes": 2})");
  const auto* bucket = std::get_if<rebound::token_bucket_budget::options>(&o.budget);
  ASSERT_NE(bucket, nullptr);
  EXPECT_EQ(bucket->capacity, 200);
  EXPECT_EQ(bucket->retry_cost, 4);
  EXPECT_EQ(bucket->timeout_retry_cost, 10);  // the default
  EXPECT_FALSE(o.share);
  EXPECT_EQ(o.expected_fleet_size, 32);
  EXPECT_EQ(o.member_ttl, 30s);
  EXPECT_EQ(o.fleet_probes, 2);
  o = rebound::redis::apply_env({}, "APP_REDIS",
                                {{"APP_REDIS_BUDGET_RATIO", "0.05"},
                                 {"APP_REDIS_BUDGET_WINDOW", "30s"},
                                 {"APP_REDIS_SHARE", "true"},
                                 {"APP_REDIS_EXPECTED_FLEET_SIZE", "100"}});
  const auto* ratio = std::get_if<rebound::ratio_budget::options>(&o.budget);
  ASSERT_NE(ratio, nullptr);
  EXPECT_EQ(ratio->ratio, 0.05);
  EXPECT_EQ(ratio->window, 30s);
  EXPECT_EQ(ratio->min_per_second, 10);
  EXPECT_EQ(o.expected_fleet_size, 100);
}

TEST(RedisOptions, BadInputNamesTheFieldAndNeverThePassword) {
  const auto expect = [](const std::function<void()>& f, const std::string& field,
                         const std::string& text) {
    try {
      f();
      ADD_FAILURE() << "accepted";
    } catch (const rebound::config_error& e) {
      EXPECT_EQ(e.field(), field) << e.what();
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
    }
  };
  using rebound::redis::apply_env;
  using rebound::redis::options_from_json;
  expect([] { (void)options_from_json(R"({"port": 70000})"); }, "port", "1..65535");
  expect([] { (void)options_from_json(R"({"command_timeout": "0"})"); }, "command_timeout", "1ms");
  expect([] { (void)options_from_json(R"({"fallback": "maybe"})"); }, "fallback",
         "allowed: local, open, closed");
  expect([] { (void)options_from_json(R"({"hots": "x"})"); }, "hots", "unknown key");
  expect([] { (void)options_from_json(R"({"password": 1234})"); }, "password", "expected a string");
  expect([] { (void)options_from_json(R"({"password": "hunter2", )"); }, "(document)",
         "not valid JSON");
  expect([] { (void)apply_env({}, "R", {{"R_LEASE_SIZE", "0"}}); }, "R_LEASE_SIZE", "1..10000");
  // Sentinel: each address is host:port, and a master name goes with them.
  expect([] { (void)options_from_json(R"({"sentinels": ["10.0.0.7"], "master_name": "m"})"); },
         "sentinels[0]", "is not host:port");
  expect(
      [] {
        (void)apply_env({}, "R", {{"R_SENTINELS", "a:26379,b:0"}, {"R_MASTER_NAME", "m"}});
      },
      "R_SENTINELS[1]", "\"b:0\" is not host:port");
  expect([] { (void)options_from_json(R"({"sentinels": ["a:26379"]})"); }, "master_name",
         "Sentinels need the name");
  expect([] { (void)options_from_json(R"({"sentinels": "a:26379"})"); }, "sentinels",
         "expected an array");
  {
    const auto o = apply_env({}, "R", {{"R_SENTINELS", "a:26379,b:26380"}, {"R_MASTER_NAME", "m"}});
    EXPECT_EQ(o.sentinels, (std::vector<std::string>{"a:26379", "b:26380"}));
    EXPECT_EQ(o.master_name, "m");
  }
  // A name that is only the prefix (found by fuzzing: it matched an empty
  // table row and crashed).
  expect([] { (void)apply_env({}, "R", {{"R_", "x"}}); }, "R_", "names no Redis option");
  expect(
      [] {
        (void)apply_env({}, "R", {{"R_PASWORD", "hunter2"}});
      },
      "R_PASWORD", "names no Redis option");
  expect(
      [] {
        (void)apply_env({}, "R", {{"R_RECONNECT_MAX", "1ms"}, {"R_RECONNECT_MIN", "1s"}});
      },
      "R_RECONNECT_MAX", "out of range");
  // A budget key of the other kind is named, with the kind that rules it out.
  expect([] { (void)options_from_json(R"({"budget": {"capacity": 10}})"); }, "budget.capacity",
         "applies to a token_bucket budget; budget.kind is ratio");
  expect([] { (void)options_from_json(R"({"budget": {"kind": "bucket"}})"); }, "budget.kind",
         "allowed: ratio, token_bucket");
  expect([] { (void)options_from_json(R"({"budget": {"window": "1500ms"}})"); }, "budget.window",
         "whole seconds");
  expect([] { (void)apply_env({}, "R", {{"R_BUDGET_RATIO", "2"}}); }, "R_BUDGET_RATIO", "0..1");
  expect(
      [] {
        (void)apply_env({}, "R",
                        {{"R_BUDGET_KIND", "token_bucket"}, {"R_BUDGET_RETRY_COST", "900"}});
      },
      "R_BUDGET_RETRY_COST", "the capacity");
  expect([] { (void)options_from_json(R"({"expected_fleet_size": 0})"); }, "expected_fleet_size",
         "1..1000000");
}

TEST(SharedBudget, HeartbeatsCountTheFleetAndAwayFromRedisEachTakesItsShare) {
  rebound::testing::redis_server server;
  auto o = options_for(server, "share");
  o.command_timeout = 200ms;  // a loaded CI machine: this test is about the share, not speed
  o.member_ttl = 1s;          // a heartbeat every 333 ms
  const shared_budget::ratio r{.ratio = 0.1, .min_per_second = 10, .window = 10s};
  std::vector<std::shared_ptr<link>> links;
  std::vector<std::unique_ptr<shared_budget>> fleet;
  for (int i = 0; i < 4; ++i) {
    links.push_back(connected(o));
    fleet.push_back(std::make_unique<shared_budget>(links.back(), "api", r));
  }
  for (auto& b : fleet) b->flush();  // the first heartbeat of each
  EXPECT_EQ(fleet[3]->fleet_size(), 4);
  // The others saw the fleet as it stood when they beat; their next beats
  // (on the links' threads, every member_ttl / 3) see all four.
  for (auto& b : fleet) {
    EXPECT_TRUE(eventually([&] { return b->fleet_size() == 4; }, 3s)) << b->fleet_size();
  }
  server.stop();
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(eventually([&] { return !links[static_cast<std::size_t>(i)]->available(); }));
  }
  int granted = 0;
  for (auto& b : fleet) {
    for (int i = 0; i < 200; ++i) granted += b->try_acquire({}) ? 1 : 0;
  }
  // The fleet's floor (10/s over 10 s: 100 retries) split four ways, not four floors.
  EXPECT_EQ(granted, 4 * 25);
}

TEST(SharedBudget, ThreadsInTwoProcessesNeverExceedTheFleetBudget) {
  rebound::testing::redis_server server;
  auto o = options_for(server, "t8");
  o.lease_size = 4;
  o.command_timeout = 200ms;  // a loaded CI machine: this test is about the bound, not speed
  auto a_link = connected(o);
  auto b_link = connected(o);
  const shared_budget::ratio r{.ratio = 0.1, .min_per_second = 5, .window = 10s};
  shared_budget a(a_link, "threads", r);
  shared_budget b(b_link, "threads", r);
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      auto& budget = t % 2 == 0 ? a : b;
      for (int i = 0; i < 40; ++i) granted += budget.try_acquire({}) ? 1 : 0;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(granted.load(), 50);  // 5/s x 10 s for the fleet
  EXPECT_GE(granted.load(), 50 - 2 * (o.lease_size - 1));
  EXPECT_EQ(a.fallback_decisions() + b.fallback_decisions(), 0U);
}

TEST(SharedBudget, RefusesSettingsItCannotShare) {
  rebound::testing::redis_server server;
  auto l = connected(options_for(server, "t9"));
  EXPECT_THROW(shared_budget(l, "x", shared_budget::ratio{.ratio = 2}), rebound::config_error);
  EXPECT_THROW(shared_budget(l, "x", shared_budget::ratio{.window = 1500ms}),
               rebound::config_error);
  EXPECT_THROW(shared_budget(l, "x", shared_budget::token_bucket{.capacity = 3, .retry_cost = 5}),
               rebound::config_error);
}

// The link's schedules (flushes, reconnects) run on the injected clock: on a
// simulated clock nothing is flushed and no reconnection is tried until the
// test moves time. The waits left are real, bounded and on another thread
// or process: the link's thread and redis-server.
TEST(RedisLink, ItsSchedulesRunOnTheInjectedClock) {
  rebound::testing::redis_server server;
  rebound::testing::simulated_clock clock(rebound::testing::simulated_clock::mode::manual);
  auto o = options_for(server, "t10");
  o.flush_interval = 100ms;
  auto l = std::make_shared<link>(o, clock);
  ASSERT_TRUE(l->wait_until_available(5s));  // the first connection is due at once
  shared_budget budget(l, "clocked", shared_budget::ratio{});
  for (int i = 0; i < 50; ++i) budget.on_call();
  const auto deposited = [&] {
    const auto r = l->call({"HGETALL", "t10:budget:clocked"});
    long long n = 0;
    for (std::size_t i = 0; r && i + 1 < r->elements.size(); i += 2) {
      if (r->elements[i].text.starts_with("c")) n += std::stoll(r->elements[i + 1].text);
    }
    return n;
  };
  EXPECT_EQ(deposited(), 0);  // no flush yet: simulated time has not moved
  clock.advance(100ms);       // the flush task is due
  EXPECT_TRUE(eventually([&] { return deposited() == 50; }));

  // Down: the reconnection waits for simulated time too.
  server.stop();
  (void)l->call({"PING"});  // fails: the link is marked down
  EXPECT_TRUE(eventually([&] { return !l->available(); }));
  server.start();
  EXPECT_FALSE(l->wait_until_available(300ms));  // time stands still: no attempt yet
  clock.advance(100ms);  // past the first reconnect wait (20 ms back-off, equal jitter)
  EXPECT_TRUE(l->wait_until_available(5s));
}

TEST(SharedBreaker, PipelinesInTwoProcessesShareOneCircuit) {
  rebound::testing::redis_server server;
  // The listener runs on the link's thread (its poll): declared before the
  // breakers, so it outlives them, and read under its lock.
  std::mutex heard_mu;
  std::vector<std::pair<rebound::breaker_state, rebound::breaker_state>> heard;
  const auto heard_now = [&] {
    const std::lock_guard g(heard_mu);
    return heard;
  };
  auto o = options_for(server, "sb-pipeline");
  auto a_link = connected(o);
  auto b_link = connected(o);
  const rebound::breaker_options bo{.failure_threshold = 2, .open_duration = 30s};
  auto a_breaker = std::make_shared<shared_breaker>(a_link, "ledger", bo);
  auto b_breaker = std::make_shared<shared_breaker>(b_link, "ledger", bo);
  b_breaker->on_state_change([&](rebound::breaker_state f, rebound::breaker_state t) {
    const std::lock_guard g(heard_mu);
    heard.emplace_back(f, t);
  });
  const auto policy = rebound::retry_policy{}.stop(rebound::stop::after_attempts(1));
  const auto a = rebound::pipeline(policy).breaker(a_breaker);
  const auto b = rebound::pipeline(policy).breaker(b_breaker);
  for (int i = 0; i < 2; ++i) {
    EXPECT_THROW(a.execute([]() -> int { throw std::runtime_error("ledger down"); }),
                 std::exception);
  }
  EXPECT_EQ(a_breaker->state(), rebound::breaker_state::open);
  // The other process's pipeline refuses at once, once its poll saw the open state.
  EXPECT_TRUE(eventually([&] { return b_breaker->state() == rebound::breaker_state::open; }));
  int calls = 0;
  EXPECT_THROW(b.execute([&] { return ++calls; }), rebound::circuit_open_error);
  EXPECT_EQ(calls, 0);
  // An operator closes it for everyone.
  b_breaker->reset();
  EXPECT_TRUE(eventually([&] { return a_breaker->state() == rebound::breaker_state::closed; }));
  EXPECT_EQ(a.execute([] { return 7; }), 7);
  const auto seen = heard_now();
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(seen.front().second, rebound::breaker_state::open);
  EXPECT_EQ(seen.back().second, rebound::breaker_state::closed);
  // Isolation reaches the other process too.
  a_breaker->isolate();
  EXPECT_TRUE(eventually([&] { return b_breaker->state() == rebound::breaker_state::open; }));
  EXPECT_THROW(b.execute([&] { return ++calls; }), rebound::circuit_open_error);
  a_breaker->reset();
}

}  // namespace
