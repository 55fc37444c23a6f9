// rebound simulate contention: the AWS "Exponential Backoff And Jitter" experiment.
#include "../common.hpp"
#include "../svg.hpp"
#include "report.hpp"

namespace rebound::cli::sim_cli {

int simulate_contention(const simulate_options& o) {
  sim::contention_options c;
  c.clients_from =
      static_cast<int>(number_flag(o.clients_from, "--clients-from", 1, 10000, 10, true));
  c.clients_to = static_cast<int>(number_flag(o.clients_to, "--clients-to", 1, 10000, 190, true));
  c.clients_step =
      static_cast<int>(number_flag(o.clients_step, "--clients-step", 1, 10000, 10, true));
  c.trials = static_cast<int>(number_flag(o.trials, "--trials", 1, 100000, 100, true));
  if (c.clients_to < c.clients_from) {
    throw config_error("--clients-to",
                       "must be >= --clients-from (" + std::to_string(c.clients_from) + ")");
  }
  c.seed = o.seed_value;
  metrics::registry registry;  // --metrics-file
  c.strategies = strategies_for(o, false, sim::aws_strategies(), registry);
  if (dry_run()) return exit_code::ok;
  const auto r = sim::run_contention(c);

  report rep("contention", "points",
             {{"clients", "clients", 8, column::form::integer, 0, true},
              {"strategy", "strategy", 22, column::form::text},
              {"completion (ms)", "mean_completion_ms", 18},
              {"write calls", "mean_write_calls", 14}});
  rep.intro("contention: clients write one row with optimistic concurrency; " +
            std::to_string(c.trials) + " trials per point");
  rep.intro("(network |N(10ms, 2ms)| per message; mean over trials; seed " +
            std::to_string(c.seed) + ")");
  rep.param("seed", c.seed);
  rep.param("trials", c.trials);
  rep.param("strategies", r.strategies);
  for (const auto& p : r.points) {
    rep.row({{"clients", p.clients},
             {"strategy", p.strategy},
             {"mean_completion_ms", p.mean_completion_ms},
             {"mean_write_calls", p.mean_write_calls},
             {"max_write_calls", p.max_write_calls}});
  }
  rep.metrics(&registry);
  return rep.finish(o, r.events, [&] {
    std::vector<std::string> x_labels;
    std::vector<svg::series> calls, times;
    for (const auto& name : r.strategies) {
      calls.push_back({name, {}});
      times.push_back({name, {}});
    }
    for (const auto& p : r.points) {
      if (x_labels.empty() || x_labels.back() != std::to_string(p.clients)) {
        x_labels.push_back(std::to_string(p.clients));
      }
      for (std::size_t i = 0; i < r.strategies.size(); ++i) {
        if (r.strategies[i] == p.strategy) {
          calls[i].values.push_back(p.mean_write_calls);
          times[i].values.push_back(p.mean_completion_ms);
        }
      }
    }
    return svg::stack(
        {svg::bars("Write calls until every client succeeded (mean)", "write calls", x_labels,
                   calls),
         svg::bars("Time until every client succeeded (mean)", "ms", x_labels, times)});
  });
}

}  // namespace rebound::cli::sim_cli
