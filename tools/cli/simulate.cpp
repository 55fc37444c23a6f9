// rebound simulate: what a policy does to a whole fleet, before it ships.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "rebound/duration.hpp"
#include "rebound/sim/scenarios.hpp"
#include "svg.hpp"

namespace rebound::cli {

namespace {

using json = nlohmann::json;

// 1000000 -> "1000000", 0.001 -> "0.001" (not "0", not "1e+06").
std::string shown(double x) {
  char buf[64];
  if (x == std::floor(x) && std::fabs(x) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", x);
  } else {
    std::snprintf(buf, sizeof buf, "%g", x);
  }
  return buf;
}

double number_flag(const std::optional<std::string>& v, const std::string& flag, double lo,
                   double hi, double fallback, bool integer) {
  if (!v) return fallback;
  double x = 0;
  const auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), x);
  const std::string range = (integer ? "integers " : "") + shown(lo) + ".." + shown(hi);
  if (v->empty() || ec != std::errc() || p != v->data() + v->size() || !std::isfinite(x)) {
    throw config_error(flag, "\"" + *v + "\" is not a number; allowed: " + range);
  }
  if (integer && x != std::floor(x)) {
    throw config_error(flag, "\"" + *v + "\" is not an integer; allowed: " + range);
  }
  if (x < lo || x > hi)
    throw config_error(flag, "\"" + *v + "\" is out of range; allowed: " + range);
  return x;
}

duration duration_flag(const std::optional<std::string>& v, const std::string& flag,
                       duration fallback, duration lo, duration hi) {
  if (!v) return fallback;
  duration d;
  try {
    d = parse_duration(*v);
  } catch (const std::invalid_argument& e) {
    throw config_error(flag, e.what());
  }
  if (d < lo || d > hi) {
    throw config_error(flag, "\"" + *v + "\" is out of range; allowed: " + format_duration(lo) +
                                 ".." + format_duration(hi));
  }
  return d;
}

// --policy FILE: a user's policy file becomes a strategy, built on the simulation's clock.
std::vector<sim::strategy> policy_strategies(const std::vector<std::string>& files,
                                             bool hedging_scenario = false) {
  std::vector<sim::strategy> out;
  for (const auto& f : files) {
    const policy_settings s = settings_from_json_file(f);
    if (s.hedge && !hedging_scenario) {
      throw config_error("--policy", f + ": has a \"hedge\" key, which only the hedging "
                                         "scenario simulates; remove it or run `simulate hedging`");
    }
    out.push_back({std::filesystem::path(f).stem().string(),
                   [s](clock& c) { return s.to_policy(c); }, std::nullopt});
  }
  return out;
}

void write_file(const std::string& path, const std::string& text, const std::string& flag) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out || !(out << text)) throw config_error(flag, "cannot write \"" + path + "\"");
}

int run_contention(const simulate_options& o, const std::vector<sim::strategy>& user) {
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
  c.strategies = user;
  const auto r = sim::run_contention(c);

  std::printf(
      "contention: clients write one row with optimistic concurrency; %d trials per point\n",
      c.trials);
  std::printf("(network |N(10ms, 2ms)| per message; mean over trials; seed %llu)\n\n",
              static_cast<unsigned long long>(c.seed));
  std::printf("%-8s %-22s %18s %14s\n", "clients", "strategy", "completion (ms)", "write calls");
  json points = json::array();
  std::vector<std::string> x_labels;
  std::vector<svg::series> calls, times;
  for (const auto& name : r.strategies) {
    calls.push_back({name, {}});
    times.push_back({name, {}});
  }
  for (const auto& p : r.points) {
    std::printf("%-8d %-22s %18.1f %14.1f\n", p.clients, p.strategy.c_str(), p.mean_completion_ms,
                p.mean_write_calls);
    points.push_back({{"clients", p.clients},
                      {"strategy", p.strategy},
                      {"mean_completion_ms", p.mean_completion_ms},
                      {"mean_write_calls", p.mean_write_calls},
                      {"max_write_calls", p.max_write_calls}});
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
  std::printf("\n%llu events simulated\n", static_cast<unsigned long long>(r.events));
  if (o.json) {
    const json doc{{"scenario", "contention"},   {"seed", c.seed},   {"trials", c.trials},
                   {"strategies", r.strategies}, {"points", points}, {"events", r.events}};
    write_file(*o.json, doc.dump(2) + "\n", "--json");
  }
  if (o.svg) {
    write_file(
        *o.svg,
        svg::stack({svg::bars("Write calls until every client succeeded (mean)", "write calls",
                              x_labels, calls),
                    svg::bars("Time until every client succeeded (mean)", "ms", x_labels, times)}),
        "--svg");
  }
  return exit_code::ok;
}

int run_outage(const simulate_options& o, const std::vector<sim::strategy>& user) {
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
  c.strategies = user;
  if (c.trigger_at >= c.length) {
    throw config_error(o.trigger_at ? "--trigger-at" : "--length",
                       "the trigger starts at " + format_duration(c.trigger_at) +
                           ", not before the run ends (--length " + format_duration(c.length) +
                           "); allowed: --trigger-at < --length");
  }
  if (c.rate * std::chrono::duration<double>(c.length).count() > 5e7) {
    throw config_error("--rate", "rate x length is over 50 million requests; shorten --length");
  }
  const auto r = sim::run_outage(c);
  const double t0 = std::chrono::duration<double>(c.trigger_at).count();
  const double t1 = t0 + std::chrono::duration<double>(c.trigger_for).count();
  std::printf(
      "outage: %.0f req/s offered to a server of capacity %.0f/s (queue %d, client timeout %s)\n",
      c.rate, c.capacity, c.queue, format_duration(c.client_timeout).c_str());
  std::printf("trigger: capacity x%.2f%s from %gs to %gs; run %s; seed %llu\n\n",
              c.trigger_capacity,
              c.trigger_capacity == 0 ? " (full outage, connections refused)" : "", t0, t1,
              format_duration(c.length).c_str(), static_cast<unsigned long long>(c.seed));
  std::printf("%-32s %9s %9s %9s %12s %10s %9s\n", "policy", "amp.before", "amp.during",
              "amp.after", "goodput end", "recovered", "wasted");
  json series = json::array();
  std::vector<svg::series> goodput, attempts;
  for (const auto& s : r.series) {
    std::printf("%-32s %9.2f %10.2f %9.2f %11.0f%% %10s %9llu\n", s.strategy.c_str(),
                s.amplification_before, s.amplification_during, s.amplification_after,
                100 * s.goodput_ratio_end, s.recovered ? "yes" : "no",
                static_cast<unsigned long long>(s.wasted));
    series.push_back({{"policy", s.strategy},
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
    goodput.push_back({s.strategy, s.goodput});
    attempts.push_back({s.strategy, s.attempts});
  }
  std::printf(
      "\namplification = attempts reaching the server / requests offered; goodput end = "
      "successes / offered over the last quarter\n%llu events simulated\n",
      static_cast<unsigned long long>(r.events));
  if (o.json) {
    const json doc{
        {"scenario", "outage"},
        {"seed", c.seed},
        {"rate", c.rate},
        {"capacity", c.capacity},
        {"queue", c.queue},
        {"client_timeout_ms", std::chrono::duration<double, std::milli>(c.client_timeout).count()},
        {"trigger_at_s", t0},
        {"trigger_end_s", t1},
        {"trigger_capacity", c.trigger_capacity},
        {"bucket_s", std::chrono::duration<double>(c.bucket).count()},
        {"series", series},
        {"events", r.events}};
    write_file(*o.json, doc.dump(2) + "\n", "--json");
  }
  if (o.svg) {
    write_file(*o.svg,
               svg::stack({svg::lines("Goodput (successful requests per second)", "seconds",
                                      "requests/s", goodput, t0, t1),
                           svg::lines("Attempts reaching the server per second", "seconds",
                                      "attempts/s", attempts, t0, t1)}),
               "--svg");
  }
  return exit_code::ok;
}

int run_layers(const simulate_options& o) {
  sim::layers_options c;
  c.depth = static_cast<int>(number_flag(o.depth, "--depth", 1, 8, c.depth, true));
  c.attempts = static_cast<int>(number_flag(o.attempts, "--attempts", 1, 10, c.attempts, true));
  c.requests = static_cast<int>(number_flag(o.requests, "--requests", 1, 1e6, c.requests, true));
  c.failure_rate = number_flag(o.failure_rate, "--failure-rate", 0, 1, c.failure_rate, false);
  c.seed = o.seed_value;
  const auto r = sim::run_layers(c);
  std::printf(
      "layers: %d layers, each retrying up to %d attempts; the bottom fails %.0f%% of the time\n\n",
      c.depth, c.attempts, 100 * c.failure_rate);
  std::printf("%-12s %22s %20s %10s\n", "mode", "bottom attempts (mean)", "bottom attempts (max)",
              "success");
  json rows = json::array();
  for (const auto& row : r.rows) {
    std::printf("%-12s %22.2f %20.0f %9.1f%%\n", row.mode.c_str(), row.mean_bottom_attempts,
                row.max_bottom_attempts, 100 * row.success_rate);
    rows.push_back({{"mode", row.mode},
                    {"mean_bottom_attempts", row.mean_bottom_attempts},
                    {"max_bottom_attempts", row.max_bottom_attempts},
                    {"success_rate", row.success_rate}});
  }
  if (o.json) {
    write_file(*o.json,
               json{{"scenario", "layers"},
                    {"depth", c.depth},
                    {"attempts", c.attempts},
                    {"requests", c.requests},
                    {"failure_rate", c.failure_rate},
                    {"rows", rows}}
                       .dump(2) +
                   "\n",
               "--json");
  }
  if (o.svg) {
    std::vector<svg::series> data;
    for (const auto& row : r.rows) data.push_back({row.mode, {row.mean_bottom_attempts}});
    write_file(*o.svg,
               svg::bars("Attempts reaching the bottom layer per request", "attempts",
                         {std::to_string(c.depth) + " layers"}, data),
               "--svg");
  }
  return exit_code::ok;
}

int run_replica_lag(const simulate_options& o) {
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
  const auto r = sim::run_replica_lag(c);
  std::printf(
      "replica-lag: %.0f writes/s, each read back %s later; lag exponential (mean %s), "
      "%.0f%% spikes of 0.5s..3s; seed %llu\n\n",
      c.rate, format_duration(c.read_after).c_str(), format_duration(c.lag_mean).c_str(),
      100 * c.spike_probability, static_cast<unsigned long long>(c.seed));
  std::printf("%-24s %8s %9s %9s %15s %9s %9s %9s\n", "strategy", "reads", "errors", "primary",
              "replica q/read", "p50 ms", "p99 ms", "max ms");
  json rows = json::array();
  std::vector<svg::series> p99;
  for (const auto& row : r.rows) {
    std::printf("%-24s %8llu %8.2f%% %8.2f%% %15.2f %9.2f %9.2f %9.2f\n", row.strategy.c_str(),
                static_cast<unsigned long long>(row.reads), 100 * row.error_rate,
                100 * row.primary_share, row.replica_queries, row.latency_p50_ms,
                row.latency_p99_ms, row.latency_max_ms);
    rows.push_back({{"strategy", row.strategy},
                    {"reads", row.reads},
                    {"error_rate", row.error_rate},
                    {"primary_share", row.primary_share},
                    {"replica_queries_per_read", row.replica_queries},
                    {"latency_p50_ms", row.latency_p50_ms},
                    {"latency_p99_ms", row.latency_p99_ms},
                    {"latency_max_ms", row.latency_max_ms}});
    p99.push_back({row.strategy, {100 * row.error_rate, 100 * row.primary_share}});
  }
  std::printf("\n%llu events simulated\n", static_cast<unsigned long long>(r.events));
  if (o.json) {
    write_file(
        *o.json,
        json{{"scenario", "replica-lag"}, {"seed", c.seed}, {"rows", rows}, {"events", r.events}}
                .dump(2) +
            "\n",
        "--json");
  }
  if (o.svg) {
    write_file(
        *o.svg,
        svg::bars("Read errors and primary share (%)", "%", {"errors", "read by primary"}, p99),
        "--svg");
  }
  return exit_code::ok;
}

int run_hedging(const simulate_options& o, const std::vector<sim::strategy>& user) {
  sim::hedging_options c;
  c.rate = number_flag(o.rate, "--rate", 1, 1e5, c.rate, false);
  c.length = duration_flag(o.length, "--length", c.length, std::chrono::seconds(1),
                           std::chrono::hours(24));
  c.latency_median = duration_flag(o.latency_median, "--latency-median", c.latency_median,
                                   std::chrono::microseconds(1), std::chrono::minutes(1));
  c.slow_probability =
      number_flag(o.slow_probability, "--slow-probability", 0, 1, c.slow_probability, false);
  c.seed = o.seed_value;
  c.strategies = user;
  if (c.rate * std::chrono::duration<double>(c.length).count() > 2e7) {
    throw config_error("--rate", "rate x length is over 20 million requests; shorten --length");
  }
  const auto r = sim::run_hedging(c);
  std::printf(
      "hedging: %.0f requests/s; answer time lognormal (median %s), %.0f%% slow tail of "
      "0.2s..1s; seed %llu\n\n",
      c.rate, format_duration(c.latency_median).c_str(), 100 * c.slow_probability,
      static_cast<unsigned long long>(c.seed));
  std::printf("%-32s %8s %8s %8s %9s %11s %15s\n", "strategy", "p50 ms", "p90 ms", "p99 ms",
              "p99.9 ms", "attempts/req", "server ms/req");
  json rows = json::array();
  std::vector<svg::series> tails, load;
  for (const auto& row : r.rows) {
    std::printf("%-32s %8.1f %8.1f %8.1f %9.1f %11.3f %15.2f\n", row.strategy.c_str(),
                row.latency_p50_ms, row.latency_p90_ms, row.latency_p99_ms, row.latency_p999_ms,
                row.attempts_per_request, row.server_ms_per_request);
    rows.push_back({{"strategy", row.strategy},
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
    tails.push_back({row.strategy, {row.latency_p50_ms, row.latency_p99_ms, row.latency_p999_ms}});
    load.push_back({row.strategy, {100 * (row.attempts_per_request - 1)}});
  }
  std::printf("\n%llu events simulated\n", static_cast<unsigned long long>(r.events));
  if (o.json) {
    write_file(*o.json,
               json{{"scenario", "hedging"},
                    {"seed", c.seed},
                    {"rate", c.rate},
                    {"latency_median_ms",
                     std::chrono::duration<double, std::milli>(c.latency_median).count()},
                    {"slow_probability", c.slow_probability},
                    {"rows", rows},
                    {"events", r.events}}
                       .dump(2) +
                   "\n",
               "--json");
  }
  if (o.svg) {
    write_file(
        *o.svg,
        svg::stack(
            {svg::bars("Latency by hedge strategy", "ms", {"p50", "p99", "p99.9"}, tails),
             svg::bars("Extra load: hedges per 100 requests", "%", {"extra attempts"}, load)}),
        "--svg");
  }
  return exit_code::ok;
}

int run_fleet(const simulate_options& o) {
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
  const auto r = sim::run_fleet(c);
  std::printf(
      "fleet: %d processes x %.3g requests/s; the dependency refuses every connection from %s "
      "for %s; 3 retries (100ms..1s, full jitter) under a ratio budget (10%%, 10/s floor); "
      "breakers open after 5 failures for 5s; shared state polled every %s; seed %llu\n\n",
      c.processes, c.rate_per_process, format_duration(c.trigger_at).c_str(),
      format_duration(c.trigger_for).c_str(), format_duration(c.poll_interval).c_str(),
      static_cast<unsigned long long>(c.seed));
  std::printf("%-32s %11s %12s %11s %6s %11s %11s %7s %14s\n", "strategy", "offered/s",
              "attempts/s", "retries/s", "amp", "detect p50", "detect all", "probes",
              "goodput after");
  json rows = json::array();
  std::vector<svg::series> load;
  for (const auto& row : r.rows) {
    const auto secs = [](double v) {
      char buf[32];
      if (v < 0) return std::string("-");
      std::snprintf(buf, sizeof buf, "%.2fs", v);
      return std::string(buf);
    };
    std::printf("%-32s %11.0f %12.0f %11.0f %6.2f %11s %11s %7llu %13.1f%%\n", row.strategy.c_str(),
                row.offered_per_s, row.attempts_per_s_during, row.retries_per_s_during,
                row.amplification_during, secs(row.detect_p50_s).c_str(),
                secs(row.detect_all_s).c_str(), static_cast<unsigned long long>(row.probes_during),
                100 * row.goodput_after);
    rows.push_back({{"strategy", row.strategy},
                    {"offered_per_s", row.offered_per_s},
                    {"attempts_per_s_during", row.attempts_per_s_during},
                    {"retries_per_s_during", row.retries_per_s_during},
                    {"amplification_during", row.amplification_during},
                    {"detect_p50_s", row.detect_p50_s},
                    {"detect_all_s", row.detect_all_s},
                    {"probes_during", row.probes_during},
                    {"goodput_after", row.goodput_after}});
    load.push_back({row.strategy, {row.attempts_per_s_during, row.retries_per_s_during}});
  }
  std::printf("\n%llu events simulated\n", static_cast<unsigned long long>(r.events));
  if (o.json) {
    write_file(*o.json,
               json{{"scenario", "fleet"},
                    {"seed", c.seed},
                    {"processes", c.processes},
                    {"rate_per_process", c.rate_per_process},
                    {"rows", rows},
                    {"events", r.events}}
                       .dump(2) +
                   "\n",
               "--json");
  }
  if (o.svg) {
    write_file(*o.svg,
               svg::bars("Load on the dependency during the outage (per second)", "/s",
                         {"attempts", "retries"}, load),
               "--svg");
  }
  return exit_code::ok;
}

}  // namespace

CLI::App* add_simulate(CLI::App& app, simulate_options& o) {
  auto* s = app.add_subcommand("simulate",
                               "Simulate what a policy does to a fleet: contention, "
                               "outage, replica-lag, layers, hedging, fleet");
  s->add_option("scenario", o.scenario,
                "contention | outage | replica-lag | layers | hedging | fleet")
      ->type_name("SCENARIO");
  s->add_option("--seed", o.seed, "Random seed (default 1): same seed, same numbers")
      ->type_name("N");
  s->add_option("--json", o.json, "Write every number as JSON to FILE")->type_name("FILE");
  s->add_option("--svg", o.svg, "Write charts as SVG to FILE")->type_name("FILE");
  s->add_option("--policy", o.policies,
                "A policy JSON file to simulate instead of the built-in set (repeatable)")
      ->type_name("FILE");
  s->add_option("--clients-from", o.clients_from, "contention: first client count (10)")
      ->type_name("N");
  s->add_option("--clients-to", o.clients_to, "contention: last client count (190)")
      ->type_name("N");
  s->add_option("--clients-step", o.clients_step, "contention: step (10)")->type_name("N");
  s->add_option("--trials", o.trials, "contention: trials per point (100)")->type_name("N");
  s->add_option(
       "--rate", o.rate,
       "outage: requests/s offered (1000); replica-lag: writes/s (200); hedging: requests/s "
       "(200); fleet: requests/s per process (1)")
      ->type_name("X");
  s->add_option("--capacity", o.capacity, "outage: requests per second served (1500)")
      ->type_name("X");
  s->add_option("--queue", o.queue, "outage: server queue places (2000)")->type_name("N");
  s->add_option("--timeout", o.timeout, "outage: client timeout per attempt (1s)")
      ->type_name("DUR");
  s->add_option("--length", o.length, "outage, replica-lag, hedging, fleet: simulated time (60s)")
      ->type_name("DUR");
  s->add_option("--trigger-at", o.trigger_at, "outage, fleet: when the trigger starts (10s)")
      ->type_name("DUR");
  s->add_option("--trigger-for", o.trigger_for, "outage: how long it lasts (10s); fleet (20s)")
      ->type_name("DUR");
  s->add_option("--trigger-capacity", o.trigger_capacity,
                "outage: capacity factor during the trigger, 0 = full outage (0.3)")
      ->type_name("X");
  s->add_option("--read-after", o.read_after, "replica-lag: delay from write to read (20ms)")
      ->type_name("DUR");
  s->add_option("--lag-mean", o.lag_mean, "replica-lag: mean replica lag (15ms)")->type_name("DUR");
  s->add_option("--spike-probability", o.spike_probability,
                "replica-lag: share of writes with a 0.5s..3s lag (0.05)")
      ->type_name("X");
  s->add_option("--depth", o.depth, "layers: call chain depth (3)")->type_name("N");
  s->add_option("--attempts", o.attempts, "layers: attempts per layer (3)")->type_name("N");
  s->add_option("--requests", o.requests, "layers: logical requests (1000)")->type_name("N");
  s->add_option("--failure-rate", o.failure_rate, "layers: bottom failure probability (1.0)")
      ->type_name("X");
  s->add_option("--latency-median", o.latency_median, "hedging: median answer time (10ms)")
      ->type_name("DUR");
  s->add_option("--slow-probability", o.slow_probability,
                "hedging: share of answers in the 0.2s..1s slow tail (0.05)")
      ->type_name("X");
  s->add_option("--processes", o.processes, "fleet: processes sharing the dependency (1000)")
      ->type_name("N");
  s->add_option("--poll-interval", o.poll_interval,
                "fleet: how often a process reads the shared breaker state (100ms)")
      ->type_name("DUR");
  return s;
}

int simulate_main(simulate_options& o) {
  try {
    if (o.scenario.empty()) {
      throw config_error(
          "simulate",
          "no scenario given; allowed: contention, outage, replica-lag, layers, hedging, fleet");
    }
    if (o.seed)
      o.seed_value = static_cast<std::uint64_t>(number_flag(o.seed, "--seed", 0, 1e15, 1, true));
    // Flags that belong to another scenario are errors, not silently ignored.
    const std::vector<std::pair<const std::optional<std::string>*, const char*>> contention_flags =
        {{&o.clients_from, "--clients-from"},
         {&o.clients_to, "--clients-to"},
         {&o.clients_step, "--clients-step"},
         {&o.trials, "--trials"}};
    const std::vector<std::pair<const std::optional<std::string>*, const char*>> outage_flags = {
        {&o.rate, "--rate"},
        {&o.capacity, "--capacity"},
        {&o.queue, "--queue"},
        {&o.timeout, "--timeout"},
        {&o.length, "--length"},
        {&o.trigger_at, "--trigger-at"},
        {&o.trigger_for, "--trigger-for"},
        {&o.trigger_capacity, "--trigger-capacity"}};
    const std::vector<std::pair<const std::optional<std::string>*, const char*>> replica_flags = {
        {&o.read_after, "--read-after"},
        {&o.lag_mean, "--lag-mean"},
        {&o.spike_probability, "--spike-probability"}};
    const std::vector<std::pair<const std::optional<std::string>*, const char*>> layers_flags = {
        {&o.depth, "--depth"},
        {&o.attempts, "--attempts"},
        {&o.requests, "--requests"},
        {&o.failure_rate, "--failure-rate"}};
    const std::vector<std::pair<const std::optional<std::string>*, const char*>> hedging_flags = {
        {&o.latency_median, "--latency-median"}, {&o.slow_probability, "--slow-probability"}};
    const std::vector<std::pair<const std::optional<std::string>*, const char*>> fleet_flags = {
        {&o.processes, "--processes"}, {&o.poll_interval, "--poll-interval"}};
    auto refuse = [&](const auto& flags) {
      for (const auto& [v, name] : flags) {
        if (*v) throw config_error(name, "not used by the " + o.scenario + " scenario");
      }
    };
    if (o.scenario != "fleet") refuse(fleet_flags);
    if (o.scenario == "fleet") {
      refuse(hedging_flags);
      refuse(contention_flags);
      refuse(layers_flags);
      refuse(replica_flags);
      for (const auto& [v, name] : outage_flags) {
        const std::string n = name;
        if (*v && n != "--rate" && n != "--length" && n != "--trigger-at" && n != "--trigger-for") {
          throw config_error(name, "not used by the fleet scenario");
        }
      }
      if (!o.policies.empty()) throw config_error("--policy", "not used by the fleet scenario");
      return run_fleet(o);
    }
    if (o.scenario == "contention") {
      refuse(hedging_flags);
      refuse(outage_flags);
      refuse(layers_flags);
      refuse(replica_flags);
      return run_contention(o, policy_strategies(o.policies));
    }
    if (o.scenario == "outage") {
      refuse(hedging_flags);
      refuse(contention_flags);
      refuse(layers_flags);
      refuse(replica_flags);
      return run_outage(o, policy_strategies(o.policies));
    }
    if (o.scenario == "replica-lag") {
      refuse(hedging_flags);
      refuse(contention_flags);
      refuse(layers_flags);
      for (const auto& [v, name] : outage_flags) {
        if (*v && std::string(name) != "--rate" && std::string(name) != "--length") {
          throw config_error(name, "not used by the replica-lag scenario");
        }
      }
      if (!o.policies.empty())
        throw config_error("--policy", "not used by the replica-lag scenario");
      return run_replica_lag(o);
    }
    if (o.scenario == "layers") {
      refuse(hedging_flags);
      refuse(contention_flags);
      refuse(outage_flags);
      refuse(replica_flags);
      if (!o.policies.empty()) throw config_error("--policy", "not used by the layers scenario");
      return run_layers(o);
    }
    if (o.scenario == "hedging") {
      refuse(contention_flags);
      refuse(layers_flags);
      refuse(replica_flags);
      for (const auto& [v, name] : outage_flags) {
        if (*v && std::string(name) != "--rate" && std::string(name) != "--length") {
          throw config_error(name, "not used by the hedging scenario");
        }
      }
      return run_hedging(o, policy_strategies(o.policies, true));
    }
    throw config_error("simulate", "unknown scenario \"" + o.scenario +
                                       "\"; allowed: contention, outage, replica-lag, layers, "
                                       "hedging, fleet");
  } catch (const config_error& e) {
    return usage_error(e.what());
  }
}

}  // namespace rebound::cli
