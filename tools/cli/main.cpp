// The rebound command-line tool. See docs/cli.md.
#include <CLI/CLI.hpp>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

#include "commands.hpp"
#include "common.hpp"

namespace {

// CLI11 reports an unknown flag of a subcommand that takes a command after
// "--" as an unexpected positional; name the flag instead.
std::optional<std::string> unknown_flag(CLI::App& sub, int first, int argc, char** argv) {
  for (int i = first; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--") break;
    if (a.size() < 2 || a[0] != '-') continue;
    std::string name(a.substr(0, a.find('=')));
    if (name == "-h" || name == "--help") return std::nullopt;
    const CLI::Option* opt = sub.get_option_no_throw(name);
    if (opt == nullptr) return name;
    // Skip the value of an option written "--flag VALUE" (it may start with '-').
    if (a.find('=') == std::string_view::npos && opt->get_type_size_max() > 0) ++i;
  }
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace rebound::cli;
  CLI::App app{"rebound: make commands and calls survive transient failures"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "rebound 0.1.0");
  run_options run;
  auto* run_cmd = add_run(app, run);
  auto* policy = app.add_subcommand("policy", "Inspect a retry policy");
  policy->require_subcommand(1);
  policy_show_options show;
  auto* show_cmd = add_policy_show(*policy, show);
  if (argc >= 2 && argv[1][0] != '-' && std::string_view(argv[1]) != "run" &&
      std::string_view(argv[1]) != "policy") {
    return usage_error(std::string("unknown command \"") + argv[1] +
                       "\"; allowed: run, policy (see rebound --help)");
  }
  if (argc >= 2 && std::string_view(argv[1]) == "run") {
    if (auto flag = unknown_flag(*run_cmd, 2, argc, argv)) {
      return usage_error("run: unknown flag " + *flag + " (see rebound run --help)");
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);  // prints the message and the usage hint
    return exit_code::usage;
  }
  if (run_cmd->parsed()) return run_main(run);
  if (show_cmd->parsed()) return policy_show_main(show);
  return usage_error("no subcommand");
}
