// rebound http: one HTTP request under a retry policy (the libcurl adapter).
#include <csignal>
#include <cstdio>
#include <thread>

#include "commands.hpp"
#include "common.hpp"
#include "rebound/duration.hpp"
#include "rebound/events.hpp"
#include "rebound/http/client.hpp"
#include "rebound/metrics.hpp"

namespace rebound::cli {

namespace {

std::vector<int> status_list(const std::string& text, const std::string& flag) {
  std::vector<int> out;
  std::size_t i = 0;
  while (i <= text.size()) {
    const std::size_t comma = std::min(text.find(',', i), text.size());
    const std::string item = text.substr(i, comma - i);
    int v = 0;
    bool ok = !item.empty() && item.size() <= 3;
    for (char c : item) {
      if (c < '0' || c > '9') ok = false;
      v = v * 10 + (c - '0');
    }
    if (!ok || v < 400 || v > 599) {
      throw config_error(flag, "\"" + item +
                                   "\" is not an error status; allowed: a comma-separated list "
                                   "of codes 400..599, e.g. 429,502,503");
    }
    out.push_back(v);
    i = comma + 1;
  }
  return out;
}

duration duration_flag(const std::string& v, const std::string& flag) {
  duration d;
  try {
    d = parse_duration(v);
  } catch (const std::invalid_argument& e) {
    throw config_error(flag, e.what());
  }
  if (d <= duration::zero()) {
    throw config_error(flag, "\"" + v + "\" is out of range; allowed: a duration > 0, e.g. 30s");
  }
  return d;
}

// RFC 9110 5.6.2: a header name is a token.
bool token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) ||
                    std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

}  // namespace

CLI::App* add_http(CLI::App& app, http_options& o) {
  auto* h = app.add_subcommand("http", "Send one HTTP request, retrying transient failures safely");
  add_policy_flags(*h, o.policy);
  h->add_option("-X,--request", o.method, "Method (default GET, or POST with -d)")
      ->type_name("METHOD");
  h->add_option("-H,--header", o.headers, "A request header 'Name: value' (repeatable)")
      ->type_name("HEADER")
      ->allow_extra_args(false);  // one value per -H: the URL is not a header
  h->add_option("-d,--data", o.data, "Request body (makes the default method POST)")
      ->type_name("DATA");
  h->add_option("--idempotency-key", o.idempotency_key,
                "Send Idempotency-Key (auto: a random one), which makes POST/PATCH retryable")
      ->type_name("KEY|auto");
  h->add_option("--retry-status", o.retry_status,
                "Statuses to retry (default 408,425,429,500,502,503,504)")
      ->type_name("LIST");
  h->add_option("--max-retry-after", o.max_retry_after,
                "Longest Retry-After honoured; longer ends at once (default 60s)")
      ->type_name("DUR");
  h->add_option("--timeout", o.timeout, "Per-attempt time limit")->type_name("DUR");
  h->add_option("--attempt-header", o.attempt_header,
                "Send the attempt number in this header (e.g. X-Attempt)")
      ->type_name("NAME");
  h->add_option("--metrics-file", o.metrics_file,
                "Write the call's metrics to FILE at exit (Prometheus text format; for "
                "node_exporter's textfile collector)")
      ->type_name("FILE");
  h->add_flag("-q,--quiet", o.quiet, "No progress lines");
  h->add_option("url", o.url, "The URL")->type_name("URL");
  return h;
}

int http_main(const http_options& o) {
  http::client_options co;
  http::request req;
  try {
    const policy_settings settings = settings_from_flags(o.policy);
    co.policy = settings.to_policy();
    // --max-time also bounds the request in flight, not only the back-offs.
    if (o.policy.given("before_elapsed") && settings.before_elapsed &&
        *settings.before_elapsed > duration::zero()) {
      co.policy = co.policy.total_timeout(*settings.before_elapsed);
    }
    if (o.url.empty()) throw config_error("http", "no URL given; usage: rebound http [flags] URL");
    const auto sep = o.url.find("://");
    std::string scheme = sep == std::string::npos ? std::string() : o.url.substr(0, sep);
    for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (scheme != "http" && scheme != "https") {
      throw config_error("url",
                         "\"" + o.url + "\" is not allowed; allowed: http:// or https:// URLs");
    }
    req.url = o.url;
    if (o.data) req.body = *o.data;
    req.method = o.method ? *o.method : (o.data ? "POST" : "GET");
    for (char& c : req.method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (req.method.empty() ||
        req.method.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string::npos) {
      throw config_error("-X",
                         "\"" + req.method + "\" is not a method; allowed: letters, e.g. GET");
    }
    for (const auto& h : o.headers) {
      const auto colon = h.find(':');
      if (colon == std::string::npos || !token(h.substr(0, colon))) {
        throw config_error(
            "-H", "\"" + h + "\" is not a header; write 'Name: value' (a name without spaces)");
      }
      std::string value = h.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      req.headers.emplace_back(h.substr(0, colon), value);
    }
    if (o.idempotency_key) {
      if (o.idempotency_key->empty()) throw config_error("--idempotency-key", "empty key");
      req.idempotency_key =
          *o.idempotency_key == "auto" ? http::client::new_idempotency_key() : *o.idempotency_key;
    }
    if (o.retry_status) co.retry_statuses = status_list(*o.retry_status, "--retry-status");
    if (o.max_retry_after)
      co.max_retry_after = duration_flag(*o.max_retry_after, "--max-retry-after");
    if (o.timeout) co.policy = co.policy.attempt_timeout(duration_flag(*o.timeout, "--timeout"));
    if (o.attempt_header) {
      if (!token(*o.attempt_header)) {
        throw config_error(
            "--attempt-header",
            "\"" + *o.attempt_header +
                "\" is not a header name; allowed: letters, digits and !#$%&'*+-.^_`|~");
      }
      co.attempt_header = *o.attempt_header;
    }
    // The library's own check, before any attempt: a malformed URL, or CR,
    // LF or NUL in a header (which would let a value write headers of its
    // own), is a usage error here, and nothing is sent.
    try {
      http::validate(req, co);
    } catch (const http::invalid_request& e) {
      const std::string& f = e.field();
      const std::string flag = f == "url"                 ? "url"
                               : f == "method"            ? "-X"
                               : f == "idempotency_key"   ? "--idempotency-key"
                               : f == "attempt_header"    ? "--attempt-header"
                               : f.starts_with("headers") ? "-H"
                                                          : f;
      throw config_error(flag, std::string(e.what()).substr(f.size() + 2));
    }
  } catch (const config_error& e) {
    return usage_error(e.what());
  }
  if (dry_run()) return exit_code::ok;

  // Progress lines on stderr, one per retry.
  const bool quiet = o.quiet;
  // --metrics-file: the call's metrics, written whichever way the call ends.
  metrics::registry registry;
  struct write_at_exit {
    const metrics::registry& r;
    const std::optional<std::string>& path;
    ~write_at_exit() {
      if (!path) return;
      try {
        metrics::write_file(r, *path);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "rebound: --metrics-file: %s\n", e.what());  // the outcome stands
      }
    }
  } metrics_at_exit{registry, o.metrics_file};
  std::shared_ptr<observer> call_metrics;
  if (o.metrics_file) call_metrics = std::make_shared<metrics::call_metrics>(registry, "http");
  co.policy =
      co.policy.observer(std::make_shared<function_observer>([quiet, call_metrics](const event& e) {
        if (call_metrics) call_metrics->on_event(e);
        if (quiet) return;
        if (e.kind == event_kind::retry_scheduled) {
          const std::string of = e.max_attempts ? "/" + std::to_string(*e.max_attempts) : "";
          std::fprintf(stderr, "attempt %d%s failed: %s; retrying in %s\n", e.attempt - 1,
                       of.c_str(), std::string(e.cause).c_str(), format_duration(e.delay).c_str());
        } else if (e.kind == event_kind::server_delay_ignored) {
          std::fprintf(stderr, "ignored a malformed Retry-After: \"%s\"\n",
                       std::string(e.cause).c_str());
        }
      }));

  // SIGINT/SIGTERM/SIGHUP (blocked in main) cancel the call, also mid-sleep.
  std::stop_source stop;
  std::thread([&stop] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    int sig = 0;
    if (sigwait(&set, &sig) == 0) stop.request_stop();
  }).detach();

  call_report report;
  try {
    http::client c(std::move(co));
    const http::response r = c.send(req, {.stop = stop.get_token(), .report = &report});
    std::fwrite(r.body.data(), 1, r.body.size(), stdout);
    std::fflush(stdout);
    if (r.reason != stop_reason::succeeded && !quiet) {
      std::fprintf(stderr, "gave up after %d attempt(s) (%s): status %ld\n", r.attempts,
                   std::string(to_string(r.reason)).c_str(), r.status);
    }
    if (r.reason == stop_reason::time_exhausted) return exit_code::time_exhausted;
    if (r.status >= 400) return http_exit::http_error;
    return exit_code::ok;
  } catch (const http::transport_error& e) {
    if (!quiet) {
      std::fprintf(stderr, "gave up after %d attempt(s) (%s): %s\n", report.attempts,
                   std::string(to_string(report.reason)).c_str(), e.what());
    }
    if (report.reason == stop_reason::time_exhausted) return exit_code::time_exhausted;
    if (e.kind() == http::transport_kind::timeout) return exit_code::timeout;
    return http_exit::transport;
  } catch (const retry_error& e) {
    if (!quiet) std::fprintf(stderr, "%s\n", e.what());
    if (e.reason() == stop_reason::cancelled) return exit_code::cancelled;
    if (e.reason() == stop_reason::time_exhausted) return exit_code::time_exhausted;
    return http_exit::transport;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rebound: %s\n", e.what());
    return exit_code::internal;
  }
}

}  // namespace rebound::cli
