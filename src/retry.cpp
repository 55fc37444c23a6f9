#include "rebound/retry.hpp"

#include "detail/arith.hpp"
#include "rebound/duration.hpp"

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
                         std::exception_ptr last)
    : std::runtime_error(retry_error_message(reason, attempts, elapsed, last)),
      reason_(reason),
      attempts_(attempts),
      elapsed_(elapsed),
      last_(std::move(last)) {}

int attempt::number() const noexcept { return loop_->state_.attempt(); }

std::optional<int> attempt::max_attempts() const noexcept {
  return loop_->policy_.stop().max_attempts();
}

duration attempt::elapsed() const noexcept { return loop_->elapsed(); }

std::optional<duration> attempt::remaining() const noexcept {
  const auto limit = loop_->policy_.stop().time_limit(loop_->state_.start());
  if (!limit) return std::nullopt;
  const time_point now = loop_->now();
  return *limit > now ? *limit - now : duration::zero();
}

std::stop_token attempt::stop_token() const noexcept { return loop_->options_.stop; }

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

duration loop::elapsed() const noexcept {
  if (!started_) return duration::zero();
  const time_point t = now();
  return t > state_.start() ? t - state_.start() : duration::zero();
}

void loop::notify_started() noexcept {
  event e;
  e.kind = event_kind::attempt_started;
  e.attempt = state_.attempt();
  e.max_attempts = policy_.stop().max_attempts();
  e.elapsed = elapsed();
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
    event e;
    e.kind = r == stop_reason::succeeded ? event_kind::succeeded : event_kind::gave_up;
    e.attempt = attempts;
    e.max_attempts = policy_.stop().max_attempts();
    e.elapsed = spent;
    e.reason = r;
    e.cause = last_cause_;
    observer_->on_event(e);
  }
}

bool loop::failed(const verdict& v, std::string cause) {
  const time_point t = now();
  if (!started_) {
    // Lazy start (see retry.hpp): the clock is first read at the first failure.
    state_.restart_at(t);
    started_ = true;
  }
  last_cause_ = std::move(cause);
  const int made = state_.attempt();
  if (observer_ != nullptr) {
    event e;
    e.kind = event_kind::attempt_failed;
    e.attempt = made;
    e.max_attempts = policy_.stop().max_attempts();
    e.elapsed = elapsed();
    e.verdict = v;
    e.cause = last_cause_;
    observer_->on_event(e);
  }
  const decision d = state_.decide(v, t);
  if (!d.retry) {
    end(d.reason, made);
    return false;
  }
  if (observer_ != nullptr) {
    event e;
    e.kind = event_kind::retry_scheduled;
    e.attempt = state_.attempt();
    e.max_attempts = policy_.stop().max_attempts();
    e.elapsed = elapsed();
    e.delay = d.delay;
    e.verdict = v;
    e.cause = last_cause_;
    observer_->on_event(e);
  }
  clock& c = clock_ != nullptr ? *clock_ : system_clock();
  if (options_.stop.stop_requested() || !c.sleep_until(saturating_add(t, d.delay), options_.stop) ||
      options_.stop.stop_requested()) {
    end(stop_reason::cancelled, made);
    return false;
  }
  if (observer_ != nullptr) notify_started();
  return true;
}

void loop::give_up(const std::exception_ptr& e) const {
  if (policy_.on_give_up() == give_up_mode::rethrow_last && reason_ != stop_reason::cancelled) {
    std::rethrow_exception(e);
  }
  throw retry_error(reason_, attempts_made_, elapsed(), e);
}

void loop::throw_cancelled_before_start() const {
  throw retry_error(stop_reason::cancelled, 0, duration::zero(), nullptr);
}

}  // namespace detail
}  // namespace rebound
