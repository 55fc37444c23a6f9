// The call engine (rebound/call.hpp): the one place where a call's next step
// is decided. Every retry loop in rebound drives it.
#include "rebound/call.hpp"

#include "rebound/limits.hpp"

#include "detail/arith.hpp"
#include "rebound/breaker.hpp"
#include "rebound/detail/coarse_clock.hpp"
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

// The original failure behind the wrappers nested loops throw.
std::exception_ptr innermost(std::exception_ptr e) {
  for (int depth = 0; depth < 64; ++depth) {
    try {
      std::rethrow_exception(e);
    } catch (const retry_error& re) {
      const bool wrapper = re.reason() == stop_reason::deferred_to_outer ||
                           re.reason() == stop_reason::overloaded ||
                           re.reason() == stop_reason::not_idempotent;
      if (!wrapper || !re.last_error()) return e;
      e = re.last_error();
    } catch (...) {
      return e;
    }
  }
  return e;
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
}  // namespace detail

verdict classify_exception(const retry_policy& p, const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const retry_error& re) {
    switch (re.reason()) {
      case stop_reason::deferred_to_outer:
        // The enclosing loop's own rules come first; the inner verdict fills the gaps.
        if (re.last_error()) {
          if (auto own = p.classifier().match_exception(innermost(re.last_error()))) return *own;
        }
        return re.carried_verdict();
      case stop_reason::overloaded:
        return verdict::overloaded();  // pushback stops every layer
      case stop_reason::not_idempotent:
        return verdict::permanent();  // not safe to send again, whichever layer asks
      default:
        break;
    }
  } catch (const throttled_error&) {
    return verdict::overloaded();
  } catch (const circuit_open_error&) {
    return verdict::overloaded();
  } catch (const rejected_error&) {
    return verdict::overloaded();  // a bulkhead, limiter, rate limiter or admission control
  } catch (...) {                  // NOLINT(bugprone-empty-catch): the policy's rules decide below
  }
  return p.classifier().classify_exception(e);
}

void retry_call::refuse_hedging() {
  throw std::invalid_argument(
      "this policy hedges (hedge_policy set): hedging runs attempts concurrently and needs "
      "rebound::async_retry; this loop runs one attempt at a time");
}

time_point retry_call::now() const noexcept {
  clock* c = policy_->custom_clock();
  return c != nullptr ? c->now() : detail::steady_now();
}

bool retry_call::nested() const noexcept {
  return nested_ < 0 ? detail::loop_depth > 0 : nested_ != 0;
}

duration retry_call::elapsed() const noexcept {
  if (!started_) return duration::zero();
  const time_point t = now();
  return t > start_ ? t - start_ : duration::zero();
}

std::optional<duration> retry_call::remaining() const noexcept {
  std::optional<time_point> limit =
      started_ ? policy_->stop().time_limit(start_) : std::optional<time_point>();
  const time_point dl = deadline();
  if (dl != time_point::max()) limit = limit ? std::min(*limit, dl) : dl;
  if (!limit) return std::nullopt;
  const time_point t = now();
  return *limit > t ? *limit - t : duration::zero();
}

time_point retry_call::attempt_deadline() const noexcept {
  time_point until = deadline();
  if (const auto per = policy_->attempt_timeout()) {
    until = std::min(until, detail::saturating_add(now(), *per));
  }
  return until;
}

event retry_call::make_event(event_kind kind, int attempt) const noexcept {
  event e;
  e.kind = kind;
  e.attempt = attempt;
  e.max_attempts = policy_->stop().max_attempts();
  if (observer_->needs_elapsed()) e.elapsed = elapsed();
  if (s_ && s_->cause) e.cause = *s_->cause;
  return e;
}

void retry_call::emit(const event& e) const noexcept { observer_->on_event(e); }

void retry_call::notify(event_kind kind, std::string_view cause) const noexcept {
  if (observer_ == nullptr) return;
  event e = make_event(kind, attempt());
  e.cause = cause;
  emit(e);
}

void retry_call::finish(stop_reason r, int attempts) noexcept {
  ended_ = true;
  reason_ = r;
  attempts_made_ = attempts;
  if (report_ == nullptr && observer_ == nullptr) return;
  const duration spent =
      report_ != nullptr || observer_->needs_elapsed() ? elapsed() : duration::zero();
  if (report_ != nullptr)
    *report_ = call_report{.reason = r, .attempts = attempts, .elapsed = spent};
  if (observer_ != nullptr) {
    event e = make_event(r == stop_reason::succeeded ? event_kind::succeeded : event_kind::gave_up,
                         attempts);
    e.elapsed = spent;
    e.reason = r;
    emit(e);
  }
}

void retry_call::end(stop_reason r) noexcept {
  if (!ended_) finish(r, attempt());
}

call_step retry_call::failed(const verdict& given, const attempt_failure& f) {
  state_block& b = block();
  const time_point t = now();
  if (!started_) start_clock(t);  // read lazily: the call's time starts at its first failure
  const verdict v = f.timed_out ? verdict::timed_out() : given;
  b.failed_at = t;
  b.last_verdict = v;
  const int made = b.state.attempt();
  if (observer_ != nullptr) {
    if (b.cause) {
      b.cause->assign(f.cause);
    } else {
      b.cause = std::make_unique<std::string>(f.cause);
    }
    event e = make_event(event_kind::attempt_failed, made);
    e.verdict = v;
    emit(e);
  }
  if (f.unsafe_to_repeat && v.retryable()) {
    // It may have reached the server: sending it again could repeat its effect.
    b.state.note_failure();
    return stop_here(stop_reason::not_idempotent, made);
  }
  if (v.kind == verdict_kind::transient && policy_->nesting() == nesting::defer && nested()) {
    // One retry layer per logical call: the enclosing loop decides.
    if (observer_ != nullptr) {
      event e = make_event(event_kind::deferred, made);
      e.verdict = v;
      emit(e);
    }
    return stop_here(stop_reason::deferred_to_outer, made);
  }
  if (f.timed_out && t >= b.deadline) return stop_here(stop_reason::time_exhausted, made);
  const decision d = b.state.decide(v, t, b.deadline);
  if (!d.retry) {
    if (d.reason == stop_reason::budget_exhausted && observer_ != nullptr) {
      event e = make_event(event_kind::budget_rejected, made + 1);
      e.verdict = v;
      emit(e);
    }
    return stop_here(d.reason, made);
  }
  if (observer_ != nullptr) {
    event e = make_event(event_kind::retry_scheduled, b.state.attempt());
    e.delay = d.delay;
    e.verdict = v;
    emit(e);
  }
  return {step_kind::wait, stop_reason::succeeded, detail::saturating_add(t, d.delay), d.delay};
}

call_step retry_call::resume(bool slept) {
  state_block& b = block();
  const int made = b.state.attempt() - 1;
  if (!slept || b.stop.stop_requested()) return stop_here(stop_reason::cancelled, made);
  if (!b.state.admit_attempt()) return stop_here(stop_reason::throttled, made);
  if (observer_ != nullptr) emit(make_event(event_kind::attempt_started, b.state.attempt()));
  return {};
}

std::optional<stop_reason> retry_call::hedge() {
  state_block& b = block();
  const decision d = b.state.decide_hedge(now(), b.deadline);
  if (!d.retry) {
    if (d.reason == stop_reason::budget_exhausted && observer_ != nullptr) {
      emit(make_event(event_kind::budget_rejected, b.state.attempt() + 1));
    }
    return d.reason;
  }
  if (!b.state.admit_attempt()) return stop_reason::throttled;
  if (observer_ != nullptr) emit(make_event(event_kind::hedged, b.state.attempt()));
  return std::nullopt;
}

void retry_call::failed_beside_others(const verdict& v, int attempt, std::string_view cause) {
  block().state.note_failure();
  if (observer_ != nullptr) {
    event e = make_event(event_kind::attempt_failed, attempt);
    e.verdict = v;
    e.cause = cause;
    emit(e);
  }
}

std::exception_ptr retry_call::give_up_error(const std::exception_ptr& last) const {
  const duration spent = elapsed();
  const std::exception_ptr original = last ? innermost(last) : nullptr;
  if (reason_ == stop_reason::deferred_to_outer) {
    return std::make_exception_ptr(retry_error(reason_, attempts_made_, spent, original,
                                               s_ ? s_->last_verdict : verdict::transient()));
  }
  if (nested() && (reason_ == stop_reason::overloaded || reason_ == stop_reason::not_idempotent)) {
    // Pushback and "not safe to repeat" hold for every enclosing loop too.
    return std::make_exception_ptr(retry_error(
        reason_, attempts_made_, spent, original,
        reason_ == stop_reason::overloaded ? verdict::overloaded() : verdict::permanent()));
  }
  if (reason_ == stop_reason::throttled && attempts_made_ == 0 && policy_->throttle()) {
    return std::make_exception_ptr(throttled_error(policy_->throttle()->rejection_probability()));
  }
  if (original && policy_->on_give_up() == give_up_mode::rethrow_last &&
      reason_ != stop_reason::cancelled) {
    return original;
  }
  return std::make_exception_ptr(retry_error(reason_, attempts_made_, spent, original));
}

call_step sleep_then_resume(retry_call& call, const call_step& s) {
  if (!s.wait()) return s;
  const std::stop_token& stop = call.stop_token();
  clock& c = call.time_source();
  bool slept = !stop.stop_requested();
  // A clock may wake a sleeper early: sleep again until the time has come.
  while (slept && c.now() < s.until) {
    slept = c.sleep_until(s.until, stop) && !stop.stop_requested();
  }
  return call.resume(slept);
}

}  // namespace rebound
