// rebound policy show: what a policy does, before it ships.
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "rebound/call.hpp"
#include "rebound/duration.hpp"
#include "rebound/grpc/service_config.hpp"
#include "rebound/pg/options.hpp"
#include "rebound/policy.hpp"
#include "rebound/sim/engine.hpp"

namespace rebound::cli {

namespace {

// At most this many attempts are simulated, and at most this many waits kept
// in memory (samples x attempts), so any policy shows in bounded time and space.
constexpr int max_rows = 1'000;
constexpr std::int64_t max_kept_waits = 5'000'000;

struct row {
  std::vector<duration> waits;  // the wait before this attempt, one per sample that got here
  duration cumulative_max{};
};

double ms(duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

std::string fmt_ms(duration d) { return format_duration(d); }

// The retry rules adapters carry as policies, by name: `--preset` starts
// from one of them, so `policy show` previews exactly what the adapter runs.
std::optional<policy_settings> preset(const std::string& name) {
  if (name == "default") return policy_settings{};
  if (name == "pg.replica_retry") return pg::router_options{}.replica_retry;
  if (name == "pg.lsn_wait") return pg::router_options{}.lsn_wait;
  if (name == "redis.reconnect") {
    // rebound/redis/client.hpp's default (reconnect_backoff(100ms, 5s)),
    // spelled here so the tool needs no hiredis.
    policy_settings s;
    s.max_attempts = 1'000'000;
    s.initial = std::chrono::milliseconds(100);
    s.max_delay = std::chrono::seconds(5);
    s.jitter = jitter::equal();
    return s;
  }
  return std::nullopt;
}

}  // namespace

CLI::App* add_policy_show(CLI::App& policy, policy_show_options& o) {
  auto* show = policy.add_subcommand(
      "show", "Print the wait before each attempt (min, median, max over seeded samples)");
  add_policy_flags(*show, o.policy);
  show->add_option("--samples", o.samples, "How many seeded schedules to draw (default 1000)")
      ->type_name("N");
  show->add_flag("--json", o.json, "Print JSON instead of a table");
  show->add_option("--preset", o.preset,
                   "Start from an adapter's own retry rule: pg.replica_retry, pg.lsn_wait, "
                   "redis.reconnect (--config and flags then change it)")
      ->type_name("NAME");
  show->add_option("--grpc-service-config", o.grpc_service_config,
                   "Preview what a gRPC service config (gRFC A6 retryPolicy, hedgingPolicy, "
                   "retryThrottling) means for --method, as rebound::grpc runs it")
      ->type_name("FILE");
  show->add_option("--method", o.grpc_method,
                   "The method whose config to preview, as pkg.Service/Method "
                   "(with --grpc-service-config)")
      ->type_name("NAME");
  return show;
}

int policy_show_main(const policy_show_options& o) {
  policy_settings settings;
  int samples = 1000;
  std::optional<grpc::method_config> from_grpc;
  try {
    if (o.grpc_service_config || o.grpc_method) {
      if (!o.grpc_service_config) {
        throw config_error("--method", "needs --grpc-service-config FILE (the config to read)");
      }
      if (!o.grpc_method) {
        throw config_error("--grpc-service-config",
                           "needs --method pkg.Service/Method (the method to preview)");
      }
      bool policy_flags_given = o.policy.config.has_value();
      for (const auto& [path, value] : o.policy.values) {
        if (value && path != "seed") policy_flags_given = true;  // --seed still picks the samples
      }
      if (o.preset || policy_flags_given) {
        throw config_error("--grpc-service-config",
                           "takes the whole policy from the service config; it cannot be "
                           "combined with --preset, --config or policy flags");
      }
      from_grpc = grpc::policy_from_service_config_file(*o.grpc_service_config, *o.grpc_method);
    }
    policy_settings base;
    if (o.preset) {
      const auto p = preset(*o.preset);
      if (!p) {
        throw config_error("--preset", "\"" + *o.preset +
                                           "\" is not a preset; allowed: default, "
                                           "pg.replica_retry, pg.lsn_wait, redis.reconnect");
      }
      base = *p;
    }
    settings = settings_from_flags(o.policy, base);
    if (o.samples) {
      const auto& t = *o.samples;
      const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), samples);
      if (t.empty() || ec != std::errc() || p != t.data() + t.size() || samples < 1 ||
          samples > 1'000'000) {
        throw config_error("--samples", "\"" + t + "\" is not allowed; allowed: 1..1000000");
      }
    }
  } catch (const config_error& e) {
    return usage_error(e.what());
  }
  if (dry_run()) return exit_code::ok;
  if (from_grpc && from_grpc->policy.hedge()) {
    // A hedging policy has no back-off to sample: attempt k starts (k-1)
    // hedging delays after the first while none has answered.
    const auto& h = *from_grpc->policy.hedge();
    nlohmann::json out{{"policy", from_grpc->summary}, {"hedges", nlohmann::json::array()}};
    if (!o.json) {
      std::printf("%s\n\n%-8s %16s\n", from_grpc->summary.c_str(), "attempt", "starts after");
    }
    for (int k = 1; k <= h.max_hedges + 1; ++k) {
      const duration at = h.delay * (k - 1);
      if (o.json) {
        out["hedges"].push_back({{"attempt", k}, {"start_ms", ms(at)}});
      } else {
        std::printf("%-8d %16s\n", k, fmt_ms(at).c_str());
      }
    }
    if (o.json) std::printf("%s\n", out.dump().c_str());
    return exit_code::ok;
  }
  const std::uint64_t first_seed = settings.seed.value_or(1);

  // Each sample is one call of the call engine, exactly as a loop runs it,
  // on simulated time: attempts take no time, each wait passes at once.
  const int row_limit = static_cast<int>(
      std::max<std::int64_t>(1, std::min<std::int64_t>(max_rows, max_kept_waits / samples)));
  std::vector<row> rows;
  std::map<stop_reason, int> ends;
  int unfinished = 0;  // samples still retrying at the row limit
  sim::engine clock(first_seed);
  for (int i = 0; i < samples; ++i) {
    // A fresh policy per sample: a budget or throttle it carries starts full.
    retry_policy p;
    if (from_grpc) {
      // A fresh throttle per sample: the config is read again (it is small).
      p = (i == 0 || !from_grpc->throttle)
              ? from_grpc->policy
              : grpc::policy_from_service_config_file(*o.grpc_service_config, *o.grpc_method)
                    .policy;
      p = p.clock(clock).seed(first_seed + static_cast<std::uint64_t>(i));
    } else {
      p = settings.to_policy(clock).seed(first_seed + static_cast<std::uint64_t>(i));
    }
    retry_call call(p, {}, {.nested = 0});
    call_step step = call.start();
    duration cumulative{};
    for (int n = 0; step.attempt(); ++n) {
      if (n >= row_limit) {
        ++unfinished;
        break;
      }
      step = call.failed(verdict::transient());
      if (!step.wait()) break;
      clock.run_until(step.until);
      cumulative += step.delay;
      if (rows.size() <= static_cast<std::size_t>(n)) rows.emplace_back();
      rows[n].waits.push_back(step.delay);
      rows[n].cumulative_max = std::max(rows[n].cumulative_max, cumulative);
      step = call.resume(true);
    }
    if (step.done()) ++ends[step.reason];
  }

  nlohmann::json out;
  const std::string description = from_grpc ? from_grpc->summary : describe(settings);
  out["policy"] = description;
  out["samples"] = samples;
  out["first_seed"] = first_seed;
  out["attempts"] = nlohmann::json::array();
  if (!o.json) {
    std::printf("%s\n", description.c_str());
    std::printf("%d seeded samples (seeds from %llu); attempts take no time here\n\n", samples,
                static_cast<unsigned long long>(first_seed));
    std::printf("%-8s %12s %12s %12s %16s %9s\n", "attempt", "wait min", "wait median", "wait max",
                "cumulative max", "reached");
  }
  for (std::size_t n = 0; n < rows.size(); ++n) {
    auto& w = rows[n].waits;
    std::sort(w.begin(), w.end());
    const duration median = w[w.size() / 2];
    const double reached = 100.0 * static_cast<double>(w.size()) / samples;
    if (o.json) {
      out["attempts"].push_back({{"attempt", n + 2},
                                 {"delay_min_ms", ms(w.front())},
                                 {"delay_median_ms", ms(median)},
                                 {"delay_max_ms", ms(w.back())},
                                 {"cumulative_max_ms", ms(rows[n].cumulative_max)},
                                 {"reached", reached / 100.0}});
    } else {
      std::printf("%-8zu %12s %12s %12s %16s %8.1f%%\n", n + 2, fmt_ms(w.front()).c_str(),
                  fmt_ms(median).c_str(), fmt_ms(w.back()).c_str(),
                  fmt_ms(rows[n].cumulative_max).c_str(), reached);
    }
  }
  nlohmann::json give_up = nlohmann::json::object();
  for (const auto& [reason, count] : ends) give_up[std::string(to_string(reason))] = count;
  out["give_up"] = give_up;
  out["truncated"] = unfinished > 0;
  out["unfinished_samples"] = unfinished;
  if (o.json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    if (rows.empty()) std::printf("(no retries: the policy stops after the first attempt)\n");
    std::printf("\ngives up:");
    for (const auto& [reason, count] : ends) {
      std::printf(" %s %d", std::string(to_string(reason)).c_str(), count);
    }
    if (unfinished > 0) std::printf(" still retrying %d", unfinished);
    std::printf("\n");
    if (unfinished > 0) {
      std::printf("(shown up to attempt %d; the policy retries further in %d of the samples)\n",
                  row_limit + 1, unfinished);
    }
  }
  return exit_code::ok;
}

}  // namespace rebound::cli
