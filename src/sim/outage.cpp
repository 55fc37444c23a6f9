// Open-loop clients against a server with a bounded queue, through a capacity
// drop or a full outage: amplification, goodput and metastability per policy.
#include <algorithm>
#include <cmath>
#include <deque>
#include <memory>

#include "rebound/call.hpp"
#include "rebound/sim/engine.hpp"
#include "rebound/sim/scenarios.hpp"
#include "seed.hpp"

namespace rebound::sim {

namespace {

using namespace std::chrono_literals;
using detail::mix;
using detail::percentile;

class outage_run {
 public:
  outage_run(const outage_options& o, const strategy& s)
      : o_(o), eng_(mix(o.seed, 0x07a9e)), policy_(s.make(eng_)) {
    if (s.breaker) breaker_ = std::make_unique<circuit_breaker>(*s.breaker, eng_);
    if (s.limiter) limiter_ = std::make_unique<concurrency_limiter>(*s.limiter, eng_);
    const auto buckets = static_cast<std::size_t>((o.length + o.bucket - duration(1)) / o.bucket);
    series_.strategy = s.name;
    for (auto* v : {&series_.offered, &series_.attempts, &series_.goodput, &series_.failed,
                    &series_.latency_p50_ms, &series_.latency_p99_ms, &series_.limit}) {
      v->assign(buckets, 0.0);
    }
    latencies_.resize(buckets);
  }

  outage_series run() {
    eng_.after<&outage_run::arrival>(next_gap(), this, 0);
    if (o_.trigger_capacity <= 0.0) eng_.after<&outage_run::go_down>(o_.trigger_at, this, 0);
    eng_.run_until(eng_.start() + o_.length);
    // Counted from the requests themselves, so conservation is a real check:
    // started == succeeded + failures + in_flight.
    series_.in_flight = static_cast<std::uint64_t>(std::count_if(
        requests_.begin(), requests_.end(), [](const request& r) { return !r.finished; }));
    for (std::size_t b = 0; b < latencies_.size(); ++b) {
      series_.latency_p50_ms[b] = percentile(latencies_[b], 0.5);
      series_.latency_p99_ms[b] = percentile(latencies_[b], 0.99);
    }
    series_.latency_p99_ms_during = percentile(during_ms_, 0.99);
    summarise();
    events_ = eng_.events_run();
    return series_;
  }
  std::uint64_t events_ = 0;

 private:
  // A logical request and its current attempt.
  struct request {
    retry_call call;
    time_point started;
    int attempt = 0;          // the attempt in flight (1-based)
    bool waiting = false;     // an attempt is in flight and unanswered
    bool finished = false;    // the logical request ended (success or failure)
    breaker_permit permit{};  // the breaker's permit for the attempt in flight
    limiter_permit slot{};    // the limiter's permit for the attempt in flight
  };

  static std::uint64_t key(std::uint64_t id, int attempt) {
    return (id << 20) | static_cast<std::uint64_t>(attempt);
  }

  [[nodiscard]] std::size_t bucket_of(time_point t) const {
    const auto b = static_cast<std::size_t>((t - eng_.start()) / o_.bucket);
    return std::min(b, series_.offered.size() - 1);
  }
  [[nodiscard]] bool triggered() const {
    const auto since = eng_.now() - eng_.start();
    return since >= o_.trigger_at && since < o_.trigger_at + o_.trigger_for;
  }
  [[nodiscard]] duration service_time() const {
    const double c = o_.capacity * (triggered() ? o_.trigger_capacity : 1.0);
    return duration(static_cast<duration::rep>(1e9 / std::max(c, 1e-9)));
  }
  duration next_gap() {
    return eng_.exponential(duration(static_cast<duration::rep>(1e9 / o_.rate)));
  }

  void arrival(std::uint64_t) {
    const std::uint64_t id = requests_.size();
    requests_.push_back(request{retry_call(policy_, {.seed = mix(o_.seed, id)}, {.nested = 0}),
                                eng_.now(), 0, false, false, breaker_permit{}, limiter_permit{}});
    if (limiter_) series_.limit[bucket_of(eng_.now())] = limiter_->limit();
    ++series_.started;
    series_.offered[bucket_of(eng_.now())] += 1;
    if (!requests_.back().call.start().attempt()) {  // adaptive throttling refused it locally
      finish(id, false);
    } else {
      start_attempt(id);
    }
    eng_.after<&outage_run::arrival>(next_gap(), this, 0);
  }

  void start_attempt(std::uint64_t id) {
    request& r = requests_[id];
    ++r.attempt;
    if (breaker_) {
      r.permit = breaker_->try_acquire();
      if (!r.permit) {
        // An open circuit: overloaded for the engine (as pipeline's
        // circuit_open_error is), so the call ends; nothing reaches the server.
        (void)r.call.failed(verdict::overloaded());
        finish(id, false);
        return;
      }
    }
    if (limiter_) {
      r.slot = limiter_->try_acquire();
      if (!r.slot) {
        // Shed locally (as pipeline's limit_exceeded_error): overloaded, so
        // the call ends; the breaker's permit goes back unused.
        if (breaker_) breaker_->release(r.permit);
        ++series_.shed;
        (void)r.call.failed(verdict::overloaded());
        finish(id, false);
        return;
      }
    }
    r.waiting = true;
    series_.attempts[bucket_of(eng_.now())] += 1;
    const std::uint64_t k = key(id, r.attempt);
    eng_.after<&outage_run::client_timeout>(o_.client_timeout, this, k);
    // The server: a full outage refuses at once; a full queue rejects at once.
    const bool refused = triggered() && o_.trigger_capacity <= 0.0;
    if (refused || static_cast<int>(queue_.size()) >= o_.queue) {
      eng_.after<&outage_run::response_failed>(duration::zero(), this, k);
      return;
    }
    queue_.push_back(k);
    if (!busy_) serve_next();
  }

  void serve_next() {
    if (queue_.empty()) {
      busy_ = false;
      return;
    }
    busy_ = true;
    const std::uint64_t k = queue_.front();
    queue_.pop_front();
    in_service_ = k;
    eng_.after<&outage_run::served>(service_time(), this, k);
  }

  // A full outage: the server goes down, and every connection it held (the
  // request in service and the queued ones) is reset.
  void go_down(std::uint64_t) {
    if (busy_) eng_.after<&outage_run::response_failed>(duration::zero(), this, in_service_);
    for (const std::uint64_t k : queue_) {
      eng_.after<&outage_run::response_failed>(duration::zero(), this, k);
    }
    queue_.clear();
    busy_ = false;
    in_service_ = no_request;
  }

  void served(std::uint64_t k) {
    if (k != in_service_) return;  // reset by an outage while in service
    in_service_ = no_request;
    const std::uint64_t id = k >> 20;
    const int attempt = static_cast<int>(k & 0xfffff);
    request& r = requests_[id];
    if (r.waiting && r.attempt == attempt) {
      r.waiting = false;
      if (breaker_) breaker_->record(r.permit, true);
      if (limiter_) limiter_->on_success(r.slot);
      r.call.succeeded();  // budget refunds, throttle accepts
      finish(id, true);
    } else {
      ++series_.wasted;  // the client gave up on it already
    }
    serve_next();
  }

  void response_failed(std::uint64_t k) { fail_attempt(k, verdict::transient()); }
  void client_timeout(std::uint64_t k) { fail_attempt(k, verdict::timed_out()); }

  void fail_attempt(std::uint64_t k, const verdict& v) {
    const std::uint64_t id = k >> 20;
    const int attempt = static_cast<int>(k & 0xfffff);
    request& r = requests_[id];
    if (!r.waiting || r.attempt != attempt) return;  // already answered
    r.waiting = false;
    if (breaker_) breaker_->record(r.permit, false);
    if (limiter_) limiter_->on_dropped(r.slot);  // a timeout or a refusal: overload
    const call_step step = r.call.failed(v);
    if (!step.wait()) {
      finish(id, false);
      return;
    }
    eng_.at<&outage_run::retry_now>(step.until, this, id);
  }
  void retry_now(std::uint64_t id) {
    if (!requests_[id].call.resume(true).attempt()) {  // adaptive throttling refused it
      finish(id, false);
      return;
    }
    start_attempt(id);
  }

  void finish(std::uint64_t id, bool ok) {
    requests_[id].finished = true;
    const std::size_t b = bucket_of(eng_.now());
    if (ok) {
      ++series_.succeeded;
      series_.goodput[b] += 1;
      const double ms =
          std::chrono::duration<double, std::milli>(eng_.now() - requests_[id].started).count();
      latencies_[b].push_back(ms);
      if (triggered()) during_ms_.push_back(ms);
    } else {
      ++series_.failures;
      series_.failed[b] += 1;
    }
  }

  void summarise() {
    auto ratio = [&](duration from, duration to, const std::vector<double>& num,
                     const std::vector<double>& den) {
      double n = 0, d = 0;
      for (std::size_t b = 0; b < num.size(); ++b) {
        const auto t = o_.bucket * static_cast<duration::rep>(b);
        if (t >= from && t < to) {
          n += num[b];
          d += den[b];
        }
      }
      return d > 0 ? n / d : 0.0;
    };
    const duration end_of_trigger = o_.trigger_at + o_.trigger_for;
    series_.amplification_before =
        ratio(duration::zero(), o_.trigger_at, series_.attempts, series_.offered);
    series_.amplification_during =
        ratio(o_.trigger_at, end_of_trigger, series_.attempts, series_.offered);
    series_.amplification_after =
        ratio(end_of_trigger, o_.length, series_.attempts, series_.offered);
    // The last quarter of the run, but not before the trigger's end.
    const duration tail_from = std::max(end_of_trigger, o_.length - o_.length / 4);
    series_.goodput_ratio_end = ratio(tail_from, o_.length, series_.goodput, series_.offered);
    series_.recovered = series_.goodput_ratio_end >= 0.9;
    series_.goodput_ratio_during =
        ratio(o_.trigger_at, end_of_trigger, series_.goodput, series_.offered);
    for (std::size_t b = 0; b < series_.goodput.size(); ++b) {
      const auto t = o_.bucket * static_cast<duration::rep>(b);
      if (t < end_of_trigger || series_.offered[b] == 0) continue;
      if (series_.goodput[b] >= 0.9 * series_.offered[b]) {
        series_.recovery_s = std::chrono::duration<double>(t - end_of_trigger).count();
        break;
      }
    }
  }

  const outage_options& o_;
  engine eng_;
  retry_policy policy_;
  std::unique_ptr<circuit_breaker> breaker_;
  std::unique_ptr<concurrency_limiter> limiter_;
  std::vector<double> during_ms_;
  std::deque<request> requests_;
  std::deque<std::uint64_t> queue_;
  bool busy_ = false;
  static constexpr std::uint64_t no_request = ~std::uint64_t{0};
  std::uint64_t in_service_ = no_request;
  outage_series series_;
  std::vector<std::vector<double>> latencies_;
};

}  // namespace

std::vector<strategy> default_outage_strategies() {
  const auto retries = [](clock& c) {
    return retry_policy{}
        .stop(stop::after_attempts(4))
        .backoff(backoff::exponential(100ms, 2.0, 1s))
        .jitter(jitter::full())
        .clock(c);
  };
  return {
      {"no retry", [](clock& c) { return retry_policy{}.stop(stop::after_attempts(1)).clock(c); },
       std::nullopt},
      {"3 retries", retries, std::nullopt},
      {"3 retries + token bucket",
       [=](clock& c) { return retries(c).budget(std::make_shared<token_bucket_budget>()); },
       std::nullopt},
      {"3 retries + ratio budget",
       [=](clock& c) {
         return retries(c).budget(std::make_shared<ratio_budget>(ratio_budget::options{}, c));
       },
       std::nullopt},
      {"3 retries + gRPC throttle",
       [=](clock& c) { return retries(c).budget(std::make_shared<throttle_budget>()); },
       std::nullopt},
      {"3 retries + breaker", retries,
       breaker_options{.failure_threshold = 20, .open_duration = 2s, .half_open_probes = 5}},
      {"3 retries + adaptive throttling",
       [=](clock& c) {
         return retries(c).throttle(
             std::make_shared<adaptive_throttle>(adaptive_throttle::options{}, c));
       },
       std::nullopt},
  };
}

std::vector<strategy> default_overload_strategies() {
  const auto retries = [](clock& c) {
    return retry_policy{}
        .stop(stop::after_attempts(4))
        .backoff(backoff::exponential(100ms, 2.0, 1s))
        .jitter(jitter::full())
        .budget(std::make_shared<ratio_budget>(ratio_budget::options{}, c))
        .clock(c);
  };
  return {
      {"3 retries + ratio budget", retries, std::nullopt},
      {"+ fixed limit 100", retries, std::nullopt, limiter_options::fixed(100)},
      {"+ AIMD", retries, std::nullopt, limiter_options::aimd()},
      {"+ Gradient2", retries, std::nullopt, limiter_options::gradient2()},
      {"+ Vegas", retries, std::nullopt, limiter_options::vegas()},
  };
}

outage_result run_outage(const outage_options& o) {
  outage_result r;
  const auto strategies = o.strategies.empty() ? default_outage_strategies() : o.strategies;
  for (const auto& s : strategies) {
    outage_run run(o, s);
    r.series.push_back(run.run());
    r.events += run.events_;
  }
  return r;
}

}  // namespace rebound::sim
