// Seeds for the simulator's independent, reproducible random streams, and
// the percentile its reports use. Not API.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

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

/// The p-quantile of `v` (nearest rank below), reordering it; 0 when empty.
inline double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

}  // namespace rebound::sim::detail
