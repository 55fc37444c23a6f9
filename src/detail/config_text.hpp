// Small helpers shared by the option parsers (core, pg, redis). Not API.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <string_view>

#include "rebound/config.hpp"
#include "rebound/duration.hpp"

extern char** environ;  // POSIX

namespace rebound::detail {

[[noreturn]] inline void config_fail(const std::string& field, const std::string& problem) {
  throw config_error(field, problem);
}

/// A duration from text, or a config_error naming `field`.
inline duration config_duration(std::string_view text, const std::string& field) {
  try {
    return parse_duration(text);
  } catch (const std::invalid_argument& e) {
    config_fail(field, e.what());
  }
}

/// The process environment's variables whose names start with `head`.
inline std::map<std::string, std::string> environment_under(const std::string& head) {
  std::map<std::string, std::string> vars;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const auto eq = entry.find('=');
    if (eq == std::string_view::npos || !entry.starts_with(head)) continue;
    vars.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return vars;
}

}  // namespace rebound::detail
