// rebound policy show: what a policy does, before it ships.
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "rebound/duration.hpp"
#include "rebound/policy.hpp"

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

}  // namespace

CLI::App* add_policy_show(CLI::App& policy, policy_show_options& o) {
  auto* show = policy.add_subcommand(
      "show", "Print the wait before each attempt (min, median, max over seeded samples)");
  add_policy_flags(*show, o.policy);
  show->add_option("--samples", o.samples, "How many seeded schedules to draw (default 1000)")
      ->type_name("N");
  show->add_flag("--json", o.json, "Print JSON instead of a table");
  return show;
}

int policy_show_main(const policy_show_options& o) {
  policy_settings settings;
  int samples = 1000;
  try {
    settings = settings_from_flags(o.policy);
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
  const retry_policy base = settings.to_policy();
  const std::uint64_t first_seed = settings.seed.value_or(1);

  // Each sample: attempts take no time; the decision step alone decides.
  const int row_limit = static_cast<int>(
      std::max<std::int64_t>(1, std::min<std::int64_t>(max_rows, max_kept_waits / samples)));
  std::vector<row> rows;
  std::map<stop_reason, int> ends;
  int unfinished = 0;  // samples still retrying at the row limit
  for (int i = 0; i < samples; ++i) {
    const retry_policy p = base.seed(first_seed + static_cast<std::uint64_t>(i));
    const time_point t0(std::chrono::hours(1));
    retry_state state(p, t0);
    time_point now = t0;
    duration cumulative{};
    for (int n = 0;; ++n) {
      if (n >= row_limit) {
        ++unfinished;
        break;
      }
      const decision d = state.decide(verdict::transient(), now);
      if (!d.retry) {
        ++ends[d.reason];
        break;
      }
      now += d.delay;
      cumulative += d.delay;
      if (rows.size() <= static_cast<std::size_t>(n)) rows.emplace_back();
      rows[n].waits.push_back(d.delay);
      rows[n].cumulative_max = std::max(rows[n].cumulative_max, cumulative);
    }
  }

  nlohmann::json out;
  out["policy"] = describe(settings);
  out["samples"] = samples;
  out["first_seed"] = first_seed;
  out["attempts"] = nlohmann::json::array();
  if (!o.json) {
    std::printf("%s\n", describe(settings).c_str());
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
