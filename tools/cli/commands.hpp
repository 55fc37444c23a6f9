// The subcommands of the rebound tool.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common.hpp"

namespace rebound::cli {

/// The whole command line: parses argv, runs the command, returns the exit
/// status. Exceptions it does not map to a status propagate (main catches them).
int cli_main(int argc, char** argv);

/// Parse-only mode, for the fuzz target: every command parses and checks
/// its arguments (flags, settings, files it reads, URLs, headers) and then
/// returns 0 instead of running anything, starting a process or sending a
/// request. Off in the tool.
bool dry_run() noexcept;
void set_dry_run(bool on) noexcept;

struct run_options {
  policy_flags policy;
  std::optional<std::string> timeout, kill_after, retry_on_exit, no_retry_on_exit, events,
      events_file, metrics_file;
  std::optional<int> max_concurrency;
  std::optional<std::string> concurrency_key, concurrency_dir;
  bool quiet = false;
  std::vector<std::string> command;
};
CLI::App* add_run(CLI::App& app, run_options& o);
int run_main(const run_options& o);

struct policy_show_options {
  policy_flags policy;
  std::optional<std::string> samples, preset;
  std::optional<std::string> grpc_service_config, grpc_method;
  bool json = false;
};
CLI::App* add_policy_show(CLI::App& policy, policy_show_options& o);
int policy_show_main(const policy_show_options& o);

struct simulate_options {
  std::string scenario;
  std::optional<std::string> seed, json, svg;
  std::vector<std::string> policies;
  std::optional<std::string> clients_from, clients_to, clients_step, trials;
  std::optional<std::string> rate, capacity, queue, timeout, length, trigger_at, trigger_for,
      trigger_capacity;
  std::optional<std::string> depth, attempts, requests, failure_rate;
  std::optional<std::string> read_after, lag_mean, spike_probability;
  std::optional<std::string> latency_median, slow_probability, slow_tiers;
  std::optional<std::string> processes, poll_interval;
  std::optional<std::string> callers, workers, service_time;
  std::optional<std::string> metrics_file;
  std::uint64_t seed_value = 1;
};
CLI::App* add_simulate(CLI::App& app, simulate_options& o);
int simulate_main(simulate_options& o);

struct http_options {
  policy_flags policy;
  std::optional<std::string> method, data, idempotency_key, retry_status, max_retry_after, timeout,
      attempt_header, metrics_file;
  std::vector<std::string> headers;
  bool quiet = false;
  std::string url;
};
CLI::App* add_http(CLI::App& app, http_options& o);
int http_main(const http_options& o);

}  // namespace rebound::cli
