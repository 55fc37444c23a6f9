// rebound/call.hpp: the call engine. One state machine behind every retry loop.
//
// A `retry_call` is one logical call under a policy. It does no I/O and never
// sleeps: it is told what happened and answers with the next step.
//
//   attempt   run the next attempt now;
//   wait      sleep until `step.until` on the policy's clock, then resume();
//   done      the call is over; `step.reason` says why.
//
// It owns what every loop must agree on: the per-call retry_state (stop
// condition, back-off, jitter, budget), the deadline (total timeout and the
// caller's), cancellation checks, the nested-retry guard, adaptive-throttle
// admission, the report, the events, and the error a call that gives up
// throws. Every loop in rebound drives it: the blocking retry(), the async
// loops, the HTTP clients, the run supervisor, the pg router's replica retry
// and LSN wait, the Redis link's reconnects, `rebound policy show` and every
// simulator scenario. A driver keeps only what is its own: a clock and a
// timer, a transport, a thread. See docs/decisions/005-one-call-engine.md.
//
//   rebound::retry_call call(policy, {.stop = token});
//   for (auto step = call.start(); !step.done();) {
//     auto outcome = send();                           // the driver's own I/O
//     if (outcome.ok) { call.succeeded(); break; }
//     step = call.failed(outcome.verdict);
//     if (step.wait()) step = call.resume(clock.sleep_until(step.until, token));
//   }
//   if (call.reason() != rebound::stop_reason::succeeded) ...   // gave up
//
// Not thread-safe: one call, one driver. The policy must outlive the call.
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>

#include "rebound/classify.hpp"
#include "rebound/clock.hpp"
#include "rebound/detail/coarse_clock.hpp"
#include "rebound/detail/saturate.hpp"
#include "rebound/events.hpp"
#include "rebound/policy.hpp"
#include "rebound/stop.hpp"

namespace rebound {

/// How a call ended.
struct call_report {
  stop_reason reason = stop_reason::succeeded;
  int attempts = 0;
  duration elapsed{};
};

/// Per-call options (designated initializers: `{.stop = token}`).
struct call_options {
  std::stop_token stop{};         ///< cancels the call
  call_report* report = nullptr;  ///< filled in when the call ends
  /// A deadline for the whole call, on the policy's clock: no sleep that would
  /// end past it starts (time_exhausted), the attempt running at the
  /// deadline has its stop token requested, and attempt::remaining() counts it.
  std::optional<time_point> deadline{};
  /// Seeds this call's random stream (jitter, throttle admission) instead of
  /// the policy's seed or a fresh one: simulations give every call its own.
  std::optional<std::uint64_t> seed{};
};

/// Thrown when a call that failed with exceptions gives up (in
/// throw_retry_error mode, or on cancellation). It carries the last attempt's
/// exception, if any: last_error(), rethrow_last_error().
/// what(): "gave up after 3 attempts in 1.2s (attempts_exhausted): <last what()>".
class retry_error : public std::runtime_error {
 public:
  retry_error(stop_reason reason, int attempts, duration elapsed, std::exception_ptr last,
              verdict carried = verdict::permanent());
  [[nodiscard]] stop_reason reason() const noexcept { return reason_; }
  [[nodiscard]] int attempts() const noexcept { return attempts_; }
  [[nodiscard]] duration elapsed() const noexcept { return elapsed_; }
  /// The last attempt's exception, or null when no attempt ran.
  [[nodiscard]] const std::exception_ptr& last_error() const noexcept { return last_; }
  /// Rethrows last_error() when there is one; returns otherwise.
  void rethrow_last_error() const {
    if (last_) std::rethrow_exception(last_);
  }
  /// For deferred_to_outer: the inner loop's verdict on the failure, which
  /// the enclosing loop uses instead of its own rules.
  [[nodiscard]] const verdict& carried_verdict() const noexcept { return carried_; }

 private:
  stop_reason reason_;
  int attempts_;
  duration elapsed_;
  std::exception_ptr last_;
  verdict carried_;
};

/// What the engine asks the driver to do next.
enum class step_kind : std::uint8_t {
  attempt,  ///< run the next attempt now
  wait,     ///< sleep until `until`, then call resume()
  done,     ///< the call ended, because of `reason`
};

/// One answer of the engine.
struct call_step {
  step_kind kind = step_kind::attempt;
  stop_reason reason = stop_reason::succeeded;  ///< done: why the call ended
  time_point until{};                           ///< wait: when the next attempt may start
  duration delay{};                             ///< wait: the back-off that was decided

  [[nodiscard]] constexpr bool attempt() const noexcept { return kind == step_kind::attempt; }
  [[nodiscard]] constexpr bool wait() const noexcept { return kind == step_kind::wait; }
  [[nodiscard]] constexpr bool done() const noexcept { return kind == step_kind::done; }
};

/// How a driver runs its calls (fixed per driver, unlike call_options).
struct call_driver {
  /// The driver gives attempts a context that reports elapsed time, so the
  /// start is read at construction. Otherwise the clock is first read when
  /// something needs it (a time-based stop, an observer, a report, a
  /// timeout), or at the first failure: a first-try success may read none.
  bool eager_start = false;
  /// Whether an enclosing retry loop is running: -1 asks this thread's
  /// blocking loops (detail::loop_depth), 0 no, 1 yes (the async loops know
  /// from async_options::parent).
  std::int8_t nested = -1;
  /// The driver can run attempts side by side (hedging). A driver that
  /// cannot refuses a hedging policy with std::invalid_argument.
  bool concurrent = false;
  /// The call's start, when the driver read it (retry_call::start_of) before
  /// it made the engine, to run a first attempt without one; min: not read.
  time_point started_at = time_point::min();
};

/// What a driver knows about a failed attempt beyond its verdict.
struct attempt_failure {
  /// What failed, for events (read only when the call is observed()).
  std::string_view cause{};
  /// The attempt was cut short by its own timeout or the call's deadline:
  /// it counts as a transient timeout, whatever it raised.
  bool timed_out = false;
  /// The request may have reached the server and is not safe to send again
  /// (a POST without an idempotency key): a retryable failure ends the call
  /// with not_idempotent instead.
  bool unsafe_to_repeat = false;
};

namespace detail {
/// How many blocking retry loops are running an attempt on this thread.
inline thread_local int loop_depth = 0;
/// Marks the current thread as running an attempt of a blocking loop.
/// Saves and restores the depth rather than counting down: the restore does
/// not wait for the increment, which keeps a tight loop of calls off a
/// chain of dependent memory operations.
struct depth_guard {
  depth_guard() noexcept : saved(loop_depth) { loop_depth = saved + 1; }
  ~depth_guard() { loop_depth = saved; }
  depth_guard(const depth_guard&) = delete;
  depth_guard& operator=(const depth_guard&) = delete;
  int saved;
};
/// what() of an exception, "unknown exception", or "no error".
std::string describe(const std::exception_ptr& e);
}  // namespace detail

/// The verdict on an exception: the built-in kinds first (a nested loop's
/// deferral or pushback, local throttling, an open circuit: overloaded),
/// then the policy's rules. Every driver classifies exceptions with this.
[[nodiscard]] verdict classify_exception(const retry_policy& p, const std::exception_ptr& e);

/// One logical call under a policy: see the header comment.
class retry_call {
 public:
  /// `policy` must outlive the call (a temporary would dangle). Throws
  /// std::invalid_argument for a hedging policy when the driver is not
  /// concurrent.
  retry_call(const retry_policy& policy, const call_options& options = {}, call_driver driver = {})
      : policy_(&policy),
        observer_(policy.observer().get()),
        report_(options.report),
        nested_(driver.nested) {
    // The common cases stop here. With nothing that needs a per-call state
    // (no timeout, deadline, seed, observer, report, budget or throttle), a
    // first-try success builds none: the state is built at the first
    // failure. The clock is read only when something needs the start (a
    // time-based stop, an attempt context), once.
    if (policy.needs_call_state() || options.stop.stop_possible() || options.deadline ||
        options.seed || report_ != nullptr) [[unlikely]] {
      init(options, driver);
    } else if (policy.stop_uses_time() || driver.eager_start) {
      start_ = driver.started_at != time_point::min() ? driver.started_at : start_stamp();
      started_ = true;
    }
  }
  retry_call(retry_policy&&, const call_options& = {}, call_driver = {}) = delete;

  /// True when a call under `policy` with `options` needs nothing from the
  /// engine before its first attempt's outcome (no per-call state, no start
  /// stamp): a driver whose attempts take no context may run the first
  /// attempt before making the call, and make it only at a failure.
  [[nodiscard]] static bool plain_first_attempt(const retry_policy& policy,
                                                const call_options& options) noexcept {
    return first_attempt_before_engine(policy, options) && !policy.stop_uses_time();
  }
  /// As plain_first_attempt, except that the policy's stop may count time:
  /// the driver then reads the call's start with start_of() before the first
  /// attempt and hands it to the engine in call_driver::started_at.
  [[nodiscard]] static bool first_attempt_before_engine(const retry_policy& policy,
                                                        const call_options& options) noexcept {
    return !(policy.needs_call_state() || options.stop.stop_possible() || options.deadline ||
             options.seed || options.report != nullptr);
  }
  /// The start of a call under `policy` when its stop counts time (one read
  /// of its clock: the coarse monotonic clock on the system clock), else min.
  [[nodiscard]] static time_point start_of(const retry_policy& policy) noexcept {
    if (!policy.stop_uses_time()) return time_point::min();
    clock* c = policy.custom_clock();
    return c != nullptr ? c->now() : detail::coarse_steady_now();
  }

  /// Before the first attempt: attempt, or done (cancelled: the stop was
  /// requested already; throttled: adaptive throttling refused it).
  [[nodiscard]] call_step start() {
    if (s_) [[unlikely]] {
      if (s_->stop.stop_requested()) [[unlikely]]
        return stop_here(stop_reason::cancelled, 0);
      if (!s_->state.admit_attempt()) [[unlikely]]
        return stop_here(stop_reason::throttled, 0);
      if (observer_ != nullptr) [[unlikely]]
        notify(event_kind::attempt_started);
    }
    return {};
  }
  /// The attempt that ran succeeded: the call ends (succeeded).
  void succeeded() noexcept {
    int made = 1;
    if (s_) [[unlikely]] {
      s_->state.record_success();
      made = s_->state.attempt();
    }
    if (observer_ != nullptr || report_ != nullptr) [[unlikely]] {
      finish(stop_reason::succeeded, made);
      return;
    }
    ended_ = true;
    attempts_made_ = made;
  }
  /// The attempt that ran failed with `v`: wait (then resume()) or done.
  [[nodiscard]] call_step failed(const verdict& v, const attempt_failure& f = {});
  /// After a wait step: `slept` is false when the wait was cut short
  /// (cancelled). Answers attempt, or done (cancelled, throttled).
  [[nodiscard]] call_step resume(bool slept);
  /// Ends the call for a reason the driver found (an attempt cancelled in
  /// flight, the deadline reached while attempts run). No effect on an
  /// ended call.
  void end(stop_reason reason) noexcept;

  // ---- concurrent drivers (hedging) ------------------------------------
  /// May another attempt start now, beside those running? Checks the stop
  /// condition, the deadline, the budget (charged on yes) and the throttle.
  /// Nullopt: yes, start it (attempt() advanced, `hedged` emitted). Else the
  /// reason none may start; the call itself goes on.
  [[nodiscard]] std::optional<stop_reason> hedge();
  /// An attempt failed while others still run, so the call goes on: the
  /// budget hears of the failure and observers get attempt_failed.
  void failed_beside_others(const verdict& v, int attempt, std::string_view cause = {});
  /// Attempt `winner` succeeded first; `hedged` when it was a hedge (not the
  /// first attempt or a retry). Observers get hedge_won for a hedge, then
  /// succeeded. Call it instead of succeeded() where attempts run side by side.
  void succeeded(int winner, bool hedged) noexcept {
    if (hedged && observer_ != nullptr) [[unlikely]] {
      event e = make_event(event_kind::hedge_won, winner);
      emit(e);
    }
    succeeded();
  }
  /// Attempt `number` was still running when another won; the driver cancels
  /// it. Observers get attempt_cancelled.
  void cancelled_by_winner(int number) const noexcept {
    if (observer_ != nullptr) [[unlikely]] {
      event e = make_event(event_kind::attempt_cancelled, number);
      emit(e);
    }
  }

  // ---- adapter events ----------------------------------------------------
  /// Emits an event of `kind` for the current attempt (an adapter's own
  /// observation, such as server_delay_ignored).
  void notify(event_kind kind, std::string_view cause = {}) const noexcept;

  // ---- the end -----------------------------------------------------------
  /// The exception a call that ended without success throws, given the last
  /// attempt's exception (or null): the nested guard's retry_error
  /// (deferred_to_outer, or overloaded inside another loop), the last
  /// exception as it was (policy.on_give_up() rethrow_last, not cancelled),
  /// a throttled_error for a first attempt refused by the throttle, or a
  /// retry_error carrying the last exception.
  [[nodiscard]] std::exception_ptr give_up_error(const std::exception_ptr& last) const;

  // ---- what drivers and attempt contexts read ----------------------------
  [[nodiscard]] const retry_policy& policy() const noexcept { return *policy_; }
  /// The attempt running or just ended (1-based).
  [[nodiscard]] int attempt() const noexcept { return s_ ? s_->state.attempt() : 1; }
  /// Attempts made, once the call ended (what the report says).
  [[nodiscard]] int attempts_made() const noexcept { return attempts_made_; }
  /// Time since the call started (0 before the clock was first read).
  [[nodiscard]] duration elapsed() const noexcept;
  /// Time left before the nearest time limit (the stop condition's, the
  /// total timeout, the caller's deadline); nullopt when there is none.
  [[nodiscard]] std::optional<duration> remaining() const noexcept;
  /// The call's deadline: total timeout and call_options::deadline (max: none).
  [[nodiscard]] time_point deadline() const noexcept {
    return s_ ? s_->deadline : time_point::max();
  }
  /// The deadline of an attempt starting now: deadline() and the policy's
  /// attempt timeout (max: none).
  [[nodiscard]] time_point attempt_deadline() const noexcept;
  /// True when a timeout or deadline applies to attempts.
  [[nodiscard]] bool timed() const noexcept { return s_ && s_->timed; }
  /// Why the call ended (succeeded until it ends).
  [[nodiscard]] stop_reason reason() const noexcept { return reason_; }
  [[nodiscard]] bool ended() const noexcept { return ended_; }
  /// When the last failure was decided.
  [[nodiscard]] time_point failed_at() const noexcept { return s_ ? s_->failed_at : time_point{}; }
  /// The caller's stop token.
  [[nodiscard]] const std::stop_token& stop_token() const noexcept {
    return s_ ? s_->stop : no_stop_;
  }
  /// The clock the call runs on (the policy's).
  [[nodiscard]] clock& time_source() const noexcept { return policy_->clock(); }
  /// Now, on the call's clock.
  [[nodiscard]] time_point now() const noexcept;
  /// True when an observer is attached (drivers describe causes only then).
  [[nodiscard]] bool observed() const noexcept { return observer_ != nullptr; }
  /// True when an enclosing retry loop runs this call.
  [[nodiscard]] bool nested() const noexcept;
  /// The per-call decision state, once the call has one (a first attempt
  /// that needs nothing else has none).
  [[nodiscard]] const retry_state* state() const noexcept { return s_ ? &s_->state : nullptr; }

 private:
  // What a call keeps beyond its first attempt: built when something needs
  // it (init(), or the first failure), so a first-try success builds nothing.
  struct state_block {
    state_block(const retry_policy& p, time_point start) noexcept : state(p, start) {}
    retry_state state;                        // its start() is start_ once started_
    time_point deadline = time_point::max();  // total timeout, call_options::deadline
    time_point failed_at{};                   // when the last failure was decided
    verdict last_verdict{};                   // the last failure's, for a deferral
    std::unique_ptr<std::string> cause;       // the last failure's cause (observed calls only)
    std::stop_token stop;                     // call_options::stop
    bool timed = false;                       // an attempt timeout or a deadline applies
  };

  // What the constructor does when a call needs its state from the start.
  void init(const call_options& o, call_driver d) {
    const retry_policy& p = *policy_;
    state_block& b = block();  // tells the budget that a call started
    if (o.stop.stop_possible()) b.stop = o.stop;
    if (o.seed) [[unlikely]]
      b.state.seed_stream(*o.seed);
    const bool total = p.has_timeouts_or_hedge() && p.total_timeout();
    if (p.has_timeouts_or_hedge() || o.deadline) {
      if (!d.concurrent && p.hedge()) [[unlikely]]
        refuse_hedging();
      b.timed = p.attempt_timeout() || total || o.deadline;
      if (o.deadline) b.deadline = *o.deadline;
    }
    // An observer that reads no elapsed time (metrics) needs no start
    // stamp: as without one, the call's time starts at its first failure.
    if (d.eager_start || (observer_ != nullptr && observer_->needs_elapsed()) ||
        report_ != nullptr || p.stop_uses_time() || total) {
      start_clock(d.started_at != time_point::min() ? d.started_at : start_stamp());
      if (total)
        b.deadline = std::min(b.deadline, detail::saturating_add(start_, *p.total_timeout()));
    }
  }
  [[noreturn]] static void refuse_hedging();
  state_block& block() {
    if (!s_) s_.emplace(*policy_, start_);
    return *s_;
  }
  void start_clock(time_point t) noexcept {
    start_ = t;
    started_ = true;
    if (s_) s_->state.restart_at(t);
  }
  void finish(stop_reason r, int attempts) noexcept;
  [[nodiscard]] event make_event(event_kind kind, int attempt) const noexcept;
  void emit(const event& e) const noexcept;
  [[nodiscard]] call_step stop_here(stop_reason r, int attempts) noexcept {
    finish(r, attempts);
    return {step_kind::done, r, {}, {}};
  }
  // The start of the call: on the system clock, the coarse monotonic clock
  // (the same time line, one tick of resolution, a fifth of the cost;
  // elapsed then reads at most one tick long, never short).
  [[nodiscard]] time_point start_stamp() const noexcept {
    clock* c = policy_->custom_clock();
    return c != nullptr ? c->now() : detail::coarse_steady_now();
  }

  const retry_policy* policy_;
  observer* observer_;
  call_report* report_;
  inline static const std::stop_token no_stop_{};
  time_point start_{};  // when started_
  std::optional<state_block> s_;
  int attempts_made_ = 0;
  stop_reason reason_ = stop_reason::succeeded;
  bool ended_ = false;
  bool started_ = false;  // start_ holds the call's start
  std::int8_t nested_ = -1;
};

/// The blocking drivers' wait: sleeps on the call's clock until `s.until`
/// (a wait step) unless the call's stop token is requested, then resumes the
/// call. Any other step is returned as it is.
call_step sleep_then_resume(retry_call& call, const call_step& s);

}  // namespace rebound
