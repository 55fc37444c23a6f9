#include "rebound/events.hpp"

namespace rebound {

std::string_view to_string(event_kind k) noexcept {
  switch (k) {
    case event_kind::attempt_started:
      return "attempt_started";
    case event_kind::attempt_failed:
      return "attempt_failed";
    case event_kind::retry_scheduled:
      return "retry_scheduled";
    case event_kind::gave_up:
      return "gave_up";
    case event_kind::succeeded:
      return "succeeded";
    case event_kind::budget_rejected:
      return "budget_rejected";
    case event_kind::deferred:
      return "deferred";
    case event_kind::hedged:
      return "hedged";
    case event_kind::server_delay_ignored:
      return "server_delay_ignored";
    case event_kind::hedge_won:
      return "hedge_won";
    case event_kind::attempt_cancelled:
      return "attempt_cancelled";
  }
  return "unknown";
}

void function_observer::on_event(const event& e) noexcept {
  try {
    fn_(e);
  } catch (...) {
    // An observer must not change the outcome of the call it observes.
  }
}

void counters_observer::on_event(const event& e) noexcept {
  constexpr auto relaxed = std::memory_order_relaxed;
  switch (e.kind) {
    case event_kind::attempt_started:
      attempts_.fetch_add(1, relaxed);
      break;
    case event_kind::attempt_failed:
      switch (e.verdict.kind) {
        case verdict_kind::transient:
          transient_.fetch_add(1, relaxed);
          break;
        case verdict_kind::permanent:
          permanent_.fetch_add(1, relaxed);
          break;
        case verdict_kind::overloaded:
          overloaded_.fetch_add(1, relaxed);
          break;
        case verdict_kind::success:
          break;
      }
      break;
    case event_kind::retry_scheduled:
      retries_.fetch_add(1, relaxed);
      break;
    case event_kind::budget_rejected:
      budget_rejections_.fetch_add(1, relaxed);
      break;
    case event_kind::deferred:
      break;
    case event_kind::hedged:
      hedges_.fetch_add(1, relaxed);
      break;
    case event_kind::server_delay_ignored:
      break;
    case event_kind::hedge_won:
      hedges_won_.fetch_add(1, relaxed);
      break;
    case event_kind::attempt_cancelled:
      cancelled_.fetch_add(1, relaxed);
      break;
    case event_kind::gave_up:
    case event_kind::succeeded: {
      const auto i = static_cast<std::size_t>(e.reason);
      if (i < ends_.size()) ends_[i].fetch_add(1, relaxed);
      break;
    }
  }
}

counters_observer::counts counters_observer::snapshot() const noexcept {
  constexpr auto relaxed = std::memory_order_relaxed;
  counts c;
  c.attempts = attempts_.load(relaxed);
  c.retries = retries_.load(relaxed);
  c.failures_transient = transient_.load(relaxed);
  c.failures_permanent = permanent_.load(relaxed);
  c.failures_overloaded = overloaded_.load(relaxed);
  c.budget_rejections = budget_rejections_.load(relaxed);
  c.hedges = hedges_.load(relaxed);
  c.hedges_won = hedges_won_.load(relaxed);
  c.attempts_cancelled = cancelled_.load(relaxed);
  for (std::size_t i = 0; i < ends_.size(); ++i) c.ends[i] = ends_[i].load(relaxed);
  return c;
}

}  // namespace rebound
