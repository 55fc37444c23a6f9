#include "rebound/retry.hpp"

#include "detail/arith.hpp"
#include "rebound/breaker.hpp"
#include "rebound/duration.hpp"
#include "rebound/throttle.hpp"

namespace rebound {

namespace {
std::string retry_error_message(stop_reason reason, int attempts, duration elapsed,
                                const std::exception_ptr& last) {
  std::string m = "gave up after " + std::to_string(attempts) +
                  (attempts == 1 ? " attempt" : " attempts") + " in " + format_duration(elapsed) +
                  " (" + std::string(to_string(reason)) + ")";
  if (last) m += ": " + detail::describe(last);
  return m;
}
}  // namespace

retry_error::retry_error(stop_reason reason, int attempts, duration elapsed,
                         std::exception_ptr last, verdict carried)
    : std::runtime_error(retry_error_message(reason, attempts, elapsed, last)),
      reason_(reason),
      attempts_(attempts),
      elapsed_(elapsed),
      last_(std::move(last)),
      carried_(carried) {}

int attempt::number() const noexcept { return loop_->state_ ? loop_->state_->attempt() : 1; }

std::optional<int> attempt::max_attempts() const noexcept {
  return loop_->policy_.stop().max_attempts();
}

duration attempt::elapsed() const noexcept { return loop_->elapsed(); }

std::optional<duration> attempt::remaining() const noexcept {
  auto limit = loop_->state_ ? loop_->policy_.stop().time_limit(loop_->state_->start())
                             : std::optional<time_point>();
  if (const auto& d = loop_->options_.deadline) limit = limit ? std::min(*limit, *d) : *d;
  if (loop_->deadline_ != time_point::max()) {
    limit = limit ? std::min(*limit, loop_->deadline_) : loop_->deadline_;
  }
  if (!limit) return std::nullopt;
  const time_point now = loop_->now();
  return *limit > now ? *limit - now : duration::zero();
}

std::stop_token attempt::stop_token() const noexcept {
  return loop_->current_watch_ != nullptr ? loop_->current_watch_->source.get_token()
                                          : loop_->options_.stop;
}

namespace detail {

std::string describe(const std::exception_ptr& e) {
  if (!e) return "no error";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "unknown exception";
  }
}

namespace {
// The original failure behind the wrappers nested loops throw.
std::exception_ptr innermost(std::exception_ptr e) {
  for (int depth = 0; depth < 64; ++depth) {
    try {
      std::rethrow_exception(e);
    } catch (const retry_error& re) {
      const bool wrapper =
          re.reason() == stop_reason::deferred_to_outer || re.reason() == stop_reason::overloaded;
      if (!wrapper || !re.last_error()) return e;
      e = re.last_error();
    } catch (...) {
      return e;
    }
  }
  return e;
}
}  // namespace

verdict classify_exception(const retry_policy& p, const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const retry_error& re) {
    if (re.reason() == stop_reason::deferred_to_outer) {
      // The enclosing loop's own rules come first; the inner verdict fills the gaps.
      if (re.last_error()) {
        if (auto own = p.classifier().match_exception(innermost(re.last_error()))) return *own;
      }
      return re.carried_verdict();
    }
    if (re.reason() == stop_reason::overloaded) return verdict::overloaded();
  } catch (const throttled_error&) {
    return verdict::overloaded();
  } catch (const circuit_open_error&) {
    return verdict::overloaded();
  } catch (...) {
  }
  return p.classifier().classify_exception(e);
}

event loop::make_event(event_kind kind, int attempt) const noexcept {
  event e;
  e.kind = kind;
  e.attempt = attempt;
  e.max_attempts = policy_.stop().max_attempts();
  e.elapsed = elapsed();
  if (failure_) e.cause = failure_->cause;
  return e;
}

duration loop::elapsed() const noexcept {
  if (!started_) return duration::zero();
  const time_point t = now();
  return t > state_->start() ? t - state_->start() : duration::zero();
}

void loop::notify_started() noexcept {
  event e = make_event(event_kind::attempt_started, state_ ? state_->attempt() : 1);
  observer_->on_event(e);
}

void loop::end(stop_reason r, int attempts) noexcept {
  reason_ = r;
  attempts_made_ = attempts;
  const duration spent = elapsed();
  if (options_.report != nullptr) {
    *options_.report = call_report{.reason = r, .attempts = attempts, .elapsed = spent};
  }
  if (observer_ != nullptr) {
    event e = make_event(r == stop_reason::succeeded ? event_kind::succeeded : event_kind::gave_up,
                         attempts);
    e.elapsed = spent;
    e.reason = r;
    observer_->on_event(e);
  }
}

void loop::init_deadline() noexcept {
  if (const auto total = policy_.total_timeout()) {
    deadline_ = std::min(deadline_, saturating_add(state_->start(), *total));
  }
}

void loop::arm_watch(watch& w) {
  current_watch_ = &w;
  last_timed_out_ = false;
  if (options_.stop.stop_possible()) w.link.emplace(options_.stop, watch::forward{&w.source});
  const time_point t = now();
  time_point until = deadline_;
  if (const auto per = policy_.attempt_timeout()) until = std::min(until, saturating_add(t, *per));
  if (until == time_point::max()) return;
  if (until <= t) {
    w.fired.store(true, std::memory_order_relaxed);
    w.source.request_stop();
    return;
  }
  clock& c = clock_ != nullptr ? *clock_ : system_clock();
  w.call = c.call_at(until, [&w] {
    w.fired.store(true, std::memory_order_relaxed);
    w.source.request_stop();
  });
}

void loop::disarm_watch(watch& w) noexcept {
  if (w.call != 0) {
    clock& c = clock_ != nullptr ? *clock_ : system_clock();
    c.cancel_call(w.call);  // waits for a callback already running
    w.call = 0;
  }
  last_timed_out_ = w.fired.load(std::memory_order_relaxed);
  current_watch_ = nullptr;
}

void loop::throw_hedge_unsupported() {
  throw std::invalid_argument(
      "this policy hedges (hedge_policy set): hedging runs attempts concurrently and needs "
      "rebound::async_retry; the blocking retry() runs one attempt at a time");
}

decision loop::decide_failure(const verdict& given, std::string cause, bool timed_out) {
  const time_point t = now();
  if (!state_) {
    state_.emplace(policy_, t);  // lazy (see retry.hpp): built at the first failure
  } else if (!started_) {
    state_->restart_at(t);
  }
  started_ = true;
  // A failure after the attempt's timer fired is a timeout, whatever it threw.
  if (last_timed_out_ && !options_.stop.stop_requested()) timed_out = true;
  last_timed_out_ = false;
  const verdict v = timed_out ? verdict::timed_out() : given;
  if (!failure_) failure_.emplace();
  failure_->cause = std::move(cause);
  failure_->at = t;
  const int made = state_->attempt();
  if (observer_ != nullptr) {
    event e = make_event(event_kind::attempt_failed, made);
    e.verdict = v;
    observer_->on_event(e);
  }
  if (nested() && policy_.nesting() == nesting::defer && v.kind == verdict_kind::transient) {
    // One retry layer per logical call: the enclosing loop decides.
    failure_->last_verdict = v;
    if (observer_ != nullptr) {
      event e = make_event(event_kind::deferred, made);
      e.verdict = v;
      observer_->on_event(e);
    }
    end(stop_reason::deferred_to_outer, made);
    return decision::stop(stop_reason::deferred_to_outer);
  }
  if (timed_out && t >= deadline_) {
    end(stop_reason::time_exhausted, made);
    return decision::stop(stop_reason::time_exhausted);
  }
  const decision d = state_->decide(v, t, deadline_);
  if (!d.retry) {
    if (d.reason == stop_reason::budget_exhausted && observer_ != nullptr) {
      event e = make_event(event_kind::budget_rejected, made + 1);
      e.verdict = v;
      observer_->on_event(e);
    }
    end(d.reason, made);
    return d;
  }
  if (observer_ != nullptr) {
    event e = make_event(event_kind::retry_scheduled, state_->attempt());
    e.delay = d.delay;
    e.verdict = v;
    observer_->on_event(e);
  }
  return d;
}

bool loop::resume(bool slept) {
  const int made = state_->attempt() - 1;
  if (!slept) {
    end(stop_reason::cancelled, made);
    return false;
  }
  if (!state_->admit_attempt()) {
    end(stop_reason::throttled, made);
    return false;
  }
  if (observer_ != nullptr) notify_started();
  return true;
}

bool loop::failed(const verdict& given, std::string cause) {
  const decision d = decide_failure(given, std::move(cause), false);
  if (!d.retry) return false;
  clock& c = clock_ != nullptr ? *clock_ : system_clock();
  const bool slept = !options_.stop.stop_requested() &&
                     c.sleep_until(saturating_add(failed_at(), d.delay), options_.stop) &&
                     !options_.stop.stop_requested();
  return resume(slept);
}

void loop::give_up(const std::exception_ptr& e) const {
  if (reason_ == stop_reason::deferred_to_outer) {
    throw retry_error(reason_, attempts_made_, elapsed(), innermost(e),
                      failure_ ? failure_->last_verdict : verdict::transient());
  }
  if (reason_ == stop_reason::overloaded && nested()) {
    // Pushback stays non-retryable for every enclosing loop.
    throw retry_error(reason_, attempts_made_, elapsed(), innermost(e), verdict::overloaded());
  }
  std::rethrow_exception(give_up_error(policy_, reason_, attempts_made_, elapsed(), e));
}

std::exception_ptr give_up_error(const retry_policy& p, stop_reason reason, int attempts,
                                 duration elapsed, const std::exception_ptr& last) {
  const std::exception_ptr original = last ? innermost(last) : nullptr;
  if (original && p.on_give_up() == give_up_mode::rethrow_last &&
      reason != stop_reason::cancelled) {
    return original;
  }
  return std::make_exception_ptr(retry_error(reason, attempts, elapsed, original));
}

void loop::throw_throttled() {
  end(stop_reason::throttled, 0);
  throw throttled_error(policy_.throttle()->rejection_probability());
}

void loop::throw_cancelled_before_start() const {
  throw retry_error(stop_reason::cancelled, 0, duration::zero(), nullptr);
}

}  // namespace detail
}  // namespace rebound
