// The subcommands of the rebound tool.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common.hpp"

namespace rebound::cli {

struct run_options {
  policy_flags policy;
  std::optional<std::string> timeout, kill_after, retry_on_exit, no_retry_on_exit, events,
      events_file;
  bool quiet = false;
  std::vector<std::string> command;
};
CLI::App* add_run(CLI::App& app, run_options& o);
int run_main(const run_options& o);

struct policy_show_options {
  policy_flags policy;
  std::optional<std::string> samples;
  bool json = false;
};
CLI::App* add_policy_show(CLI::App& policy, policy_show_options& o);
int policy_show_main(const policy_show_options& o);

}  // namespace rebound::cli
