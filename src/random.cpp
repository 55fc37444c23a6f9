#include "rebound/random.hpp"

#include "rebound/clock.hpp"

#include <atomic>
#include <chrono>
#include <random>

namespace rebound {
namespace {

std::uint64_t splitmix64(std::uint64_t& x) noexcept {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }

}  // namespace

random_stream::random_stream(std::uint64_t seed) noexcept {
  for (auto& word : s_) word = splitmix64(seed);
}

std::uint64_t random_stream::next() noexcept {
  const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

std::uint64_t random_stream::fresh_seed() noexcept {
  // One unpredictable base per process, then a distinct value per call.
  static const std::uint64_t base = [] {
    // The one read of a clock outside rebound::clock: seeding only, never time.
    std::uint64_t b = static_cast<std::uint64_t>(detail::steady_now().time_since_epoch().count());
    try {
      std::random_device rd;
      b ^= (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
    } catch (...) {
      // No entropy device: the clock alone still differs between runs.
    }
    return b;
  }();
  static std::atomic<std::uint64_t> counter{0};
  std::uint64_t x = base + counter.fetch_add(1, std::memory_order_relaxed) * 0x9e3779b97f4a7c15ULL;
  return splitmix64(x);
}

}  // namespace rebound
