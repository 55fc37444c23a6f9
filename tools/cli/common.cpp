#include "common.hpp"

#include "commands.hpp"

#include <iostream>
#include <sstream>

#include "rebound/duration.hpp"

namespace rebound::cli {

void add_policy_flags(CLI::App& app, policy_flags& f) {
  for (const auto& s : policy_setting_names()) {
    if (s.flag.empty()) continue;
    auto& slot = f.values[std::string(s.path)];
    app.add_option(std::string(s.flag), slot, std::string(s.help))->type_name(std::string(s.value));
  }
  app.add_option("--config", f.config, "Read the policy from a JSON file (flags override it)")
      ->type_name("FILE");
}

const std::optional<std::string>& policy_flags::given(const std::string& path) const {
  static const std::optional<std::string> none;
  const auto it = values.find(path);
  return it != values.end() ? it->second : none;
}

policy_settings settings_from_flags(const policy_flags& f, policy_settings base) {
  // Defaults (or `base`), then --config, then the flags: one schema reads
  // them all, and an error names the flag (or the file and key) that set the field.
  settings_builder b(std::move(base));
  if (f.config) b.json_file(*f.config);
  for (const auto& s : policy_setting_names()) {
    if (s.flag.empty()) continue;
    if (const auto& text = f.given(std::string(s.path))) b.text(s.path, *text, std::string(s.flag));
  }
  return b.build();
}

std::string describe(const policy_settings& s) {
  std::ostringstream o;
  std::vector<std::string> stops;
  if (s.max_attempts) {
    stops.push_back(std::to_string(*s.max_attempts) +
                    (*s.max_attempts == 1 ? " attempt" : " attempts"));
  }
  if (s.max_elapsed) stops.push_back(format_duration(*s.max_elapsed) + " elapsed");
  if (s.before_elapsed) stops.push_back("no attempt after " + format_duration(*s.before_elapsed));
  if (stops.empty()) stops.push_back("3 attempts");
  o << "stop: ";
  for (std::size_t i = 0; i < stops.size(); ++i) o << (i ? " or " : "") << stops[i];
  o << "; backoff: " << to_string(s.backoff_type);
  switch (s.backoff_type) {
    case backoff::kind::constant:
      o << " " << format_duration(s.initial);
      break;
    case backoff::kind::linear:
      o << " " << format_duration(s.initial) << " +" << format_duration(s.step) << " up to "
        << format_duration(s.effective_max_delay());
      break;
    case backoff::kind::exponential:
      o << " " << format_duration(s.initial) << " x" << s.multiplier << " up to "
        << format_duration(s.effective_max_delay());
      break;
    case backoff::kind::list: {
      o << " [";
      for (std::size_t i = 0; i < s.delays.size(); ++i) {
        o << (i ? ", " : "") << format_duration(s.delays[i]);
      }
      o << "]";
      break;
    }
    case backoff::kind::function:
      break;
  }
  o << "; jitter: " << to_string(s.jitter);
  return o.str();
}

namespace {
bool parse_only = false;
}

bool dry_run() noexcept { return parse_only; }
void set_dry_run(bool on) noexcept { parse_only = on; }

int usage_error(const std::string& message) {
  std::cerr << "rebound: " << message << "\n";
  return exit_code::usage;
}

}  // namespace rebound::cli
