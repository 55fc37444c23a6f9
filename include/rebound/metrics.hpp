// rebound/metrics.hpp: counters, gauges and histograms, exposed in Prometheus's text format.
//
// A registry holds metric families; a family has fixed label names and one
// child per combination of label values. Taking a child (with()) locks the
// family once; the child is then updated lock-free (relaxed atomics), so a
// component looks its children up when it is set up and only adds on the
// hot path. Nothing is measured unless a registry is attached: no registry,
// no cost.
//
//   rebound::metrics::registry reg;
//   auto policy = rebound::retry_policy{}.observer(
//       std::make_shared<rebound::metrics::call_metrics>(reg, "payments"));
//   ...
//   std::string text = reg.expose();   // Prometheus text exposition format 0.0.4
//   rebound::metrics::server s(reg, {.port = 9464});   // GET /metrics on 127.0.0.1
//
// Names follow Prometheus's conventions (base units, `_total` counters) and
// map one to one onto OpenTelemetry and gRFC A96 names: docs/observability.md.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "rebound/breaker.hpp"
#include "rebound/events.hpp"
#include "rebound/limits.hpp"
#include "rebound/run_supervisor.hpp"

namespace rebound::metrics {

/// A monotonic count.
class counter {
 public:
  void add(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  /// Mirrors a count kept elsewhere (a component's own monotonic counter),
  /// read when the registry is collected.
  void mirror(std::uint64_t total) noexcept { value_.store(total, std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t value() const noexcept {
    return value_.load(std::memory_order_relaxed);
  }

 private:
  std::atomic<std::uint64_t> value_{0};
};

/// A value that goes up and down.
class gauge {
 public:
  void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
  void add(double v) noexcept { value_.fetch_add(v, std::memory_order_relaxed); }
  [[nodiscard]] double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

/// Observations counted into fixed buckets (upper bounds, ascending).
class histogram {
 public:
  explicit histogram(std::span<const double> bounds);
  void observe(double v) noexcept;
  [[nodiscard]] std::span<const double> bounds() const noexcept { return bounds_; }
  /// Observations <= bounds()[i] (cumulative, as exposed); the last is all.
  [[nodiscard]] std::vector<std::uint64_t> cumulative() const;
  [[nodiscard]] double sum() const noexcept { return sum_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t count() const noexcept {
    return count_.load(std::memory_order_relaxed);
  }

 private:
  std::span<const double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // bounds_.size() + 1 (the +Inf one)
  std::atomic<double> sum_{0};
  std::atomic<std::uint64_t> count_{0};
};

enum class kind : std::uint8_t { counter, gauge, histogram };

/// One metric name: its help, its label names and its children.
template <class T>
class family {
 public:
  /// The child for these label values, one per label name (made on first use).
  /// Throws std::invalid_argument when the count does not match.
  T& with(std::initializer_list<std::string_view> values);
  T& with(const std::vector<std::string>& values);
  [[nodiscard]] const std::string& name() const noexcept { return name_; }

 private:
  friend class registry;
  family(std::string name, std::string help, std::vector<std::string> labels,
         std::vector<double> bounds = {});
  T& child(std::vector<std::string> values);

  std::string name_;
  std::string help_;
  std::vector<std::string> labels_;
  std::vector<double> bounds_;  // histograms
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> children_;
};

/// Default buckets for delays, in seconds: 1 ms to 60 s.
[[nodiscard]] std::span<const double> delay_buckets() noexcept;

/// The metric families of a process (or of a part of it).
class registry {
 public:
  registry() = default;
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  /// The family of this name, made on first use. A second call with the same
  /// name, kind and labels returns the same family; anything else throws
  /// std::invalid_argument (so does a name or label Prometheus does not allow).
  family<metrics::counter>& counter(std::string_view name, std::string_view help,
                                    std::vector<std::string> labels = {});
  family<metrics::gauge>& gauge(std::string_view name, std::string_view help,
                                std::vector<std::string> labels = {});
  family<metrics::histogram>& histogram(std::string_view name, std::string_view help,
                                        std::vector<std::string> labels,
                                        std::span<const double> bounds = delay_buckets());

  /// Runs before each expose(): components copy their own state (a breaker's
  /// state, a router's counts) into their children here. Returns an id for
  /// remove_collector.
  std::uint64_t on_collect(std::function<void()> fn);
  void remove_collector(std::uint64_t id);

  /// Everything, in the Prometheus text exposition format 0.0.4: HELP and
  /// TYPE lines, label values escaped, histograms as _bucket/_sum/_count.
  /// Families in name order, children in label order.
  [[nodiscard]] std::string expose() const;

 private:
  struct entry {
    metrics::kind kind;
    std::vector<std::string> labels;
    std::shared_ptr<void> family;
  };
  template <class T>
  family<T>& get(metrics::kind k, std::string_view name, std::string_view help,
                 std::vector<std::string> labels, std::vector<double> bounds);

  mutable std::mutex mu_;
  std::map<std::string, entry, std::less<>> families_;
  mutable std::mutex collect_mu_;
  std::vector<std::pair<std::uint64_t, std::function<void()>>> collectors_;
  std::uint64_t next_collector_ = 1;
};

/// The call engine's events as metrics, for one component (the label
/// `component`): attempts, retries, hedges started and won, attempts
/// cancelled because another won, attempt failures by verdict,
/// calls by how they ended, budget refusals, deferrals to an outer loop and
/// a histogram of retry delays. Attach it as a policy's observer. Its
/// children are looked up once, here: an event is one relaxed atomic add.
class call_metrics final : public observer {
 public:
  call_metrics(registry& r, std::string_view component);
  void on_event(const event& e) noexcept override;
  /// Counts need no timestamps: the engine skips its clock reads for them.
  [[nodiscard]] bool needs_elapsed() const noexcept override { return false; }

 private:
  metrics::counter* attempts_;
  metrics::counter* retries_;
  metrics::counter* hedges_;
  metrics::counter* hedges_won_;
  metrics::counter* cancelled_;
  metrics::counter* budget_rejected_;
  metrics::counter* deferred_;
  std::array<metrics::counter*, 5> failures_{};  // by verdict_kind
  std::array<metrics::counter*, 16> calls_{};    // by stop_reason
  metrics::histogram* delay_;
};

/// Undoes a track() when destroyed: removes its collector or subscription.
/// Keep it no longer than the tracked object lives.
class registration {
 public:
  registration() = default;
  explicit registration(std::function<void()> undo) : undo_(std::move(undo)) {}
  ~registration() {
    if (undo_) undo_();
  }
  registration(registration&& o) noexcept : undo_(std::exchange(o.undo_, nullptr)) {}
  registration& operator=(registration&& o) noexcept {
    if (this != &o) {
      if (undo_) undo_();
      undo_ = std::exchange(o.undo_, nullptr);
    }
    return *this;
  }
  registration(const registration&) = delete;
  registration& operator=(const registration&) = delete;

 private:
  std::function<void()> undo_;
};

/// A run supervisor's runs (label `supervisor`): attempts started
/// (`rebound_run_attempts_total`), retries (`rebound_run_retries_total`),
/// runs ended by result (`rebound_runs_total{result}`: succeeded, failed,
/// cancelled) and failures by kind (`rebound_run_failures_total{failure}`).
[[nodiscard]] registration track(registry& r, run_supervisor& s, std::string_view name);

/// A circuit breaker's state (`rebound_breaker_state{breaker, state}`: 1 for
/// the current state, 0 for the others) and its transitions
/// (`rebound_breaker_transitions_total{breaker, to}`). Installs the
/// breaker's state listener (one per breaker: it replaces another).
void track(registry& r, circuit_breaker& b, std::string_view name);

/// A concurrency limiter (label `limiter`): its current limit
/// (`rebound_concurrency_limit`, gauge), calls in flight
/// (`rebound_limiter_in_flight`) and refusals
/// (`rebound_limiter_rejections_total`), copied at each exposition.
[[nodiscard]] registration track(registry& r, concurrency_limiter& l, std::string_view name);
/// A bulkhead (label `bulkhead`): `rebound_bulkhead_in_flight`,
/// `rebound_bulkhead_queued`, `rebound_bulkhead_rejections_total`.
[[nodiscard]] registration track(registry& r, bulkhead& b, std::string_view name);
/// A rate limiter (label `rate_limiter`): `rebound_rate_limiter_rejections_total`.
[[nodiscard]] registration track(registry& r, rate_limiter& l, std::string_view name);

/// An HTTP endpoint for a registry: GET /metrics answers expose(). Listens
/// on 127.0.0.1 unless told otherwise (the exposition tells anyone who can
/// connect what the process calls and how it fails). One thread serves
/// every connection at once without blocking on any (poll): a client that
/// trickles or sends nothing delays no other scrape. Each connection has
/// request_timeout from its accept to send its request and read the whole
/// answer; past max_connections the oldest is dropped to make room.
/// Stopped and joined by the destructor.
class server {
 public:
  struct options {
    std::string address = "127.0.0.1";
    int port = 0;  ///< 0: a free port (see port())
    /// The whole exchange, request and answer, from the accept (1 ms..1 h).
    duration request_timeout = std::chrono::seconds(2);
    /// Connections open at once (1..10000).
    int max_connections = 64;
  };
  explicit server(const registry& r) : server(r, options{}) {}
  server(const registry& r, options o);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;
  [[nodiscard]] int port() const noexcept { return port_; }
  [[nodiscard]] std::string url() const;  ///< http://address:port/metrics

 private:
  void loop();
  const registry& registry_;
  std::string address_;
  duration request_timeout_;
  int max_connections_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

/// Writes expose() to `path` atomically (a temporary file, then a rename):
/// for batch jobs and node_exporter's textfile collector. Throws
/// std::runtime_error naming the file.
void write_file(const registry& r, const std::string& path);

}  // namespace rebound::metrics
