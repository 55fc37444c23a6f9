// rebound/policy.hpp: the immutable retry policy and the per-call decision step.
//
// A policy is settings only: when to stop, how long to wait, what is
// retryable, who observes. It is a value: cheap to copy, safe to share across
// threads, comparable. Each call makes its own `retry_state` (attempt number,
// start time, previous delay, its own random stream) whose decision step,
// retry_state::decide(verdict, now), answers "stop, because ..." or "wait d,
// then attempt again". One caller asks it: the call engine (rebound/call.hpp),
// which every loop drives.
//
//   const auto policy = rebound::retry_policy{}
//       .stop(rebound::stop::after_elapsed(5s))
//       .backoff(rebound::backoff::exponential(500ms, 2.0, 3s))
//       .jitter(rebound::jitter::full())
//       .retry_on<not_found_error>();
//   auto v = rebound::retry(policy, [&] { return api.get_run(id); });   // rebound/retry.hpp
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "rebound/backoff.hpp"
#include "rebound/budget.hpp"
#include "rebound/classify.hpp"
#include "rebound/clock.hpp"
#include "rebound/events.hpp"
#include "rebound/hedge.hpp"
#include "rebound/jitter.hpp"
#include "rebound/random.hpp"
#include "rebound/stop.hpp"
#include "rebound/throttle.hpp"

namespace rebound {

/// What the blocking loop does when a call that failed with an exception ends.
enum class give_up_mode : std::uint8_t {
  rethrow_last,       ///< rethrow the last attempt's exception as it was
  throw_retry_error,  ///< throw rebound::retry_error (reason, attempts, elapsed, nested last)
};

/// What to do when a server asks for a longer delay than max_server_delay.
enum class server_delay_mode : std::uint8_t {
  clamp,    ///< wait max_server_delay instead
  give_up,  ///< stop at once with stop_reason::server_delay_too_long
};

/// What a retry loop does when it runs inside an attempt of another retry
/// loop (on the same thread, for the blocking loop).
enum class nesting : std::uint8_t {
  /// Make one attempt and hand a transient failure to the enclosing loop
  /// (stop_reason::deferred_to_outer): one logical call never makes more
  /// attempts than the outermost policy allows. The default.
  defer,
  /// Retry as if alone. Attempts multiply across layers (3 layers of 4 = 64).
  independent,
};

/// An immutable retry policy. Setters return a modified copy.
///
/// Defaults: stop after 3 attempts; exponential backoff 100ms * 2^(n-2) up
/// to 5s; full jitter; every exception and expected error is transient until
/// a rule says otherwise; server delays capped at 60s (clamped); a fresh
/// random seed per call; the system clock; no observer; rethrow the last
/// exception on give-up.
class retry_policy {
 public:
  retry_policy();

  [[nodiscard]] retry_policy stop(stop_condition s) const;
  [[nodiscard]] retry_policy backoff(::rebound::backoff b) const;
  [[nodiscard]] retry_policy jitter(::rebound::jitter j) const;
  /// Replaces all classification rules.
  [[nodiscard]] retry_policy classify(::rebound::classifier c) const;
  /// Cap on server-given delays (verdict::retry_after), and what to do past it.
  [[nodiscard]] retry_policy max_server_delay(
      duration cap, server_delay_mode mode = server_delay_mode::clamp) const;
  /// Every call's random stream starts from `seed` (reproducible schedules).
  [[nodiscard]] retry_policy seed(std::uint64_t seed) const;
  /// Every call draws a fresh seed (the default).
  [[nodiscard]] retry_policy unseeded() const;
  [[nodiscard]] retry_policy observer(std::shared_ptr<::rebound::observer> o) const;
  /// The clock to read and sleep on. It must outlive every call that uses
  /// this policy. Default: system_clock().
  [[nodiscard]] retry_policy clock(::rebound::clock& c) const;
  [[nodiscard]] retry_policy on_give_up(give_up_mode m) const;
  /// A budget shared with other calls (and policies) that every retry must
  /// draw from; a refusal stops the call with budget_exhausted.
  [[nodiscard]] retry_policy budget(std::shared_ptr<retry_budget> b) const;
  /// Adaptive client-side throttling consulted before every attempt.
  [[nodiscard]] retry_policy throttle(std::shared_ptr<adaptive_throttle> t) const;
  /// Behaviour inside another retry loop's attempt (default: defer).
  [[nodiscard]] retry_policy nesting(::rebound::nesting n) const;
  /// A time limit for each attempt (> 0). The async loop cancels an attempt
  /// that runs past it; the blocking loop requests the attempt's stop token
  /// (cooperative). Either way the attempt counts as a transient timeout.
  /// Throws std::invalid_argument for d <= 0.
  [[nodiscard]] retry_policy attempt_timeout(duration d) const;
  /// A time limit for the whole call, attempts and waits included (> 0): at
  /// the limit the attempt in flight is cancelled (its stop token requested)
  /// and the call ends with time_exhausted. Throws std::invalid_argument for d <= 0.
  [[nodiscard]] retry_policy total_timeout(duration d) const;
  /// Removes both timeouts.
  [[nodiscard]] retry_policy no_timeouts() const;
  /// Hedged attempts (async loop only; see hedge.hpp). Throws
  /// std::invalid_argument naming the bad field.
  [[nodiscard]] retry_policy hedge(hedge_policy h) const;
  [[nodiscard]] retry_policy no_hedge() const;

  // Classification shortcuts (see classify.hpp); rules are appended.
  template <class... E>
  [[nodiscard]] retry_policy retry_on() const {
    return classify(classifier_.template retry_on<E...>());
  }
  template <class... E>
  [[nodiscard]] retry_policy abort_on() const {
    return classify(classifier_.template abort_on<E...>());
  }
  template <class F>
  [[nodiscard]] retry_policy retry_if_exception(F pred) const {
    return classify(classifier_.retry_if_exception(std::move(pred)));
  }
  template <class F>
  [[nodiscard]] retry_policy retry_if_result(F pred) const {
    return classify(classifier_.retry_if_result(std::move(pred)));
  }
  template <class F>
  [[nodiscard]] retry_policy retry_if_error(F pred) const {
    return classify(classifier_.retry_if_error(std::move(pred)));
  }

  [[nodiscard]] const stop_condition& stop() const noexcept { return stop_; }
  /// True when the stop condition depends on time.
  [[nodiscard]] bool stop_uses_time() const noexcept { return stop_uses_time_; }
  [[nodiscard]] const ::rebound::backoff& backoff() const noexcept { return backoff_; }
  [[nodiscard]] const ::rebound::jitter& jitter() const noexcept { return jitter_; }
  [[nodiscard]] const ::rebound::classifier& classifier() const noexcept { return classifier_; }
  [[nodiscard]] duration max_server_delay() const noexcept { return max_server_delay_; }
  [[nodiscard]] server_delay_mode server_delay() const noexcept { return server_delay_mode_; }
  [[nodiscard]] std::optional<std::uint64_t> seed() const noexcept { return seed_; }
  [[nodiscard]] const std::shared_ptr<::rebound::observer>& observer() const noexcept {
    return observer_;
  }
  /// The clock set with clock(c), or nullptr for the system clock.
  [[nodiscard]] ::rebound::clock* custom_clock() const noexcept { return clock_; }
  /// The clock calls use: the custom one, or system_clock().
  [[nodiscard]] ::rebound::clock& clock() const noexcept;
  [[nodiscard]] give_up_mode on_give_up() const noexcept { return give_up_; }
  [[nodiscard]] const std::shared_ptr<retry_budget>& budget() const noexcept { return budget_; }
  [[nodiscard]] const std::shared_ptr<adaptive_throttle>& throttle() const noexcept {
    return throttle_;
  }
  [[nodiscard]] ::rebound::nesting nesting() const noexcept { return nesting_; }
  [[nodiscard]] std::optional<duration> attempt_timeout() const noexcept {
    return attempt_timeout_;
  }
  [[nodiscard]] std::optional<duration> total_timeout() const noexcept { return total_timeout_; }
  [[nodiscard]] const std::optional<hedge_policy>& hedge() const noexcept { return hedge_; }
  /// True when a timeout or hedging is set (one check on the fast path).
  [[nodiscard]] bool has_timeouts_or_hedge() const noexcept { return extras_; }
  /// True when a budget or a throttle is attached (one check on the fast path).
  [[nodiscard]] bool has_overload_hooks() const noexcept { return hooks_; }
  /// True when a call needs its per-call state from the start: an observer,
  /// a budget, a throttle, a timeout or a hedge.
  [[nodiscard]] bool needs_call_state() const noexcept {
    return hooks_ || extras_ || observer_ != nullptr;
  }

  friend bool operator==(const retry_policy& a, const retry_policy& b) noexcept;

 private:
  stop_condition stop_;
  bool stop_uses_time_ = false;
  ::rebound::backoff backoff_;
  ::rebound::jitter jitter_;
  ::rebound::classifier classifier_;
  duration max_server_delay_;
  server_delay_mode server_delay_mode_ = server_delay_mode::clamp;
  std::optional<std::uint64_t> seed_;
  std::shared_ptr<::rebound::observer> observer_;
  ::rebound::clock* clock_ = nullptr;
  give_up_mode give_up_ = give_up_mode::rethrow_last;
  std::shared_ptr<retry_budget> budget_;
  std::shared_ptr<adaptive_throttle> throttle_;
  ::rebound::nesting nesting_ = ::rebound::nesting::defer;
  bool hooks_ = false;  // budget_ || throttle_
  std::optional<duration> attempt_timeout_;
  std::optional<duration> total_timeout_;
  std::optional<hedge_policy> hedge_;
  bool extras_ = false;  // attempt_timeout_ || total_timeout_ || hedge_
};

/// The answer of one decision step.
struct decision {
  bool retry = false;                           ///< true: sleep `delay`, then attempt again
  stop_reason reason = stop_reason::succeeded;  ///< when !retry: why the call ends
  duration delay{};                             ///< when retry: the wait before the next attempt

  [[nodiscard]] static constexpr decision stop(stop_reason r) noexcept { return {false, r, {}}; }
  [[nodiscard]] static constexpr decision retry_after(duration d) noexcept {
    return {true, stop_reason::succeeded, d};
  }
};

/// Per-call state. Not thread-safe: one call, one state. Holds a reference
/// to the policy, which must outlive it.
class retry_state {
 public:
  /// A call whose first attempt started at `start`. Tells the policy's
  /// budget that a call started.
  retry_state(const retry_policy& p, time_point start) noexcept : policy_(&p), start_(start) {
    if (p.has_overload_hooks() && p.budget()) [[unlikely]] {
      p.budget()->on_call();
    }
  }
  /// Same, with this call's random stream seeded from `stream_seed` instead
  /// of the policy's seed (simulations give every simulated call its own).
  retry_state(const retry_policy& p, time_point start, std::uint64_t stream_seed) noexcept
      : retry_state(p, start) {
    seed_stream(stream_seed);
  }
  /// Seeds this call's random streams (jitter, throttle admission) from
  /// `stream_seed`, before the first decision.
  void seed_stream(std::uint64_t stream_seed) noexcept {
    rng_.emplace(stream_seed);
    admit_state_ = (stream_seed ^ 0x5851f42d4c957f2dULL) | 1ULL;
  }

  /// The decision after attempt `attempt()` ended with verdict `v` at `now`.
  /// A retry advances attempt() by one and remembers the delay. Informs the
  /// policy's budget and throttle of the outcome; a retry the budget refuses
  /// ends the call with budget_exhausted.
  [[nodiscard]] decision decide(const verdict& v, time_point now);
  /// Same, and also stop (time_exhausted) rather than start a sleep that
  /// would end past `deadline`; checked before the budget is charged.
  [[nodiscard]] decision decide(const verdict& v, time_point now, time_point deadline);
  /// The state keeps a pointer to the policy: a temporary would dangle.
  retry_state(retry_policy&&, time_point) = delete;
  retry_state(retry_policy&&, time_point, std::uint64_t) = delete;

  /// May a hedge (another concurrent attempt) start at `now`? Checks the
  /// stop condition as if attempt()+1 were a retry with no wait, the
  /// deadline, and the budget (charged on yes). Yes advances attempt().
  [[nodiscard]] decision decide_hedge(time_point now, time_point deadline);
  /// A concurrent attempt failed while others still run: tells the budget
  /// (decide() does this for the failure it is asked about).
  void note_failure() noexcept {
    if (policy_->has_overload_hooks() && policy_->budget()) [[unlikely]]
      policy_->budget()->on_failure();
  }

  /// Bookkeeping for a success that does not go through decide() (the
  /// blocking loop's fast path): budget refunds, throttle accepts.
  void record_success() noexcept {
    if (policy_->has_overload_hooks()) [[unlikely]] {
      record_success_slow();
    }
  }
  /// Asks the policy's adaptive throttle (if any) whether the next attempt
  /// may be sent. Counts the request.
  [[nodiscard]] bool admit_attempt() {
    return !policy_->has_overload_hooks() || !policy_->throttle() || admit_attempt_slow();
  }

  /// The attempt that is running or just ended (1-based).
  [[nodiscard]] int attempt() const noexcept { return attempt_; }
  [[nodiscard]] time_point start() const noexcept { return start_; }
  /// The last delay decided (0 before the first retry).
  [[nodiscard]] duration previous_delay() const noexcept { return previous_delay_; }
  [[nodiscard]] const retry_policy& policy() const noexcept { return *policy_; }
  /// Moves the start, for loops that read the clock lazily.
  void restart_at(time_point start) noexcept { start_ = start; }

 private:
  void record_success_slow() noexcept;
  bool admit_attempt_slow();
  random_stream& rng();

  // Ordered to pack: async operations keep one of these while they wait.
  const retry_policy* policy_;
  time_point start_;
  duration previous_delay_{};
  std::optional<random_stream> rng_;  // seeded on first use
  // Throttle admission draws from its own splitmix64 stream (0: not seeded
  // yet), so a seeded policy's calls do not all draw the same number and
  // the jitter schedule is unchanged.
  std::uint64_t admit_state_ = 0;
  int attempt_ = 1;
  std::optional<retry_request> last_retry_;  // the granted retry that started this attempt
};

}  // namespace rebound
