// rebound/duration.hpp: durations as people write them: "250ms", "2s", "1.5m", "1h".
//
//   rebound::parse_duration("1.5m");            // 90s
//   rebound::format_duration(1300ms);           // "1.3s"
#pragma once

#include <string>
#include <string_view>

#include "rebound/clock.hpp"

namespace rebound {

/// Parses a non-negative duration: a decimal number followed by one of the
/// units ns, us, ms, s, m, h (e.g. "250ms", "2s", "1.5m", "0.25h"), or "0".
/// Throws std::invalid_argument naming the problem (missing or unknown unit,
/// negative, not a number, larger than 10 years).
[[nodiscard]] duration parse_duration(std::string_view text);

/// The largest duration parse_duration accepts (87600h).
inline constexpr duration max_config_duration = std::chrono::hours(87600);

/// A short human form: "0s", "850us", "250ms", "1.3s", "2m5s", "1h2m".
[[nodiscard]] std::string format_duration(duration d);

}  // namespace rebound
