// Seeds for the simulator's independent, reproducible random streams. Not API.
#pragma once

#include <cmath>
#include <cstdint>

#include "rebound/random.hpp"

namespace rebound::sim::detail {

/// An exponentially distributed number with mean 1, from `rng` (never inf).
inline double unit_exponential(random_stream& rng) {
  double u = rng.uniform();
  if (u <= 0) u = 0x1.0p-53;
  return -std::log(u);
}

/// splitmix64 of a combination of two values: a well-mixed seed for each
/// (run, client) or (run, trial) pair.
inline std::uint64_t mix(std::uint64_t a, std::uint64_t b) {
  std::uint64_t z = a * 0x9e3779b97f4a7c15ULL + b + 0x632be59bd9b4e019ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace rebound::sim::detail
