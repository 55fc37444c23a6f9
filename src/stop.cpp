#include "rebound/stop.hpp"

#include <algorithm>
#include <limits>

#include "detail/arith.hpp"

namespace rebound {

std::string_view to_string(stop_reason r) noexcept {
  switch (r) {
    case stop_reason::succeeded:
      return "succeeded";
    case stop_reason::permanent_error:
      return "permanent_error";
    case stop_reason::attempts_exhausted:
      return "attempts_exhausted";
    case stop_reason::time_exhausted:
      return "time_exhausted";
    case stop_reason::budget_exhausted:
      return "budget_exhausted";
    case stop_reason::overloaded:
      return "overloaded";
    case stop_reason::not_idempotent:
      return "not_idempotent";
    case stop_reason::cancelled:
      return "cancelled";
    case stop_reason::deferred_to_outer:
      return "deferred_to_outer";
    case stop_reason::server_delay_too_long:
      return "server_delay_too_long";
    case stop_reason::throttled:
      return "throttled";
  }
  return "unknown";
}

struct stop_condition::pair {
  stop_condition a;
  stop_condition b;
};

struct detail_stop_factory {
  static stop_condition make(stop_condition::kind k, std::int64_t v) noexcept { return {k, v}; }
  static stop_condition attempts(int n) noexcept {
    return make(stop_condition::kind::attempts, n < 1 ? 1 : n);
  }
  static stop_condition elapsed(duration d) noexcept {
    return make(stop_condition::kind::elapsed, std::max(d, duration::zero()).count());
  }
  static stop_condition before_elapsed(duration d) noexcept {
    return make(stop_condition::kind::before_elapsed, std::max(d, duration::zero()).count());
  }
  static stop_condition deadline(time_point t) noexcept {
    return make(stop_condition::kind::deadline, t.time_since_epoch().count());
  }
  static stop_condition combine(stop_condition::kind k, stop_condition a, stop_condition b) {
    stop_condition c(k, 0);
    c.children_ = std::make_shared<const stop_condition::pair>(
        stop_condition::pair{std::move(a), std::move(b)});
    return c;
  }
};

using detail::saturating_add;

std::optional<stop_reason> stop_condition::check(const stop_context& ctx) const noexcept {
  switch (kind_) {
    case kind::never:
      return std::nullopt;
    case kind::attempts:
      if (ctx.attempts >= value_) return stop_reason::attempts_exhausted;
      return std::nullopt;
    case kind::elapsed:
      if (ctx.elapsed >= duration(value_)) return stop_reason::time_exhausted;
      return std::nullopt;
    case kind::before_elapsed: {
      const duration limit(value_);
      // elapsed + next_delay > limit, without overflow.
      if (ctx.elapsed > limit || ctx.next_delay > limit - ctx.elapsed) {
        return stop_reason::time_exhausted;
      }
      return std::nullopt;
    }
    case kind::deadline:
      if (saturating_add(ctx.now, ctx.next_delay) > time_point(duration(value_))) {
        return stop_reason::time_exhausted;
      }
      return std::nullopt;
    case kind::any: {
      if (auto r = children_->a.check(ctx)) return r;
      return children_->b.check(ctx);
    }
    case kind::all: {
      auto ra = children_->a.check(ctx);
      if (!ra) return std::nullopt;
      auto rb = children_->b.check(ctx);
      if (!rb) return std::nullopt;
      return ra;
    }
  }
  return std::nullopt;
}

std::optional<int> stop_condition::max_attempts() const noexcept {
  switch (kind_) {
    case kind::attempts:
      return static_cast<int>(value_);
    case kind::any: {
      auto a = children_->a.max_attempts();
      auto b = children_->b.max_attempts();
      if (a && b) return std::min(*a, *b);
      return a ? a : b;
    }
    case kind::all: {
      auto a = children_->a.max_attempts();
      auto b = children_->b.max_attempts();
      if (a && b) return std::max(*a, *b);
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

std::optional<time_point> stop_condition::time_limit(time_point start) const noexcept {
  switch (kind_) {
    case kind::elapsed:
    case kind::before_elapsed:
      return saturating_add(start, duration(value_));
    case kind::deadline:
      return time_point(duration(value_));
    case kind::any: {
      auto a = children_->a.time_limit(start);
      auto b = children_->b.time_limit(start);
      if (a && b) return std::min(*a, *b);
      return a ? a : b;
    }
    case kind::all: {
      auto a = children_->a.time_limit(start);
      auto b = children_->b.time_limit(start);
      if (a && b) return std::max(*a, *b);
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

bool stop_condition::uses_time() const noexcept {
  switch (kind_) {
    case kind::elapsed:
    case kind::before_elapsed:
    case kind::deadline:
      return true;
    case kind::any:
    case kind::all:
      return children_->a.uses_time() || children_->b.uses_time();
    default:
      return false;
  }
}

stop_condition operator|(stop_condition a, stop_condition b) {
  if (a.kind_ == stop_condition::kind::never) return b;
  if (b.kind_ == stop_condition::kind::never) return a;
  return detail_stop_factory::combine(stop_condition::kind::any, std::move(a), std::move(b));
}

stop_condition operator&(stop_condition a, stop_condition b) {
  // never & x never stops.
  if (a.kind_ == stop_condition::kind::never || b.kind_ == stop_condition::kind::never) {
    return stop::never();
  }
  return detail_stop_factory::combine(stop_condition::kind::all, std::move(a), std::move(b));
}

bool operator==(const stop_condition& a, const stop_condition& b) noexcept {
  if (a.kind_ != b.kind_ || a.value_ != b.value_) return false;
  if (!a.children_ || !b.children_) return a.children_ == b.children_;
  return a.children_->a == b.children_->a && a.children_->b == b.children_->b;
}

namespace stop {
stop_condition after_attempts(int n) noexcept { return detail_stop_factory::attempts(n); }
stop_condition after_elapsed(duration d) noexcept { return detail_stop_factory::elapsed(d); }
stop_condition before_elapsed(duration d) noexcept {
  return detail_stop_factory::before_elapsed(d);
}
stop_condition deadline(time_point t) noexcept { return detail_stop_factory::deadline(t); }
stop_condition never() noexcept { return {}; }
}  // namespace stop

}  // namespace rebound
