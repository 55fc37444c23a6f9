// The async HTTP client against the fault server: a curl multi handle on Asio.
#include "rebound/http/async_client.hpp"

#include <gtest/gtest.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <chrono>

#include "fault_server.hpp"

namespace {

using namespace std::chrono_literals;
using rebound::stop_reason;
using rebound::http::async_client;

struct AsyncHttpTest : ::testing::Test {
  rebound::fault::server server;  // loopback, a free port
  asio::io_context io;            // run by this thread only
  rebound::retry_policy policy =
      rebound::retry_policy{}
          .stop(rebound::stop::after_attempts(30) | rebound::stop::after_elapsed(10s))
          .backoff(rebound::backoff::exponential(20ms, 2.0, 200ms));

  // Runs `body` on `io` to completion (a real run: the transfers are real).
  template <class F>
  void run(F body) {
    std::exception_ptr failure;
    asio::co_spawn(io, body(), [&](std::exception_ptr e) { failure = e; });
    io.run();
    if (failure) std::rethrow_exception(failure);
  }
};

TEST_F(AsyncHttpTest, GetRidesThroughAResumeWindow) {
  async_client http(io.get_executor(), {.policy = policy});
  rebound::http::response r;
  // Requests and URLs are named before co_await: GCC 12 destroys some
  // temporaries of a co_await expression twice.
  const std::string url = server.url("/resume/a?ms=400");
  run([&]() -> asio::awaitable<void> { r = co_await http.get(url); });
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok a\n");
  EXPECT_GT(r.attempts, 1);
}

TEST_F(AsyncHttpTest, ManyRequestsAtOnceShareTheLoop) {
  async_client http(io.get_executor(), {.policy = policy});
  constexpr int n = 20;
  int ok = 0;
  for (int i = 0; i < n; ++i) {
    asio::co_spawn(
        io,
        [&, i]() -> asio::awaitable<void> {
          const std::string url = server.url("/resume/m" + std::to_string(i) + "?ms=300");
          auto r = co_await http.get(url);
          if (r.status == 200 && r.body == "ok m" + std::to_string(i) + "\n") ++ok;
        },
        asio::detached);
  }
  io.run();
  EXPECT_EQ(ok, n);
  EXPECT_GT(server.executed().total, n);  // every one retried at least once
}

TEST_F(AsyncHttpTest, PostWithoutAKeyIsNotReplayed) {
  async_client http(io.get_executor(), {.policy = policy});
  rebound::http::response r;
  const rebound::http::request post{
      .method = "POST", .url = server.url("/resume/p?ms=5000"), .body = "x"};
  run([&]() -> asio::awaitable<void> { r = co_await http.send(post); });
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.reason, stop_reason::not_idempotent);
  EXPECT_EQ(server.executed().executions_by_method.at("POST"), 1);
}

TEST_F(AsyncHttpTest, ResetMidBodyAndTimeoutsAreRetried) {
  const auto three = policy.attempt_timeout(200ms).stop(rebound::stop::after_attempts(3));
  async_client http(io.get_executor(), {.policy = three});
  rebound::http::response reset;
  rebound::call_report hang;
  bool timed_out = false;
  const std::string reset_url = server.url("/reset/r?times=1");
  const std::string hang_url = server.url("/hang/h?ms=600");
  const rebound::call_options report_hang{.report = &hang};
  run([&]() -> asio::awaitable<void> {
    reset = co_await http.get(reset_url);
    try {
      (void)co_await http.get(hang_url, report_hang);
    } catch (const rebound::http::transport_error& e) {
      timed_out = e.kind() == rebound::http::transport_kind::timeout;
    }
  });
  EXPECT_EQ(reset.status, 200);
  EXPECT_EQ(reset.attempts, 2);
  EXPECT_TRUE(timed_out);
  EXPECT_EQ(hang.attempts, 3);
}

TEST_F(AsyncHttpTest, SlotCancellationEndsABackoffAtOnce) {
  async_client http(io.get_executor(), {.policy = policy.backoff(rebound::backoff::constant(1h))});
  asio::cancellation_signal signal;
  std::exception_ptr error;
  const std::string url = server.url("/status/503");
  asio::co_spawn(
      io, http.get(url),
      asio::bind_cancellation_slot(
          signal.slot(), [&](std::exception_ptr e, rebound::http::response) { error = e; }));
  // Cancel once the first attempt has been answered (the loop then sleeps an hour).
  while (server.executed().total == 0) io.run_one_for(100ms);
  io.run_for(50ms);
  signal.emit(asio::cancellation_type::terminal);
  const auto start = std::chrono::steady_clock::now();
  io.run();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  ASSERT_TRUE(error);
  try {
    std::rethrow_exception(error);
  } catch (const rebound::retry_error& e) {
    EXPECT_EQ(e.reason(), stop_reason::cancelled);
  }
  EXPECT_EQ(server.executed().total, 1);
}

TEST_F(AsyncHttpTest, StopTokenAbortsATransferInFlight) {
  async_client http(io.get_executor(), {.policy = policy});
  std::stop_source stop;
  std::exception_ptr error;
  const std::string url = server.url("/hang/s?ms=1500");
  const rebound::call_options with_stop{.stop = stop.get_token()};
  asio::co_spawn(io, http.get(url, with_stop),
                 [&](std::exception_ptr e, rebound::http::response) { error = e; });
  while (server.executed().total == 0) io.run_one_for(100ms);  // the request reached the server
  stop.request_stop();
  const auto start = std::chrono::steady_clock::now();
  io.run();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);  // not the 1.5 s hang
  ASSERT_TRUE(error);
  EXPECT_THROW(std::rethrow_exception(error), rebound::retry_error);
}

}  // namespace
