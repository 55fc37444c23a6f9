// Bulkhead, adaptive concurrency limiter, rate limiter and admission control.
// The algorithms follow Netflix's concurrency-limits (AIMDLimit,
// Gradient2Limit, VegasLimit, AbstractPartitionedLimiter) and Envoy's
// admission control filter; docs/overload.md says where we differ.
#include "rebound/limits.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <utility>

#include "rebound/detail/clock_wait.hpp"
#include "rebound/detail/coarse_clock.hpp"
#include "rebound/detail/saturate.hpp"
#include "rebound/duration.hpp"

namespace rebound {

namespace {

std::string fmt_ms(duration d) { return format_duration(d); }

}  // namespace

// ---- rejections ---------------------------------------------------------------

bulkhead_full_error::bulkhead_full_error(int max_concurrent)
    : rejected_error("rejected locally: the bulkhead's " + std::to_string(max_concurrent) +
                     " slots and its queue are full") {}

limit_exceeded_error::limit_exceeded_error(int limit)
    : rejected_error("rejected locally: the concurrency limit (" + std::to_string(limit) +
                     ") is reached"),
      limit_(limit) {}

rate_limited_error::rate_limited_error(duration wait)
    : rejected_error("rejected locally: the rate limit's next turn is " + fmt_ms(wait) + " away"),
      wait_(wait) {}

admission_rejected_error::admission_rejected_error(double probability)
    : rejected_error("rejected locally by admission control (rejection probability " +
                     std::to_string(probability) + ")"),
      probability_(probability) {}

// ---- bulkhead -----------------------------------------------------------------

bulkhead::bulkhead(const bulkhead_options& o, clock& c) : options_(o), clock_(c) { validate(o); }

bulkhead::slot bulkhead::acquire(std::stop_token stop, time_point until) {
  if (take()) return slot(this);
  if (options_.max_queue == 0 || options_.max_wait <= duration::zero() || stop.stop_requested()) {
    count_rejection();
    return {};
  }
  // Made before the lock: a stop requested meanwhile runs the callback on
  // this thread, which takes the lock.
  std::optional<std::stop_callback<std::function<void()>>> on_stop;
  if (stop.stop_possible()) {
    on_stop.emplace(stop, std::function<void()>([this] {
                      { const std::lock_guard g(mu_); }
                      cv_.notify_all();
                    }));
  }
  std::unique_lock lock(mu_);
  if (waiting_.load(std::memory_order_relaxed) >= options_.max_queue) {
    lock.unlock();
    count_rejection();
    return {};
  }
  waiting_.fetch_add(1);  // seq_cst: release() reads it after giving a slot back
  bool got = false;
  try {
    const time_point deadline =
        std::min(until, detail::saturating_add(clock_.now(), options_.max_wait));
    detail::wait_until(clock_, cv_, lock, deadline, [&] {
      if (stop.stop_requested()) return true;
      got = take();
      return got;
    });
  } catch (...) {  // the clock could not arm its wake-up: as a wait that ran out
  }
  waiting_.fetch_sub(1);
  lock.unlock();
  on_stop.reset();
  if (!got) count_rejection();
  return slot(got ? this : nullptr);
}

void bulkhead::release() noexcept {
  in_flight_.fetch_sub(1);  // seq_cst, against a waiter's count of itself
  if (waiting_.load() == 0) return;
  std::vector<std::function<void()>> wakes;
  {
    const std::lock_guard g(mu_);
    cv_.notify_all();
    for (const auto& [h, w] : async_waiters_) wakes.push_back(w);
  }
  for (auto& w : wakes) w();
}

bool bulkhead::enqueue(std::uint64_t& handle, std::function<void()> wake) {
  const std::lock_guard g(mu_);
  if (waiting_.load(std::memory_order_relaxed) >= options_.max_queue) return false;
  waiting_.fetch_add(1);
  handle = next_handle_++;
  async_waiters_.emplace_back(handle, std::move(wake));
  return true;
}

void bulkhead::dequeue(std::uint64_t handle) noexcept {
  const std::lock_guard g(mu_);
  const auto it = std::find_if(async_waiters_.begin(), async_waiters_.end(),
                               [handle](const auto& w) { return w.first == handle; });
  if (it == async_waiters_.end()) return;
  async_waiters_.erase(it);
  waiting_.fetch_sub(1);
}

// ---- concurrency limiter -------------------------------------------------------

std::string_view to_string(limit_algorithm a) noexcept {
  switch (a) {
    case limit_algorithm::fixed:
      return "fixed";
    case limit_algorithm::aimd:
      return "aimd";
    case limit_algorithm::gradient2:
      return "gradient2";
    case limit_algorithm::vegas:
      return "vegas";
  }
  return "unknown";
}

namespace {

limiter_options with_limits(limit_algorithm a, int initial, int min, int max) {
  limiter_options o;
  o.algorithm = a;
  o.initial_limit = initial;
  o.min_limit = min;
  o.max_limit = max;
  return o;
}

}  // namespace

limiter_options limiter_options::fixed(int limit) {
  return with_limits(limit_algorithm::fixed, limit, limit, limit);
}

limiter_options limiter_options::aimd() { return with_limits(limit_algorithm::aimd, 20, 20, 200); }

limiter_options limiter_options::gradient2() {
  return with_limits(limit_algorithm::gradient2, 20, 20, 200);
}

limiter_options limiter_options::vegas() {
  limiter_options o = with_limits(limit_algorithm::vegas, 20, 1, 1000);
  o.smoothing = 1.0;
  return o;
}

namespace {

/// Fills the zeros with the algorithm's defaults.
limiter_options resolved(limiter_options o) {
  const bool vegas = o.algorithm == limit_algorithm::vegas;
  if (o.initial_limit == 0) o.initial_limit = 20;
  if (o.min_limit == 0)
    o.min_limit = o.algorithm == limit_algorithm::fixed ? o.initial_limit : vegas ? 1 : 20;
  if (o.max_limit == 0) {
    o.max_limit = o.algorithm == limit_algorithm::fixed ? o.initial_limit : vegas ? 1000 : 200;
  }
  if (o.algorithm == limit_algorithm::fixed) {
    o.min_limit = o.initial_limit;
    o.max_limit = o.initial_limit;
  }
  // A start outside [min, max] is kept as the user wrote it (Netflix's
  // AbstractLimit starts at initialLimit; its updates clamp), never moved
  // silently: the first update brings it into the bounds.
  return o;
}

/// Netflix's Log10RootFunction: max(1, floor(log10(limit))).
double log10_root(double limit) {
  return std::max(1.0, std::floor(std::log10(std::max(limit, 1.0))));
}

}  // namespace

concurrency_limiter::concurrency_limiter(const limiter_options& o, clock& c)
    : options_(resolved(o)), clock_(c), limit_(0) {
  validate(options_);
  coarse_ = &c == &system_clock() && options_.algorithm == limit_algorithm::aimd;
  limit_.store(options_.initial_limit, std::memory_order_relaxed);
  estimate_ = options_.initial_limit;
  part_count_ = static_cast<int>(options_.partitions.size());
  if (part_count_ > 0) {
    parts_ = std::make_unique<part[]>(static_cast<std::size_t>(part_count_));
    for (int i = 0; i < part_count_; ++i) {
      parts_[static_cast<std::size_t>(i)].share =
          options_.partitions[static_cast<std::size_t>(i)].share;
    }
  }
}

time_point concurrency_limiter::read_clock() const noexcept {
  return coarse_ ? detail::coarse_steady_now() : clock_.now();
}

int concurrency_limiter::partition_limit(int partition) const noexcept {
  if (partition < 0 || partition >= part_count_) return limit();
  return std::max(1, static_cast<int>(std::ceil(
                         limit() * parts_[static_cast<std::size_t>(partition)].share - 1e-9)));
}

int concurrency_limiter::partition_index(std::string_view name) const noexcept {
  for (int i = 0; i < part_count_; ++i) {
    if (options_.partitions[static_cast<std::size_t>(i)].name == name) return i;
  }
  return -1;
}

limiter_permit concurrency_limiter::try_acquire(int partition) noexcept {
  if (partition >= part_count_) partition = -1;
  int n = 0;
  if (part_count_ > 0) {
    // Checked and counted in one step: counted apart, a call could pass on
    // a total another call had not yet added to (11 of 10 held at once).
    const std::lock_guard g(part_mu_);
    n = in_flight_.load(std::memory_order_relaxed) + 1;
    if (n > limit()) {
      // Over the total limit, a partition still under its share may go.
      if (partition < 0 ||
          parts_[static_cast<std::size_t>(partition)].in_flight.load(std::memory_order_relaxed) +
                  1 >
              partition_limit(partition)) {
        rejected_.fetch_add(1, std::memory_order_relaxed);
        return {};
      }
    }
    in_flight_.fetch_add(1, std::memory_order_relaxed);
    if (partition >= 0) {
      parts_[static_cast<std::size_t>(partition)].in_flight.fetch_add(1, std::memory_order_relaxed);
    }
  } else {
    n = in_flight_.fetch_add(1, std::memory_order_acquire) + 1;
    if (n > limit()) {
      in_flight_.fetch_sub(1, std::memory_order_relaxed);
      rejected_.fetch_add(1, std::memory_order_relaxed);
      return {};
    }
  }
  limiter_permit p{.allowed = true, .partition = partition, .in_flight = n};
  if (options_.algorithm != limit_algorithm::fixed) p.started = read_clock();
  return p;
}

void concurrency_limiter::finish(const limiter_permit& p, bool dropped, bool sample) noexcept {
  if (!p.allowed) return;
  if (part_count_ > 0) {
    const std::lock_guard g(part_mu_);
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    if (p.partition >= 0 && p.partition < part_count_) {
      parts_[static_cast<std::size_t>(p.partition)].in_flight.fetch_sub(1,
                                                                        std::memory_order_relaxed);
    }
  } else {
    in_flight_.fetch_sub(1, std::memory_order_release);
  }
  if (!sample || options_.algorithm == limit_algorithm::fixed) return;
  const duration rtt = read_clock() - p.started;
  int next = 0;
  switch (options_.algorithm) {
    case limit_algorithm::fixed:
      return;
    case limit_algorithm::aimd: {
      // AIMDLimit: a drop (or a sample past the timeout) multiplies the limit
      // by backoff_ratio; a success while at least half the limit is in use
      // adds one. Lock-free: one load, and a CAS only when the limit moves.
      int cur = limit_.load(std::memory_order_relaxed);
      for (;;) {
        int want = cur;
        if (dropped || rtt > options_.timeout) {
          want = static_cast<int>(cur * options_.backoff_ratio);
        } else if (p.in_flight * 2 >= cur) {
          want = cur + 1;
        }
        want = std::clamp(want, options_.min_limit, options_.max_limit);
        if (want == cur) return;
        if (limit_.compare_exchange_weak(cur, want, std::memory_order_relaxed)) {
          next = want;
          break;
        }
      }
      break;
    }
    case limit_algorithm::gradient2: {
      const std::lock_guard g(mu_);
      next = update_gradient2(rtt, p.in_flight);
      if (next == limit_.load(std::memory_order_relaxed)) return;
      limit_.store(next, std::memory_order_relaxed);
      break;
    }
    case limit_algorithm::vegas: {
      const std::lock_guard g(mu_);
      next = update_vegas(rtt, p.in_flight, dropped);
      if (next == limit_.load(std::memory_order_relaxed)) return;
      limit_.store(next, std::memory_order_relaxed);
      break;
    }
  }
  publish(next);
}

int concurrency_limiter::update_gradient2(duration rtt, int in_flight) {
  // Gradient2Limit: the long-term latency (an exponential average over
  // long_window samples, plain average for the first 10) against this
  // sample. Latency above the long-term level shrinks the limit (by at most
  // half), otherwise it grows by queue_size; both smoothed.
  const double short_rtt = std::max(1.0, static_cast<double>(rtt.count()));
  constexpr int warmup = 10;
  if (long_samples_ < warmup) {
    // A plain sum / count, as Netflix's ExpAvgMeasurement: a pull-down
    // (below) during the warm-up does not carry into the next sample.
    ++long_samples_;
    long_sum_ += short_rtt;
    long_rtt_ = long_sum_ / long_samples_;
  } else {
    const double f = 2.0 / (options_.long_window + 1);
    long_rtt_ = long_rtt_ * (1 - f) + short_rtt * f;
  }
  // This sample's gradient uses the average as added to (Netflix keeps it in
  // a local); after a long overload the stored average lags: pull it down.
  const double long_rtt = long_rtt_;
  if (long_rtt / short_rtt > 2) long_rtt_ *= 0.95;
  // Don't grow the limit while the caller does not use it.
  if (in_flight < estimate_ / 2) return static_cast<int>(estimate_);
  const double gradient = std::clamp(options_.rtt_tolerance * long_rtt / short_rtt, 0.5, 1.0);
  double want = estimate_ * gradient + options_.queue_size;
  want = estimate_ * (1 - options_.smoothing) + want * options_.smoothing;
  estimate_ = std::clamp(want, static_cast<double>(options_.min_limit),
                         static_cast<double>(options_.max_limit));
  return static_cast<int>(estimate_);
}

int concurrency_limiter::update_vegas(duration rtt, int in_flight, bool dropped) {
  // VegasLimit: the queue is estimated as limit * (1 - rtt_noload / rtt).
  // Below alpha = 3·log10(limit) the limit grows, above beta = 6·log10(limit)
  // it shrinks. The no-load latency is the lowest seen, re-measured every
  // probe_multiplier x limit samples (Netflix adds a random 0.5..1 factor to
  // that period; here it is fixed, so runs are reproducible).
  const double r = std::max(1.0, static_cast<double>(rtt.count()));
  ++probe_count_;
  if (static_cast<double>(probe_count_) >= options_.probe_multiplier * estimate_) {
    probe_count_ = 0;
    rtt_noload_ = r;
    return static_cast<int>(estimate_);
  }
  if (rtt_noload_ == 0 || r < rtt_noload_) {
    rtt_noload_ = r;
    return static_cast<int>(estimate_);
  }
  const double l = estimate_;
  const double log = log10_root(l);
  double want = l;
  if (dropped) {
    want = l - log;
  } else if (in_flight * 2 < l) {
    return static_cast<int>(estimate_);  // the caller does not use the limit
  } else {
    const double queue = std::ceil(l * (1 - rtt_noload_ / r));
    if (queue <= log) {
      want = l + 6 * log;  // + beta
    } else if (queue < 3 * log) {
      want = l + log;
    } else if (queue > 6 * log) {
      want = l - log;
    } else {
      return static_cast<int>(estimate_);
    }
  }
  want = std::clamp(want, static_cast<double>(std::max(1, options_.min_limit)),
                    static_cast<double>(options_.max_limit));
  estimate_ = (1 - options_.smoothing) * l + options_.smoothing * want;
  return static_cast<int>(estimate_);
}

void concurrency_limiter::on_limit_change(limit_listener l) {
  const std::lock_guard g(listen_mu_);
  listener_ = std::move(l);
}

void concurrency_limiter::publish(int limit) noexcept {
  limit_listener l;
  {
    const std::lock_guard g(listen_mu_);
    if (!listener_) return;
    l = listener_;
  }
  try {
    l(limit);
  } catch (...) {  // NOLINT(bugprone-empty-catch): a listener must not break the call
  }
}

// ---- rate limiter -------------------------------------------------------------

rate_limiter::rate_limiter(const rate_limiter_options& o, clock& c)
    : options_(o), clock_(c), interval_ns_(0), tolerance_ns_(0), tat_(0) {
  validate(o);
  // validate() keeps rate in [1e-6, 1e9] and burst in [1, 1e6]: the interval
  // is 1 ns to 1e15 ns. The tolerance saturates at about 100 days, far past
  // any wait a caller accepts, instead of overflowing.
  interval_ns_ = std::max<std::int64_t>(1, std::llround(1e9 / o.rate));
  const double tolerance = static_cast<double>(interval_ns_) * (o.burst - 1);
  tolerance_ns_ = tolerance >= 1e16 ? std::int64_t{10'000'000'000'000'000}
                                    : static_cast<std::int64_t>(tolerance);
  tat_.store(std::numeric_limits<std::int64_t>::min() / 2, std::memory_order_relaxed);
}

rate_decision rate_limiter::reserve(duration max_wait) noexcept {
  const std::int64_t now = clock_.now().time_since_epoch().count();
  std::int64_t tat = tat_.load(std::memory_order_relaxed);
  for (;;) {
    const std::int64_t base = std::max(tat, now);
    const std::int64_t wait = std::max<std::int64_t>(0, base - tolerance_ns_ - now);
    if (wait > max_wait.count()) {
      rejected_.fetch_add(1, std::memory_order_relaxed);
      return {.allowed = false, .wait = duration(wait)};
    }
    if (tat_.compare_exchange_weak(tat, base + interval_ns_, std::memory_order_relaxed)) {
      return {.allowed = true, .wait = duration(wait)};
    }
  }
}

bool rate_limiter::acquire(std::stop_token stop) {
  const rate_decision d = reserve(options_.max_wait);
  if (!d.allowed) return false;
  if (d.wait == duration::zero()) return !stop.stop_requested();
  return clock_.sleep_until(clock_.now() + d.wait, std::move(stop));
}

// ---- admission control --------------------------------------------------------

admission_control::admission_control(const admission_options& o, clock& c)
    : options_(o), clock_(c), window_(o.window) {
  validate(o);
}

double admission_control::probability(std::int64_t total, std::int64_t ok) const {
  if (total <= 0) return 0;
  const double rps = static_cast<double>(total) / window_.seconds();
  if (rps < options_.rps_threshold) return 0;
  const double excess =
      (static_cast<double>(total) - static_cast<double>(ok) / options_.success_rate_threshold) /
      (static_cast<double>(total) + 1);
  if (excess <= 0) return 0;
  return std::min(options_.max_rejection, std::pow(excess, 1.0 / options_.aggression));
}

bool admission_control::admit(double u) {
  const std::int64_t s = detail::whole_seconds(clock_.now());
  const std::lock_guard g(mu_);
  const auto [total, ok] = window_.sums(s);
  return u >= probability(total, ok);
}

void admission_control::record(bool success) {
  const std::int64_t s = detail::whole_seconds(clock_.now());
  const std::lock_guard g(mu_);
  window_.add(s, 1, success ? 1 : 0);
}

double admission_control::rejection_probability() const {
  const std::int64_t s = detail::whole_seconds(clock_.now());
  const std::lock_guard g(mu_);
  const auto [total, ok] = window_.sums(s);
  return probability(total, ok);
}

}  // namespace rebound
