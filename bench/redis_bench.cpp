// The fleet-wide budget against a real redis-server on loopback.
//
//   BM_local_budget_success   a retry loop's first-try success with a local ratio budget
//   BM_redis_budget_success   the same with the shared (Redis) budget: deposits batched
//   BM_redis_retry_decision/L retry decisions against Redis with a lease of L retries
//                             (1: a round trip per decision)
#include <benchmark/benchmark.h>

#include <memory>

#include "rebound/redis/shared.hpp"
#include "rebound/retry.hpp"
#include "redis_server.hpp"

namespace {

using namespace std::chrono_literals;

rebound::testing::redis_server* server = nullptr;

std::shared_ptr<rebound::redis::link> make_link(int lease) {
  rebound::redis::options o;
  o.port = server->port();
  o.key_prefix = "bench";
  o.lease_size = lease;
  auto l = std::make_shared<rebound::redis::link>(o);
  if (!l->wait_until_available(5s)) throw std::runtime_error("redis did not come up");
  return l;
}

const rebound::ratio_budget::options ratio{.ratio = 0.2, .min_per_second = 10};

void run_success_path(benchmark::State& state, const std::shared_ptr<rebound::retry_budget>& b) {
  const auto policy = rebound::retry_policy{}.stop(rebound::stop::after_attempts(3)).budget(b);
  int x = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(rebound::retry(policy, [&] { return ++x; }));
  }
}

void BM_local_budget_success(benchmark::State& state) {
  run_success_path(state, std::make_shared<rebound::ratio_budget>(ratio));
}
BENCHMARK(BM_local_budget_success);

void BM_redis_budget_success(benchmark::State& state) {
  auto l = make_link(10);
  auto b = std::make_shared<rebound::redis::shared_budget>(l, "bench-success", ratio);
  const auto before = l->commands();
  run_success_path(state, b);
  b->flush();
  state.counters["redis_cmds_per_call"] =
      static_cast<double>(l->commands() - before) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_redis_budget_success);

void BM_redis_retry_decision(benchmark::State& state) {
  auto l = make_link(static_cast<int>(state.range(0)));
  // A budget that never runs out: a floor far above what the run can use.
  auto b = std::make_shared<rebound::redis::shared_budget>(
      l, "bench-decide-" + std::to_string(state.range(0)),
      rebound::ratio_budget::options{.ratio = 0.2, .min_per_second = 100000000});
  std::int64_t granted = 0;
  for (auto _ : state) granted += b->try_acquire({}) ? 1 : 0;
  state.counters["decisions_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["granted"] =
      static_cast<double>(granted) / static_cast<double>(state.iterations());
  state.counters["fallback"] = static_cast<double>(b->fallback_decisions());
}
BENCHMARK(BM_redis_retry_decision)->Arg(1)->Arg(10)->Arg(100)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  rebound::testing::redis_server s;
  server = &s;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  server = nullptr;
}
