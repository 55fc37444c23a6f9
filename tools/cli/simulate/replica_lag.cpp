// rebound simulate replica-lag: read-after-write under the pg router's own policies.
#include <cstdio>

#include "../common.hpp"
#include "../svg.hpp"
#include "rebound/duration.hpp"
#include "report.hpp"

namespace rebound::cli::sim_cli {

int simulate_replica_lag(const simulate_options& o) {
  sim::replica_lag_options c;
  c.rate = number_flag(o.rate, "--rate", 1, 1e6, c.rate, false);
  c.length = duration_flag(o.length, "--length", c.length, std::chrono::seconds(1),
                           std::chrono::hours(24));
  c.read_after = duration_flag(o.read_after, "--read-after", c.read_after, duration::zero(),
                               std::chrono::hours(1));
  c.lag_mean =
      duration_flag(o.lag_mean, "--lag-mean", c.lag_mean, duration::zero(), std::chrono::hours(1));
  c.spike_probability =
      number_flag(o.spike_probability, "--spike-probability", 0, 1, c.spike_probability, false);
  c.seed = o.seed_value;
  if (c.rate * std::chrono::duration<double>(c.length).count() > 2e7) {
    throw config_error("--rate", "rate x length is over 20 million reads; shorten --length");
  }
  if (dry_run()) return exit_code::ok;
  const auto r = sim::run_replica_lag(c);
  report rep("replica-lag", "rows",
             {{"strategy", "strategy", 24, column::form::text},
              {"reads", "reads", 8, column::form::integer},
              {"errors", "error_rate", 9, column::form::percent, 2},
              {"primary", "primary_share", 9, column::form::percent, 2},
              {"replica q/read", "replica_queries_per_read", 15, column::form::fixed, 2},
              {"p50 ms", "latency_p50_ms", 9, column::form::fixed, 2},
              {"p99 ms", "latency_p99_ms", 9, column::form::fixed, 2},
              {"max ms", "latency_max_ms", 9, column::form::fixed, 2}});
  char line[256];
  std::snprintf(line, sizeof line,
                "replica-lag: %.0f writes/s, each read back %s later; lag exponential (mean %s), "
                "%.0f%% spikes of 0.5s..3s; seed %llu",
                c.rate, format_duration(c.read_after).c_str(), format_duration(c.lag_mean).c_str(),
                100 * c.spike_probability, static_cast<unsigned long long>(c.seed));
  rep.intro(line);
  rep.intro("(the retry and the LSN wait are rebound::pg::router_options{}'s policies)");
  rep.param("seed", c.seed);
  for (const auto& row : r.rows) {
    rep.row({{"strategy", row.strategy},
             {"reads", row.reads},
             {"error_rate", row.error_rate},
             {"primary_share", row.primary_share},
             {"replica_queries_per_read", row.replica_queries},
             {"latency_p50_ms", row.latency_p50_ms},
             {"latency_p99_ms", row.latency_p99_ms},
             {"latency_max_ms", row.latency_max_ms}});
  }
  return rep.finish(o, r.events, [&] {
    std::vector<svg::series> shares;
    for (const auto& row : r.rows) {
      shares.push_back({row.strategy, {100 * row.error_rate, 100 * row.primary_share}});
    }
    return svg::bars("Read errors and primary share (%)", "%", {"errors", "read by primary"},
                     shares);
  });
}

}  // namespace rebound::cli::sim_cli
