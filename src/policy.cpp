#include "rebound/policy.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "detail/arith.hpp"
#include "rebound/duration.hpp"

namespace rebound {

retry_policy::retry_policy()
    : stop_(stop::after_attempts(3)), max_server_delay_(std::chrono::seconds(60)) {}

retry_policy retry_policy::stop(stop_condition s) const {
  retry_policy p = *this;
  p.stop_uses_time_ = s.uses_time();
  p.stop_ = std::move(s);
  return p;
}
retry_policy retry_policy::backoff(::rebound::backoff b) const {
  retry_policy p = *this;
  p.backoff_ = std::move(b);
  return p;
}
retry_policy retry_policy::jitter(::rebound::jitter j) const {
  retry_policy p = *this;
  p.jitter_ = j;
  return p;
}
retry_policy retry_policy::classify(::rebound::classifier c) const {
  retry_policy p = *this;
  p.classifier_ = std::move(c);
  return p;
}
retry_policy retry_policy::max_server_delay(duration cap, server_delay_mode mode) const {
  retry_policy p = *this;
  p.max_server_delay_ = std::max(cap, duration::zero());
  p.server_delay_mode_ = mode;
  return p;
}
retry_policy retry_policy::seed(std::uint64_t s) const {
  retry_policy p = *this;
  p.seed_ = s;
  return p;
}
retry_policy retry_policy::unseeded() const {
  retry_policy p = *this;
  p.seed_.reset();
  return p;
}
retry_policy retry_policy::observer(std::shared_ptr<::rebound::observer> o) const {
  retry_policy p = *this;
  p.observer_ = std::move(o);
  return p;
}
retry_policy retry_policy::clock(::rebound::clock& c) const {
  retry_policy p = *this;
  p.clock_ = &c;
  return p;
}
retry_policy retry_policy::on_give_up(give_up_mode m) const {
  retry_policy p = *this;
  p.give_up_ = m;
  return p;
}

retry_policy retry_policy::budget(std::shared_ptr<retry_budget> b) const {
  retry_policy p = *this;
  p.budget_ = std::move(b);
  p.hooks_ = p.budget_ || p.throttle_;
  return p;
}
retry_policy retry_policy::throttle(std::shared_ptr<adaptive_throttle> t) const {
  retry_policy p = *this;
  p.throttle_ = std::move(t);
  p.hooks_ = p.budget_ || p.throttle_;
  return p;
}
retry_policy retry_policy::nesting(::rebound::nesting n) const {
  retry_policy p = *this;
  p.nesting_ = n;
  return p;
}

retry_policy retry_policy::attempt_timeout(duration d) const {
  if (d <= duration::zero()) {
    throw std::invalid_argument("attempt_timeout must be > 0, got " + format_duration(d));
  }
  retry_policy p = *this;
  p.attempt_timeout_ = d;
  p.extras_ = true;
  return p;
}
retry_policy retry_policy::total_timeout(duration d) const {
  if (d <= duration::zero()) {
    throw std::invalid_argument("total_timeout must be > 0, got " + format_duration(d));
  }
  retry_policy p = *this;
  p.total_timeout_ = d;
  p.extras_ = true;
  return p;
}
retry_policy retry_policy::no_timeouts() const {
  retry_policy p = *this;
  p.attempt_timeout_.reset();
  p.total_timeout_.reset();
  p.extras_ = p.hedge_.has_value();
  return p;
}
retry_policy retry_policy::hedge(hedge_policy h) const {
  if (h.delay < duration::zero()) {
    throw std::invalid_argument("hedge.delay must be >= 0, got " + format_duration(h.delay));
  }
  if (h.max_hedges < 1) {
    throw std::invalid_argument("hedge.max_hedges must be >= 1, got " +
                                std::to_string(h.max_hedges));
  }
  if (h.percentile && !(*h.percentile > 0.0 && *h.percentile < 1.0)) {
    throw std::invalid_argument("hedge.percentile must be in (0, 1), got " +
                                std::to_string(*h.percentile));
  }
  if (h.percentile && !h.tracker) h.tracker = std::make_shared<latency_tracker>();
  retry_policy p = *this;
  p.hedge_ = std::move(h);
  p.extras_ = true;
  return p;
}
retry_policy retry_policy::no_hedge() const {
  retry_policy p = *this;
  p.hedge_.reset();
  p.extras_ = p.attempt_timeout_ || p.total_timeout_;
  return p;
}

::rebound::clock& retry_policy::clock() const noexcept {
  return clock_ != nullptr ? *clock_ : system_clock();
}

bool operator==(const retry_policy& a, const retry_policy& b) noexcept {
  return a.stop_ == b.stop_ && a.backoff_ == b.backoff_ && a.jitter_ == b.jitter_ &&
         a.classifier_ == b.classifier_ && a.max_server_delay_ == b.max_server_delay_ &&
         a.server_delay_mode_ == b.server_delay_mode_ && a.seed_ == b.seed_ &&
         a.observer_ == b.observer_ && a.clock_ == b.clock_ && a.give_up_ == b.give_up_ &&
         a.budget_ == b.budget_ && a.throttle_ == b.throttle_ && a.nesting_ == b.nesting_ &&
         a.attempt_timeout_ == b.attempt_timeout_ && a.total_timeout_ == b.total_timeout_ &&
         a.hedge_ == b.hedge_;
}

random_stream& retry_state::rng() {
  if (!rng_) rng_.emplace(policy_->seed() ? *policy_->seed() : random_stream::fresh_seed());
  return *rng_;
}

void retry_state::record_success_slow() noexcept {
  if (policy_->budget()) policy_->budget()->on_success(last_retry_ ? &*last_retry_ : nullptr);
  if (policy_->throttle()) policy_->throttle()->record_accept();
}

bool retry_state::admit_attempt_slow() {
  if (admit_state_ == 0) admit_state_ = random_stream::fresh_seed() | 1ULL;
  // splitmix64: one step, 53 bits of it as a uniform draw in [0, 1).
  std::uint64_t z = (admit_state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return policy_->throttle()->admit(static_cast<double>(z >> 11) * 0x1.0p-53);
}

decision retry_state::decide(const verdict& v, time_point now) {
  return decide(v, now, time_point::max());
}

decision retry_state::decide(const verdict& v, time_point now, time_point deadline) {
  const retry_policy& p = *policy_;
  if (v.kind == verdict_kind::success) {
    record_success();
    return decision::stop(stop_reason::succeeded);
  }
  // The backend answered: a permanent error is still an accepted request. It
  // is not a failure for a budget either (gRFC A6, "Throttling Retry Attempts
  // and Hedged RPCs": only retryable failures and "do not retry" pushback
  // count, so malformed requests are not mistaken for server failure).
  if (v.kind == verdict_kind::permanent) {
    if (p.throttle()) p.throttle()->record_accept();
    return decision::stop(stop_reason::permanent_error);
  }
  if (p.budget()) p.budget()->on_failure();
  if (v.kind == verdict_kind::overloaded) return decision::stop(stop_reason::overloaded);

  const duration elapsed = now > start_ ? now - start_ : duration::zero();
  duration delay;
  if (v.retry_after) {
    // The server's delay replaces the backoff, within the policy's cap.
    delay = *v.retry_after;
    if (delay > p.max_server_delay()) {
      if (p.server_delay() == server_delay_mode::give_up) {
        return decision::stop(stop_reason::server_delay_too_long);
      }
      delay = p.max_server_delay();
    }
  } else {
    const duration computed = p.backoff().delay(
        {.next_attempt = attempt_ + 1, .previous_delay = previous_delay_, .elapsed = elapsed});
    if (p.jitter().is_random()) {
      delay = p.jitter().apply({.computed = computed,
                                .previous = previous_delay_,
                                .initial = p.backoff().initial(),
                                .max = p.backoff().max()},
                               rng());
    } else {
      delay = computed;
    }
  }
  const stop_context ctx{.attempts = attempt_, .elapsed = elapsed, .next_delay = delay, .now = now};
  if (auto reason = p.stop().check(ctx)) return decision::stop(*reason);
  if (detail::saturating_add(now, delay) > deadline) {
    return decision::stop(stop_reason::time_exhausted);
  }
  // Charged now, before the back-off: retries waiting to run count too.
  const retry_request request{.attempt = attempt_ + 1, .after_timeout = v.timeout};
  if (p.budget() && !p.budget()->try_acquire(request)) {
    return decision::stop(stop_reason::budget_exhausted);
  }
  last_retry_ = request;
  ++attempt_;
  previous_delay_ = delay;
  return decision::retry_after(delay);
}

decision retry_state::decide_hedge(time_point now, time_point deadline) {
  const retry_policy& p = *policy_;
  const duration elapsed = now > start_ ? now - start_ : duration::zero();
  const stop_context ctx{
      .attempts = attempt_, .elapsed = elapsed, .next_delay = duration::zero(), .now = now};
  if (auto reason = p.stop().check(ctx)) return decision::stop(*reason);
  if (now > deadline) return decision::stop(stop_reason::time_exhausted);
  const retry_request request{.attempt = attempt_ + 1, .after_timeout = false};
  if (p.budget() && !p.budget()->try_acquire(request)) {
    return decision::stop(stop_reason::budget_exhausted);
  }
  last_retry_ = request;
  ++attempt_;
  return decision::retry_after(duration::zero());
}

}  // namespace rebound
