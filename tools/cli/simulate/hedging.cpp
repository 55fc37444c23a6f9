// rebound simulate hedging: tail latency bought with extra load.
#include <cstdio>

#include "../common.hpp"
#include "../svg.hpp"
#include "rebound/duration.hpp"
#include "report.hpp"

namespace rebound::cli::sim_cli {

namespace {

// "0.01:10s,0.04:5s,0.05:2s": each share of answers gets that extra delay.
std::vector<sim::hedging_options::tier> tiers_flag(const std::string& text) {
  std::vector<sim::hedging_options::tier> out;
  double sum = 0;
  std::size_t i = 0;
  while (i <= text.size()) {
    const std::size_t end = std::min(text.find(',', i), text.size());
    const std::string item = text.substr(i, end - i);
    const auto colon = item.find(':');
    if (colon == std::string::npos) {
      throw config_error("--slow-tiers", "\"" + item +
                                             "\" is not P:DURATION (a share and a delay, "
                                             "such as 0.05:2s)");
    }
    const std::optional<std::string> p = item.substr(0, colon);
    const std::optional<std::string> d = item.substr(colon + 1);
    sim::hedging_options::tier t;
    t.probability = number_flag(p, "--slow-tiers", 0, 1, 0, false);
    t.delay =
        duration_flag(d, "--slow-tiers", duration::zero(), duration::zero(), std::chrono::hours(1));
    sum += t.probability;
    if (out.size() >= 16) throw config_error("--slow-tiers", "at most 16 tiers");
    out.push_back(t);
    i = end + 1;
  }
  if (sum > 1 + 1e-9) {
    throw config_error("--slow-tiers",
                       "the shares add up to " + std::to_string(sum) + "; allowed: at most 1");
  }
  return out;
}

}  // namespace

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
  metrics::registry registry;  // --metrics-file
  c.strategies = strategies_for(o, true, sim::default_hedging_strategies(), registry);
  if (o.requests) {
    if (o.length) throw config_error("--requests", "give --requests or --length, not both");
    c.requests = static_cast<std::uint64_t>(number_flag(o.requests, "--requests", 1, 2e7, 0, true));
  }
  if (o.slow_tiers) {
    if (o.slow_probability) {
      throw config_error("--slow-tiers", "replaces --slow-probability; give one of them");
    }
    c.tiers = tiers_flag(*o.slow_tiers);
  }
  if (c.requests == 0 && c.rate * std::chrono::duration<double>(c.length).count() > 2e7) {
    throw config_error("--rate", "rate x length is over 20 million requests; shorten --length");
  }
  if (dry_run()) return exit_code::ok;
  const auto r = sim::run_hedging(c);
  report rep("hedging", "rows",
             {{"strategy", "strategy", 32, column::form::text},
              {"p50 ms", "latency_p50_ms", 8},
              {"p90 ms", "latency_p90_ms", 8},
              {"p95 ms", "latency_p95_ms", 8},
              {"p99 ms", "latency_p99_ms", 8},
              {"p99.9 ms", "latency_p999_ms", 9},
              {"max ms", "latency_max_ms", 9},
              {"attempts/req", "attempts_per_request", 12, column::form::fixed, 3},
              {"server ms/req", "server_ms_per_request", 15, column::form::fixed, 2}});
  std::string tail;
  if (c.tiers.empty()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.0f%% slow tail of 0.2s..1s", 100 * c.slow_probability);
    tail = buf;
  } else {
    for (const auto& t : c.tiers) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%s%g%% +%s", tail.empty() ? "" : ", ", 100 * t.probability,
                    format_duration(t.delay).c_str());
      tail += buf;
    }
  }
  std::string amount;
  if (c.requests > 0) {
    amount = std::to_string(c.requests) + " requests at ";
  }
  char line[512];
  std::snprintf(line, sizeof line,
                "hedging: %s%.0f requests/s; answer time lognormal (median %s), %s; seed %llu",
                amount.c_str(), c.rate, format_duration(c.latency_median).c_str(), tail.c_str(),
                static_cast<unsigned long long>(c.seed));
  rep.intro(line);
  rep.param("seed", c.seed);
  rep.param("rate", c.rate);
  rep.param("latency_median_ms",
            std::chrono::duration<double, std::milli>(c.latency_median).count());
  rep.param("slow_probability", c.tiers.empty() ? c.slow_probability : 0.0);
  if (c.requests > 0) rep.param("requests", c.requests);
  if (!c.tiers.empty()) rep.param("slow_tiers", *o.slow_tiers);
  for (const auto& row : r.rows) {
    rep.row({{"strategy", row.strategy},
             {"requests", row.requests},
             {"latency_p50_ms", row.latency_p50_ms},
             {"latency_p90_ms", row.latency_p90_ms},
             {"latency_p95_ms", row.latency_p95_ms},
             {"latency_p99_ms", row.latency_p99_ms},
             {"latency_p999_ms", row.latency_p999_ms},
             {"latency_max_ms", row.latency_max_ms},
             {"attempts_per_request", row.attempts_per_request},
             {"server_ms_per_request", row.server_ms_per_request},
             {"hedges", row.hedges},
             {"hedges_refused", row.hedges_refused}});
  }
  rep.metrics(&registry);
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
