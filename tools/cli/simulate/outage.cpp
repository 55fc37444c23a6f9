// rebound simulate outage: a fleet's clients through a capacity drop or a full outage.
#include <cstdio>

#include "../common.hpp"
#include "../svg.hpp"
#include "rebound/duration.hpp"
#include "report.hpp"

namespace rebound::cli::sim_cli {

int simulate_outage(const simulate_options& o) {
  sim::outage_options c;
  c.rate = number_flag(o.rate, "--rate", 1, 1e6, c.rate, false);
  c.capacity = number_flag(o.capacity, "--capacity", 1, 1e7, c.capacity, false);
  c.queue = static_cast<int>(number_flag(o.queue, "--queue", 0, 1e7, c.queue, true));
  c.client_timeout = duration_flag(o.timeout, "--timeout", c.client_timeout,
                                   std::chrono::milliseconds(1), std::chrono::hours(1));
  c.length = duration_flag(o.length, "--length", c.length, std::chrono::seconds(1),
                           std::chrono::hours(24));
  c.trigger_at =
      duration_flag(o.trigger_at, "--trigger-at", c.trigger_at, duration::zero(), c.length);
  c.trigger_for =
      duration_flag(o.trigger_for, "--trigger-for", c.trigger_for, duration::zero(), c.length);
  c.trigger_capacity =
      number_flag(o.trigger_capacity, "--trigger-capacity", 0, 1, c.trigger_capacity, false);
  c.seed = o.seed_value;
  metrics::registry registry;  // --metrics-file
  c.strategies = strategies_for(o, false, sim::default_outage_strategies(), registry);
  if (c.trigger_at >= c.length) {
    throw config_error(o.trigger_at ? "--trigger-at" : "--length",
                       "the trigger starts at " + format_duration(c.trigger_at) +
                           ", not before the run ends (--length " + format_duration(c.length) +
                           "); allowed: --trigger-at < --length");
  }
  if (c.rate * std::chrono::duration<double>(c.length).count() > 5e7) {
    throw config_error("--rate", "rate x length is over 50 million requests; shorten --length");
  }
  if (dry_run()) return exit_code::ok;
  const auto r = sim::run_outage(c);
  const double t0 = std::chrono::duration<double>(c.trigger_at).count();
  const double t1 = t0 + std::chrono::duration<double>(c.trigger_for).count();

  report rep("outage", "series",
             {{"policy", "policy", 32, column::form::text},
              {"amp.before", "amplification_before", 10, column::form::fixed, 2},
              {"amp.during", "amplification_during", 10, column::form::fixed, 2},
              {"amp.after", "amplification_after", 9, column::form::fixed, 2},
              {"goodput end", "goodput_ratio_end", 12, column::form::percent, 0},
              {"recovered", "recovered", 10, column::form::yes_no},
              {"wasted", "wasted", 9, column::form::integer}});
  char line[256];
  std::snprintf(line, sizeof line,
                "outage: %.0f req/s offered to a server of capacity %.0f/s (queue %d, client "
                "timeout %s)",
                c.rate, c.capacity, c.queue, format_duration(c.client_timeout).c_str());
  rep.intro(line);
  std::snprintf(line, sizeof line, "trigger: capacity x%.2f%s from %gs to %gs; run %s; seed %llu",
                c.trigger_capacity,
                c.trigger_capacity == 0 ? " (full outage, connections refused)" : "", t0, t1,
                format_duration(c.length).c_str(), static_cast<unsigned long long>(c.seed));
  rep.intro(line);
  rep.param("seed", c.seed);
  rep.param("rate", c.rate);
  rep.param("capacity", c.capacity);
  rep.param("queue", c.queue);
  rep.param("client_timeout_ms",
            std::chrono::duration<double, std::milli>(c.client_timeout).count());
  rep.param("trigger_at_s", t0);
  rep.param("trigger_end_s", t1);
  rep.param("trigger_capacity", c.trigger_capacity);
  rep.param("bucket_s", std::chrono::duration<double>(c.bucket).count());
  for (const auto& s : r.series) {
    rep.row({{"policy", s.strategy},
             {"amplification_before", s.amplification_before},
             {"amplification_during", s.amplification_during},
             {"amplification_after", s.amplification_after},
             {"goodput_ratio_end", s.goodput_ratio_end},
             {"recovered", s.recovered},
             {"started", s.started},
             {"succeeded", s.succeeded},
             {"failed", s.failures},
             {"in_flight", s.in_flight},
             {"wasted", s.wasted},
             {"offered_per_bucket", s.offered},
             {"attempts_per_bucket", s.attempts},
             {"goodput_per_bucket", s.goodput},
             {"failed_per_bucket", s.failed},
             {"latency_p50_ms_per_bucket", s.latency_p50_ms},
             {"latency_p99_ms_per_bucket", s.latency_p99_ms}});
  }
  rep.note(
      "amplification = attempts reaching the server / requests offered; goodput end = "
      "successes / offered over the last quarter");
  rep.metrics(&registry);
  return rep.finish(o, r.events, [&] {
    std::vector<svg::series> goodput, attempts;
    for (const auto& s : r.series) {
      goodput.push_back({s.strategy, s.goodput});
      attempts.push_back({s.strategy, s.attempts});
    }
    return svg::stack({svg::lines("Goodput (successful requests per second)", "seconds",
                                  "requests/s", goodput, t0, t1),
                       svg::lines("Attempts reaching the server per second", "seconds",
                                  "attempts/s", attempts, t0, t1)});
  });
}

}  // namespace rebound::cli::sim_cli
