// rebound's benchmarks. Names are an interface (docs/PERFORMANCE.md records them).
//   build/bench/rebound_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <thread>

#include "rebound/metrics.hpp"
#include "rebound/pipeline.hpp"
#include "rebound/policy.hpp"
#include "rebound/retry.hpp"
#include "rebound/sim/engine.hpp"

namespace {
std::atomic<std::int64_t> allocations{0};
}

// Counts every allocation in the process, for the allocs_per_iter counters.
void* operator new(std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

using namespace std::chrono_literals;

// The function every success-path benchmark calls: cheap, not optimised away.
int payload(int& x) {
  benchmark::DoNotOptimize(x);
  return ++x;
}

void report_allocs(benchmark::State& state, std::int64_t before) {
  state.counters["allocs_per_iter"] = benchmark::Counter(
      static_cast<double>(allocations.load() - before) / static_cast<double>(state.iterations()));
}

void BM_direct_call(benchmark::State& state) {
  int x = 0;
  const auto before = allocations.load();
  for (auto _ : state) benchmark::DoNotOptimize(payload(x));
  report_allocs(state, before);
}
BENCHMARK(BM_direct_call);

// For scale: one read of the precise and of the coarse steady clock.
void BM_steady_clock_now(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(std::chrono::steady_clock::now());
}
BENCHMARK(BM_steady_clock_now);

void BM_coarse_clock_now(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(rebound::detail::coarse_steady_now());
}
BENCHMARK(BM_coarse_clock_now);

void BM_retry_success(benchmark::State& state) {
  const auto policy = rebound::retry_policy{}.stop(rebound::stop::after_elapsed(5s));
  int x = 0;
  const auto before = allocations.load();
  for (auto _ : state) benchmark::DoNotOptimize(rebound::retry(policy, [&] { return payload(x); }));
  report_allocs(state, before);
}
BENCHMARK(BM_retry_success);

void BM_retry_success_attempts_only(benchmark::State& state) {
  const auto policy = rebound::retry_policy{}.stop(rebound::stop::after_attempts(3));
  int x = 0;
  const auto before = allocations.load();
  for (auto _ : state) benchmark::DoNotOptimize(rebound::retry(policy, [&] { return payload(x); }));
  report_allocs(state, before);
}
BENCHMARK(BM_retry_success_attempts_only);

// The same with the engine's events counted into a metrics registry
// (rebound::metrics::call_metrics): what telemetry costs a first-try success.
void BM_retry_success_metrics(benchmark::State& state) {
  rebound::metrics::registry registry;
  const auto policy =
      rebound::retry_policy{}
          .stop(rebound::stop::after_attempts(3))
          .observer(std::make_shared<rebound::metrics::call_metrics>(registry, "bench"));
  int x = 0;
  const auto before = allocations.load();
  for (auto _ : state) benchmark::DoNotOptimize(rebound::retry(policy, [&] { return payload(x); }));
  report_allocs(state, before);
}
BENCHMARK(BM_retry_success_metrics);

void BM_decide_transient(benchmark::State& state) {
  const auto policy = rebound::retry_policy{}
                          .stop(rebound::stop::after_elapsed(1h))
                          .backoff(rebound::backoff::exponential(100ms, 2.0, 5s))
                          .jitter(rebound::jitter::full())
                          .seed(1);
  const rebound::time_point now(1h);
  const auto before = allocations.load();
  std::optional<rebound::retry_state> s;
  s.emplace(policy, now);
  int n = 0;
  for (auto _ : state) {
    // A fresh state now and then keeps the attempt number realistic (< 64).
    if (++n == 64) {
      s.emplace(policy, now);
      n = 0;
    }
    benchmark::DoNotOptimize(s->decide(rebound::verdict::transient(), now));
  }
  report_allocs(state, before);
}
BENCHMARK(BM_decide_transient);

// How long after request_stop() a sleeper on the system clock is running
// again. Manual time: only the wake-up is measured.
void BM_cancel_wakeup(benchmark::State& state) {
  auto& clock = rebound::system_clock();
  for (auto _ : state) {
    std::stop_source stop;
    std::atomic<bool> sleeping{false};
    std::chrono::steady_clock::time_point woke;
    std::thread sleeper([&] {
      sleeping = true;
      clock.sleep_until(clock.now() + 1h, stop.get_token());
      woke = std::chrono::steady_clock::now();
    });
    while (!sleeping) std::this_thread::yield();
    std::this_thread::sleep_for(1ms);  // let it block for real
    const auto asked = std::chrono::steady_clock::now();
    stop.request_stop();
    sleeper.join();
    state.SetIterationTime(std::chrono::duration<double>(woke - asked).count());
  }
}
BENCHMARK(BM_cancel_wakeup)->UseManualTime()->Iterations(200)->Unit(benchmark::kMicrosecond);

// Two threads on one shared token bucket: an acquire and a release (a
// retried success's refund) per iteration. Reports items/s across threads.
rebound::token_bucket_budget shared_budget_storage;
rebound::token_bucket_budget* const shared_budget = &shared_budget_storage;

void BM_budget_acquire_2threads(benchmark::State& state) {
  const rebound::retry_request r{.attempt = 2};
  const auto before = allocations.load();
  std::int64_t granted = 0;
  for (auto _ : state) {
    if (shared_budget->try_acquire(r)) {
      ++granted;
      shared_budget->on_success(&r);
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["granted_ratio"] =
      benchmark::Counter(static_cast<double>(granted) / static_cast<double>(state.iterations()),
                         benchmark::Counter::kAvgThreads);
  if (state.thread_index() == 0) report_allocs(state, before);
}
BENCHMARK(BM_budget_acquire_2threads)->Threads(2)->UseRealTime();

void BM_breaker_success(benchmark::State& state) {
  rebound::circuit_breaker breaker;
  const auto before = allocations.load();
  for (auto _ : state) {
    const auto permit = breaker.try_acquire();
    benchmark::DoNotOptimize(permit);
    breaker.record(permit, true);
  }
  report_allocs(state, before);
}
BENCHMARK(BM_breaker_success);

// Total timeout + retry + budget + breaker around a no-op.
void BM_pipeline_success(benchmark::State& state) {
  const auto policy = rebound::retry_policy{}
                          .stop(rebound::stop::after_attempts(3))
                          .budget(std::make_shared<rebound::token_bucket_budget>());
  const rebound::pipeline p(policy, std::make_shared<rebound::circuit_breaker>(), 5s);
  int x = 0;
  const auto before = allocations.load();
  for (auto _ : state) benchmark::DoNotOptimize(p.execute([&] { return payload(x); }));
  report_allocs(state, before);
}
BENCHMARK(BM_pipeline_success);

// ---- concurrency limits (issue 18): each against BM_atomic_rmw ----

// One uncontended atomic read-modify-write: the unit the limits are measured in.
void BM_atomic_rmw(benchmark::State& state) {
  std::atomic<int> n{0};
  for (auto _ : state) benchmark::DoNotOptimize(n.fetch_add(1));
}
BENCHMARK(BM_atomic_rmw);

// Take a bulkhead slot and give it back.
void BM_bulkhead_success(benchmark::State& state) {
  rebound::bulkhead b({.max_concurrent = 64});
  int x = 0;
  const auto before = allocations.load();
  for (auto _ : state) {
    auto slot = b.try_acquire();
    benchmark::DoNotOptimize(payload(x));
  }
  report_allocs(state, before);
}
BENCHMARK(BM_bulkhead_success);

// An AIMD limiter's permit and sample (Netflix's defaults, system clock).
void BM_limiter_success(benchmark::State& state) {
  rebound::concurrency_limiter l(rebound::limiter_options::aimd());
  int x = 0;
  const auto before = allocations.load();
  for (auto _ : state) {
    const auto permit = l.try_acquire();
    benchmark::DoNotOptimize(payload(x));
    l.on_success(permit);
  }
  report_allocs(state, before);
}
BENCHMARK(BM_limiter_success);

// The same with Gradient2, whose estimate moves under a mutex on every sample.
void BM_limiter_gradient2_success(benchmark::State& state) {
  rebound::concurrency_limiter l(rebound::limiter_options::gradient2());
  int x = 0;
  for (auto _ : state) {
    const auto permit = l.try_acquire();
    benchmark::DoNotOptimize(payload(x));
    l.on_success(permit);
  }
}
BENCHMARK(BM_limiter_gradient2_success);

// A rate limiter's turn that is always free (GCRA: one clock read and one CAS).
void BM_rate_limiter_acquire(benchmark::State& state) {
  rebound::rate_limiter r({.rate = 1e9, .burst = 1000000});
  const auto before = allocations.load();
  for (auto _ : state) benchmark::DoNotOptimize(r.try_acquire());
  report_allocs(state, before);
}
BENCHMARK(BM_rate_limiter_acquire);

// BM_pipeline_success's layers plus a bulkhead, an AIMD limiter and a rate limiter.
void BM_pipeline_full_success(benchmark::State& state) {
  const auto policy = rebound::retry_policy{}
                          .stop(rebound::stop::after_attempts(3))
                          .budget(std::make_shared<rebound::token_bucket_budget>());
  const auto p = rebound::pipeline(policy, std::make_shared<rebound::circuit_breaker>(), 5s)
                     .bulkhead(std::make_shared<rebound::bulkhead>(
                         rebound::bulkhead_options{.max_concurrent = 64}))
                     .limiter(std::make_shared<rebound::concurrency_limiter>())
                     .rate_limit(std::make_shared<rebound::rate_limiter>(
                         rebound::rate_limiter_options{.rate = 1e9, .burst = 1000000}));
  int x = 0;
  const auto before = allocations.load();
  for (auto _ : state) benchmark::DoNotOptimize(p.execute([&] { return payload(x); }));
  report_allocs(state, before);
}
BENCHMARK(BM_pipeline_full_success);

// The simulator's engine: 1,000 timers, each rescheduling itself after an
// exponentially distributed delay. Items/s = events run per second.
struct sim_timer {
  rebound::sim::engine* eng;
  void fire(std::uint64_t) {
    eng->after<&sim_timer::fire>(eng->exponential(std::chrono::milliseconds(10)), this);
  }
};

void BM_sim_events(benchmark::State& state) {
  rebound::sim::engine eng(1);
  std::vector<sim_timer> timers(1000, sim_timer{&eng});
  for (auto& t : timers) eng.after<&sim_timer::fire>(std::chrono::milliseconds(1), &t);
  std::uint64_t events = 0;
  for (auto _ : state) {
    // 10 ms of simulated time: about 1,000 events.
    events += eng.run_until(eng.now() + std::chrono::milliseconds(10));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(events));
}
BENCHMARK(BM_sim_events);

}  // namespace

BENCHMARK_MAIN();
