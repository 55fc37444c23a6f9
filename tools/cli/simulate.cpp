// rebound simulate: what a policy does to a whole fleet, before it ships. The
// scenarios live in simulate/, one file each, and share one report writer.
#include <algorithm>
#include <string>
#include <vector>

#include "commands.hpp"
#include "common.hpp"
#include "simulate/report.hpp"

namespace rebound::cli {

CLI::App* add_simulate(CLI::App& app, simulate_options& o) {
  auto* s = app.add_subcommand("simulate",
                               "Simulate what a policy does to a fleet: contention, "
                               "outage, overload, replica-lag, layers, hedging, fleet");
  s->add_option("scenario", o.scenario,
                "contention | outage | overload | replica-lag | layers | hedging | fleet")
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
  s->add_option("--length", o.length,
                "outage, overload, replica-lag, hedging, fleet: simulated time (60s; 30s for "
                "overload --callers)")
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
  s->add_option("--requests", o.requests,
                "layers: logical requests (1000); hedging: requests in all (instead of --length)")
      ->type_name("N");
  s->add_option("--failure-rate", o.failure_rate, "layers: bottom failure probability (1.0)")
      ->type_name("X");
  s->add_option("--latency-median", o.latency_median, "hedging: median answer time (10ms)")
      ->type_name("DUR");
  s->add_option("--slow-probability", o.slow_probability,
                "hedging: share of answers in the 0.2s..1s slow tail (0.05)")
      ->type_name("X");
  s->add_option("--slow-tiers", o.slow_tiers,
                "hedging: fixed delays instead of the slow tail, as P:DUR,...; "
                "e.g. 0.01:10s,0.04:5s,0.05:2s (gRPC-Java's hedging example)")
      ->type_name("LIST");
  s->add_option(
       "--metrics-file", o.metrics_file,
       "contention, outage, overload, hedging: write each strategy's engine metrics (component = "
       "the strategy) to FILE, in Prometheus text format")
      ->type_name("FILE");
  s->add_option("--callers", o.callers,
                "overload: closed-loop callers against a FIFO server of --workers at once, "
                "instead of the open-loop outage server (e.g. 32)")
      ->type_name("N");
  s->add_option("--workers", o.workers, "overload with --callers: requests served at once (8)")
      ->type_name("N");
  s->add_option("--service-time", o.service_time,
                "overload with --callers: time to serve one request (20ms)")
      ->type_name("DUR");
  s->add_option("--processes", o.processes, "fleet: processes sharing the dependency (1000)")
      ->type_name("N");
  s->add_option("--poll-interval", o.poll_interval,
                "fleet: how often a process reads the shared breaker state (100ms)")
      ->type_name("DUR");
  return s;
}

namespace {

// Each scenario, the flags it reads, and whether it takes --policy files.
struct scenario {
  const char* name;
  int (*run)(const simulate_options&);
  std::vector<std::string> flags;
  bool policies;
};

const std::vector<scenario>& scenarios() {
  static const std::vector<scenario> all = {
      {"contention",
       sim_cli::simulate_contention,
       {"--clients-from", "--clients-to", "--clients-step", "--trials", "--metrics-file"},
       true},
      {"outage",
       sim_cli::simulate_outage,
       {"--rate", "--capacity", "--queue", "--timeout", "--length", "--trigger-at", "--trigger-for",
        "--trigger-capacity", "--metrics-file"},
       true},
      {"overload",
       sim_cli::simulate_overload,
       {"--rate", "--capacity", "--queue", "--timeout", "--length", "--trigger-at", "--trigger-for",
        "--trigger-capacity", "--metrics-file", "--callers", "--workers", "--service-time"},
       true},
      {"replica-lag",
       sim_cli::simulate_replica_lag,
       {"--rate", "--length", "--read-after", "--lag-mean", "--spike-probability"},
       false},
      {"layers",
       sim_cli::simulate_layers,
       {"--depth", "--attempts", "--requests", "--failure-rate"},
       false},
      {"hedging",
       sim_cli::simulate_hedging,
       {"--rate", "--length", "--latency-median", "--slow-probability", "--slow-tiers",
        "--requests", "--metrics-file"},
       true},
      {"fleet",
       sim_cli::simulate_fleet,
       {"--processes", "--rate", "--length", "--trigger-at", "--trigger-for", "--poll-interval"},
       false},
  };
  return all;
}

}  // namespace

int simulate_main(simulate_options& o) {
  try {
    const std::string names = "contention, outage, overload, replica-lag, layers, hedging, fleet";
    if (o.scenario.empty()) {
      throw config_error("simulate", "no scenario given; allowed: " + names);
    }
    const scenario* chosen = nullptr;
    for (const auto& s : scenarios()) {
      if (o.scenario == s.name) chosen = &s;
    }
    if (chosen == nullptr) {
      throw config_error("simulate", "unknown scenario \"" + o.scenario + "\"; allowed: " + names);
    }
    if (o.seed) {
      o.seed_value =
          static_cast<std::uint64_t>(sim_cli::number_flag(o.seed, "--seed", 0, 1e15, 1, true));
    }
    // A flag that belongs to another scenario is an error, not silently ignored.
    const std::vector<std::pair<const std::optional<std::string>*, const char*>> given = {
        {&o.clients_from, "--clients-from"},
        {&o.clients_to, "--clients-to"},
        {&o.clients_step, "--clients-step"},
        {&o.trials, "--trials"},
        {&o.rate, "--rate"},
        {&o.capacity, "--capacity"},
        {&o.queue, "--queue"},
        {&o.timeout, "--timeout"},
        {&o.length, "--length"},
        {&o.trigger_at, "--trigger-at"},
        {&o.trigger_for, "--trigger-for"},
        {&o.trigger_capacity, "--trigger-capacity"},
        {&o.read_after, "--read-after"},
        {&o.lag_mean, "--lag-mean"},
        {&o.spike_probability, "--spike-probability"},
        {&o.depth, "--depth"},
        {&o.attempts, "--attempts"},
        {&o.requests, "--requests"},
        {&o.failure_rate, "--failure-rate"},
        {&o.latency_median, "--latency-median"},
        {&o.slow_probability, "--slow-probability"},
        {&o.slow_tiers, "--slow-tiers"},
        {&o.processes, "--processes"},
        {&o.poll_interval, "--poll-interval"},
        {&o.callers, "--callers"},
        {&o.workers, "--workers"},
        {&o.service_time, "--service-time"},
        {&o.metrics_file, "--metrics-file"}};
    for (const auto& [value, flag] : given) {
      if (*value &&
          std::find(chosen->flags.begin(), chosen->flags.end(), flag) == chosen->flags.end()) {
        throw config_error(flag, "not used by the " + o.scenario + " scenario");
      }
    }
    if (!o.policies.empty() && !chosen->policies) {
      throw config_error("--policy", "not used by the " + o.scenario + " scenario");
    }
    return chosen->run(o);
  } catch (const config_error& e) {
    return usage_error(e.what());
  }
}

}  // namespace rebound::cli
