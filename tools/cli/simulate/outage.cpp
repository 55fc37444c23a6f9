// rebound simulate outage: a fleet's clients through a capacity drop or a full outage.
#include <algorithm>
#include <cstdio>

#include "../common.hpp"
#include "../svg.hpp"
#include "rebound/duration.hpp"
#include "report.hpp"

namespace rebound::cli::sim_cli {

namespace {

// The flags outage and overload share; `defaults` gives the strategies
// when no --policy file is given.
sim::outage_options outage_flags(const simulate_options& o, std::vector<sim::strategy> defaults,
                                 metrics::registry& registry) {
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
  c.strategies = strategies_for(o, false, defaults, registry);
  if (c.strategies.empty()) c.strategies = std::move(defaults);
  if (c.trigger_at >= c.length) {
    throw config_error(o.trigger_at ? "--trigger-at" : "--length",
                       "the trigger starts at " + format_duration(c.trigger_at) +
                           ", not before the run ends (--length " + format_duration(c.length) +
                           "); allowed: --trigger-at < --length");
  }
  if (c.rate * std::chrono::duration<double>(c.length).count() > 5e7) {
    throw config_error("--rate", "rate x length is over 50 million requests; shorten --length");
  }
  return c;
}

// The parameters both reports record in their JSON.
void outage_params(report& rep, const sim::outage_options& c, double t0, double t1) {
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
}

}  // namespace

int simulate_outage(const simulate_options& o) {
  metrics::registry registry;  // --metrics-file
  const sim::outage_options c = outage_flags(o, sim::default_outage_strategies(), registry);
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
  outage_params(rep, c, t0, t1);
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

namespace {

// overload --callers: closed-loop callers against a FIFO server, where
// latency is the only signal of overload.
int simulate_overload_fifo(const simulate_options& o) {
  for (const auto& [value, flag] :
       std::vector<std::pair<const std::optional<std::string>*, const char*>>{
           {&o.rate, "--rate"},
           {&o.capacity, "--capacity"},
           {&o.queue, "--queue"},
           {&o.timeout, "--timeout"},
           {&o.trigger_at, "--trigger-at"},
           {&o.trigger_for, "--trigger-for"},
           {&o.trigger_capacity, "--trigger-capacity"}}) {
    if (*value) {
      throw config_error(flag,
                         "not used with --callers (the closed-loop FIFO server); allowed "
                         "with it: --workers, --service-time, --length, --policy");
    }
  }
  metrics::registry registry;
  sim::fifo_options c;
  c.callers = static_cast<int>(number_flag(o.callers, "--callers", 1, 10000, c.callers, true));
  c.workers = static_cast<int>(number_flag(o.workers, "--workers", 1, 10000, c.workers, true));
  c.service_time = duration_flag(o.service_time, "--service-time", c.service_time,
                                 std::chrono::microseconds(1), std::chrono::minutes(1));
  c.length =
      duration_flag(o.length, "--length", c.length, std::chrono::seconds(1), std::chrono::hours(1));
  c.seed = o.seed_value;
  const double served = c.workers * std::chrono::duration<double>(c.length).count() /
                        std::chrono::duration<double>(c.service_time).count();
  if (served > 5e7) {
    throw config_error("--length",
                       "workers x length / service time is over 50 million "
                       "requests; shorten --length");
  }
  auto defaults = sim::default_fifo_strategies();
  c.strategies = strategies_for(o, false, defaults, registry);
  if (c.strategies.empty()) c.strategies = std::move(defaults);
  if (dry_run()) return exit_code::ok;
  const auto r = sim::run_fifo_overload(c);
  report rep("overload", "series",
             {{"policy", "policy", 20, column::form::text},
              {"served/s", "served_per_s", 9, column::form::fixed, 0},
              {"p50 ms", "latency_p50_ms", 7, column::form::fixed, 0},
              {"p99 ms", "latency_p99_ms", 7, column::form::fixed, 0},
              {"shed", "shed", 8, column::form::integer},
              {"limit min", "limit_min", 10, column::form::integer},
              {"limit max", "limit_max", 10, column::form::integer},
              {"limit end", "limit_end", 10, column::form::integer}});
  char line[256];
  std::snprintf(line, sizeof line,
                "overload: %d closed-loop callers, a FIFO server of %d at once, %s each "
                "(capacity %.0f/s; no limit: p99 = the queue's wait + the service time)",
                c.callers, c.workers, format_duration(c.service_time).c_str(),
                c.workers / std::chrono::duration<double>(c.service_time).count());
  rep.intro(line);
  std::snprintf(line, sizeof line, "run %s; seed %llu", format_duration(c.length).c_str(),
                static_cast<unsigned long long>(c.seed));
  rep.intro(line);
  rep.param("seed", c.seed);
  rep.param("callers", c.callers);
  rep.param("workers", c.workers);
  rep.param("service_time_ms", std::chrono::duration<double, std::milli>(c.service_time).count());
  rep.param("bucket_s", std::chrono::duration<double>(c.bucket).count());
  for (const auto& s : r.series) {
    rep.row({{"policy", s.strategy},
             {"served_per_s", s.served_per_s},
             {"latency_p50_ms", s.latency_p50_ms},
             {"latency_p99_ms", s.latency_p99_ms},
             {"shed", s.shed},
             {"limit_min", s.limit_min},
             {"limit_max", s.limit_max},
             {"limit_end", s.limit_end},
             {"served", s.served},
             {"limit_per_bucket", s.limit},
             {"latency_p99_ms_per_bucket", s.latency_p99_ms_per_bucket}});
  }
  rep.note(
      "latency as the caller sees it (queue + service) of the requests served; shed = requests "
      "the limiter refused (the caller waits 10 ms and sends another); limit min/max after the "
      "first second (0: no limiter)");
  rep.metrics(&registry);
  return rep.finish(o, r.events, [&] {
    std::vector<svg::series> limits, p99;
    for (const auto& s : r.series) {
      p99.push_back({s.strategy, s.latency_p99_ms_per_bucket});
      if (s.limit_end > 0) limits.push_back({s.strategy, s.limit});
    }
    return svg::stack({svg::lines("p99 latency (ms)", "seconds", "ms", p99),
                       svg::lines("Concurrency limit", "seconds", "limit", limits)});
  });
}

}  // namespace

// The overload comparison: the same server, with concurrency limiters in
// front of it against the retry budget alone.
int simulate_overload(const simulate_options& o) {
  if (o.callers || o.workers || o.service_time) {
    if (!o.callers) {
      throw config_error(o.workers ? "--workers" : "--service-time",
                         "only with --callers (the closed-loop FIFO server)");
    }
    return simulate_overload_fifo(o);
  }
  metrics::registry registry;
  const sim::outage_options c = outage_flags(o, sim::default_overload_strategies(), registry);
  if (dry_run()) return exit_code::ok;
  const auto r = sim::run_outage(c);
  const double t0 = std::chrono::duration<double>(c.trigger_at).count();
  const double t1 = t0 + std::chrono::duration<double>(c.trigger_for).count();
  report rep("overload", "series",
             {{"policy", "policy", 26, column::form::text},
              {"goodput during", "goodput_ratio_during", 15, column::form::percent, 0},
              {"p99 during", "latency_p99_ms_during", 11, column::form::fixed, 0},
              {"recovery", "recovery_s", 9, column::form::seconds},
              {"shed", "shed", 8, column::form::integer},
              {"amp.during", "amplification_during", 11, column::form::fixed, 2},
              {"wasted", "wasted", 8, column::form::integer}});
  char line[256];
  std::snprintf(line, sizeof line,
                "overload: %.0f req/s offered to a server of capacity %.0f/s (FIFO queue %d: "
                "latency grows with it; client timeout %s)",
                c.rate, c.capacity, c.queue, format_duration(c.client_timeout).c_str());
  rep.intro(line);
  std::snprintf(line, sizeof line, "trigger: capacity x%.2f from %gs to %gs; run %s; seed %llu",
                c.trigger_capacity, t0, t1, format_duration(c.length).c_str(),
                static_cast<unsigned long long>(c.seed));
  rep.intro(line);
  outage_params(rep, c, t0, t1);
  for (const auto& s : r.series) {
    rep.row({{"policy", s.strategy},
             {"goodput_ratio_during", s.goodput_ratio_during},
             {"latency_p99_ms_during", s.latency_p99_ms_during},
             {"recovery_s", s.recovery_s},
             {"shed", s.shed},
             {"amplification_during", s.amplification_during},
             {"wasted", s.wasted},
             {"started", s.started},
             {"succeeded", s.succeeded},
             {"failed", s.failures},
             {"goodput_per_bucket", s.goodput},
             {"limit_per_bucket", s.limit},
             {"latency_p99_ms_per_bucket", s.latency_p99_ms}});
  }
  rep.note(
      "goodput during = successes / offered while the capacity is down; p99 during = of the "
      "successes that ended then (ms); recovery = from the trigger's end to the first second "
      "with goodput >= 90% of offered; shed = attempts the limiter refused locally");
  rep.metrics(&registry);
  return rep.finish(o, r.events, [&] {
    std::vector<svg::series> goodput, limits, p99;
    for (const auto& s : r.series) {
      goodput.push_back({s.strategy, s.goodput});
      p99.push_back({s.strategy, s.latency_p99_ms});
      if (std::any_of(s.limit.begin(), s.limit.end(), [](double v) { return v > 0; })) {
        limits.push_back({s.strategy, s.limit});
      }
    }
    return svg::stack({svg::lines("Goodput (successful requests per second)", "seconds",
                                  "requests/s", goodput, t0, t1),
                       svg::lines("p99 latency of successes (ms)", "seconds", "ms", p99, t0, t1),
                       svg::lines("Concurrency limit", "seconds", "limit", limits, t0, t1)});
  });
}

}  // namespace rebound::cli::sim_cli
