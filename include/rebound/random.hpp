// rebound/random.hpp: the small, seedable random stream behind jitter.
//
// Every retried call owns its own stream (copies of a policy never share one).
// A policy with `.seed(n)` gives every call the same stream, which makes
// schedules reproducible in tests and in `rebound policy show`.
//
//   rebound::random_stream rng(42);
//   double u = rng.uniform();  // in [0, 1)
#pragma once

#include <cstdint>

namespace rebound {

/// xoshiro256** seeded through splitmix64: 32 bytes of state, no allocation,
/// a few nanoseconds a draw. Not for cryptography.
class random_stream {
 public:
  /// Seeds the four state words from `seed` with splitmix64.
  explicit random_stream(std::uint64_t seed) noexcept;

  /// The next 64 random bits.
  std::uint64_t next() noexcept;

  /// Uniform in [0, 1), with 53 bits of precision.
  double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  /// A seed for a call whose policy has no fixed seed: distinct on every call
  /// in the process, and different from run to run.
  static std::uint64_t fresh_seed() noexcept;

 private:
  std::uint64_t s_[4];
};

}  // namespace rebound
