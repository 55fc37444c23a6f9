// rebound simulate fleet: per-process budgets and breakers against shared ones.
#include <cstdio>

#include "../common.hpp"
#include "../svg.hpp"
#include "rebound/duration.hpp"
#include "report.hpp"

namespace rebound::cli::sim_cli {

int simulate_fleet(const simulate_options& o) {
  sim::fleet_options c;
  c.processes =
      static_cast<int>(number_flag(o.processes, "--processes", 1, 100000, c.processes, true));
  c.rate_per_process = number_flag(o.rate, "--rate", 0.001, 10000, c.rate_per_process, false);
  c.length = duration_flag(o.length, "--length", c.length, std::chrono::seconds(1),
                           std::chrono::hours(24));
  c.trigger_at =
      duration_flag(o.trigger_at, "--trigger-at", c.trigger_at, duration::zero(), c.length);
  c.trigger_for = duration_flag(o.trigger_for, "--trigger-for", c.trigger_for,
                                std::chrono::seconds(1), c.length);
  c.poll_interval = duration_flag(o.poll_interval, "--poll-interval", c.poll_interval,
                                  std::chrono::milliseconds(1), std::chrono::minutes(1));
  c.seed = o.seed_value;
  if (c.trigger_at + c.trigger_for > c.length) {
    throw config_error("--trigger-for", "the outage (" + format_duration(c.trigger_at) + " + " +
                                            format_duration(c.trigger_for) +
                                            ") must end within --length " +
                                            format_duration(c.length));
  }
  if (c.processes * c.rate_per_process * std::chrono::duration<double>(c.length).count() > 2e7) {
    throw config_error("--rate",
                       "processes x rate x length is over 20 million requests; shorten --length");
  }
  if (dry_run()) return exit_code::ok;
  const auto r = sim::run_fleet(c);
  report rep("fleet", "rows",
             {{"strategy", "strategy", 32, column::form::text},
              {"offered/s", "offered_per_s", 11, column::form::fixed, 0},
              {"attempts/s", "attempts_per_s_during", 12, column::form::fixed, 0},
              {"retries/s", "retries_per_s_during", 11, column::form::fixed, 0},
              {"amp", "amplification_during", 6, column::form::fixed, 2},
              {"detect p50", "detect_p50_s", 11, column::form::seconds},
              {"detect all", "detect_all_s", 11, column::form::seconds},
              {"probes", "probes_during", 7, column::form::integer},
              {"goodput after", "goodput_after", 14, column::form::percent, 1}});
  char line[512];
  std::snprintf(line, sizeof line,
                "fleet: %d processes x %.3g requests/s; the dependency refuses every connection "
                "from %s for %s; 3 retries (100ms..1s, full jitter) under a ratio budget (10%%, "
                "10/s floor); breakers open after 5 failures for 5s; shared state polled every "
                "%s; seed %llu",
                c.processes, c.rate_per_process, format_duration(c.trigger_at).c_str(),
                format_duration(c.trigger_for).c_str(), format_duration(c.poll_interval).c_str(),
                static_cast<unsigned long long>(c.seed));
  rep.intro(line);
  rep.param("seed", c.seed);
  rep.param("processes", c.processes);
  rep.param("rate_per_process", c.rate_per_process);
  for (const auto& row : r.rows) {
    rep.row({{"strategy", row.strategy},
             {"offered_per_s", row.offered_per_s},
             {"attempts_per_s_during", row.attempts_per_s_during},
             {"retries_per_s_during", row.retries_per_s_during},
             {"amplification_during", row.amplification_during},
             {"detect_p50_s", row.detect_p50_s},
             {"detect_all_s", row.detect_all_s},
             {"probes_during", row.probes_during},
             {"goodput_after", row.goodput_after}});
  }
  return rep.finish(o, r.events, [&] {
    std::vector<svg::series> load;
    for (const auto& row : r.rows) {
      load.push_back({row.strategy, {row.attempts_per_s_during, row.retries_per_s_during}});
    }
    return svg::bars("Load on the dependency during the outage (per second)", "/s",
                     {"attempts", "retries"}, load);
  });
}

}  // namespace rebound::cli::sim_cli
