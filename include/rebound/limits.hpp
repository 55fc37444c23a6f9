// rebound/limits.hpp: how much to send at once. Bulkhead, adaptive
// concurrency limiter, rate limiter and admission control.
//
// Retries decide whether to try again; these decide how much goes out at
// once. Each is a thread-safe value shared by the calls it guards, composed
// into a `pipeline` (pipeline.hpp) or used on its own. A refusal is a typed
// `rejected_error`, which the retry layer classifies as overloaded: the call
// ends instead of retrying into the same wall. Every one runs on the
// injected clock, so tests and the simulator use simulated time.
//
//   auto bh = std::make_shared<rebound::bulkhead>(rebound::bulkhead_options{
//       .max_concurrent = 8, .max_queue = 16, .max_wait = 200ms});
//   if (auto slot = bh->acquire()) { ... call ... }   // the slot frees when it goes
//
//   auto lim = std::make_shared<rebound::concurrency_limiter>(rebound::limiter_options::aimd());
//   auto permit = lim->try_acquire();
//   if (!permit) throw rebound::limit_exceeded_error(lim->limit());
//   ... call ...; lim->on_success(permit) / on_dropped(permit) / on_ignore(permit);
//
//   rebound::rate_limiter rl({.rate = 50, .burst = 10, .max_wait = 100ms});
//   if (!rl.acquire()) ...   // refused: more than 100 ms of queue ahead
//
// See docs/overload.md for the algorithms, their sources and the pipeline order.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rebound/clock.hpp"
#include "rebound/detail/window.hpp"

namespace rebound {

// ---- rejections ---------------------------------------------------------------

/// A local refusal: the call did not reach the dependency. The retry layer
/// classifies it as overloaded, and a pipeline's breaker does not count it.
class rejected_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The bulkhead was full and its queue too (or the wait ran out).
class bulkhead_full_error : public rejected_error {
 public:
  explicit bulkhead_full_error(int max_concurrent);
};

/// The concurrency limiter's current limit was reached.
class limit_exceeded_error : public rejected_error {
 public:
  explicit limit_exceeded_error(int limit);
  [[nodiscard]] int limit() const noexcept { return limit_; }

 private:
  int limit_;
};

/// The rate limiter would have made the call wait longer than allowed.
class rate_limited_error : public rejected_error {
 public:
  explicit rate_limited_error(duration wait);
  /// How long the call would have had to wait for its turn.
  [[nodiscard]] duration wait() const noexcept { return wait_; }

 private:
  duration wait_;
};

/// Admission control shed the call.
class admission_rejected_error : public rejected_error {
 public:
  explicit admission_rejected_error(double probability);
  [[nodiscard]] double probability() const noexcept { return probability_; }

 private:
  double probability_;
};

// ---- bulkhead -----------------------------------------------------------------

struct bulkhead_options {
  int max_concurrent = 10;  ///< calls in flight at once, 1..1000000
  int max_queue = 0;        ///< callers that may wait for a slot, 0..1000000
  duration max_wait{};      ///< how long a queued caller waits (0: no waiting)
  friend bool operator==(const bulkhead_options&, const bulkhead_options&) = default;
};

/// At most `max_concurrent` calls at once, and a bounded queue. The success
/// path is one atomic add to take a slot and one to give it back; waiting
/// callers wait on the clock (detail::wait_until), so simulated time drives
/// them too.
class bulkhead {
 public:
  /// A taken slot; frees it when destroyed. Move-only.
  class slot {
   public:
    slot() = default;
    slot(slot&& o) noexcept : owner_(std::exchange(o.owner_, nullptr)) {}
    slot& operator=(slot&& o) noexcept {
      if (this != &o) {
        reset();
        owner_ = std::exchange(o.owner_, nullptr);
      }
      return *this;
    }
    slot(const slot&) = delete;
    slot& operator=(const slot&) = delete;
    ~slot() { reset(); }
    explicit operator bool() const noexcept { return owner_ != nullptr; }
    /// Frees the slot now.
    void reset() noexcept {
      if (owner_ != nullptr) std::exchange(owner_, nullptr)->release();
    }

   private:
    friend class bulkhead;
    explicit slot(bulkhead* b) noexcept : owner_(b) {}
    bulkhead* owner_ = nullptr;
  };

  explicit bulkhead(const bulkhead_options& o = {}, clock& c = system_clock());

  /// A slot if one is free now; never waits.
  [[nodiscard]] slot try_acquire() noexcept { return slot(take() ? this : nullptr); }
  /// A slot, waiting in the queue for up to max_wait (and not past `until`)
  /// when all are taken. Empty when the queue is full, the wait ran out, or
  /// `stop` was requested.
  [[nodiscard]] slot acquire(std::stop_token stop = {}, time_point until = time_point::max());

  [[nodiscard]] int in_flight() const noexcept {
    return in_flight_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] int queued() const noexcept { return waiting_.load(std::memory_order_relaxed); }
  /// Refusals so far (queue full or wait ran out).
  [[nodiscard]] std::uint64_t rejected() const noexcept {
    return rejected_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] const bulkhead_options& settings() const noexcept { return options_; }
  [[nodiscard]] clock& time_source() const noexcept { return clock_; }

  // ---- for the async acquisition (async_limits.hpp); not for direct use ----
  /// Takes a slot if one is free (the fast path of try_acquire()).
  [[nodiscard]] bool take() noexcept {
    // seq_cst, with release(): a waiter that counted itself is never missed.
    if (in_flight_.fetch_add(1) < options_.max_concurrent) return true;
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  /// Wraps a slot taken with take() so that it frees itself.
  [[nodiscard]] slot adopt() noexcept { return slot(this); }
  /// Gives back a slot taken with take(); wakes a waiter.
  void release() noexcept;
  /// Registers an async waiter's wake-up (called when a slot may be free).
  /// False when the queue is full. The handle unregisters it.
  [[nodiscard]] bool enqueue(std::uint64_t& handle, std::function<void()> wake);
  void dequeue(std::uint64_t handle) noexcept;
  void count_rejection() noexcept { rejected_.fetch_add(1, std::memory_order_relaxed); }

 private:
  bulkhead_options options_;
  clock& clock_;
  std::atomic<int> in_flight_{0};
  std::atomic<int> waiting_{0};
  std::atomic<std::uint64_t> rejected_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<std::uint64_t, std::function<void()>>> async_waiters_;
  std::uint64_t next_handle_ = 1;
};

// ---- adaptive concurrency limiter ---------------------------------------------

enum class limit_algorithm : std::uint8_t {
  fixed,      ///< the limit stays at initial_limit
  aimd,       ///< additive increase, multiplicative decrease on drops
  gradient2,  ///< Netflix Gradient2: the ratio of long-term to short-term latency
  vegas,      ///< TCP Vegas: the queue estimated from the no-load latency
};
/// "fixed", "aimd", "gradient2", "vegas".
[[nodiscard]] std::string_view to_string(limit_algorithm a) noexcept;

/// A share of the limit kept for one kind of work (live 0.9, batch 0.1).
struct limiter_partition {
  std::string name;
  double share = 1.0;  ///< (0, 1]; shares sum to at most 1
  friend bool operator==(const limiter_partition&, const limiter_partition&) = default;
};

/// Netflix concurrency-limits' defaults for each algorithm: aimd(),
/// gradient2(), vegas(). A 0 in initial/min/max_limit means "the algorithm's
/// default" (resolved by the limiter).
struct limiter_options {
  limit_algorithm algorithm = limit_algorithm::aimd;
  /// Where the limit starts: 0 is 20; above max_limit is refused. As in
  /// Netflix's limits, a start below min_limit is kept as given: AIMD's
  /// first sample moves it into [min_limit, max_limit], while Gradient2 and
  /// Vegas move it there at their first update that changes the limit (a
  /// sample taken while the caller uses under half the limit changes
  /// nothing, as in Netflix's code).
  int initial_limit = 0;
  int min_limit = 0;  ///< 0: 20 (aimd, gradient2, fixed), 1 (vegas)
  int max_limit = 0;  ///< 0: 200 (aimd, gradient2, fixed), 1000 (vegas)
  // aimd
  double backoff_ratio = 0.9;                  ///< the limit times this on a drop, [0.5, 1)
  duration timeout = std::chrono::seconds(5);  ///< a sample slower than this counts as a drop
  // gradient2
  double smoothing = 0.2;      ///< (0, 1]; limiter_options::vegas() sets 1.0
  int queue_size = 4;          ///< headroom added to the estimate, 0..1000
  int long_window = 600;       ///< samples in the long-term average, 10..100000
  double rtt_tolerance = 1.5;  ///< how much latency growth is tolerated, >= 1
  // vegas
  int probe_multiplier = 30;  ///< re-measure the no-load latency every this x limit samples
  /// Empty: one pool. Otherwise calls name a partition by index.
  std::vector<limiter_partition> partitions;

  [[nodiscard]] static limiter_options fixed(int limit);
  [[nodiscard]] static limiter_options aimd();
  [[nodiscard]] static limiter_options gradient2();
  [[nodiscard]] static limiter_options vegas();
  friend bool operator==(const limiter_options&, const limiter_options&) = default;
};

/// What try_acquire() hands out; give it back through exactly one of
/// on_success, on_dropped or on_ignore.
struct limiter_permit {
  bool allowed = false;
  int partition = -1;  ///< -1: no partitions
  int in_flight = 0;   ///< calls in flight when it was taken (this one included)
  time_point started{};
  explicit operator bool() const noexcept { return allowed; }
};

/// An adaptive concurrency limit, after Netflix's concurrency-limits: calls
/// beyond the current limit are refused, and the limit moves with the
/// latency and drops the calls report. Thread-safe. The AIMD success path
/// is lock-free; Gradient2 and Vegas update their estimate under a mutex.
class concurrency_limiter {
 public:
  using limit_listener = std::function<void(int limit)>;

  explicit concurrency_limiter(const limiter_options& o = limiter_options::aimd(),
                               clock& c = system_clock());

  /// A permit if the call may go now (in partition `partition`, or the one
  /// pool when there are none). With partitions, a call over the total limit
  /// still goes while its partition is under its share (Netflix's rule).
  [[nodiscard]] limiter_permit try_acquire(int partition = -1) noexcept;
  /// The call ended with an answer: its latency is a sample.
  void on_success(const limiter_permit& p) noexcept { finish(p, false, true); }
  /// The call showed overload (a timeout, 503, RESOURCE_EXHAUSTED): the limit falls.
  void on_dropped(const limiter_permit& p) noexcept { finish(p, true, true); }
  /// The call ended without saying anything about load (cancelled, a client error).
  void on_ignore(const limiter_permit& p) noexcept { finish(p, false, false); }

  /// The current limit.
  [[nodiscard]] int limit() const noexcept { return limit_.load(std::memory_order_relaxed); }
  [[nodiscard]] int in_flight() const noexcept {
    return in_flight_.load(std::memory_order_relaxed);
  }
  /// A partition's current share of the limit (at least 1).
  [[nodiscard]] int partition_limit(int partition) const noexcept;
  /// The index of the partition named `name`, or -1.
  [[nodiscard]] int partition_index(std::string_view name) const noexcept;
  [[nodiscard]] std::uint64_t rejected() const noexcept {
    return rejected_.load(std::memory_order_relaxed);
  }
  /// Called with the new limit after every change, on the thread that
  /// reported the sample (outside the limiter's lock).
  void on_limit_change(limit_listener l);
  [[nodiscard]] const limiter_options& settings() const noexcept { return options_; }

 private:
  void finish(const limiter_permit& p, bool dropped, bool sample) noexcept;
  [[nodiscard]] time_point read_clock() const noexcept;
  int update_gradient2(duration rtt, int in_flight);            // under mu_
  int update_vegas(duration rtt, int in_flight, bool dropped);  // under mu_
  void publish(int limit) noexcept;

  limiter_options options_;
  clock& clock_;
  bool coarse_ = false;  // AIMD on the system clock: its 5 s timeout needs no fine clock
  std::atomic<int> limit_;
  std::atomic<int> in_flight_{0};
  std::atomic<std::uint64_t> rejected_{0};
  struct part {
    double share = 1;
    std::atomic<int> in_flight{0};
  };
  std::unique_ptr<part[]> parts_;
  int part_count_ = 0;
  // With partitions, the total and the partition are checked and counted in
  // one step (as Netflix's partitioned limiter does under its lock).
  std::mutex part_mu_;
  std::mutex mu_;  // gradient2, vegas: the estimate
  double estimate_ = 0;
  // gradient2's long-term average (an exponential average after a warm-up)
  double long_rtt_ = 0;
  double long_sum_ = 0;  // the warm-up's plain sum
  int long_samples_ = 0;
  // vegas
  double rtt_noload_ = 0;
  std::uint64_t probe_count_ = 0;
  std::mutex listen_mu_;
  limit_listener listener_;
};

// ---- rate limiter -------------------------------------------------------------

struct rate_limiter_options {
  double rate = 100;    ///< calls per second, 1e-6..1e9
  int burst = 1;        ///< calls that may go at once after a quiet spell, 1..1000000
  duration max_wait{};  ///< acquire() waits for its turn up to this long (0: never waits)
  friend bool operator==(const rate_limiter_options&, const rate_limiter_options&) = default;
};

/// The answer of reserve(): go now, go after `wait`, or refused.
struct rate_decision {
  bool allowed = false;
  duration wait{};  ///< allowed: wait this long first; refused: the wait it would have taken
  /// True only for "go now".
  explicit operator bool() const noexcept { return allowed && wait == duration::zero(); }
};

/// A rate limit by the generic cell rate algorithm (GCRA, a token bucket
/// kept as one "theoretical arrival time"): `rate` calls per second, with
/// `burst` at once. Lock-free: one compare-and-swap and one clock read.
class rate_limiter {
 public:
  explicit rate_limiter(const rate_limiter_options& o = {}, clock& c = system_clock());

  /// Go now, or refused (never reserves a later turn).
  [[nodiscard]] rate_decision try_acquire() noexcept { return reserve(duration::zero()); }
  /// Reserves the next turn if it comes within `max_wait`: the caller must
  /// wait decision.wait before going. Refused otherwise (nothing reserved).
  [[nodiscard]] rate_decision reserve(duration max_wait) noexcept;
  /// reserve(settings().max_wait), then waits on the clock. False when
  /// refused or `stop` was requested (the reserved turn is then lost).
  [[nodiscard]] bool acquire(std::stop_token stop = {});

  [[nodiscard]] std::uint64_t rejected() const noexcept {
    return rejected_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] const rate_limiter_options& settings() const noexcept { return options_; }
  [[nodiscard]] clock& time_source() const noexcept { return clock_; }

 private:
  rate_limiter_options options_;
  clock& clock_;
  std::int64_t interval_ns_;       // 1 / rate
  std::int64_t tolerance_ns_;      // (burst - 1) / rate
  std::atomic<std::int64_t> tat_;  // the theoretical arrival time, ns on the clock
  std::atomic<std::uint64_t> rejected_{0};
};

// ---- admission control --------------------------------------------------------

/// Envoy's admission control filter, its defaults included.
struct admission_options {
  duration window = std::chrono::seconds(30);  ///< sampling window, 1s..600s, whole seconds
  double success_rate_threshold = 0.95;        ///< below this success rate, shed; (0, 1]
  double aggression = 1.0;                     ///< > 0; higher sheds sooner
  double max_rejection = 0.8;                  ///< the rejection probability's cap, [0, 1]
  double rps_threshold = 0;  ///< below this many requests per second, never shed; >= 0
  friend bool operator==(const admission_options&, const admission_options&) = default;
};

/// Sheds load client-side when the success rate falls, with probability
///   ((n_total - n_success / threshold) / (n_total + 1)) ^ (1 / aggression)
/// over the sampling window, capped at max_rejection (Envoy's admission
/// control). Thread-safe; counts in one-second buckets on the clock.
class admission_control {
 public:
  explicit admission_control(const admission_options& o = {}, clock& c = system_clock());

  /// Admits or sheds a request; `u` is uniform in [0, 1).
  [[nodiscard]] bool admit(double u);
  /// The outcome of an admitted request (success: the dependency answered
  /// something other than overload or a transient failure).
  void record(bool success);
  [[nodiscard]] double rejection_probability() const;
  [[nodiscard]] const admission_options& settings() const noexcept { return options_; }

 private:
  [[nodiscard]] double probability(std::int64_t total, std::int64_t ok) const;
  admission_options options_;
  clock& clock_;
  mutable std::mutex mu_;
  detail::second_window<600> window_;  // requests, successes
};

// ---- settings -----------------------------------------------------------------
// From JSON and the environment through the same schema as every other
// setting (config.hpp): errors are config_error, naming the key or the
// variable the user wrote and what is allowed.
//
//   bulkhead      {"max_concurrent": 8, "max_queue": 16, "max_wait": "200ms"}
//                 PREFIX_MAX_CONCURRENT, PREFIX_MAX_QUEUE, PREFIX_MAX_WAIT
//   limiter       {"algorithm": "gradient2", "initial_limit": 20, "min_limit": 20,
//                  "max_limit": 200, "smoothing": 0.2, "queue_size": 4, "long_window": 600,
//                  "rtt_tolerance": 1.5, "partitions": [{"name": "live", "share": 0.9}]}
//                 (aimd: backoff_ratio, timeout; vegas: smoothing, probe_multiplier);
//                 PREFIX_PARTITIONS=live:0.9,batch:0.1
//   rate limiter  {"rate": 50, "burst": 10, "max_wait": "100ms"}
//   admission     {"window": "30s", "success_rate_threshold": 0.95, "aggression": 1,
//                  "max_rejection": 0.8, "rps_threshold": 0}
// A setting the chosen algorithm does not use is an error, not ignored.

void validate(const bulkhead_options& o);
void validate(const limiter_options& o);
void validate(const rate_limiter_options& o);
void validate(const admission_options& o);

[[nodiscard]] bulkhead_options bulkhead_from_json(std::string_view json,
                                                  bulkhead_options base = {});
[[nodiscard]] bulkhead_options apply_bulkhead_env(bulkhead_options base, std::string_view prefix,
                                                  const std::map<std::string, std::string>& vars);
[[nodiscard]] bulkhead_options apply_bulkhead_env(bulkhead_options base, std::string_view prefix);

/// `base` decides the algorithm's defaults when the document names none
/// (pass limiter_options::gradient2() to start from Gradient2's).
[[nodiscard]] limiter_options limiter_from_json(std::string_view json,
                                                limiter_options base = limiter_options::aimd());
[[nodiscard]] limiter_options apply_limiter_env(limiter_options base, std::string_view prefix,
                                                const std::map<std::string, std::string>& vars);
[[nodiscard]] limiter_options apply_limiter_env(limiter_options base, std::string_view prefix);

[[nodiscard]] rate_limiter_options rate_limiter_from_json(std::string_view json,
                                                          rate_limiter_options base = {});
[[nodiscard]] rate_limiter_options apply_rate_limiter_env(
    rate_limiter_options base, std::string_view prefix,
    const std::map<std::string, std::string>& vars);
[[nodiscard]] rate_limiter_options apply_rate_limiter_env(rate_limiter_options base,
                                                          std::string_view prefix);

[[nodiscard]] admission_options admission_from_json(std::string_view json,
                                                    admission_options base = {});
[[nodiscard]] admission_options apply_admission_env(admission_options base, std::string_view prefix,
                                                    const std::map<std::string, std::string>& vars);
[[nodiscard]] admission_options apply_admission_env(admission_options base,
                                                    std::string_view prefix);

}  // namespace rebound
