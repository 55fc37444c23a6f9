// One HTTP call as a driver of the call engine, and the HTTP error table.
#include <algorithm>
#include <cctype>
#include <new>

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

namespace {

// RFC 9110 5.6.2: token = 1*tchar.
bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    const bool tchar = std::isalnum(u) != 0 ||
                       std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!tchar) return false;
  }
  return true;
}

// RFC 9110 5.5: a field value is visible characters, spaces, tabs and
// obs-text; CR, LF, NUL and the other controls are refused (a CR or LF
// would end the header and start one of the sender's choosing).
std::optional<std::string> bad_value(std::string_view v) {
  for (const char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\r') return "holds a carriage return (CR)";
    if (c == '\n') return "holds a line feed (LF)";
    if (c == '\0') return "holds a NUL byte";
    if ((u < 0x20 && c != '\t') || u == 0x7f) return "holds a control character";
  }
  return std::nullopt;
}

void check_header(const std::string& field, std::string_view name, std::string_view value) {
  if (!is_token(name)) {
    throw invalid_request(field, "the name \"" + std::string(name.substr(0, 64)) +
                                     "\" is not an RFC 9110 token (letters, digits, "
                                     "!#$%&'*+-.^_`|~; no spaces, colons or controls)");
  }
  if (const auto why = bad_value(value)) {
    throw invalid_request(
        field, "the value of " + std::string(name) + " " + *why + "; a header value is one line");
  }
}

}  // namespace

void validate(const request& r, const client_options& o) {
  CURLU* u = curl_url();
  if (u == nullptr) throw std::bad_alloc();
  const CURLUcode rc = curl_url_set(u, CURLUPART_URL, r.url.c_str(), 0);
  char* scheme = nullptr;
  char* host = nullptr;
  const bool parsed = rc == CURLUE_OK &&
                      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
                      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK;
  const std::string sch = scheme != nullptr ? scheme : "";
  curl_free(scheme);
  curl_free(host);
  curl_url_cleanup(u);
  if (!parsed) {
    throw invalid_request("url", "\"" + r.url.substr(0, 200) + "\" is not a valid URL (" +
                                     (rc != CURLUE_OK ? curl_url_strerror(rc) : "no host") + ")");
  }
  if (sch != "http" && sch != "https") {
    throw invalid_request("url", "the scheme \"" + sch + "\" is not allowed; allowed: http, https");
  }
  if (!is_token(r.method)) {
    throw invalid_request("method", "\"" + r.method.substr(0, 64) + "\" is not an RFC 9110 token");
  }
  for (std::size_t i = 0; i < r.headers.size(); ++i) {
    check_header("headers[" + std::to_string(i) + "]", r.headers[i].first, r.headers[i].second);
  }
  if (r.idempotency_key) check_header("idempotency_key", "Idempotency-Key", *r.idempotency_key);
  if (o.attempt_header) check_header("attempt_header", *o.attempt_header, "1");
}

namespace detail {

call_run::call_run(const client_options& o, const retry_policy& p, const request& r,
                   const call_options& call, std::int8_t nested)
    // Eager: a response reports the whole call's elapsed time, and a clock
    // read costs nothing next to a request.
    : o_(o), req_((validate(r, o), r)), call_(p, call, {.eager_start = true, .nested = nested}) {
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
