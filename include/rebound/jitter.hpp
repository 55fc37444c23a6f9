// rebound/jitter.hpp: randomising a computed delay so clients do not retry in step.
//
// On a computed delay c, with U(a, b) uniform:
//   none          c
//   full          U(0, c)
//   equal         c/2 + U(0, c/2)
//   decorrelated  min(max, U(initial, 3 * previous)), previous starting at initial
//   proportional  c * U(1 - f, 1 + f)
//   additive      c + U(0, j)
// Every kind clamps to the backoff's max.
//
//   auto j = rebound::jitter::full();
#pragma once

#include <cstdint>

#include "rebound/clock.hpp"
#include "rebound/random.hpp"

namespace rebound {

/// What jitter is applied to.
struct jitter_input {
  duration computed{};  ///< the backoff's delay for this attempt
  duration previous{};  ///< the previous actual wait (0 before the first retry)
  duration initial{};   ///< the backoff's initial delay
  duration max{};       ///< the backoff's max delay
};

/// An immutable jitter rule. Trivially copyable.
class jitter {
 public:
  enum class kind : std::uint8_t { none, full, equal, decorrelated, proportional, additive };

  /// Default: full.
  constexpr jitter() noexcept = default;

  [[nodiscard]] static constexpr jitter none() noexcept { return jitter(kind::none, 0, {}); }
  [[nodiscard]] static constexpr jitter full() noexcept { return jitter(kind::full, 0, {}); }
  [[nodiscard]] static constexpr jitter equal() noexcept { return jitter(kind::equal, 0, {}); }
  [[nodiscard]] static constexpr jitter decorrelated() noexcept {
    return jitter(kind::decorrelated, 0, {});
  }
  /// `c * U(1 - f, 1 + f)`; f is clamped to [0, 1].
  [[nodiscard]] static constexpr jitter proportional(double f) noexcept {
    return jitter(kind::proportional, f < 0 ? 0 : (f > 1 ? 1 : f), {});
  }
  /// `c + U(0, j)`; a negative j acts as 0.
  [[nodiscard]] static constexpr jitter additive(duration j) noexcept {
    return jitter(kind::additive, 0, j < duration::zero() ? duration::zero() : j);
  }

  /// The jittered delay, in [0, in.max]. Draws from `rng` only when random.
  [[nodiscard]] duration apply(const jitter_input& in, random_stream& rng) const noexcept;

  [[nodiscard]] constexpr kind type() const noexcept { return kind_; }
  [[nodiscard]] constexpr double factor() const noexcept { return factor_; }
  [[nodiscard]] constexpr duration amount() const noexcept { return amount_; }
  /// True when apply() draws random numbers.
  [[nodiscard]] constexpr bool is_random() const noexcept { return kind_ != kind::none; }

  friend constexpr bool operator==(const jitter&, const jitter&) noexcept = default;

 private:
  constexpr jitter(kind k, double f, duration a) noexcept : kind_(k), factor_(f), amount_(a) {}
  kind kind_ = kind::full;
  double factor_ = 0;
  duration amount_{};
};

}  // namespace rebound
