#include "rebound/jitter.hpp"

#include <algorithm>

#include "detail/arith.hpp"

namespace rebound {

duration jitter::apply(const jitter_input& in, random_stream& rng) const noexcept {
  const double c = static_cast<double>(in.computed.count());
  switch (kind_) {
    case kind::none:
      return std::clamp(in.computed, duration::zero(), in.max);
    case kind::full:
      return detail::clamp_ns(c * rng.uniform(), in.max);
    case kind::equal:
      return detail::clamp_ns(c / 2 + rng.uniform() * (c / 2), in.max);
    case kind::decorrelated: {
      const double lo = static_cast<double>(in.initial.count());
      const duration prev = in.previous > duration::zero() ? in.previous : in.initial;
      const double hi = std::max(lo, 3.0 * static_cast<double>(prev.count()));
      return detail::clamp_ns(lo + rng.uniform() * (hi - lo), in.max);
    }
    case kind::proportional:
      return detail::clamp_ns(c * (1.0 - factor_ + 2.0 * factor_ * rng.uniform()), in.max);
    case kind::additive:
      return detail::clamp_ns(c + rng.uniform() * static_cast<double>(amount_.count()), in.max);
  }
  return in.computed;
}

}  // namespace rebound
