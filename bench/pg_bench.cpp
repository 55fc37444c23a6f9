// Read-after-write on a real primary and streaming standby (tools/pg_cluster)
// with real apply lag: the router against a naive replica read.
//
//   BM_pg_read_after_write/<mode>/<apply delay ms>
//   mode 0 naive:  one read on the replica; a miss is an error (scenario 001's "before")
//   mode 1 router: replica, one jittered retry (50..200 ms), then the primary
//   mode 2 token:  the router with the write's LSN (read-your-writes, wait <= 1 s)
//
// Each iteration writes a row on the primary (not timed) and reads it back at
// once. Counters: p50_ms and p99_ms of the read, error_rate (reads that did
// not find the row), primary_share (reads the primary served). Reads per case:
// REBOUND_PG_BENCH_READS (default 100).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "pg_cluster.hpp"
#include "rebound/pg/router.hpp"

namespace {

using namespace std::chrono_literals;
using rebound::pg::connection;

rebound::testing::pg_cluster* cluster = nullptr;
long next_id = 1;

int reads_per_case() {
  const char* v = std::getenv("REBOUND_PG_BENCH_READS");
  const int n = v != nullptr ? std::atoi(v) : 0;
  return n > 0 ? n : 100;
}

double percentile_ms(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

void BM_pg_read_after_write(benchmark::State& state) {
  const auto mode = state.range(0);
  const auto delay = std::chrono::milliseconds(state.range(1));
  cluster->set_apply_delay(0ms);
  cluster->wait_for_catch_up();
  cluster->set_apply_delay(delay);

  rebound::pg::router r(cluster->primary_conninfo(), cluster->standby_conninfo());
  connection primary(cluster->primary_conninfo());
  connection replica(cluster->standby_conninfo());
  std::vector<double> latencies;
  int errors = 0;
  int on_primary = 0;
  // Open the router's connections before timing: the first connect is not a read.
  (void)r.read([](connection& c) -> std::optional<bool> {
    c.exec("SELECT 1");
    return true;
  });
  for (auto _ : state) {
    state.PauseTiming();
    const std::string id = std::to_string(next_id++);
    primary.exec("INSERT INTO items (id, body) VALUES ($1, 'x')", {id});
    rebound::pg::session_token token(rebound::pg::current_wal_lsn(primary));
    state.ResumeTiming();
    const auto start = std::chrono::steady_clock::now();
    bool found = false;
    const auto read = [&](connection& c) -> std::optional<bool> {
      if (c.exec("SELECT 1 FROM items WHERE id = $1", {id}).empty()) return std::nullopt;
      return true;
    };
    if (mode == 0) {
      found = read(replica).has_value();
    } else {
      rebound::pg::read_report rep;
      found = r.read(read, {.token = mode == 2 ? &token : nullptr, .report = &rep}).has_value();
      on_primary += rep.primary_reads > 0 ? 1 : 0;
    }
    latencies.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
            .count());
    errors += found ? 0 : 1;
  }
  const auto n = static_cast<double>(latencies.size());
  state.counters["p50_ms"] = percentile_ms(latencies, 0.50);
  state.counters["p99_ms"] = percentile_ms(latencies, 0.99);
  state.counters["error_rate"] = errors / n;
  state.counters["primary_share"] = on_primary / n;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  rebound::testing::pg_cluster db;
  cluster = &db;
  {
    connection c(db.primary_conninfo());
    c.exec("CREATE TABLE items (id bigint PRIMARY KEY, body text NOT NULL)");
  }
  const int reads = reads_per_case();
  for (const int mode : {0, 1, 2}) {
    for (const int delay : {0, 100, 500}) {
      benchmark::RegisterBenchmark("BM_pg_read_after_write", BM_pg_read_after_write)
          ->Args({mode, delay})
          ->ArgNames({"mode", "delay_ms"})
          ->Iterations(reads)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  cluster = nullptr;
}
