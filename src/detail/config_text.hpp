// Small helpers shared by the adapters' option parsers (pg, redis). Not API.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "rebound/config.hpp"
#include "rebound/duration.hpp"

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

}  // namespace rebound::detail
