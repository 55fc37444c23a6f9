// rebound/retry.hpp: the blocking retry loop.
//
// `rebound::retry(policy, fn)` calls `fn` until it succeeds or the policy says
// stop, sleeping on the policy's clock in between. `fn` takes no argument or
// a `const rebound::attempt&` (attempt number, elapsed, remaining time, stop
// token). Both error styles are first class:
//   - exceptions: classified by type; on give-up the last exception is
//     rethrown (default) or a rebound::retry_error is thrown
//     (`.on_give_up(rebound::give_up_mode::throw_retry_error)`);
//   - expected-like results (`has_value()`/`error()`): the last result is
//     returned as it is; pass a call_report to learn why the loop stopped.
//
//   auto run = rebound::retry(policy, [&] { return api.get_run(id); });
//
//   rebound::call_report report;
//   auto r = rebound::retry(policy, [&](const rebound::attempt& a) {
//     return api.try_get_run(id, a.remaining());
//   }, {.stop = token, .report = &report});
//   if (!r) log("gave up: {}", rebound::to_string(report.reason));
//
// Timeouts (policy.attempt_timeout, policy.total_timeout, call_options.deadline)
// are cooperative here: when one passes, the attempt's stop token
// (attempt::stop_token()) is requested, and an attempt that then fails counts
// as a transient timeout; past the total limit the call ends with
// time_exhausted. Only a `fn` taking the attempt context can see that token;
// for one that does not, no timer is armed, and the limits only stop
// back-offs (no sleep ends past the deadline). The async loop (async.hpp)
// cancels attempts outright.
//
// Cancellation: a stop request ends a back-off sleep at once; it is checked
// before the first attempt and after every sleep, and no attempt starts after
// it. A call cancelled before any attempt ran, or after an attempt that threw,
// throws retry_error with reason cancelled.
//
// Cost: with no observer and no report, the success path allocates nothing.
// When the policy has no time-based stop, no observer and `fn` takes no
// attempt context, the clock is first read when an attempt fails (so
// `elapsed` then starts at the end of the first attempt).
#pragma once

#include <atomic>
#include <concepts>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <type_traits>
#include <utility>

#include "rebound/classify.hpp"
#include "rebound/clock.hpp"
#include "rebound/detail/coarse_clock.hpp"
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

class async_attempt;

namespace detail {
class loop;
std::string describe(const std::exception_ptr& e);

/// How many blocking retry loops are running an attempt on this thread.
inline thread_local int loop_depth = 0;
struct depth_guard {
  depth_guard() noexcept { ++loop_depth; }
  ~depth_guard() { --loop_depth; }
  depth_guard(const depth_guard&) = delete;
  depth_guard& operator=(const depth_guard&) = delete;
};

/// What a call that ends without success (not nested) throws: the last
/// exception as it was (give_up_mode::rethrow_last, unless cancelled), or a
/// retry_error carrying it. One rule for every loop (blocking, async, HTTP).
std::exception_ptr give_up_error(const retry_policy& p, stop_reason reason, int attempts,
                                 duration elapsed, const std::exception_ptr& last);

/// The verdict on an exception: the built-in kinds first (a nested loop's
/// deferral or overload, local throttling, an open circuit), then the policy's rules.
verdict classify_exception(const retry_policy& p, const std::exception_ptr& e);
template <class T>
std::string describe_value(const T& v) {
  if constexpr (requires { std::string(v.message()); }) {
    return std::string(v.message());
  } else if constexpr (requires { std::string(v.what()); }) {
    return std::string(v.what());
  } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    return std::string(std::string_view(v));
  } else if constexpr (std::is_arithmetic_v<T>) {
    return std::to_string(v);
  } else {
    return "error value";
  }
}
template <class R>
std::string describe_result(const R& r) {
  if constexpr (expected_like<R>) {
    if (!r.has_value()) return describe_value(r.error());
    return "result rejected by the policy";
  } else {
    return "result rejected by the policy";
  }
}
}  // namespace detail

/// The context an attempt may take: which attempt it is and how much time is left.
class attempt {
 public:
  /// 1 for the first attempt.
  [[nodiscard]] int number() const noexcept;
  /// The policy's attempt limit, when it has one.
  [[nodiscard]] std::optional<int> max_attempts() const noexcept;
  /// Time since the first attempt started.
  [[nodiscard]] duration elapsed() const noexcept;
  /// Time left before the policy's time limit (after_elapsed, before_elapsed,
  /// deadline), or nullopt when the policy has none. Never negative.
  [[nodiscard]] std::optional<duration> remaining() const noexcept;
  /// Requested when the call is cancelled, and when the attempt's or the
  /// call's time limit passes (policy timeouts, call_options::deadline).
  [[nodiscard]] std::stop_token stop_token() const noexcept;

 private:
  friend class detail::loop;
  explicit attempt(const detail::loop* l) noexcept : loop_(l) {}
  const detail::loop* loop_;
};

namespace detail {

// The non-template engine behind retry(): reads the clock, decides, sleeps,
// notifies. Not API.
class loop {
 public:
  /// `nested`: -1 when this thread's loop_depth tells whether an enclosing
  /// loop is running (the blocking loop); 0 or 1 when the caller knows (async).
  /// `blocking`: the blocking retry(), which refuses hedging policies.
  loop(const retry_policy& p, const call_options& o, bool eager_start, int nested = -1,
       bool blocking = true)
      : policy_(p),
        options_(o),
        clock_(p.custom_clock()),
        observer_(p.observer().get()),
        nested_(static_cast<std::int8_t>(nested)) {
    // The per-call state is built on the first failure, unless something
    // needs it from the start (a time limit, an observer, a report, an
    // attempt context, a budget or throttle): a first-try success then
    // builds nothing.
    const bool total = p.has_timeouts_or_hedge() && p.total_timeout();
    if (p.has_timeouts_or_hedge() || o.deadline) [[unlikely]] {
      if (blocking && p.hedge()) throw_hedge_unsupported();
      const bool timed = p.attempt_timeout() || total || o.deadline;
      // Only an attempt that takes the context can see its stop token; for
      // one that cannot, arming a timer would be cost without effect.
      watching_ = timed && eager_start;
      if (o.deadline) deadline_ = *o.deadline;
    }
    if (eager_start || observer_ != nullptr || options_.report != nullptr || p.stop_uses_time() ||
        total) {
      state_.emplace(p, start_now());
      started_ = true;
      if (total) [[unlikely]]
        init_deadline();
    } else if (p.has_overload_hooks()) [[unlikely]] {
      state_.emplace(p, time_point{});
    }
  }

  /// Before the first attempt. False when already cancelled (then the end is
  /// recorded and reason() is cancelled).
  bool begin() {
    if (options_.stop.stop_requested()) [[unlikely]] {
      end(stop_reason::cancelled, 0);
      return false;
    }
    if (state_ && !state_->admit_attempt()) [[unlikely]]
      throw_throttled();
    if (observer_ != nullptr) [[unlikely]]
      notify_started();
    return true;
  }
  /// After a success.
  void succeeded() noexcept {
    if (state_) [[unlikely]] {
      state_->record_success();
      if (observer_ != nullptr || options_.report != nullptr)
        end(stop_reason::succeeded, state_->attempt());
    }
  }
  /// After a failure: decides, notifies, sleeps. True: run the next attempt.
  /// False: the call ends with reason().
  bool failed(const verdict& v, std::string cause);
  /// The first half of failed(): decides and notifies, without sleeping.
  /// When it says retry, sleep until failed_at() + delay, then call resume().
  /// `timed_out`: the attempt was cut short by its timeout (the verdict
  /// becomes verdict::timed_out()).
  decision decide_failure(const verdict& v, std::string cause, bool timed_out);
  /// The second half: `slept` false when the wait was cancelled. True: run
  /// the next attempt.
  bool resume(bool slept);
  [[nodiscard]] time_point failed_at() const noexcept {
    return failure_ ? failure_->at : time_point{};
  }
  /// Records the end of the call (report, gave_up/succeeded event).
  void end(stop_reason r, int attempts) noexcept;
  [[nodiscard]] retry_state* state() noexcept { return state_ ? &*state_ : nullptr; }
  [[nodiscard]] time_point deadline() const noexcept { return deadline_; }
  [[nodiscard]] observer* watcher() const noexcept { return observer_; }
  [[nodiscard]] event make_event(event_kind kind, int attempt) const noexcept;
  void notify_started() noexcept;
  /// Time since the call started (0 before the state exists).
  [[nodiscard]] duration elapsed() const noexcept;
  [[nodiscard]] bool nested() const noexcept { return nested_ < 0 ? loop_depth > 0 : nested_ != 0; }
  [[nodiscard]] bool observed() const noexcept { return observer_ != nullptr; }

  /// Runs one attempt of `fn`, with an attempt context when it takes one.
  template <class F>
  decltype(auto) invoke(F& fn) {
    const depth_guard nested_loops_see_this_one;
    if constexpr (std::invocable<F&, const attempt&>) {
      // Only an attempt that takes the context can see the timer's stop token.
      if (watching_) [[unlikely]] {
        watch w;  // this attempt's timer, on this stack frame
        arm_watch(w);
        const disarm_on_exit disarm{this, &w};
        return call(fn);
      }
    }
    return call(fn);
  }
  template <class F>
  decltype(auto) call(F& fn) const {
    if constexpr (std::invocable<F&, const attempt&>) {
      return std::invoke(fn, attempt(this));
    } else {
      return std::invoke(fn);
    }
  }

  /// Ends a call whose last attempt threw `e`.
  [[noreturn]] void give_up(const std::exception_ptr& e) const;
  /// Ends a call cancelled before its first attempt.
  [[noreturn]] void throw_cancelled_before_start() const;
  /// Ends a call whose first attempt adaptive throttling refused.
  [[noreturn]] void throw_throttled();
  /// For the blocking loop: a hedging policy is refused.
  [[noreturn]] static void throw_hedge_unsupported();

  [[nodiscard]] stop_reason reason() const noexcept { return reason_; }
  /// The time a call starts. On the system clock this is the coarse
  /// monotonic clock (same time line, one tick of resolution, a fifth of the
  /// cost): elapsed then reads at most one tick long, never short.
  [[nodiscard]] time_point start_now() const noexcept {
    return clock_ != nullptr ? clock_->now() : detail::coarse_steady_now();
  }
  [[nodiscard]] time_point now() const noexcept {
    return clock_ != nullptr
               ? clock_->now()
               : std::chrono::time_point_cast<duration>(std::chrono::steady_clock::now());
  }

 private:
  friend class rebound::attempt;
  // The timer behind attempt and total timeouts: requests the attempt's stop
  // token when it fires; linked to the caller's token.
  struct watch {
    struct forward {
      std::stop_source* to;
      void operator()() const noexcept { to->request_stop(); }
    };
    std::stop_source source;
    std::optional<std::stop_callback<forward>> link;
    std::uint64_t call = 0;
    std::atomic<bool> fired{false};
  };
  struct disarm_on_exit {
    loop* l;
    watch* w;
    disarm_on_exit(loop* owner, watch* armed) noexcept : l(owner), w(armed) {}
    ~disarm_on_exit() { l->disarm_watch(*w); }
    disarm_on_exit(const disarm_on_exit&) = delete;
    disarm_on_exit& operator=(const disarm_on_exit&) = delete;
  };
  friend class rebound::async_attempt;
  void init_deadline() noexcept;
  void arm_watch(watch& w);
  void disarm_watch(watch& w) noexcept;

  const retry_policy& policy_;
  const call_options& options_;
  clock* clock_;
  observer* observer_;
  std::optional<retry_state> state_;
  bool started_ = false;
  stop_reason reason_ = stop_reason::succeeded;
  bool watching_ = false;  // a timeout applies and attempts see the timer's stop token
  std::int8_t nested_ = -1;
  // What the last failure was; set on the failure path only, so a first-try
  // success constructs and destroys nothing but an empty optional.
  struct failure_info {
    verdict last_verdict;
    std::string cause;
    time_point at;  // when the last failure was decided
  };
  std::optional<failure_info> failure_;
  int attempts_made_ = 0;
  time_point deadline_ = time_point::max();  // total_timeout and options.deadline
  // The running attempt's timer, while it runs (it lives on invoke()'s
  // frame: a call without timeouts owns nothing to destroy).
  const watch* current_watch_ = nullptr;
  bool last_timed_out_ = false;  // the last attempt's timer fired
};

}  // namespace detail

/// The result type of retry(policy, fn).
template <class F>
using retry_result_t =
    std::remove_cvref_t<typename std::conditional_t<std::invocable<F&, const attempt&>,
                                                    std::invoke_result<F&, const attempt&>,
                                                    std::invoke_result<F&>>::type>;

/// Calls `fn` under `policy`. See the header comment.
template <class F>
requires(std::invocable<F&> || std::invocable<F&, const attempt&>)
    retry_result_t<F> retry(const retry_policy& policy, F&& fn, const call_options& options) {
  using R = retry_result_t<F>;
  constexpr bool takes_attempt = std::invocable<F&, const attempt&>;
  detail::loop core(policy, options, takes_attempt);
  if (!core.begin()) core.throw_cancelled_before_start();
  for (;;) {
    std::exception_ptr error;
    if constexpr (std::is_void_v<R>) {
      try {
        core.invoke(fn);
      } catch (...) {
        error = std::current_exception();
      }
      if (!error) [[likely]] {
        core.succeeded();
        return;
      }
    } else {
      std::optional<R> result;
      try {
        result.emplace(core.invoke(fn));
      } catch (...) {
        error = std::current_exception();
      }
      if (!error) [[likely]] {
        const verdict v = policy.classifier().classify_result(*result);
        if (v.kind == verdict_kind::success) [[likely]] {
          core.succeeded();
          return std::move(*result);
        }
        if (core.failed(v, core.observed() ? detail::describe_result(*result) : std::string()))
          continue;
        return std::move(*result);
      }
    }
    const verdict v = detail::classify_exception(policy, error);
    if (core.failed(v, core.observed() ? detail::describe(error) : std::string())) continue;
    core.give_up(error);
  }
}

/// Calls `fn` under `policy` until it succeeds, the policy stops, or `stop` is requested.
template <class F>
requires(std::invocable<F&> ||
         std::invocable<F&, const attempt&>) retry_result_t<F> retry(const retry_policy& policy,
                                                                     F&& fn, std::stop_token stop) {
  const call_options options{.stop = std::move(stop)};
  return retry(policy, std::forward<F>(fn), options);
}

/// Calls `fn` under `policy`.
template <class F>
requires(std::invocable<F&> ||
         std::invocable<F&, const attempt&>) retry_result_t<F> retry(const retry_policy& policy,
                                                                     F&& fn) {
  const call_options options{};
  return retry(policy, std::forward<F>(fn), options);
}

}  // namespace rebound
