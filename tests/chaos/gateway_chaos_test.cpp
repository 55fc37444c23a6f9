// Chaos against real gateways: a backend (the fault server) restarted behind
// real nginx and haproxy while rebound's sync and async clients and `rebound
// http` call through them; connections cut mid-body under concurrent load.
// What the documentation promises, measured: reads are ridden out (0 errors
// surfaced), a POST without an idempotency key is never replayed (counted in
// the gateway's own log), the time to recover after the backend is back.
// Real time throughout: these are real processes and real sockets, each
// bounded.
#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "fault_server.hpp"
#include "harness.hpp"
#include "rebound/http/async_client.hpp"
#include "rebound/http/client.hpp"

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using rebound::chaos::haproxy;
using rebound::chaos::nginx;

rebound::retry_policy reads() {
  return rebound::retry_policy{}
      .stop(rebound::stop::after_attempts(40) | rebound::stop::after_elapsed(10s))
      .backoff(rebound::backoff::exponential(20ms, 2.0, 200ms))
      .jitter(rebound::jitter::full());
}

// The backend, restarted on the same port: down for `down`, then up again.
struct restartable_backend {
  int port = rebound::chaos::free_port();
  std::unique_ptr<rebound::fault::server> server =
      std::make_unique<rebound::fault::server>(static_cast<std::uint16_t>(port));
  std::atomic<std::int64_t> back_at_ns{0};  // steady time when it is back
  std::thread restarter;

  void restart_in_background(std::chrono::milliseconds down) {
    server.reset();  // connections refused from now on
    restarter = std::thread([this, down] {
      std::this_thread::sleep_for(down);  // the outage: real time, a process boundary
      server = std::make_unique<rebound::fault::server>(static_cast<std::uint16_t>(port));
      back_at_ns = steady::now().time_since_epoch().count();
    });
  }
  void join() {
    if (restarter.joinable()) restarter.join();
  }
  ~restartable_backend() { join(); }
  [[nodiscard]] steady::time_point back_at() const {
    return steady::time_point(steady::duration(back_at_ns.load()));
  }
};

template <class Gateway>
void reads_ride_through_a_restart(const char* name) {
  restartable_backend backend;
  Gateway gw(backend.port);
  rebound::http::client warm({.policy = reads()});
  ASSERT_EQ(warm.get(gw.url("/status/200")).status, 200) << name;

  backend.restart_in_background(700ms);
  // Sync clients on two threads, an async client on a third, all during the outage.
  std::atomic<int> errors{0}, ok{0}, attempts{0};
  std::atomic<std::int64_t> first_ok_after_ns{0};
  const auto note_ok = [&](int n) {
    ++ok;
    attempts += n;
    std::int64_t expected = 0;
    first_ok_after_ns.compare_exchange_strong(expected, steady::now().time_since_epoch().count());
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      rebound::http::client c({.policy = reads()});
      for (int i = 0; i < 3; ++i) {
        try {
          const auto r = c.get(gw.url("/status/200?t=" + std::to_string(t)));
          if (r.status == 200) {
            note_ok(r.attempts);
          } else {
            ++errors;
          }
        } catch (const std::exception&) {
          ++errors;
        }
      }
    });
  }
  threads.emplace_back([&] {
    asio::io_context io;
    rebound::http::async_client c(io.get_executor(), {.policy = reads()});
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          for (int i = 0; i < 3; ++i) {
            const std::string url = gw.url("/status/200?async");
            const auto r = co_await c.get(url);
            if (r.status == 200) {
              note_ok(r.attempts);
            } else {
              ++errors;
            }
          }
        },
        [&](std::exception_ptr e) {
          if (e) ++errors;
        });
    io.run();
  });
  for (auto& t : threads) t.join();
  backend.join();
  EXPECT_EQ(errors.load(), 0) << name << ": errors surfaced to callers";
  EXPECT_EQ(ok.load(), 9) << name;
  EXPECT_GT(attempts.load(), 9) << name << ": the outage was seen and retried";
  // Time to recover: from the backend's return to the first success through
  // the gateway, bounded by the back-off's cap (200 ms) and some slack.
  const auto recovered = steady::time_point(steady::duration(first_ok_after_ns.load()));
  EXPECT_LT(recovered - backend.back_at(), 1s) << name;
  std::printf("%s: recovered %lld ms after the backend came back; %d attempts for 9 reads\n", name,
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         recovered - backend.back_at())
                                         .count()),
              attempts.load());
}

TEST(GatewayChaos, ReadsRideThroughABackendRestartBehindNginx) {
  reads_ride_through_a_restart<nginx>("nginx");
}

TEST(GatewayChaos, ReadsRideThroughABackendRestartBehindHaproxy) {
  reads_ride_through_a_restart<haproxy>("haproxy");
}

// A POST without a key is sent once, whatever the gateway answers; with a
// key it is retried and the backend executes it once. Counted in nginx's
// own access log, not in rebound's.
TEST(GatewayChaos, APostIsNeverReplayedWithoutAKeyBehindNginx) {
  restartable_backend backend;
  nginx gw(backend.port);
  backend.restart_in_background(600ms);
  rebound::http::client c({.policy = reads()});
  const auto once = c.send({.method = "POST", .url = gw.url("/status/200?no-key"), .body = "x"});
  EXPECT_EQ(once.status, 502);  // nginx: the backend refused the connection
  EXPECT_EQ(once.reason, rebound::stop_reason::not_idempotent);
  EXPECT_EQ(once.attempts, 1);
  const auto keyed = c.send({.method = "POST",
                             .url = gw.url("/status/200"),
                             .body = "x",
                             .idempotency_key = "chaos-key-1"});
  backend.join();
  EXPECT_EQ(keyed.status, 200);
  int no_key = 0, with_key = 0;
  // nginx writes a request's log line after it has sent the response, so the
  // last line can lag the client by a moment: read until the count settles,
  // for at most 2 s (a real wait, at a process boundary).
  const auto give_up = steady::now() + 2s;
  do {
    no_key = with_key = 0;
    for (const auto& line : gw.access_log()) {
      if (line.starts_with("POST /status/200?no-key ")) ++no_key;
      if (line.starts_with("POST /status/200 ") && line.ends_with(" chaos-key-1")) ++with_key;
    }
    if (with_key >= keyed.attempts) break;
    std::this_thread::sleep_for(20ms);
  } while (steady::now() < give_up);
  EXPECT_EQ(no_key, 1) << "a POST without a key reached the gateway more than once";
  EXPECT_EQ(with_key, keyed.attempts);
  EXPECT_GT(with_key, 1);
  EXPECT_EQ(backend.server->executed().executions_by_method["POST"], 1);  // executed once
}

// `rebound http` through haproxy during a restart: a GET rides through
// (exit 0); a POST without a key is sent once (exit 22, haproxy's 503).
TEST(GatewayChaos, TheCliRidesThroughBehindHaproxyAndNeverReplaysAPost) {
  restartable_backend backend;
  haproxy gw(backend.port);
  backend.restart_in_background(600ms);
  rebound::chaos::temp_dir dir("rebound-cli-chaos");
  rebound::chaos::child get({REBOUND_EXE, "http", "--attempts", "40", "--initial", "20ms",
                             "--max-delay", "200ms", gw.url("/status/200?cli-get")},
                            dir.path() / "get.log");
  EXPECT_EQ(get.wait(15s), 0) << get.output();
  rebound::chaos::child post({REBOUND_EXE, "http", "-d", "x", "--attempts", "40", "--initial",
                              "20ms", gw.url("/status/200?cli-post")},
                             dir.path() / "post.log");
  const int status = post.wait(15s);
  backend.join();
  // haproxy logs a request after it has answered it: read until the count
  // has been non-zero and unchanged for 200 ms, for at most 2 s (a real wait,
  // at a process boundary), so a late line is neither missed nor a replay.
  int posts = 0;
  const auto give_up = steady::now() + 2s;
  auto stable_since = steady::now();
  for (int last = -1; steady::now() < give_up; std::this_thread::sleep_for(20ms)) {
    posts = 0;
    for (const auto& line : gw.log()) {
      if (line.find("\"POST /status/200?cli-post") != std::string::npos) ++posts;
    }
    if (posts != last) stable_since = steady::now();
    last = posts;
    if (posts > 0 && steady::now() - stable_since >= 200ms) break;
  }
  EXPECT_EQ(posts, 1) << post.output();
  // Sent during the outage (503) or after it (200): either way once.
  EXPECT_TRUE(status == 22 || status == 0) << status << " " << post.output();
}

// Connections cut mid-body, under concurrent load: every read is retried to
// a complete body; nothing surfaces to the caller.
TEST(GatewayChaos, ConnectionsCutMidBodyUnderLoadAreAllRetried) {
  rebound::fault::server server;
  std::atomic<int> errors{0};
  std::atomic<int> attempts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      rebound::http::client c({.policy = reads()});
      for (int i = 0; i < 10; ++i) {
        try {
          const auto r = c.get(server.url("/reset/cut-" + std::to_string(t) + "-" +
                                          std::to_string(i) + "?times=2&bytes=50"));
          if (r.status != 200 || r.body.empty()) ++errors;
          attempts += r.attempts;
        } catch (const std::exception&) {
          ++errors;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(attempts.load(), 40 * 3);  // two cut bodies, then a whole one, each time
}

}  // namespace
