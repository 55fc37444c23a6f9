// Closed-loop callers against a FIFO server (rebound/sim/scenarios.hpp,
// run_fifo_overload): what each concurrency limiter does when latency is
// the only signal of overload.
#include <algorithm>
#include <deque>
#include <memory>
#include <optional>
#include <stdexcept>

#include "rebound/call.hpp"
#include "rebound/sim/engine.hpp"
#include "rebound/sim/scenarios.hpp"
#include "seed.hpp"

namespace rebound::sim {

namespace {

using namespace std::chrono_literals;
using detail::mix;
using detail::percentile;

class fifo_run {
 public:
  fifo_run(const fifo_options& o, const strategy& s)
      : o_(o), eng_(mix(o.seed, 0xf1f0)), policy_(s.make(eng_)) {
    if (s.limiter) limiter_ = std::make_unique<concurrency_limiter>(*s.limiter, eng_);
    buckets_ = static_cast<std::size_t>((o.length + o.bucket - duration(1)) / o.bucket);
    series_.strategy = s.name;
    series_.limit.assign(buckets_, 0.0);
    per_bucket_.resize(buckets_);
    callers_.resize(static_cast<std::size_t>(o.callers));
  }

  fifo_series run() {
    // Callers start spread over one service time, each on its own stream.
    random_stream start(mix(o_.seed, 0x57a7));
    for (std::size_t i = 0; i < callers_.size(); ++i) {
      const auto offset = static_cast<duration::rep>(start.uniform() *
                                                     static_cast<double>(o_.service_time.count()));
      eng_.after<&fifo_run::send>(duration(offset), this, i);
    }
    eng_.after<&fifo_run::tick>(o_.bucket - duration(1), this, 0);
    eng_.run_until(eng_.start() + o_.length);
    const double seconds = std::chrono::duration<double>(o_.length).count();
    series_.served_per_s = static_cast<double>(series_.served) / seconds;
    series_.latency_p50_ms = percentile(all_ms_, 0.5);
    series_.latency_p99_ms = percentile(all_ms_, 0.99);
    series_.latency_p99_ms_per_bucket.resize(buckets_);
    for (std::size_t b = 0; b < buckets_; ++b) {
      series_.latency_p99_ms_per_bucket[b] = percentile(per_bucket_[b], 0.99);
    }
    if (limiter_) series_.limit_end = limiter_->limit();
    events_ = eng_.events_run();
    return std::move(series_);
  }
  std::uint64_t events_ = 0;

 private:
  struct caller {
    std::optional<retry_call> call;
    limiter_permit slot{};
    time_point sent{};
  };

  [[nodiscard]] std::size_t bucket_of(time_point t) const {
    return std::min(static_cast<std::size_t>((t - eng_.start()) / o_.bucket), buckets_ - 1);
  }

  // The end of each bucket: the limit then, and its range after the first.
  void tick(std::uint64_t b) {
    if (b >= buckets_) return;
    if (limiter_) {
      const int l = limiter_->limit();
      series_.limit[b] = l;
      if (b >= 1) {
        series_.limit_min = series_.limit_min == 0 ? l : std::min(series_.limit_min, l);
        series_.limit_max = std::max(series_.limit_max, l);
      }
    }
    eng_.after<&fifo_run::tick>(o_.bucket, this, b + 1);
  }

  void send(std::uint64_t i) {
    caller& c = callers_[i];
    // One call of the engine per request; nothing here fails, so its only
    // decisions are the attempt and, when shed, the end (overloaded).
    c.call.emplace(policy_, call_options{.seed = mix(o_.seed, ++sent_)}, call_driver{.nested = 0});
    if (!c.call->start().attempt()) {  // an adaptive throttle refused it
      eng_.after<&fifo_run::send>(o_.shed_pause, this, i);
      return;
    }
    if (limiter_) {
      c.slot = limiter_->try_acquire();
      if (!c.slot) {
        ++series_.shed;
        (void)c.call->failed(verdict::overloaded());
        eng_.after<&fifo_run::send>(o_.shed_pause, this, i);
        return;
      }
    }
    c.sent = eng_.now();
    queue_.push_back(i);
    if (busy_ < o_.workers) serve_next();
  }

  void serve_next() {
    if (queue_.empty()) return;
    const std::uint64_t i = queue_.front();
    queue_.pop_front();
    ++busy_;
    eng_.after<&fifo_run::served>(o_.service_time, this, i);
  }

  void served(std::uint64_t i) {
    --busy_;
    caller& c = callers_[i];
    if (limiter_) limiter_->on_success(c.slot);
    c.call->succeeded();
    ++series_.served;
    const double ms = std::chrono::duration<double, std::milli>(eng_.now() - c.sent).count();
    all_ms_.push_back(ms);
    per_bucket_[bucket_of(eng_.now())].push_back(ms);
    serve_next();
    send(i);  // the caller's next request, at once
  }

  const fifo_options& o_;
  engine eng_;
  retry_policy policy_;
  std::unique_ptr<concurrency_limiter> limiter_;
  std::size_t buckets_ = 0;
  fifo_series series_;
  std::vector<caller> callers_;
  std::deque<std::uint64_t> queue_;
  int busy_ = 0;
  std::uint64_t sent_ = 0;
  std::vector<double> all_ms_;
  std::vector<std::vector<double>> per_bucket_;
};

}  // namespace

std::vector<strategy> default_fifo_strategies() {
  const auto once = [](clock& c) { return retry_policy{}.stop(stop::after_attempts(1)).clock(c); };
  limiter_options capped = limiter_options::gradient2();
  capped.initial_limit = 8;
  capped.min_limit = 4;
  capped.max_limit = 16;
  return {
      {"no limiter", once, std::nullopt},
      {"fixed limit 8", once, std::nullopt, limiter_options::fixed(8)},
      {"AIMD", once, std::nullopt, limiter_options::aimd()},
      {"Gradient2", once, std::nullopt, limiter_options::gradient2()},
      {"Gradient2, 4..16", once, std::nullopt, capped},
      {"Vegas", once, std::nullopt, limiter_options::vegas()},
  };
}

fifo_result run_fifo_overload(const fifo_options& o) {
  // What the CLI checks by flag; a library caller gets the same bounds.
  if (o.callers < 1 || o.workers < 1 || o.service_time <= duration::zero() ||
      o.shed_pause <= duration::zero() || o.length < o.bucket || o.bucket <= duration::zero()) {
    throw std::invalid_argument(
        "rebound::sim::run_fifo_overload: callers and workers must be 1 or more, service_time, "
        "shed_pause and bucket above 0, and length at least one bucket");
  }
  fifo_result r;
  const auto strategies = o.strategies.empty() ? default_fifo_strategies() : o.strategies;
  for (const auto& s : strategies) {
    fifo_run run(o, s);
    r.series.push_back(run.run());
    r.events += run.events_;
  }
  return r;
}

}  // namespace rebound::sim
