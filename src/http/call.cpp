// One HTTP call as a driver of the call engine, and the HTTP error table.
#include <algorithm>

#include "internal.hpp"
#include "rebound/http/client.hpp"

namespace rebound::http {

verdict classify(transport_kind k) noexcept {
  switch (k) {
    case transport_kind::connect_refused:
    case transport_kind::connect_timeout:
    case transport_kind::resolve:
    case transport_kind::reset:
    case transport_kind::empty_reply:
    case transport_kind::partial_body:
    case transport_kind::tls:
      return verdict::transient();
    case transport_kind::timeout:
      return verdict::timed_out();
    case transport_kind::tls_certificate:
    case transport_kind::cancelled:
    case transport_kind::other:
      return verdict::permanent();
  }
  return verdict::permanent();
}

bool transport_error::transient() const noexcept { return classify(kind_).retryable(); }

verdict classify_status(long status, const client_options& o) noexcept {
  const bool retried =
      std::find(o.retry_statuses.begin(), o.retry_statuses.end(), status) != o.retry_statuses.end();
  return retried ? verdict::transient() : verdict::success();
}

namespace detail {

call_run::call_run(const client_options& o, const retry_policy& p, const request& r,
                   const call_options& call, std::int8_t nested)
    // Eager: a response reports the whole call's elapsed time, and a clock
    // read costs nothing next to a request.
    : o_(o), req_(r), call_(p, call, {.eager_start = true, .nested = nested}) {
  if (!req_.idempotency_key && o.generate_idempotency_key &&
      (req_.method == "POST" || req_.method == "PATCH")) {
    req_.idempotency_key = client::new_idempotency_key();
  }
  if (req_.idempotency_key) extra_.emplace_back("Idempotency-Key", *req_.idempotency_key);
  safe_ = req_.retry == retry_mode::always ||
          (req_.retry == retry_mode::automatic &&
           (idempotent_method(req_.method) || req_.idempotency_key.has_value()));
}

void call_run::start() {
  if (call_.start().done()) std::rethrow_exception(call_.give_up_error(nullptr));
}

call_run::attempt_plan call_run::begin_attempt() {
  attempt_plan plan{extra_, std::nullopt};
  if (o_.attempt_header)
    plan.headers.emplace_back(*o_.attempt_header, std::to_string(call_.attempt()));
  const time_point until = call_.attempt_deadline();
  if (until != time_point::max()) {
    const time_point t = call_.now();
    plan.limit = until > t ? until - t : duration(std::chrono::milliseconds(1));
  }
  return plan;
}

call_run::step call_run::done(std::optional<response> got, std::exception_ptr error) {
  step s;
  s.kind = step::kind_t::done;
  if (got && !error) {
    got->attempts = call_.attempts_made();
    got->elapsed = call_.elapsed();
    got->reason = call_.reason();
    s.result = std::move(got);
  } else {
    s.error = call_.give_up_error(error);
  }
  return s;
}

call_run::step call_run::on_outcome(std::optional<response> got, std::exception_ptr error) {
  verdict v = verdict::success();
  std::string cause;
  bool sent = true;
  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (const transport_error& e) {
      sent = e.request_sent();
      if (e.kind() == transport_kind::cancelled) {
        call_.end(stop_reason::cancelled);
        return done(std::nullopt, error);
      }
      v = classify(e.kind());
      if (call_.observed()) cause = e.what();
    } catch (...) {
      v = verdict::permanent();
      cause = "unexpected error";
    }
  }
  if (got) {
    v = classify_status(got->status, o_);
    if (v.retryable()) {
      if (call_.observed()) cause = "status " + std::to_string(got->status);
      const auto& ra_statuses = o_.retry_after_statuses;
      if (std::find(ra_statuses.begin(), ra_statuses.end(), got->status) != ra_statuses.end()) {
        if (const auto ra = got->header("Retry-After")) {
          const auto wall = o_.wall_clock ? o_.wall_clock() : wall_clock_now();
          if (const auto d = parse_retry_after(*ra, wall)) {
            v = verdict::transient_after(*d);
          } else {
            call_.notify(event_kind::server_delay_ignored, *ra);
          }
        }
      }
    }
  }
  if (v.kind == verdict_kind::success) {
    call_.succeeded();
    return done(std::move(got), nullptr);
  }
  const call_step next = call_.failed(v, {.cause = cause, .unsafe_to_repeat = !safe_ && sent});
  if (!next.wait()) return done(std::move(got), error);
  last_ = std::move(got);
  last_error_ = error;
  step s;
  s.kind = step::kind_t::retry;
  s.wake = next.until;
  return s;
}

call_run::step call_run::after_sleep(bool slept) {
  const call_step next = call_.resume(slept);
  if (next.done()) {
    // Cancelled in the back-off: no response to return, whatever the last one was.
    if (next.reason == stop_reason::cancelled) return done(std::nullopt, last_error_);
    return done(std::move(last_), last_error_);
  }
  step s;
  s.kind = step::kind_t::retry;
  return s;
}

}  // namespace detail
}  // namespace rebound::http
