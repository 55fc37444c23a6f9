// Benchmarks of the Asio retry loop (rebound/async.hpp). Part of rebound_bench.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <fstream>

#include "rebound/async.hpp"

namespace {

using namespace std::chrono_literals;

asio::awaitable<int> ready_value(int& x) {
  benchmark::DoNotOptimize(x);
  co_return ++x;
}

// Baseline: a coroutine awaiting a ready awaitable.
void BM_async_direct(benchmark::State& state) {
  asio::io_context io;
  int x = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (auto _ : state) {
          const int v = co_await ready_value(x);
          benchmark::DoNotOptimize(v);
        }
      },
      asio::detached);
  io.run();
}
BENCHMARK(BM_async_direct);

// The floor for any wrapper: one more coroutine that only awaits the first.
asio::awaitable<int> pass_through(int& x) { co_return co_await ready_value(x); }

void BM_async_wrapper_floor(benchmark::State& state) {
  asio::io_context io;
  int x = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (auto _ : state) {
          const int v = co_await pass_through(x);
          benchmark::DoNotOptimize(v);
        }
      },
      asio::detached);
  io.run();
}
BENCHMARK(BM_async_wrapper_floor);

// The same, through async_retry (succeeds on the first attempt).
void BM_async_success(benchmark::State& state) {
  asio::io_context io;
  const auto policy = rebound::retry_policy{}.stop(rebound::stop::after_attempts(3));
  int x = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (auto _ : state) {
          const int v = co_await rebound::async_retry(policy, [&] { return ready_value(x); });
          benchmark::DoNotOptimize(v);
        }
      },
      asio::detached);
  io.run();
}
BENCHMARK(BM_async_success);

std::int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::int64_t>(sysconf(_SC_PAGESIZE));
}

// One million operations, each waiting in back-off on one io_context.
// bytes_per_op: resident memory growth per pending operation.
// decisions_per_sec: when the back-offs end, each operation's second attempt
// fails again: a retry decision and a timer re-arm per operation, timed from
// the first wake-up to the last re-arm.
void BM_async_pending_1M(benchmark::State& state) {
  const auto n = static_cast<std::int64_t>(state.range(0));
  // Failures are results (no exceptions): what is measured is the loop.
  const auto policy = rebound::retry_policy{}
                          .stop(rebound::stop::after_attempts(3))
                          .backoff(rebound::backoff::constant(2s))
                          .jitter(rebound::jitter::none())
                          .retry_if_result([](int v) { return v < 0; });
  double bytes_per_op = 0;
  double decisions_per_sec = 0;
  for (auto _ : state) {
    auto io = std::make_unique<asio::io_context>(1);
    std::int64_t woken = 0;
    std::chrono::steady_clock::time_point first_wake{};
    std::chrono::steady_clock::time_point last_rearm{};
    const std::int64_t before = resident_bytes();
    for (std::int64_t i = 0; i < n; ++i) {
      auto fn = [&woken, &first_wake, &last_rearm,
                 n](const rebound::async_attempt& a) -> asio::awaitable<int> {
        if (a.number() == 2) {
          if (woken++ == 0) first_wake = std::chrono::steady_clock::now();
          // The decision and re-arm for this operation follow at once; the
          // last operation's are stamped when the next handler runs (below).
          if (woken == n) last_rearm = std::chrono::steady_clock::now();
        }
        co_return -1;
      };
      rebound::async_retry(io->get_executor(), policy, fn, {}, asio::detached);
    }
    io->poll();  // every first attempt fails; all wait 2s
    const std::int64_t pending = resident_bytes();
    // Until every operation has woken and re-armed.
    while (woken < n) io->run_one();
    io->poll();
    const auto done = std::chrono::steady_clock::now();
    (void)last_rearm;
    const double secs = std::chrono::duration<double>(done - first_wake).count();
    bytes_per_op = static_cast<double>(pending - before) / static_cast<double>(n);
    decisions_per_sec = 2.0 * static_cast<double>(n) / secs;
    state.PauseTiming();
    io.reset();  // destroys the pending operations
    state.ResumeTiming();
  }
  state.counters["bytes_per_op"] = bytes_per_op;
  state.counters["decisions_per_sec"] = decisions_per_sec;
}
BENCHMARK(BM_async_pending_1M)->Arg(1'000'000)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
