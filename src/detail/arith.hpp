// Saturating arithmetic on durations, shared by the compiled parts. Not API.
#pragma once

#include <cmath>

#include "rebound/clock.hpp"
#include "rebound/detail/saturate.hpp"

namespace rebound::detail {

/// A non-negative number of nanoseconds as a duration in [0, max]: NaN and
/// negatives give 0, anything at or past max (including +inf) gives max.
inline duration clamp_ns(double ns, duration max) noexcept {
  if (!(ns > 0.0)) return duration::zero();
  if (ns >= static_cast<double>(max.count())) return max;
  return duration(static_cast<duration::rep>(ns));
}

}  // namespace rebound::detail
