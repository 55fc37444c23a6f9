#include "rebound/duration.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace rebound {

duration parse_duration(std::string_view text) {
  const std::string shown = "\"" + std::string(text) + "\"";
  if (text.empty()) throw std::invalid_argument("empty duration; write e.g. \"250ms\", \"2s\"");
  if (text.front() == '-') {
    throw std::invalid_argument(shown + " is negative; durations must be >= 0");
  }
  if (text == "0") return duration::zero();
  // The number: digits with an optional fraction. No sign, exponent, inf or nan.
  std::size_t i = 0;
  bool digits = false;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) != 0)) {
    ++i;
    digits = true;
  }
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) != 0)) {
      ++i;
      digits = true;
    }
  }
  if (!digits) {
    throw std::invalid_argument(shown +
                                " is not a duration; write a number and a unit, e.g. "
                                "\"250ms\", \"2s\", \"1.5m\"");
  }
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + i, value);
  if (ec != std::errc() || end != text.data() + i) {
    throw std::invalid_argument(shown + " is not a duration");
  }
  const std::string_view unit = text.substr(i);
  double scale = 0;
  if (unit == "ns")
    scale = 1;
  else if (unit == "us")
    scale = 1e3;
  else if (unit == "ms")
    scale = 1e6;
  else if (unit == "s")
    scale = 1e9;
  else if (unit == "m")
    scale = 60e9;
  else if (unit == "h")
    scale = 3600e9;
  else if (unit.empty()) {
    throw std::invalid_argument(shown + " has no unit; allowed units: ns, us, ms, s, m, h");
  } else {
    throw std::invalid_argument(shown + " has unknown unit \"" + std::string(unit) +
                                "\"; allowed units: ns, us, ms, s, m, h");
  }
  const double ns = value * scale;
  if (!std::isfinite(ns) || ns > static_cast<double>(max_config_duration.count())) {
    throw std::invalid_argument(shown + " is too large; the maximum is 87600h (10 years)");
  }
  return duration(static_cast<duration::rep>(std::llround(ns)));
}

namespace {
// One decimal, without a trailing ".0".
std::string one_decimal(double v, const char* unit) {
  char buf[64];
  const double r = std::round(v * 10) / 10;
  if (r == std::floor(r)) {
    std::snprintf(buf, sizeof buf, "%.0f%s", r, unit);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f%s", r, unit);
  }
  return buf;
}
}  // namespace

std::string format_duration(duration d) {
  const bool negative = d < duration::zero();
  if (negative) d = -d;
  const double ns = static_cast<double>(d.count());
  std::string s;
  if (d == duration::zero()) {
    s = "0s";
  } else if (ns < 1e3) {
    s = std::to_string(d.count()) + "ns";
  } else if (ns < 1e6 - 50) {
    s = one_decimal(ns / 1e3, "us");
  } else if (ns < 1e9 - 5e4) {
    s = one_decimal(ns / 1e6, "ms");
  } else if (ns < 60e9 - 5e7) {
    s = one_decimal(ns / 1e9, "s");
  } else if (ns < 3600e9) {
    const auto total = static_cast<long long>(std::llround(ns / 1e9));
    s = std::to_string(total / 60) + "m";
    if (total % 60 != 0) s += std::to_string(total % 60) + "s";
  } else {
    const auto total = static_cast<long long>(std::llround(ns / 60e9));
    s = std::to_string(total / 60) + "h";
    if (total % 60 != 0) s += std::to_string(total % 60) + "m";
  }
  return negative ? "-" + s : s;
}

}  // namespace rebound
