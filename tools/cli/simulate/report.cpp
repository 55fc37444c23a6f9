#include "report.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "../common.hpp"
#include "rebound/duration.hpp"

namespace rebound::cli::sim_cli {

namespace {

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

void write_file(const std::string& path, const std::string& text, const std::string& flag) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out || !(out << text)) throw config_error(flag, "cannot write \"" + path + "\"");
}

std::string cell(const column& c, const json& v) {
  char buf[128];
  switch (c.how) {
    case column::form::text:
      return v.is_string() ? v.get<std::string>() : v.dump();
    case column::form::integer:
      std::snprintf(buf, sizeof buf, "%lld", v.get<long long>());
      return buf;
    case column::form::fixed:
      std::snprintf(buf, sizeof buf, "%.*f", c.precision, v.get<double>());
      return buf;
    case column::form::percent:
      std::snprintf(buf, sizeof buf, "%.*f%%", c.precision, 100 * v.get<double>());
      return buf;
    case column::form::yes_no:
      return v.get<bool>() ? "yes" : "no";
    case column::form::seconds:
      if (v.get<double>() < 0) return "-";
      std::snprintf(buf, sizeof buf, "%.2fs", v.get<double>());
      return buf;
  }
  return {};
}

std::string padded(const std::string& s, int width, bool left) {
  const auto n = static_cast<std::size_t>(std::max(width, 0));
  if (s.size() >= n) return s;
  return left ? s + std::string(n - s.size(), ' ') : std::string(n - s.size(), ' ') + s;
}

}  // namespace

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
  if (x < lo || x > hi) {
    throw config_error(flag, "\"" + *v + "\" is out of range; allowed: " + range);
  }
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

std::vector<sim::strategy> policy_strategies(const std::vector<std::string>& files,
                                             bool hedging_scenario) {
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

std::vector<sim::strategy> strategies_for(const simulate_options& o, bool hedging_scenario,
                                          std::vector<sim::strategy> defaults,
                                          metrics::registry& r) {
  auto out = policy_strategies(o.policies, hedging_scenario);
  if (!o.metrics_file) return out;  // empty: the scenario's own defaults
  if (out.empty()) out = std::move(defaults);
  for (auto& s : out) {
    s.make = [inner = s.make, &r, name = s.name](clock& c) {
      return inner(c).observer(std::make_shared<metrics::call_metrics>(r, name));
    };
  }
  return out;
}

report::report(std::string scenario, std::string rows_key, std::vector<column> columns)
    : scenario_(std::move(scenario)),
      rows_key_(std::move(rows_key)),
      columns_(std::move(columns)) {}

int report::finish(const simulate_options& o, std::uint64_t events,
                   const std::function<std::string()>& svg) const {
  for (const auto& line : intro_) std::printf("%s\n", line.c_str());
  std::printf("\n");
  std::string head;
  for (std::size_t i = 0; i < columns_.size(); ++i) {
    head += (i ? " " : "") + padded(columns_[i].header, columns_[i].width,
                                    columns_[i].left || columns_[i].how == column::form::text ||
                                        columns_[i].how == column::form::yes_no);
  }
  std::printf("%s\n", head.c_str());
  for (const auto& r : rows_) {
    std::string line;
    for (std::size_t i = 0; i < columns_.size(); ++i) {
      const auto& c = columns_[i];
      line += (i ? " " : "") +
              padded(cell(c, r.at(c.key)), c.width,
                     c.left || c.how == column::form::text || c.how == column::form::yes_no);
    }
    std::printf("%s\n", line.c_str());
  }
  std::printf("\n");
  for (const auto& line : notes_) std::printf("%s\n", line.c_str());
  std::printf("%llu events simulated\n", static_cast<unsigned long long>(events));
  if (o.json) {
    json doc = params_;
    doc["scenario"] = scenario_;
    doc[rows_key_] = rows_;
    doc["events"] = events;
    write_file(*o.json, doc.dump(2) + "\n", "--json");
  }
  if (o.svg && svg) write_file(*o.svg, svg(), "--svg");
  if (o.metrics_file && metrics_ != nullptr) {
    try {
      metrics::write_file(*metrics_, *o.metrics_file);
    } catch (const std::exception& e) {
      throw config_error("--metrics-file", e.what());
    }
  }
  return exit_code::ok;
}

}  // namespace rebound::cli::sim_cli
