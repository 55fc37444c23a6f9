// Saturating time arithmetic used by headers. Not API.
#pragma once

#include "rebound/clock.hpp"

namespace rebound::detail {

/// t + d, saturating at time_point::max().
inline time_point saturating_add(time_point t, duration d) noexcept {
  if (d > duration::zero() && t > time_point::max() - d) return time_point::max();
  return t + d;
}

}  // namespace rebound::detail
