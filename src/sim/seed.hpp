// Seeds for the simulator's independent, reproducible random streams. Not API.
#pragma once

#include <cstdint>

namespace rebound::sim::detail {

/// splitmix64 of a combination of two values: a well-mixed seed for each
/// (run, client) or (run, trial) pair.
inline std::uint64_t mix(std::uint64_t a, std::uint64_t b) {
  std::uint64_t z = a * 0x9e3779b97f4a7c15ULL + b + 0x632be59bd9b4e019ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace rebound::sim::detail
