// Benchmarks of the Asio retry loop (rebound/async.hpp). Part of rebound_bench.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <asio/co_spawn.hpp>
#include <asio/compose.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <initializer_list>
#include <system_error>
#include <utility>

#include "rebound/async.hpp"

namespace {

using namespace std::chrono_literals;

asio::awaitable<int> ready_value(int& x) {
  benchmark::DoNotOptimize(x);
  co_return ++x;
}

// Awaits `make(x)` once per iteration, inside one coroutine on one io_context.
template <class Make>
void await_each_iteration(benchmark::State& state, Make make) {
  asio::io_context io;
  int x = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (auto _ : state) {
          const int v = co_await make(x);
          benchmark::DoNotOptimize(v);
        }
      },
      asio::detached);
  io.run();
}

// Baseline: a coroutine awaiting a ready awaitable.
void BM_async_direct(benchmark::State& state) {
  await_each_iteration(state, [](int& x) { return ready_value(x); });
}
BENCHMARK(BM_async_direct);

// The floor for any wrapper: one more coroutine that only awaits the first.
asio::awaitable<int> pass_through(int& x) { co_return co_await ready_value(x); }

void BM_async_wrapper_floor(benchmark::State& state) {
  await_each_iteration(state, [](int& x) { return pass_through(x); });
}
BENCHMARK(BM_async_wrapper_floor);

// The same, through async_retry (succeeds on the first attempt).
void BM_async_success(benchmark::State& state) {
  const auto policy = rebound::retry_policy{}.stop(rebound::stop::after_attempts(3));
  await_each_iteration(state, [&policy](int& x) {
    return rebound::async_retry(policy, [&x] { return ready_value(x); });
  });
}
BENCHMARK(BM_async_success);

// An Asio-style operation that completes through the executor (one post),
// as a read on a socket with data waiting would.
struct posted_op {
  asio::io_context* io;
  int* x;
  template <class Token>
  auto operator()(Token&& token) const {
    return asio::async_initiate<Token, void(std::error_code, int)>(
        [io = io, x = x](auto handler) {
          asio::post(*io, [h = std::move(handler), v = ++*x]() mutable {
            std::move(h)(std::error_code{}, v);
          });
        },
        token);
  }
};

// Baseline: the operation alone, with a callback, run to completion.
void BM_async_lean_direct(benchmark::State& state) {
  asio::io_context io(1);
  int x = 0;
  for (auto _ : state) {
    int got = 0;
    posted_op{&io, &x}([&got](std::error_code, int v) { got = v; });
    io.restart();
    io.run();
    benchmark::DoNotOptimize(got);
  }
}
BENCHMARK(BM_async_lean_direct);

// Asio's own floor for a composed operation: the same operation inside an
// asio::async_compose that does nothing but start it and pass its result on.
// Every composed operation pays this (an outstanding-work guard, and a
// completion that goes through the handler's executor), so it is the floor
// the lean path is measured against, besides the direct call.
struct forward_op {
  posted_op op;
  template <class Self>
  void operator()(Self& self) {
    op(std::move(self));
  }
  template <class Self>
  void operator()(Self& self, std::error_code ec, int v) {
    self.complete(ec ? std::make_exception_ptr(std::system_error(ec)) : std::exception_ptr(), v);
  }
};

void BM_async_compose_floor(benchmark::State& state) {
  asio::io_context io(1);
  int x = 0;
  for (auto _ : state) {
    int got = 0;
    auto done = [&got](std::exception_ptr, int v) { got = v; };
    asio::async_compose<decltype(done), void(std::exception_ptr, int)>(
        forward_op{posted_op{&io, &x}}, done, io.get_executor());
    io.restart();
    io.run();
    benchmark::DoNotOptimize(got);
  }
}
BENCHMARK(BM_async_compose_floor);

// The same operation through async_retry's composed operation (no
// coroutine), a first-try success.
void BM_async_lean_success(benchmark::State& state) {
  asio::io_context io(1);
  int x = 0;
  const auto policy = rebound::retry_policy{}.stop(rebound::stop::after_attempts(3));
  for (auto _ : state) {
    int got = 0;
    rebound::async_retry(io.get_executor(), policy, posted_op{&io, &x}, {},
                         [&got](std::exception_ptr, int v) { got = v; });
    io.restart();
    io.run();
    benchmark::DoNotOptimize(got);
  }
}
BENCHMARK(BM_async_lean_success);

// The same, with the operation marked safe to move between attempts
// (rebound::relocatable): it stays inside the composed operation, and a
// first-try success allocates nothing of rebound's.
void BM_async_lean_success_relocatable(benchmark::State& state) {
  asio::io_context io(1);
  int x = 0;
  const auto policy = rebound::retry_policy{}.stop(rebound::stop::after_attempts(3));
  for (auto _ : state) {
    int got = 0;
    rebound::async_retry(io.get_executor(), policy, rebound::relocatable(posted_op{&io, &x}), {},
                         [&got](std::exception_ptr, int v) { got = v; });
    io.restart();
    io.run();
    benchmark::DoNotOptimize(got);
  }
}
BENCHMARK(BM_async_lean_success_relocatable);

// Bytes malloc has handed out and not had back (arenas and mmapped blocks).
std::int64_t heap_bytes() {
  const struct mallinfo2 m = mallinfo2();
  return static_cast<std::int64_t>(m.uordblks + m.hblkhd);
}

// One million operations, each waiting in back-off on one io_context.
// bytes_per_op: resident memory growth per pending operation.
// decisions_per_sec: when the back-offs end, each operation's second attempt
// fails again: a retry decision and a timer re-arm per operation, timed from
// the first wake-up to the last re-arm. Failures are results (no
// exceptions): what is measured is the loop.
//
// BM_async_pending_1M: `fn` is an Asio-style operation taking a completion
// token, the composed-operation path. BM_async_pending_1M_coroutine: `fn`
// returns an awaitable, the coroutine path, each operation launched with
// co_spawn.
template <bool Coroutine>
void pending_1m(benchmark::State& state) {
  const auto n = static_cast<std::int64_t>(state.range(0));
  const auto policy = rebound::retry_policy{}
                          .stop(rebound::stop::after_attempts(3))
                          .backoff(rebound::backoff::constant(2s))
                          .jitter(rebound::jitter::none())
                          .retry_if_result([](int v) { return v < 0; });
  double bytes_per_op = 0;
  double decisions_per_sec = 0;
  for (auto _ : state) {
    auto io = std::make_unique<asio::io_context>(1);
    std::int64_t started = 0;  // attempts started, all operations
    std::chrono::steady_clock::time_point first_wake{};
    struct context {
      asio::io_context* io;
      std::int64_t& started;
      std::chrono::steady_clock::time_point& first_wake;
      std::int64_t n;
    } ctx{io.get(), started, first_wake, n};
    const std::int64_t before = heap_bytes();
    for (std::int64_t i = 0; i < n; ++i) {
      if constexpr (Coroutine) {
        auto fn = [&started, &first_wake, n]() -> asio::awaitable<int> {
          if (++started == n + 1) first_wake = std::chrono::steady_clock::now();
          co_return -1;
        };
        rebound::async_retry(io->get_executor(), policy, fn, {}, asio::detached);
      } else {
        // Captures one pointer, as an operation on a connection would.
        auto fn = [&ctx](auto&& token) {
          if (++ctx.started == ctx.n + 1) ctx.first_wake = std::chrono::steady_clock::now();
          return asio::async_initiate<decltype(token), void(std::error_code, int)>(
              [&ctx](auto handler) {
                asio::post(*ctx.io, [h = std::move(handler)]() mutable {
                  std::move(h)(std::error_code{}, -1);
                });
              },
              token);
        };
        rebound::async_retry(io->get_executor(), policy, fn, {}, asio::detached);
      }
    }
    io->poll();  // every first attempt fails; all wait 2 s
    // Heap bytes held per waiting operation (malloc's own count, so every
    // repetition measures the same: RSS growth would read 0 once freed memory
    // is reused; and it sees Asio's aligned frames, which bypass operator new).
    const std::int64_t pending = heap_bytes();
    // Until every operation has woken, failed again and re-armed its timer.
    while (started < 2 * n) io->run_one();
    io->poll();
    const auto done = std::chrono::steady_clock::now();
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

void BM_async_pending_1M(benchmark::State& state) { pending_1m<false>(state); }
void BM_async_pending_1M_coroutine(benchmark::State& state) { pending_1m<true>(state); }
BENCHMARK(BM_async_pending_1M)->Arg(1'000'000)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_async_pending_1M_coroutine)
    ->Arg(1'000'000)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

// Instruction counts (scripts/instructions): with REBOUND_BENCH_FIXED_ITERATIONS
// set, the success paths are also registered as fixed/NAME with exactly
// that many iterations, so callgrind's count of two runs of different
// lengths gives the instructions of one call, with nothing estimated.
const bool fixed_registered = [] {
  const char* n = std::getenv("REBOUND_BENCH_FIXED_ITERATIONS");
  if (n == nullptr) return false;
  const auto iterations = static_cast<benchmark::IterationCount>(std::strtoll(n, nullptr, 10));
  for (const auto& [name, fn] :
       std::initializer_list<std::pair<const char*, void (*)(benchmark::State&)>>{
           {"fixed/BM_async_lean_direct", BM_async_lean_direct},
           {"fixed/BM_async_compose_floor", BM_async_compose_floor},
           {"fixed/BM_async_lean_success", BM_async_lean_success},
           {"fixed/BM_async_lean_success_relocatable", BM_async_lean_success_relocatable}}) {
    benchmark::RegisterBenchmark(name, fn)->Iterations(iterations);
  }
  return true;
}();

}  // namespace
