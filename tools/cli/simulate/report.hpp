// rebound simulate: what every scenario shares. Flag parsing with ranges,
// --policy files, and one report that prints the table, writes the JSON and
// the SVG from the same rows.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "../commands.hpp"
#include "rebound/metrics.hpp"
#include "rebound/sim/scenarios.hpp"

namespace rebound::cli::sim_cli {

using json = nlohmann::json;

/// A number flag in [lo, hi] (integers only when `integer`), or `fallback`.
double number_flag(const std::optional<std::string>& v, const std::string& flag, double lo,
                   double hi, double fallback, bool integer);
/// A duration flag in [lo, hi], or `fallback`.
duration duration_flag(const std::optional<std::string>& v, const std::string& flag,
                       duration fallback, duration lo, duration hi);
/// --policy FILE...: each file becomes a strategy built on the simulation's clock.
std::vector<sim::strategy> policy_strategies(const std::vector<std::string>& files,
                                             bool hedging_scenario = false);
/// The strategies to run: --policy files, else `defaults`; with
/// --metrics-file, each policy also counts the engine's events into `r`
/// (component = the strategy's name).
std::vector<sim::strategy> strategies_for(const simulate_options& o, bool hedging_scenario,
                                          std::vector<sim::strategy> defaults,
                                          metrics::registry& r);

/// One column of a report: a key of each row's JSON object, printed.
struct column {
  enum class form : std::uint8_t {
    text,     ///< a string, left-aligned
    integer,  ///< an integer
    fixed,    ///< a number with `precision` decimals
    percent,  ///< a ratio printed as a percentage with `precision` decimals
    seconds,  ///< seconds with two decimals, "-" when negative
    yes_no,   ///< a boolean, left-aligned
  };
  const char* header;
  const char* key;
  int width;
  form how = form::fixed;
  int precision = 1;
  bool left = false;  ///< left-aligned (text always is)
};

/// A scenario's results: rows as JSON objects, printed as a table, written
/// as JSON (the rows under `rows_key`, beside the scenario's parameters), and
/// charted from the same numbers.
class report {
 public:
  report(std::string scenario, std::string rows_key, std::vector<column> columns);
  /// Lines printed before the table.
  void intro(std::string line) { intro_.push_back(std::move(line)); }
  /// A top-level JSON field (the scenario's parameters).
  void param(const std::string& key, json value) { params_[key] = std::move(value); }
  /// A row: every column's key must be in it; other keys go to the JSON only.
  void row(json r) { rows_.push_back(std::move(r)); }
  /// Lines printed after the table.
  void note(std::string line) { notes_.push_back(std::move(line)); }
  /// The registry --metrics-file writes (strategies_for fills it).
  void metrics(const metrics::registry* r) { metrics_ = r; }
  /// Prints, then writes --json, --svg (`svg` makes the chart, if asked
  /// for) and --metrics-file.
  int finish(const simulate_options& o, std::uint64_t events,
             const std::function<std::string()>& svg = {}) const;
  [[nodiscard]] const std::vector<json>& rows() const noexcept { return rows_; }

 private:
  std::string scenario_;
  std::string rows_key_;
  std::vector<column> columns_;
  std::vector<std::string> intro_, notes_;
  json params_ = json::object();
  std::vector<json> rows_;
  const metrics::registry* metrics_ = nullptr;
};

/// The scenarios, each in its own file.
int simulate_contention(const simulate_options& o);
int simulate_outage(const simulate_options& o);
int simulate_overload(const simulate_options& o);
int simulate_layers(const simulate_options& o);
int simulate_replica_lag(const simulate_options& o);
int simulate_hedging(const simulate_options& o);
int simulate_fleet(const simulate_options& o);

}  // namespace rebound::cli::sim_cli
