#include "rebound/backoff.hpp"

#include <algorithm>
#include <cmath>

#include "detail/arith.hpp"

namespace rebound {

using detail::clamp_ns;

backoff::backoff() noexcept
    : kind_(kind::exponential),
      initial_(std::chrono::milliseconds(100)),
      max_(std::chrono::seconds(5)),
      multiplier_(2.0) {}

backoff backoff::constant(duration d) noexcept {
  backoff b;
  b.kind_ = kind::constant;
  b.initial_ = std::max(d, duration::zero());
  b.max_ = duration::max();  // uncapped, so jitter can spread a constant delay
  b.multiplier_ = 1.0;
  return b;
}

backoff backoff::linear(duration initial, duration step, duration max) noexcept {
  backoff b;
  b.kind_ = kind::linear;
  b.initial_ = std::max(initial, duration::zero());
  b.step_ = std::max(step, duration::zero());
  b.max_ = std::max(max, b.initial_);
  b.multiplier_ = 1.0;
  return b;
}

backoff backoff::exponential(duration initial, double multiplier, duration max) noexcept {
  backoff b;
  b.kind_ = kind::exponential;
  b.initial_ = std::max(initial, duration::zero());
  b.multiplier_ = (std::isfinite(multiplier) && multiplier >= 1.0) ? multiplier : 1.0;
  b.max_ = std::max(max, b.initial_);
  return b;
}

backoff backoff::list(std::vector<duration> delays) {
  for (auto& d : delays) d = std::max(d, duration::zero());
  backoff b;
  b.kind_ = kind::list;
  b.initial_ = delays.empty() ? duration::zero() : delays.front();
  b.max_ = duration::max();  // uncapped, so jitter can spread the listed delays
  b.multiplier_ = 1.0;
  b.list_ = std::make_shared<const std::vector<duration>>(std::move(delays));
  return b;
}

backoff backoff::function(std::function<duration(const backoff_context&)> fn, duration max,
                          duration initial) {
  backoff b;
  b.kind_ = kind::function;
  b.initial_ = std::max(initial, duration::zero());
  b.max_ = std::max(max, duration::zero());
  b.multiplier_ = 1.0;
  b.fn_ = std::make_shared<const std::function<duration(const backoff_context&)>>(std::move(fn));
  return b;
}

duration backoff::delay(const backoff_context& ctx) const {
  const int k = std::max(ctx.next_attempt, 2) - 2;  // retries before this one
  switch (kind_) {
    case kind::constant:
      return initial_;
    case kind::linear:
      return clamp_ns(static_cast<double>(initial_.count()) +
                          static_cast<double>(k) * static_cast<double>(step_.count()),
                      max_);
    case kind::exponential: {
      if (initial_ == duration::zero()) return duration::zero();
      // multiplier^k by squaring (a handful of multiplies; std::pow costs
      // more than the rest of a decision). Exact wherever pow's result is
      // exactly representable (2, 1.5, any integer ...); otherwise within an
      // ulp, a fraction of a nanosecond. Past 1023 retries, pow (saturating
      // to +inf; clamp_ns turns that into max_).
      double factor = 1.0;
      if (k < 1024) {
        double base = multiplier_;
        for (int e = k; e > 0; e >>= 1) {
          if (e & 1) factor *= base;
          base *= base;
        }
      } else {
        factor = std::pow(multiplier_, k);
      }
      return clamp_ns(static_cast<double>(initial_.count()) * factor, max_);
    }
    case kind::list: {
      if (!list_ || list_->empty()) return duration::zero();
      const auto i = std::min<std::size_t>(static_cast<std::size_t>(k), list_->size() - 1);
      return (*list_)[i];
    }
    case kind::function: {
      const duration d = (*fn_)(ctx);
      return std::clamp(d, duration::zero(), max_);
    }
  }
  return duration::zero();
}

const std::vector<duration>& backoff::delays() const noexcept {
  static const std::vector<duration> empty;
  return list_ ? *list_ : empty;
}

bool operator==(const backoff& a, const backoff& b) noexcept {
  if (a.kind_ != b.kind_ || a.initial_ != b.initial_ || a.step_ != b.step_ || a.max_ != b.max_ ||
      a.multiplier_ != b.multiplier_) {
    return false;
  }
  if (a.kind_ == backoff::kind::list) return a.delays() == b.delays();
  if (a.kind_ == backoff::kind::function) return a.fn_ == b.fn_;
  return true;
}

}  // namespace rebound
