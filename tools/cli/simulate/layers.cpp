// rebound simulate layers: retry loops nested for real, with and without the guard.
#include <cstdio>

#include "../common.hpp"
#include "../svg.hpp"
#include "report.hpp"

namespace rebound::cli::sim_cli {

int simulate_layers(const simulate_options& o) {
  sim::layers_options c;
  c.depth = static_cast<int>(number_flag(o.depth, "--depth", 1, 8, c.depth, true));
  c.attempts = static_cast<int>(number_flag(o.attempts, "--attempts", 1, 10, c.attempts, true));
  c.requests = static_cast<int>(number_flag(o.requests, "--requests", 1, 1e6, c.requests, true));
  c.failure_rate = number_flag(o.failure_rate, "--failure-rate", 0, 1, c.failure_rate, false);
  c.seed = o.seed_value;
  if (dry_run()) return exit_code::ok;
  const auto r = sim::run_layers(c);
  report rep("layers", "rows",
             {{"mode", "mode", 12, column::form::text},
              {"bottom attempts (mean)", "mean_bottom_attempts", 22, column::form::fixed, 2},
              {"bottom attempts (max)", "max_bottom_attempts", 21, column::form::fixed, 0},
              {"success", "success_rate", 10, column::form::percent, 1}});
  char line[160];
  std::snprintf(line, sizeof line,
                "layers: %d layers, each retrying up to %d attempts; the bottom fails %.0f%% of "
                "the time",
                c.depth, c.attempts, 100 * c.failure_rate);
  rep.intro(line);
  rep.param("depth", c.depth);
  rep.param("attempts", c.attempts);
  rep.param("requests", c.requests);
  rep.param("failure_rate", c.failure_rate);
  for (const auto& row : r.rows) {
    rep.row({{"mode", row.mode},
             {"mean_bottom_attempts", row.mean_bottom_attempts},
             {"max_bottom_attempts", row.max_bottom_attempts},
             {"success_rate", row.success_rate}});
  }
  return rep.finish(o, 0, [&] {
    std::vector<svg::series> data;
    for (const auto& row : r.rows) data.push_back({row.mode, {row.mean_bottom_attempts}});
    return svg::bars("Attempts reaching the bottom layer per request", "attempts",
                     {std::to_string(c.depth) + " layers"}, data);
  });
}

}  // namespace rebound::cli::sim_cli
