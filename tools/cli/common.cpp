#include "common.hpp"

#include <charconv>
#include <cmath>
#include <iostream>
#include <map>
#include <sstream>

#include "rebound/duration.hpp"

namespace rebound::cli {

void add_policy_flags(CLI::App& app, policy_flags& f) {
  app.add_option("--attempts", f.attempts,
                 "Give up after N attempts (1..1000000; default 3 unless --max-time is given)")
      ->type_name("N");
  app.add_option("--max-time", f.max_time,
                 "Start no attempt later than DUR after the first, and cut the running one there")
      ->type_name("DUR");
  app.add_option("--backoff", f.backoff, "constant|linear|exponential|list (default exponential)")
      ->type_name("KIND");
  app.add_option("--initial", f.initial, "First delay, or the constant delay (default 100ms)")
      ->type_name("DUR");
  app.add_option("--multiplier", f.multiplier, "Exponential growth factor, 1..1000 (default 2)")
      ->type_name("X");
  app.add_option("--max-delay", f.max_delay,
                 "Largest delay, jitter included (default 5s, or --initial when larger)")
      ->type_name("DUR");
  app.add_option("--step", f.step, "Linear increment per retry (default 100ms)")->type_name("DUR");
  app.add_option("--delays", f.delays, "Explicit delays for --backoff list, e.g. 1s,2s,5s")
      ->type_name("LIST");
  app.add_option("--jitter", f.jitter,
                 "none|full|equal|decorrelated|proportional:F|additive:DUR (default full)")
      ->type_name("KIND");
  app.add_option("--config", f.config, "Read the policy from a JSON file (flags override it)")
      ->type_name("FILE");
  app.add_option("--seed", f.seed, "Seed the jitter's random stream (reproducible delays)")
      ->type_name("N");
}

namespace {

// Which flag sets which configuration field, to name the flag in errors.
const std::map<std::string, std::string>& flag_for_field() {
  static const std::map<std::string, std::string> m = {{"max_attempts", "--attempts"},
                                                       {"before_elapsed", "--max-time"},
                                                       {"backoff.type", "--backoff"},
                                                       {"backoff.initial", "--initial"},
                                                       {"backoff.multiplier", "--multiplier"},
                                                       {"backoff.max", "--max-delay"},
                                                       {"backoff.step", "--step"},
                                                       {"backoff.delays", "--delays"},
                                                       {"jitter", "--jitter"},
                                                       {"seed", "--seed"}};
  return m;
}

}  // namespace

policy_settings settings_from_flags(const policy_flags& f) {
  policy_settings s;
  if (f.config) s = settings_from_json_file(*f.config);
  // The flags go through the same parser as environment variables, so they
  // get the same strict checks; errors are renamed to the flag.
  std::map<std::string, std::string> vars;
  auto put = [&](const std::optional<std::string>& v, const char* name) {
    if (v) vars.emplace(std::string("REBOUND_FLAG_") + name, *v);
  };
  put(f.attempts, "MAX_ATTEMPTS");
  put(f.max_time, "BEFORE_ELAPSED");
  put(f.backoff, "BACKOFF_TYPE");
  put(f.initial, "BACKOFF_INITIAL");
  put(f.multiplier, "BACKOFF_MULTIPLIER");
  put(f.max_delay, "BACKOFF_MAX");
  put(f.step, "BACKOFF_STEP");
  put(f.delays, "BACKOFF_DELAYS");
  put(f.jitter, "JITTER");
  put(f.seed, "SEED");
  try {
    return apply_env(s, "REBOUND_FLAG", vars);
  } catch (const config_error& e) {
    // "REBOUND_FLAG_BACKOFF_MAX (backoff.max)" or "REBOUND_FLAG_BACKOFF_DELAYS[1]".
    std::string field = e.field();
    std::string detail = std::string(e.what()).substr(field.size() + 2);
    const auto open = field.find(" (");
    std::string path;
    if (open != std::string::npos) {
      path = field.substr(open + 2, field.size() - open - 3);
    } else {
      static const std::map<std::string, std::string> env_to_path = {
          {"MAX_ATTEMPTS", "max_attempts"},
          {"BEFORE_ELAPSED", "before_elapsed"},
          {"BACKOFF_TYPE", "backoff.type"},
          {"BACKOFF_INITIAL", "backoff.initial"},
          {"BACKOFF_MULTIPLIER", "backoff.multiplier"},
          {"BACKOFF_MAX", "backoff.max"},
          {"BACKOFF_STEP", "backoff.step"},
          {"BACKOFF_DELAYS", "backoff.delays"},
          {"JITTER", "jitter"},
          {"SEED", "seed"}};
      std::string key = field.substr(std::string("REBOUND_FLAG_").size());
      std::string index;
      if (const auto b = key.find('['); b != std::string::npos) {
        index = key.substr(b);
        key = key.substr(0, b);
      }
      const auto it = env_to_path.find(key);
      path = it != env_to_path.end() ? it->second + index : key;
    }
    std::string base_path = path.substr(0, path.find('['));
    const auto flag = flag_for_field().find(base_path);
    std::string name =
        flag != flag_for_field().end() ? flag->second + path.substr(base_path.size()) : path;
    if (f.config && flag != flag_for_field().end()) name += " (or " + path + " in --config)";
    throw config_error(name, detail);
  }
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

int usage_error(const std::string& message) {
  std::cerr << "rebound: " << message << "\n";
  return exit_code::usage;
}

}  // namespace rebound::cli
