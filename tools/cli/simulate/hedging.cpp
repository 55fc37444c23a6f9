// rebound simulate hedging: tail latency bought with extra load.
#include <cstdio>

#include "../common.hpp"
#include "../svg.hpp"
#include "rebound/duration.hpp"
#include "report.hpp"

namespace rebound::cli::sim_cli {

int simulate_hedging(const simulate_options& o) {
  sim::hedging_options c;
  c.rate = number_flag(o.rate, "--rate", 1, 1e5, c.rate, false);
  c.length = duration_flag(o.length, "--length", c.length, std::chrono::seconds(1),
                           std::chrono::hours(24));
  c.latency_median = duration_flag(o.latency_median, "--latency-median", c.latency_median,
                                   std::chrono::microseconds(1), std::chrono::minutes(1));
  c.slow_probability =
      number_flag(o.slow_probability, "--slow-probability", 0, 1, c.slow_probability, false);
  c.seed = o.seed_value;
  c.strategies = policy_strategies(o.policies, true);
  if (c.rate * std::chrono::duration<double>(c.length).count() > 2e7) {
    throw config_error("--rate", "rate x length is over 20 million requests; shorten --length");
  }
  if (dry_run()) return exit_code::ok;
  const auto r = sim::run_hedging(c);
  report rep("hedging", "rows",
             {{"strategy", "strategy", 32, column::form::text},
              {"p50 ms", "latency_p50_ms", 8},
              {"p90 ms", "latency_p90_ms", 8},
              {"p99 ms", "latency_p99_ms", 8},
              {"p99.9 ms", "latency_p999_ms", 9},
              {"attempts/req", "attempts_per_request", 12, column::form::fixed, 3},
              {"server ms/req", "server_ms_per_request", 15, column::form::fixed, 2}});
  char line[256];
  std::snprintf(line, sizeof line,
                "hedging: %.0f requests/s; answer time lognormal (median %s), %.0f%% slow tail "
                "of 0.2s..1s; seed %llu",
                c.rate, format_duration(c.latency_median).c_str(), 100 * c.slow_probability,
                static_cast<unsigned long long>(c.seed));
  rep.intro(line);
  rep.param("seed", c.seed);
  rep.param("rate", c.rate);
  rep.param("latency_median_ms",
            std::chrono::duration<double, std::milli>(c.latency_median).count());
  rep.param("slow_probability", c.slow_probability);
  for (const auto& row : r.rows) {
    rep.row({{"strategy", row.strategy},
             {"requests", row.requests},
             {"latency_p50_ms", row.latency_p50_ms},
             {"latency_p90_ms", row.latency_p90_ms},
             {"latency_p99_ms", row.latency_p99_ms},
             {"latency_p999_ms", row.latency_p999_ms},
             {"latency_max_ms", row.latency_max_ms},
             {"attempts_per_request", row.attempts_per_request},
             {"server_ms_per_request", row.server_ms_per_request},
             {"hedges", row.hedges},
             {"hedges_refused", row.hedges_refused}});
  }
  return rep.finish(o, r.events, [&] {
    std::vector<svg::series> tails, load;
    for (const auto& row : r.rows) {
      tails.push_back(
          {row.strategy, {row.latency_p50_ms, row.latency_p99_ms, row.latency_p999_ms}});
      load.push_back({row.strategy, {100 * (row.attempts_per_request - 1)}});
    }
    return svg::stack(
        {svg::bars("Latency by hedge strategy", "ms", {"p50", "p99", "p99.9"}, tails),
         svg::bars("Extra load: hedges per 100 requests", "%", {"extra attempts"}, load)});
  });
}

}  // namespace rebound::cli::sim_cli
