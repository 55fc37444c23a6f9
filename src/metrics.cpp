// Metrics and their Prometheus text exposition: rebound/metrics.hpp.
#include "rebound/metrics.hpp"

#include "metrics_endpoint.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "rebound/duration.hpp"
#include "rebound/stop.hpp"

namespace rebound::metrics {

namespace {

bool valid_name(std::string_view n, bool label) {
  if (n.empty()) return false;
  if (label && n.size() >= 2 && n[0] == '_' && n[1] == '_') return false;  // reserved
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!(letter || (i > 0 && digit) || (!label && c == ':'))) return false;
  }
  return true;
}

// Exposition 0.0.4: in HELP, backslash and line feed are escaped; in label
// values, also the double quote.
void escape(std::string& out, std::string_view s, bool quote) {
  for (const char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// Go's float formatting as Prometheus parses it: shortest round trip, and
// +Inf, -Inf, NaN spelled so.
void number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
  }
}
void number(std::string& out, std::uint64_t v) { out += std::to_string(v); }

void labels(std::string& out, const std::vector<std::string>& names,
            const std::vector<std::string>& values, std::string_view extra_name = {},
            std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (!first) out += ',';
    first = false;
    out += names[i];
    out += "=\"";
    escape(out, values[i], true);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

constexpr std::array<double, 14> default_delay_bounds{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                      0.5,   1,     2.5,  5,     10,   30,  60};

}  // namespace

std::span<const double> delay_buckets() noexcept { return default_delay_bounds; }

// ---- histogram ----------------------------------------------------------------

histogram::histogram(std::span<const double> bounds)
    : bounds_(bounds), buckets_(new std::atomic<std::uint64_t>[bounds.size() + 1]) {
  for (std::size_t i = 0; i <= bounds.size(); ++i) buckets_[i].store(0);
}

void histogram::observe(double v) noexcept {
  // The first bound >= v: Prometheus buckets are "less than or equal".
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
  buckets_[static_cast<std::size_t>(it - bounds_.begin())].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<std::uint64_t> histogram::cumulative() const {
  std::vector<std::uint64_t> out(bounds_.size() + 1);
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    out[i] = running;
  }
  return out;
}

// ---- family -------------------------------------------------------------------

template <class T>
family<T>::family(std::string name, std::string help, std::vector<std::string> labels,
                  std::vector<double> bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      labels_(std::move(labels)),
      bounds_(std::move(bounds)) {}

template <class T>
T& family<T>::with(std::initializer_list<std::string_view> values) {
  return child(std::vector<std::string>(values.begin(), values.end()));
}

template <class T>
T& family<T>::with(const std::vector<std::string>& values) {
  return child(values);
}

template <class T>
T& family<T>::child(std::vector<std::string> values) {
  if (values.size() != labels_.size()) {
    throw std::invalid_argument("rebound::metrics: " + name_ + " has " +
                                std::to_string(labels_.size()) + " labels; " +
                                std::to_string(values.size()) + " values given");
  }
  std::lock_guard lock(mu_);
  auto& slot = children_[std::move(values)];
  if (!slot) {
    if constexpr (std::is_same_v<T, metrics::histogram>) {
      slot = std::make_unique<T>(std::span<const double>(bounds_));
    } else {
      slot = std::make_unique<T>();
    }
  }
  return *slot;
}

template class family<counter>;
template class family<gauge>;
template class family<histogram>;

// ---- registry -----------------------------------------------------------------

template <class T>
family<T>& registry::get(metrics::kind k, std::string_view name, std::string_view help,
                         std::vector<std::string> labels, std::vector<double> bounds) {
  if (!valid_name(name, false)) {
    throw std::invalid_argument("rebound::metrics: \"" + std::string(name) +
                                "\" is not a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)");
  }
  for (const auto& l : labels) {
    if (!valid_name(l, true) || (k == kind::histogram && l == "le")) {
      throw std::invalid_argument("rebound::metrics: \"" + l + "\" is not a label name for " +
                                  std::string(name));
    }
  }
  if (k == kind::histogram &&
      (bounds.empty() || !std::is_sorted(bounds.begin(), bounds.end()) ||
       std::adjacent_find(bounds.begin(), bounds.end()) != bounds.end() ||
       std::any_of(bounds.begin(), bounds.end(), [](double b) { return !std::isfinite(b); }))) {
    throw std::invalid_argument("rebound::metrics: " + std::string(name) +
                                ": bucket bounds must be finite and strictly ascending");
  }
  std::lock_guard lock(mu_);
  if (const auto it = families_.find(name); it != families_.end()) {
    if (it->second.kind != k || it->second.labels != labels) {
      throw std::invalid_argument("rebound::metrics: " + std::string(name) +
                                  " is registered already, with another type or labels");
    }
    return *static_cast<family<T>*>(it->second.family.get());
  }
  std::shared_ptr<family<T>> f(
      new family<T>(std::string(name), std::string(help), labels, std::move(bounds)));
  families_.emplace(std::string(name), entry{k, std::move(labels), f});
  return *f;
}

family<counter>& registry::counter(std::string_view name, std::string_view help,
                                   std::vector<std::string> labels) {
  return get<metrics::counter>(kind::counter, name, help, std::move(labels), {});
}

family<gauge>& registry::gauge(std::string_view name, std::string_view help,
                               std::vector<std::string> labels) {
  return get<metrics::gauge>(kind::gauge, name, help, std::move(labels), {});
}

family<histogram>& registry::histogram(std::string_view name, std::string_view help,
                                       std::vector<std::string> labels,
                                       std::span<const double> bounds) {
  return get<metrics::histogram>(kind::histogram, name, help, std::move(labels),
                                 std::vector<double>(bounds.begin(), bounds.end()));
}

std::uint64_t registry::on_collect(std::function<void()> fn) {
  std::lock_guard lock(collect_mu_);
  collectors_.emplace_back(next_collector_, std::move(fn));
  return next_collector_++;
}

void registry::remove_collector(std::uint64_t id) {
  std::lock_guard lock(collect_mu_);
  std::erase_if(collectors_, [id](const auto& c) { return c.first == id; });
}

std::string registry::expose() const {
  {
    std::lock_guard lock(collect_mu_);
    for (const auto& [id, fn] : collectors_) fn();
  }
  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& [key, e] : families_) {
    const std::string& name = key;  // a plain reference: lambdas below capture it
    const auto head = [&](const std::string& help, const char* type) {
      out += "# HELP ";
      out += name;
      out += ' ';
      escape(out, help, false);
      out += "\n# TYPE ";
      out += name;
      out += ' ';
      out += type;
      out += '\n';
    };
    // Counters and gauges: one line per child, `name{labels} value`.
    const auto simple = [&]<class T>(const family<T>& f, const char* type) {
      head(f.help_, type);
      std::lock_guard fl(f.mu_);
      for (const auto& [values, child] : f.children_) {
        out += name;
        labels(out, f.labels_, values);
        out += ' ';
        number(out, child->value());
        out += '\n';
      }
    };
    if (e.kind == kind::counter) {
      simple(*static_cast<const family<metrics::counter>*>(e.family.get()), "counter");
    } else if (e.kind == kind::gauge) {
      simple(*static_cast<const family<metrics::gauge>*>(e.family.get()), "gauge");
    } else {
      const auto& f = *static_cast<const family<metrics::histogram>*>(e.family.get());
      head(f.help_, "histogram");
      std::lock_guard fl(f.mu_);
      for (const auto& [values, h] : f.children_) {
        // One read of the buckets; _count is their total (the +Inf bucket),
        // as the format requires, even while observations land.
        const auto cum = h->cumulative();
        for (std::size_t i = 0; i < cum.size(); ++i) {
          std::string le;
          if (i < f.bounds_.size()) {
            number(le, f.bounds_[i]);
          } else {
            le = "+Inf";
          }
          out += name;
          out += "_bucket";
          labels(out, f.labels_, values, "le", le);
          out += ' ';
          number(out, cum[i]);
          out += '\n';
        }
        out += name;
        out += "_sum";
        labels(out, f.labels_, values);
        out += ' ';
        number(out, h->sum());
        out += '\n';
        out += name;
        out += "_count";
        labels(out, f.labels_, values);
        out += ' ';
        number(out, cum.back());  // the same as the +Inf bucket, as the format requires
        out += '\n';
      }
    }
  }
  return out;
}

// ---- call_metrics -------------------------------------------------------------

call_metrics::call_metrics(registry& r, std::string_view component) {
  const std::string c(component);
  attempts_ =
      &r.counter("rebound_attempts_total", "Attempts started (hedges included)", {"component"})
           .with({c});
  retries_ =
      &r.counter("rebound_retries_total", "Retries scheduled after a failed attempt", {"component"})
           .with({c});
  hedges_ = &r.counter("rebound_hedges_total",
                       "Hedged attempts started while earlier ones still ran", {"component"})
                 .with({c});
  hedges_won_ = &r.counter("rebound_hedges_won_total",
                           "Calls whose first success came from a hedge, not the first attempt",
                           {"component"})
                     .with({c});
  cancelled_ =
      &r.counter("rebound_attempts_cancelled_total",
                 "Attempts still running when another attempt of the call won", {"component"})
           .with({c});
  budget_rejected_ =
      &r.counter("rebound_budget_rejections_total", "Retries a retry budget refused", {"component"})
           .with({c});
  deferred_ = &r.counter("rebound_deferred_total",
                         "Failures an inner loop handed to an enclosing loop", {"component"})
                   .with({c});
  auto& failures =
      r.counter("rebound_attempt_failures_total", "Failed attempts by how they were classified",
                {"component", "verdict"});
  failures_[static_cast<std::size_t>(verdict_kind::transient)] = &failures.with({c, "transient"});
  failures_[static_cast<std::size_t>(verdict_kind::permanent)] = &failures.with({c, "permanent"});
  failures_[static_cast<std::size_t>(verdict_kind::overloaded)] = &failures.with({c, "overloaded"});
  failures_[4] = &failures.with({c, "timed_out"});
  auto& calls = r.counter("rebound_calls_total", "Calls ended, by the reason they ended",
                          {"component", "reason"});
  for (std::size_t i = 0; i < stop_reason_count; ++i) {
    calls_[i] = &calls.with({c, std::string(to_string(static_cast<stop_reason>(i)))});
  }
  delay_ = &r.histogram("rebound_retry_delay_seconds", "The wait before each retry", {"component"})
                .with({c});
}

void call_metrics::on_event(const event& e) noexcept {
  switch (e.kind) {
    case event_kind::attempt_started:
      attempts_->add();
      break;
    case event_kind::hedged:
      attempts_->add();
      hedges_->add();
      break;
    case event_kind::attempt_failed: {
      const std::size_t k =
          e.verdict.timeout ? 4 : static_cast<std::size_t>(e.verdict.kind) % failures_.size();
      if (failures_[k] != nullptr) failures_[k]->add();
      break;
    }
    case event_kind::retry_scheduled:
      retries_->add();
      delay_->observe(std::chrono::duration<double>(e.delay).count());
      break;
    case event_kind::budget_rejected:
      budget_rejected_->add();
      break;
    case event_kind::deferred:
      deferred_->add();
      break;
    case event_kind::gave_up:
    case event_kind::succeeded: {
      const auto r = static_cast<std::size_t>(e.reason);
      if (r < stop_reason_count) calls_[r]->add();
      break;
    }
    case event_kind::hedge_won:
      hedges_won_->add();
      break;
    case event_kind::attempt_cancelled:
      cancelled_->add();
      break;
    case event_kind::server_delay_ignored:
      break;
  }
}

// ---- breakers -----------------------------------------------------------------

void track(registry& r, circuit_breaker& b, std::string_view name) {
  const std::string n(name);
  auto& states =
      r.gauge("rebound_breaker_state", "1 for the breaker's current state, 0 for the others",
              {"breaker", "state"});
  std::array<metrics::gauge*, 4> by_state{};
  for (std::size_t i = 0; i < by_state.size(); ++i) {
    by_state[i] = &states.with({n, std::string(to_string(static_cast<breaker_state>(i)))});
  }
  auto& moves = r.counter("rebound_breaker_transitions_total",
                          "Breaker state changes, by the state entered", {"breaker", "to"});
  std::array<metrics::counter*, 4> into{};
  for (std::size_t i = 0; i < into.size(); ++i) {
    into[i] = &moves.with({n, std::string(to_string(static_cast<breaker_state>(i)))});
  }
  const auto show = [by_state](breaker_state s) {
    for (std::size_t i = 0; i < by_state.size(); ++i) {
      by_state[i]->set(static_cast<std::size_t>(s) == i ? 1.0 : 0.0);
    }
  };
  show(b.state());
  b.on_state_change([show, into](breaker_state, breaker_state to) {
    into[static_cast<std::size_t>(to) % into.size()]->add();
    show(to);
  });
}

// ---- run supervisors ----------------------------------------------------------

registration track(registry& r, run_supervisor& s, std::string_view name) {
  const std::string n(name);
  auto* attempts =
      &r.counter("rebound_run_attempts_total", "Run attempts started", {"supervisor"}).with({n});
  auto* retries = &r.counter("rebound_run_retries_total",
                             "Runs retried as a whole after a failed attempt", {"supervisor"})
                       .with({n});
  auto& runs = r.counter("rebound_runs_total", "Runs ended, by result", {"supervisor", "result"});
  auto* ok = &runs.with({n, "succeeded"});
  auto* failed = &runs.with({n, "failed"});
  auto* cancelled = &runs.with({n, "cancelled"});
  auto& failures = r.counter("rebound_run_failures_total", "Failed runs, by what ended them",
                             {"supervisor", "failure"});
  std::array<metrics::counter*, 6> by_failure{};
  for (std::size_t i = 0; i < by_failure.size(); ++i) {
    by_failure[i] = &failures.with({n, std::string(to_string(static_cast<run_failure>(i)))});
  }
  const std::uint64_t id = s.subscribe([=](const run_event& e) {
    if (std::holds_alternative<run_started>(e)) {
      attempts->add();
    } else if (std::holds_alternative<run_retrying>(e)) {
      retries->add();
    } else if (std::holds_alternative<run_succeeded>(e)) {
      ok->add();
    } else if (const auto* f = std::get_if<run_failed>(&e)) {
      failed->add();
      by_failure[static_cast<std::size_t>(f->reason) % by_failure.size()]->add();
    } else if (std::holds_alternative<run_cancelled>(e)) {
      cancelled->add();
    }
  });
  return registration([&s, id] { s.unsubscribe(id); });
}

// ---- concurrency limits ----------------------------------------------------------

registration track(registry& r, concurrency_limiter& l, std::string_view name) {
  const std::string n(name);
  auto* limit =
      &r.gauge("rebound_concurrency_limit", "The concurrency limiter's current limit", {"limiter"})
           .with({n});
  auto* in_flight = &r.gauge("rebound_limiter_in_flight",
                             "Calls the limiter let through that have not ended", {"limiter"})
                         .with({n});
  auto* refused = &r.counter("rebound_limiter_rejections_total",
                             "Calls the concurrency limiter refused", {"limiter"})
                       .with({n});
  const std::uint64_t id = r.on_collect([&l, limit, in_flight, refused] {
    limit->set(l.limit());
    in_flight->set(l.in_flight());
    refused->mirror(l.rejected());
  });
  return registration([&r, id] { r.remove_collector(id); });
}

registration track(registry& r, bulkhead& b, std::string_view name) {
  const std::string n(name);
  auto* in_flight =
      &r.gauge("rebound_bulkhead_in_flight", "Bulkhead slots taken", {"bulkhead"}).with({n});
  auto* queued =
      &r.gauge("rebound_bulkhead_queued", "Callers waiting for a bulkhead slot", {"bulkhead"})
           .with({n});
  auto* refused =
      &r.counter("rebound_bulkhead_rejections_total",
                 "Calls the bulkhead refused (full queue or wait ran out)", {"bulkhead"})
           .with({n});
  const std::uint64_t id = r.on_collect([&b, in_flight, queued, refused] {
    in_flight->set(b.in_flight());
    queued->set(b.queued());
    refused->mirror(b.rejected());
  });
  return registration([&r, id] { r.remove_collector(id); });
}

registration track(registry& r, rate_limiter& l, std::string_view name) {
  auto* refused =
      &r.counter("rebound_rate_limiter_rejections_total",
                 "Calls the rate limiter refused (their turn was too far away)", {"rate_limiter"})
           .with({std::string(name)});
  const std::uint64_t id = r.on_collect([&l, refused] { refused->mirror(l.rejected()); });
  return registration([&r, id] { r.remove_collector(id); });
}

// ---- the endpoint -------------------------------------------------------------

server::server(const registry& r, options o)
    : registry_(r),
      address_(std::move(o.address)),
      request_timeout_(o.request_timeout),
      max_connections_(o.max_connections) {
  if (request_timeout_ < std::chrono::milliseconds(1) || request_timeout_ > std::chrono::hours(1)) {
    throw std::invalid_argument("rebound::metrics::server: request_timeout " +
                                format_duration(request_timeout_) +
                                " is out of range; allowed: 1ms..1h");
  }
  if (max_connections_ < 1 || max_connections_ > 10000) {
    throw std::invalid_argument("rebound::metrics::server: max_connections " +
                                std::to_string(max_connections_) +
                                " is out of range; allowed: 1..10000");
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(o.port));
  if (o.port < 0 || o.port > 65535 || ::inet_pton(AF_INET, address_.c_str(), &a.sin_addr) != 1) {
    throw std::invalid_argument("rebound::metrics::server: \"" + address_ + ":" +
                                std::to_string(o.port) +
                                "\" is not an IPv4 address and a port 0..65535");
  }
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) throw std::runtime_error("rebound::metrics::server: socket() failed");
  const int one = 1;
  ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 128) != 0) {
    const int err = errno;
    ::close(fd_);
    throw std::runtime_error("rebound::metrics::server: cannot listen on " + address_ + ":" +
                             std::to_string(o.port) + ": " + std::strerror(err));
  }
  socklen_t len = sizeof a;
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  thread_ = std::thread([this] { loop(); });
}

server::~server() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  ::close(fd_);
}

std::string server::url() const {
  return "http://" + address_ + ":" + std::to_string(port_) + "/metrics";
}

namespace detail {

std::string answer_request(const registry& r, const std::string& req) {
  std::string status = "200 OK";
  std::string body;
  std::string type = "text/plain; version=0.0.4; charset=utf-8";
  const bool get = req.starts_with("GET ");
  const auto path_end = req.find(' ', 4);
  const std::string path = get && path_end != std::string::npos ? req.substr(4, path_end - 4) : "";
  if (req.find("\r\n\r\n") == std::string::npos) {
    status = req.size() >= 16384 ? "431 Request Header Fields Too Large" : "400 Bad Request";
    type = "text/plain";
    body = "incomplete request\n";
  } else if (!get) {
    status = "405 Method Not Allowed";
    type = "text/plain";
    body = "GET /metrics\n";
  } else if (path != "/metrics" && !path.starts_with("/metrics?")) {
    status = "404 Not Found";
    type = "text/plain";
    body = "GET /metrics\n";
  } else {
    body = r.expose();
  }
  return "HTTP/1.1 " + status + "\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
         body;
}

}  // namespace detail

namespace {

struct connection {
  int fd = -1;
  time_point deadline;  // the whole exchange, from the accept
  std::string in;
  std::string out;  // non-empty: answering
  std::size_t sent = 0;
};

}  // namespace

void server::loop() {
  // One thread, no blocking call but poll(): every connection is served at
  // once, each bounded as a whole (a client trickling a byte a second is
  // dropped at its deadline, and delays no other scrape meanwhile).
  clock& c = system_clock();
  std::vector<connection> conns;
  std::vector<pollfd> fds;
  time_point accept_paused_until{};
  const auto drop = [&](std::size_t i) {
    ::close(conns[i].fd);
    conns.erase(conns.begin() + static_cast<std::ptrdiff_t>(i));
  };
  while (!stop_) {
    fds.clear();
    fds.push_back({fd_, static_cast<short>(c.now() >= accept_paused_until ? POLLIN : 0), 0});
    time_point next = c.now() + std::chrono::milliseconds(50);  // wakes to see stop_
    for (const auto& k : conns) {
      fds.push_back({k.fd, static_cast<short>(k.out.empty() ? POLLIN : POLLOUT), 0});
      next = std::min(next, k.deadline);
    }
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(next - c.now()).count();
    if (::poll(fds.data(), fds.size(), static_cast<int>(std::clamp<long long>(wait, 0, 50))) < 0) {
      continue;  // EINTR
    }
    // Serve the connections first (fds[1 + i] is conns[i]), newest last.
    const time_point now = c.now();
    for (std::size_t i = conns.size(); i-- > 0;) {
      connection& k = conns[i];
      const short ev = fds[1 + i].revents;
      bool done = false;
      if (k.out.empty() && (ev & (POLLIN | POLLHUP | POLLERR)) != 0) {
        char buf[2048];
        const ssize_t n = ::recv(k.fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
          k.in.append(buf, static_cast<std::size_t>(n));
          if (k.in.find("\r\n\r\n") != std::string::npos || k.in.size() >= 16384) {
            k.out = detail::answer_request(registry_, k.in);
          }
        } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
          // Closed before a whole request: answer what came, if anything.
          if (k.in.empty()) {
            done = true;
          } else {
            k.out = detail::answer_request(registry_, k.in);
          }
        }
      }
      if (!done && !k.out.empty()) {
        const ssize_t n =
            ::send(k.fd, k.out.data() + k.sent, k.out.size() - k.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          k.sent += static_cast<std::size_t>(n);
          done = k.sent == k.out.size();
        } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          done = true;
        }
      }
      if (done || now >= k.deadline) drop(i);
    }
    // Then take new connections; past the bound the oldest makes room.
    if ((fds[0].revents & POLLIN) != 0 && now >= accept_paused_until) {
      for (int taken = 0; taken < 64; ++taken) {
        const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
          // Out of descriptors: the pending connection stays pending, and
          // poll() would report it at once, forever. Wait a little instead.
          if (errno == EMFILE || errno == ENFILE) {
            accept_paused_until = now + std::chrono::milliseconds(50);
          }
          break;
        }
        if (static_cast<int>(conns.size()) >= max_connections_) drop(0);
        connection k;
        k.fd = fd;
        k.deadline = c.now() + request_timeout_;
        conns.push_back(std::move(k));
      }
    }
  }
  for (const auto& k : conns) ::close(k.fd);
}

namespace {

mode_t process_umask() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("Umask:")) {
      return static_cast<mode_t>(std::strtoul(line.c_str() + 6, nullptr, 8));
    }
  }
  return 022;  // no /proc: the usual default
}

}  // namespace

void write_file(const registry& r, const std::string& path) {
  const std::string text = r.expose();
  // A temporary file of its own in the same directory (two writers of one
  // path, in one process or two, never share one), then a rename: a reader
  // sees the old file or the new one, whole.
  std::string tmp = path + ".tmp.XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) {
    throw std::runtime_error(path + ": cannot write the metrics file (" + std::strerror(errno) +
                             ")");
  }
  // mkstemp makes it 0600: give it the mode a plain create would, 0666
  // less the umask (read from /proc, since umask(2) cannot read it without
  // changing it for every thread).
  (void)::fchmod(fd, 0666 & ~process_umask());
  bool ok = true;
  for (std::size_t done = 0; ok && done < text.size();) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<std::size_t>(n);
  }
  const int err = ok ? 0 : errno;
  if (::close(fd) != 0) ok = false;
  std::error_code ec;
  if (ok) std::filesystem::rename(tmp, path, ec);
  if (!ok || ec) {
    std::filesystem::remove(tmp, ec);
    throw std::runtime_error(path + ": cannot write the metrics file" +
                             (err != 0 ? std::string(" (") + std::strerror(err) + ")" : ""));
  }
}

}  // namespace rebound::metrics
