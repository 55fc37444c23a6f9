#include "rebound/http/client.hpp"

#include <curl/curl.h>

#include "internal.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <mutex>

#include "../detail/arith.hpp"
#include "rebound/duration.hpp"
#include "rebound/random.hpp"

namespace rebound::http {

namespace {

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

int month_index(std::string_view m) {
  static constexpr std::string_view names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                               "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int i = 0; i < 12; ++i) {
    if (m == names[i]) return i;
  }
  return -1;
}

bool digits(std::string_view s, int& out) {
  if (s.empty() || s.size() > 4) return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

// "08:49:37"
bool clock_time(std::string_view s, int& h, int& m, int& sec) {
  return s.size() == 8 && s[2] == ':' && s[5] == ':' && digits(s.substr(0, 2), h) &&
         digits(s.substr(3, 2), m) && digits(s.substr(6, 2), sec) && h < 24 && m < 60 && sec < 61;
}

std::vector<std::string_view> split_spaces(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    std::size_t j = i;
    while (j < s.size() && s[j] != ' ') ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

// The three HTTP-date forms of RFC 9110 5.6.7, as seconds since the epoch (UTC).
std::optional<std::time_t> parse_http_date(std::string_view s) {
  std::tm tm{};
  int day = 0, year = 0, h = 0, m = 0, sec = 0, mon = -1;
  const auto parts = split_spaces(s);
  if (parts.size() == 6 && parts[0].size() == 4 && parts[0][3] == ',' && parts[5] == "GMT") {
    // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
    mon = month_index(parts[2]);
    if (!digits(parts[1], day) || !digits(parts[3], year) || !clock_time(parts[4], h, m, sec))
      return std::nullopt;
  } else if (parts.size() == 4 && parts[0].back() == ',' && parts[3] == "GMT") {
    // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
    const std::string_view d = parts[1];
    if (d.size() != 9 || d[2] != '-' || d[6] != '-') return std::nullopt;
    mon = month_index(d.substr(3, 3));
    if (!digits(d.substr(0, 2), day) || !digits(d.substr(7, 2), year) ||
        !clock_time(parts[2], h, m, sec))
      return std::nullopt;
    year += year < 70 ? 2000 : 1900;
  } else if (parts.size() == 5) {
    // asctime: Sun Nov  6 08:49:37 1994
    mon = month_index(parts[1]);
    if (!digits(parts[2], day) || !clock_time(parts[3], h, m, sec) || !digits(parts[4], year))
      return std::nullopt;
  } else {
    return std::nullopt;
  }
  if (mon < 0 || day < 1 || day > 31 || year < 1970 || year > 9999) return std::nullopt;
  tm.tm_year = year - 1900;
  tm.tm_mon = mon;
  tm.tm_mday = day;
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = sec;
  const std::time_t t = timegm(&tm);
  if (t == static_cast<std::time_t>(-1)) return std::nullopt;
  // timegm normalises "31 Feb" into March: such a date is malformed, not a date.
  std::tm back{};
  gmtime_r(&t, &back);
  if (back.tm_mday != day || back.tm_mon != mon || back.tm_year != year - 1900) return std::nullopt;
  return t;
}

transport_kind classify_curl(CURLcode c) {
  switch (c) {
    case CURLE_COULDNT_CONNECT:
      return transport_kind::connect_refused;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return transport_kind::resolve;
    case CURLE_OPERATION_TIMEDOUT:
      return transport_kind::timeout;
    case CURLE_GOT_NOTHING:
      return transport_kind::empty_reply;
    case CURLE_PARTIAL_FILE:
      return transport_kind::partial_body;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
      return transport_kind::reset;
    case CURLE_SSL_CONNECT_ERROR:
      return transport_kind::tls;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
      return transport_kind::tls_certificate;
    case CURLE_ABORTED_BY_CALLBACK:
      return transport_kind::cancelled;
    default:
      return transport_kind::other;
  }
}

std::once_flag curl_init;
using detail::transfer;

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
  static_cast<transfer*>(user)->body.append(data, size * n);
  return size * n;
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<transfer*>(user);
  const std::string_view line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    t->headers.clear();  // a new response (after 100 Continue, or a redirect)
  } else if (const auto colon = line.find(':'); colon != std::string_view::npos) {
    t->headers.emplace_back(std::string(trim(line.substr(0, colon))),
                            std::string(trim(line.substr(colon + 1))));
  }
  return size * n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* t = static_cast<transfer*>(user);
  return t->stop != nullptr && t->stop->stop_requested() ? 1 : 0;
}

using detail::clock_now;

}  // namespace

std::string_view to_string(transport_kind k) noexcept {
  switch (k) {
    case transport_kind::connect_refused:
      return "connect_refused";
    case transport_kind::connect_timeout:
      return "connect_timeout";
    case transport_kind::resolve:
      return "resolve";
    case transport_kind::reset:
      return "reset";
    case transport_kind::timeout:
      return "timeout";
    case transport_kind::empty_reply:
      return "empty_reply";
    case transport_kind::partial_body:
      return "partial_body";
    case transport_kind::tls:
      return "tls";
    case transport_kind::tls_certificate:
      return "tls_certificate";
    case transport_kind::cancelled:
      return "cancelled";
    case transport_kind::other:
      return "other";
  }
  return "other";
}

transport_error::transport_error(transport_kind kind, int curl_code, bool request_sent,
                                 const std::string& what)
    : std::runtime_error(what), kind_(kind), curl_code_(curl_code), sent_(request_sent) {}

bool transport_error::transient() const noexcept {
  return kind_ != transport_kind::tls_certificate && kind_ != transport_kind::cancelled &&
         kind_ != transport_kind::other;
}

std::optional<std::string> response::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return std::nullopt;
}

bool idempotent_method(std::string_view m) noexcept {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE";
}

std::optional<duration> parse_retry_after(std::string_view value,
                                          std::chrono::system_clock::time_point now) {
  const std::string_view v = trim(value);
  if (v.empty()) return std::nullopt;
  if (std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    // delta-seconds; values past what nanoseconds hold saturate (the cap decides).
    constexpr std::int64_t max_seconds = duration::max().count() / 1'000'000'000;
    std::int64_t s = 0;
    for (char c : v) {
      s = s * 10 + (c - '0');
      if (s > max_seconds) return duration::max();
    }
    return std::chrono::duration_cast<duration>(std::chrono::seconds(s));
  }
  const auto when = parse_http_date(v);
  if (!when) return std::nullopt;
  // In whole seconds, so dates past 2262 (where nanoseconds end) saturate.
  const std::int64_t ahead = static_cast<std::int64_t>(*when) -
                             static_cast<std::int64_t>(std::chrono::system_clock::to_time_t(now));
  if (ahead <= 0) return duration::zero();
  if (ahead > duration::max().count() / 1'000'000'000) return duration::max();
  const auto frac =
      now - std::chrono::system_clock::from_time_t(std::chrono::system_clock::to_time_t(now));
  const duration d = std::chrono::seconds(ahead) - std::chrono::duration_cast<duration>(frac);
  return d > duration::zero() ? d : duration::zero();
}

std::string client::new_idempotency_key() {
  random_stream rng(random_stream::fresh_seed());
  static constexpr char hex[] = "0123456789abcdef";
  std::string key(32, '0');
  std::uint64_t bits = 0;
  for (std::size_t i = 0; i < key.size(); ++i) {
    if (i % 16 == 0) bits = rng.next();
    key[i] = hex[bits & 0xF];
    bits >>= 4;
  }
  return key;
}

struct client::impl {
  client_options options;
  retry_policy policy;  // options.policy with the Retry-After cap applied
  CURL* curl = nullptr;

  explicit impl(client_options o) : options(std::move(o)) {
    detail::init_curl();
    policy = options.policy.max_server_delay(options.max_retry_after, server_delay_mode::give_up);
    curl = curl_easy_init();
    if (curl == nullptr) throw std::runtime_error("rebound::http: curl_easy_init failed");
    // Set once; perform() sets what changes per request (no curl_easy_reset,
    // which costs more than the request on loopback).
    detail::prepare_handle(curl);
  }
  ~impl() {
    if (curl != nullptr) curl_easy_cleanup(curl);
  }

  // One transfer. Returns the response, or throws transport_error.
  response perform(const request& r, const header_list& extra, std::optional<duration> limit,
                   const std::stop_token& stop) {
    transfer t;
    t.stop = &stop;
    curl_slist* list = detail::setup_transfer(curl, r, extra, limit, options.connect_timeout, t,
                                              stop.stop_possible());
    const CURLcode rc = curl_easy_perform(curl);
    curl_slist_free_all(list);
    return detail::finish_transfer(curl, rc, t);
  }
};

namespace detail {

void init_curl() {
  std::call_once(curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

void prepare_handle(CURL* curl) {
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &on_body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &on_progress);
}

curl_slist* setup_transfer(CURL* curl, const request& r, const header_list& extra,
                           std::optional<duration> limit, duration connect_timeout, transfer& t,
                           bool cancellable) {
  curl_easy_setopt(curl, CURLOPT_URL, r.url.c_str());
  // Every per-request option is set each time, so nothing leaks from the last request.
  const bool sends_body =
      !r.body.empty() || r.method == "POST" || r.method == "PUT" || r.method == "PATCH";
  if (r.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, nullptr);
  } else if (sends_body) {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 0L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, r.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, r.method.c_str());
  } else {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);  // also clears a previous body and NOBODY
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, r.method == "GET" ? nullptr : r.method.c_str());
  }
  curl_slist* list = nullptr;
  for (const auto& [k, v] : r.headers) list = curl_slist_append(list, (k + ": " + v).c_str());
  for (const auto& [k, v] : extra) list = curl_slist_append(list, (k + ": " + v).c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, cancellable ? 0L : 1L);
  duration connect = connect_timeout;
  long total_ms = 0;  // none
  if (limit) {
    total_ms = static_cast<long>(std::max<std::int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(*limit).count()));
    connect = std::min(connect, *limit);
  }
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, total_ms);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::max<std::int64_t>(
                       1, std::chrono::duration_cast<std::chrono::milliseconds>(connect).count())));
  return list;
}

response finish_transfer(CURL* curl, CURLcode rc, transfer& t) {
  if (rc != CURLE_OK) {
    curl_off_t sent = 0;
    curl_easy_getinfo(curl, CURLINFO_REQUEST_SIZE, &sent);
    transport_kind kind = classify_curl(rc);
    if (kind == transport_kind::timeout) {
      curl_off_t connect_us = 0;
      curl_easy_getinfo(curl, CURLINFO_CONNECT_TIME_T, &connect_us);
      if (connect_us == 0 && sent == 0) kind = transport_kind::connect_timeout;
    }
    throw transport_error(kind, static_cast<int>(rc), sent > 0,
                          std::string(to_string(kind)) + ": " + curl_easy_strerror(rc));
  }
  response out;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out.status);
  out.headers = std::move(t.headers);
  out.body = std::move(t.body);
  return out;
}

}  // namespace detail

client::client(client_options options) : impl_(std::make_unique<impl>(std::move(options))) {}
client::~client() = default;
client::client(client&&) noexcept = default;
client& client::operator=(client&&) noexcept = default;

const client_options& client::options() const noexcept { return impl_->options; }

response client::get(std::string url, const call_options& options) {
  return send(request{.url = std::move(url)}, options);
}

namespace detail {

call_run::call_run(const client_options& o, const retry_policy& p, const request& r,
                   const call_options& call)
    : o_(o),
      p_(p),
      call_(call),
      req_(r),
      custom_(p.custom_clock()),
      obs_(p.observer().get()),
      start_(clock_now(p.custom_clock())),
      state_(p, start_) {
  if (!req_.idempotency_key && o.generate_idempotency_key &&
      (req_.method == "POST" || req_.method == "PATCH")) {
    req_.idempotency_key = client::new_idempotency_key();
  }
  if (req_.idempotency_key) extra_.emplace_back("Idempotency-Key", *req_.idempotency_key);
  safe_ = req_.retry == retry_mode::always ||
          (req_.retry == retry_mode::automatic &&
           (idempotent_method(req_.method) || req_.idempotency_key.has_value()));
  deadline_ = call.deadline.value_or(time_point::max());
  if (const auto total = p.total_timeout()) {
    deadline_ = std::min(deadline_, rebound::detail::saturating_add(start_, *total));
  }
}

time_point call_run::now() const { return clock_now(custom_); }

event call_run::make_event(event_kind k, int attempt) const {
  event e;
  e.kind = k;
  e.attempt = attempt;
  e.max_attempts = p_.stop().max_attempts();
  const time_point t = now();
  e.elapsed = t > start_ ? t - start_ : duration::zero();
  return e;
}

duration call_run::finish(stop_reason reason, int attempts) {
  const time_point t = now();
  const duration spent = t > start_ ? t - start_ : duration::zero();
  if (call_.report != nullptr) {
    *call_.report = {.reason = reason, .attempts = attempts, .elapsed = spent};
  }
  if (obs_ != nullptr) {
    event e = make_event(
        reason == stop_reason::succeeded ? event_kind::succeeded : event_kind::gave_up, attempts);
    e.reason = reason;
    obs_->on_event(e);
  }
  return spent;
}

void call_run::check_not_cancelled() {
  if (call_.stop.stop_requested()) {
    finish(stop_reason::cancelled, 0);
    throw retry_error(stop_reason::cancelled, 0, duration::zero(), nullptr);
  }
}

call_run::attempt_plan call_run::begin_attempt() {
  const int attempt = state_.attempt();
  if (obs_ != nullptr) obs_->on_event(make_event(event_kind::attempt_started, attempt));
  attempt_plan plan{extra_, p_.attempt_timeout()};
  if (o_.attempt_header) plan.headers.emplace_back(*o_.attempt_header, std::to_string(attempt));
  if (deadline_ != time_point::max()) {
    const time_point t = now();
    const duration left = deadline_ > t ? deadline_ - t : duration(std::chrono::milliseconds(1));
    plan.limit = plan.limit ? std::min(*plan.limit, left) : left;
  }
  return plan;
}

call_run::step call_run::done(std::optional<response> got, std::exception_ptr error,
                              stop_reason reason, int attempt) {
  const duration spent = finish(reason, attempt);
  step s;
  s.kind = step::kind_t::done;
  if (got && !error) {
    got->attempts = attempt;
    got->elapsed = spent;
    got->reason = reason;
    s.result = std::move(got);
  } else {
    s.error = rebound::detail::give_up_error(p_, reason, attempt, spent, error);
  }
  return s;
}

call_run::step call_run::on_outcome(std::optional<response> got, std::exception_ptr error) {
  const int attempt = state_.attempt();
  verdict v = verdict::success();
  std::string cause;
  bool sent = true;
  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (const transport_error& e) {
      sent = e.request_sent();
      cause = e.what();
      if (e.kind() == transport_kind::cancelled) {
        return done(std::nullopt, error, stop_reason::cancelled, attempt);
      }
      v = !e.transient() ? verdict::permanent()
          : e.kind() == transport_kind::timeout || e.kind() == transport_kind::connect_timeout
              ? verdict::timed_out()
              : verdict::transient();
    } catch (...) {
      v = verdict::permanent();
      cause = "unexpected error";
    }
  }
  if (got) {
    const int status = static_cast<int>(got->status);
    if (std::find(o_.retry_statuses.begin(), o_.retry_statuses.end(), status) !=
        o_.retry_statuses.end()) {
      v = verdict::transient();
      cause = "status " + std::to_string(status);
      if (std::find(o_.retry_after_statuses.begin(), o_.retry_after_statuses.end(), status) !=
          o_.retry_after_statuses.end()) {
        if (const auto ra = got->header("Retry-After")) {
          const auto wall = o_.wall_clock ? o_.wall_clock() : std::chrono::system_clock::now();
          if (const auto d = parse_retry_after(*ra, wall)) {
            v = verdict::transient_after(*d);
          } else if (obs_ != nullptr) {
            event e = make_event(event_kind::server_delay_ignored, attempt);
            e.cause = *ra;
            obs_->on_event(e);
          }
        }
      }
    }
  }
  if (v.kind == verdict_kind::success) {
    state_.record_success();
    return done(std::move(got), nullptr, stop_reason::succeeded, attempt);
  }
  if (obs_ != nullptr) {
    event e = make_event(event_kind::attempt_failed, attempt);
    e.verdict = v;
    e.cause = cause;
    obs_->on_event(e);
  }
  const decision d = v.retryable() && !safe_ && sent ? decision::stop(stop_reason::not_idempotent)
                                                     : state_.decide(v, now(), deadline_);
  if (!d.retry) {
    if (d.reason == stop_reason::budget_exhausted && obs_ != nullptr) {
      obs_->on_event(make_event(event_kind::budget_rejected, attempt + 1));
    }
    return done(std::move(got), error, d.reason, attempt);
  }
  if (obs_ != nullptr) {
    event e = make_event(event_kind::retry_scheduled, state_.attempt());
    e.delay = d.delay;
    e.verdict = v;
    e.cause = cause;
    obs_->on_event(e);
  }
  last_ = std::move(got);
  last_error_ = error;
  step s;
  s.kind = step::kind_t::retry;
  s.wake = rebound::detail::saturating_add(now(), d.delay);
  return s;
}

call_run::step call_run::after_sleep(bool slept) {
  const int made = state_.attempt() - 1;
  if (!slept || call_.stop.stop_requested()) {
    return done(std::nullopt, last_error_ ? last_error_ : nullptr, stop_reason::cancelled, made);
  }
  if (!state_.admit_attempt()) {
    return done(std::move(last_), last_error_, stop_reason::throttled, made);
  }
  step s;
  s.kind = step::kind_t::retry;
  return s;
}

}  // namespace detail

response client::send(const request& r, const call_options& call) {
  detail::call_run run(impl_->options, impl_->policy, r, call);
  run.check_not_cancelled();
  clock& clk = impl_->policy.clock();
  for (;;) {
    const detail::call_run::attempt_plan plan = run.begin_attempt();
    std::optional<response> got;
    std::exception_ptr error;
    try {
      got.emplace(impl_->perform(run.req(), plan.headers, plan.limit, call.stop));
    } catch (const transport_error&) {
      error = std::current_exception();
    }
    detail::call_run::step s = run.on_outcome(std::move(got), std::move(error));
    if (s.kind == detail::call_run::step::kind_t::retry) {
      const bool slept = clk.sleep_until(s.wake, call.stop);
      s = run.after_sleep(slept);
    }
    if (s.kind == detail::call_run::step::kind_t::done) {
      if (s.error) std::rethrow_exception(s.error);
      return std::move(*s.result);
    }
  }
}

}  // namespace rebound::http
