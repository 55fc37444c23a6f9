// Waiting for a bulkhead slot or a rate limiter's turn in Asio coroutines,
// on simulated time (single-threaded io_context, testing/async.hpp).
#include "rebound/async_limits.hpp"

#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <vector>

#include "rebound/testing/async.hpp"

namespace {

using namespace std::chrono_literals;
using rebound::duration;
using rebound::time_point;
using rebound::testing::simulated_clock;

struct AsyncLimits : ::testing::Test {
  simulated_clock clock;
  asio::io_context io;
  std::vector<std::pair<int, duration>> got;  // (caller, when it got its slot/turn); -1: refused
  time_point start = clock.now();

  // Holds a bulkhead slot for `hold`, as a call would.
  asio::awaitable<void> caller(rebound::bulkhead& b, int id, duration hold) {
    auto slot = co_await rebound::async_acquire(b);
    got.emplace_back(slot ? id : -id, clock.now() - start);
    if (slot) co_await rebound::testing::sleep_for(clock, hold);
  }
};

TEST_F(AsyncLimits, QueuedCoroutinesTakeSlotsAsTheyFreeAndTheLastGivesUp) {
  rebound::bulkhead b({.max_concurrent = 1, .max_queue = 2, .max_wait = 150ms}, clock);
  for (int id = 1; id <= 4; ++id) asio::co_spawn(io, caller(b, id, 100ms), asio::detached);
  rebound::testing::run_simulated(io, clock);
  // 1 goes at once; 2 and 3 queue, and 4 finds the queue full. 2 gets 1's
  // slot at 100 ms and holds it to 200 ms, so 3 gives up at 150 ms.
  EXPECT_EQ(got,
            (std::vector<std::pair<int, duration>>{{1, 0ms}, {-4, 0ms}, {2, 100ms}, {-3, 150ms}}));
  EXPECT_EQ(b.in_flight(), 0);
  EXPECT_EQ(b.queued(), 0);
  EXPECT_EQ(b.rejected(), 2u);
}

TEST_F(AsyncLimits, ABlockedAndAnAsyncWaiterShareOneQueue) {
  rebound::bulkhead b({.max_concurrent = 2, .max_queue = 1, .max_wait = 1s}, clock);
  auto a = b.try_acquire();
  auto c = b.try_acquire();
  asio::co_spawn(io, caller(b, 7, 10ms), asio::detached);
  io.poll();  // the coroutine is now queued
  EXPECT_EQ(b.queued(), 1);
  EXPECT_FALSE(b.acquire());  // the queue's one place is taken
  a.reset();                  // wakes the coroutine
  rebound::testing::run_simulated(io, clock);
  EXPECT_EQ(got, (std::vector<std::pair<int, duration>>{{7, 0ms}}));
}

TEST_F(AsyncLimits, RateLimiterTurnsWaitOnTheExecutor) {
  rebound::rate_limiter r({.rate = 10, .burst = 1, .max_wait = 250ms}, clock);
  std::vector<std::pair<int, duration>> turns;
  auto one = [&](int id) -> asio::awaitable<void> {
    const bool ok = co_await rebound::async_acquire(r);
    turns.emplace_back(ok ? id : -id, clock.now() - start);
  };
  for (int id = 1; id <= 5; ++id) asio::co_spawn(io, one(id), asio::detached);
  rebound::testing::run_simulated(io, clock);
  // 1 at once, 2 and 3 after 100 and 200 ms; 4 and 5 would wait 300 ms or more.
  std::sort(turns.begin(), turns.end(), [](const auto& x, const auto& y) {
    return x.second < y.second || (x.second == y.second && x.first < y.first);
  });
  EXPECT_EQ(turns, (std::vector<std::pair<int, duration>>{
                       {-5, 0ms}, {-4, 0ms}, {1, 0ms}, {2, 100ms}, {3, 200ms}}));
}

}  // namespace
