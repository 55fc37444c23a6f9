// The rebound command line, parsed and dispatched (main.cpp wraps it). See docs/cli.md.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

#include "commands.hpp"
#include "common.hpp"

namespace {

// Checks a subcommand's arguments before CLI11 does, to name what is wrong:
// an unknown flag, a flag without its value, or a stray word. CLI11 would
// report some of these as an unexpected positional, or take "--" as a value.
std::optional<std::string> check_arguments(CLI::App& sub, const std::string& name, int first,
                                           int argc, char** argv, bool takes_command) {
  bool has_separator = false;
  for (int i = first; i < argc; ++i) has_separator |= std::string_view(argv[i]) == "--";
  for (int i = first; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--") break;
    if (a.size() < 2 || a[0] != '-') {
      if (takes_command) continue;  // the command, when written without "--"
      return name + ": unexpected argument \"" + std::string(a) + "\" (see rebound " + name +
             " --help)";
    }
    const std::string flag(a.substr(0, a.find('=')));
    if (flag == "-h" || flag == "--help") return std::nullopt;
    const CLI::Option* opt = sub.get_option_no_throw(flag);
    if (opt == nullptr) {
      return name + ": unknown flag " + flag +
             (takes_command && !has_separator && name == "run"
                  ? "; write the command and its arguments after --"
                  : " (see rebound " + name + " --help)");
    }
    if (a.find('=') != std::string_view::npos || opt->get_items_expected_min() == 0) continue;
    // "--flag VALUE": the value may start with '-' (e.g. -1s), but not be "--" or missing.
    if (i + 1 >= argc || std::string_view(argv[i + 1]) == "--") {
      return flag + ": missing value (" + opt->get_type_name() + ")";
    }
    ++i;
  }
  return std::nullopt;
}

}  // namespace

namespace rebound::cli {

int cli_main(int argc, char** argv) {
  const std::string_view command = argc >= 2 ? std::string_view(argv[1]) : std::string_view();
  if (!dry_run() && (command == "run" || command == "http")) {
    // Block the signals that cancel a run before anything else, so one that
    // arrives early is taken by run's signal thread, not the default action.
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, s);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
  }

  CLI::App app{"rebound: make commands and calls survive transient failures"};
  app.name("rebound");
  app.require_subcommand(1);
  app.set_version_flag("--version", "rebound 0.1.0");
  run_options run;
  auto* run_cmd = add_run(app, run);
  auto* policy = app.add_subcommand("policy", "Inspect a retry policy");
  policy->require_subcommand(1);
  policy_show_options show;
  auto* show_cmd = add_policy_show(*policy, show);
  simulate_options sim;
  auto* sim_cmd = add_simulate(app, sim);
#ifdef REBOUND_CLI_HTTP
  http_options http;
  auto* http_cmd = add_http(app, http);
#endif

  std::optional<std::string> problem;
  if (!command.empty() && command != "run" && command != "policy" && command != "simulate" &&
      command != "http" && command != "-h" && command != "--help" && command != "--version") {
    problem = (command[0] == '-' ? "unknown flag " : "unknown command ") +
              ("\"" + std::string(command)) +
              "\"; commands: run, http, policy, simulate (see rebound --help)";
  } else if (command == "run") {
    problem = check_arguments(*run_cmd, "run", 2, argc, argv, true);
  } else if (command == "simulate") {
    problem = check_arguments(*sim_cmd, "simulate", 2, argc, argv, true);
#ifdef REBOUND_CLI_HTTP
  } else if (command == "http") {
    problem = check_arguments(*http_cmd, "http", 2, argc, argv, true);
#else
  } else if (command == "http") {
    problem = "http: this rebound was built without libcurl (install libcurl4-openssl-dev)";
#endif
  } else if (command == "policy" && argc >= 3) {
    const std::string_view sub = argv[2];
    if (sub == "show") {
      problem = check_arguments(*show_cmd, "policy show", 3, argc, argv, false);
    } else if (sub != "-h" && sub != "--help") {
      problem = "unknown policy command \"" + std::string(sub) + "\"; allowed: show";
    }
  }
  if (problem) return usage_error(*problem);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return usage_error(e.what() + std::string(" (see rebound --help)"));
  }
  if (run_cmd->parsed()) return run_main(run);
  if (show_cmd->parsed()) return policy_show_main(show);
  if (sim_cmd->parsed()) return simulate_main(sim);
#ifdef REBOUND_CLI_HTTP
  if (http_cmd->parsed()) return http_main(http);
#endif
  return usage_error(
      "no command given; commands: run, http, policy, simulate (see rebound --help)");
}

}  // namespace rebound::cli
