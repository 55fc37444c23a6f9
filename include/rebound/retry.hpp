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
// The loop is a thin driver of the call engine (rebound/call.hpp): the
// engine decides every step; this file only calls `fn`, sleeps, and arms the
// attempt timer.
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
#include <exception>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <type_traits>
#include <utility>

#include "rebound/call.hpp"
#include "rebound/classify.hpp"
#include "rebound/clock.hpp"
#include "rebound/policy.hpp"
#include "rebound/stop.hpp"

namespace rebound {

namespace detail {
class attempt_timer;
}

/// The context an attempt may take: which attempt it is and how much time is left.
class attempt {
 public:
  /// 1 for the first attempt.
  [[nodiscard]] int number() const noexcept { return call_->attempt(); }
  /// The policy's attempt limit, when it has one.
  [[nodiscard]] std::optional<int> max_attempts() const noexcept {
    return call_->policy().stop().max_attempts();
  }
  /// Time since the first attempt started.
  [[nodiscard]] duration elapsed() const noexcept { return call_->elapsed(); }
  /// Time left before the policy's time limit (after_elapsed, before_elapsed,
  /// total timeout, deadline), or nullopt when there is none. Never negative.
  [[nodiscard]] std::optional<duration> remaining() const noexcept { return call_->remaining(); }
  /// Requested when the call is cancelled, and when the attempt's or the
  /// call's time limit passes (policy timeouts, call_options::deadline).
  [[nodiscard]] std::stop_token stop_token() const noexcept { return *stop_; }

  /// An attempt of `call` whose stop token is `*stop` (both must outlive it).
  attempt(const retry_call& call, const std::stop_token& stop) noexcept
      : call_(&call), stop_(&stop) {}

 private:
  const retry_call* call_;
  const std::stop_token* stop_;
};

/// The result type of retry(policy, fn).
template <class F>
using retry_result_t =
    std::remove_cvref_t<typename std::conditional_t<std::invocable<F&, const attempt&>,
                                                    std::invoke_result<F&, const attempt&>,
                                                    std::invoke_result<F&>>::type>;

/// Calls `fn` under `policy`. See the header comment.
template <class F>
requires(std::invocable<F&> || std::invocable<F&, const attempt&>)
    retry_result_t<F> retry(const retry_policy& policy, F&& fn, const call_options& options);

/// Calls `fn` under `policy` until it succeeds, the policy stops, or `stop` is requested.
template <class F>
requires(std::invocable<F&> ||
         std::invocable<F&, const attempt&>) retry_result_t<F> retry(const retry_policy& policy,
                                                                     F&& fn, std::stop_token stop);

/// Calls `fn` under `policy`.
template <class F>
requires(std::invocable<F&> ||
         std::invocable<F&, const attempt&>) retry_result_t<F> retry(const retry_policy& policy,
                                                                     F&& fn);

// ---- implementation ----------------------------------------------------------

namespace detail {

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
  }
  return "result rejected by the policy";
}

/// The blocking loop's attempt timer: requests the attempt's own stop token
/// (linked to the caller's) when the attempt timeout or the call's deadline
/// passes. It lives on the attempt's stack frame.
class attempt_timer {
 public:
  explicit attempt_timer(const retry_call& call);
  ~attempt_timer() { disarm(); }
  attempt_timer(const attempt_timer&) = delete;
  attempt_timer& operator=(const attempt_timer&) = delete;
  /// Cancels the timer (waits for a callback already running). Idempotent.
  void disarm() noexcept;
  [[nodiscard]] const std::stop_token& token() const noexcept { return token_; }
  [[nodiscard]] bool fired() const noexcept { return fired_.load(std::memory_order_acquire); }

 private:
  struct forward {
    std::stop_source* to;
    void operator()() const noexcept { to->request_stop(); }
  };
  clock& clock_;
  std::stop_source source_;
  std::stop_token token_;
  std::optional<std::stop_callback<forward>> link_;
  std::uint64_t id_ = 0;
  std::atomic<bool> fired_{false};
};

/// Runs one attempt of `fn` on this thread, with an attempt context when it
/// takes one. `timed_out` says whether the attempt's timer fired (and the
/// caller did not cancel).
template <class F>
decltype(auto) run_attempt(const retry_call& call, F& fn, bool& timed_out) {
  const depth_guard nested_loops_see_this_one;
  if constexpr (std::invocable<F&, const attempt&>) {
    // Only an attempt that takes the context can see the timer's stop token.
    if (call.timed()) [[unlikely]] {
      attempt_timer timer(call);
      struct on_exit {
        attempt_timer& t;
        bool& out;
        const retry_call& c;
        ~on_exit() {
          t.disarm();
          out = t.fired() && !c.stop_token().stop_requested();
        }
      } note{timer, timed_out, call};
      return std::invoke(fn, attempt(call, timer.token()));
    }
    return std::invoke(fn, attempt(call, call.stop_token()));
  } else {
    return std::invoke(fn);
  }
}

}  // namespace detail

namespace detail {

/// The first attempt's outcome, when it ran before the engine was made.
template <class R>
struct first_outcome {
  std::exception_ptr error;
  std::optional<std::conditional_t<std::is_void_v<R>, bool, R>> result;
  time_point started_at = time_point::min();  // the call's start, if its stop counts time
};

/// The blocking loop: the engine's steps, each attempt run on this thread.
/// With `first`, the first attempt already ran (and did not succeed).
template <bool HasFirst, class F>
retry_result_t<F> retry_loop(const retry_policy& policy, F& fn, const call_options& options,
                             [[maybe_unused]] first_outcome<retry_result_t<F>>* first) {
  using R = retry_result_t<F>;
  retry_call call(policy, options,
                  {.eager_start = std::invocable<F&, const attempt&>,
                   .started_at = HasFirst ? first->started_at : time_point::min()});
  if (call.start().done()) [[unlikely]]
    std::rethrow_exception(call.give_up_error(nullptr));
  [[maybe_unused]] bool first_pending = HasFirst;
  for (;;) {
    std::exception_ptr error;
    bool timed_out = false;
    if constexpr (std::is_void_v<R>) {
      if (HasFirst && first_pending) {  // the first attempt ran before the engine, and failed
        first_pending = false;
        error = std::move(first->error);
      } else {
        try {
          detail::run_attempt(call, fn, timed_out);
        } catch (...) {
          error = std::current_exception();
        }
      }
      if (!error) [[likely]] {
        call.succeeded();
        return;
      }
    } else {
      std::optional<R> result;
      if (HasFirst && first_pending) {  // its rejected result, or its error
        first_pending = false;
        error = std::move(first->error);
        if (first->result) result.emplace(std::move(*first->result));
      } else {
        try {
          result.emplace(detail::run_attempt(call, fn, timed_out));
        } catch (...) {
          error = std::current_exception();
        }
      }
      if (!error) [[likely]] {
        const verdict v = policy.classifier().classify_result(*result);
        if (v.kind == verdict_kind::success) [[likely]] {
          call.succeeded();
          return std::move(*result);
        }
        const std::string cause =
            call.observed() ? detail::describe_result(*result) : std::string();
        const call_step next =
            sleep_then_resume(call, call.failed(v, {.cause = cause, .timed_out = timed_out}));
        if (next.attempt()) continue;
        return std::move(*result);
      }
    }
    const std::string cause = call.observed() ? detail::describe(error) : std::string();
    const call_step next = sleep_then_resume(
        call,
        call.failed(classify_exception(policy, error), {.cause = cause, .timed_out = timed_out}));
    if (next.attempt()) continue;
    std::rethrow_exception(call.give_up_error(error));
  }
}

/// The first attempt, run before the engine is made (see retry()). With
/// Stamped (the stop counts time) the call's start is read first and handed
/// to the engine; otherwise nothing reads the clock before a failure.
template <bool Stamped, class F>
retry_result_t<F> first_then_engine(const retry_policy& policy, F& fn,
                                    const call_options& options) {
  using R = retry_result_t<F>;
  first_outcome<R> first;
  if constexpr (Stamped) first.started_at = retry_call::start_of(policy);
  try {
    const depth_guard nested_loops_see_this_one;
    if constexpr (std::is_void_v<R>) {
      std::invoke(fn);
      return;
    } else {
      first.result.emplace(std::invoke(fn));
    }
  } catch (...) {
    first.error = std::current_exception();
  }
  if constexpr (!std::is_void_v<R>) {
    if (!first.error && policy.classifier().classify_result(*first.result).kind ==
                            verdict_kind::success) [[likely]] {
      return std::move(*first.result);
    }
  }
  return retry_loop<true>(policy, fn, options, &first);
}

}  // namespace detail

template <class F>
requires(std::invocable<F&> || std::invocable<F&, const attempt&>)
    retry_result_t<F> retry(const retry_policy& policy, F&& fn, const call_options& options) {
  // When nothing needs the engine before the first attempt's outcome (see
  // retry_call::first_attempt_before_engine), the attempt runs first and the
  // engine is made only at a failure: a first-try success then costs the
  // attempt, the nested-loop guard, the result check, and for a stop that
  // counts time one read of the clock (the call's start, handed to the
  // engine). The engine would have done nothing else before that failure,
  // so the steps it takes are the same.
  if constexpr (!std::invocable<F&, const attempt&>) {
    if (retry_call::first_attempt_before_engine(policy, options)) [[likely]] {
      if (policy.stop_uses_time()) return detail::first_then_engine<true>(policy, fn, options);
      return detail::first_then_engine<false>(policy, fn, options);
    }
  }
  return detail::retry_loop<false>(policy, fn, options, nullptr);
}

template <class F>
requires(std::invocable<F&> ||
         std::invocable<F&, const attempt&>) retry_result_t<F> retry(const retry_policy& policy,
                                                                     F&& fn, std::stop_token stop) {
  const call_options options{.stop = std::move(stop)};
  return retry(policy, std::forward<F>(fn), options);
}

template <class F>
requires(std::invocable<F&> ||
         std::invocable<F&, const attempt&>) retry_result_t<F> retry(const retry_policy& policy,
                                                                     F&& fn) {
  const call_options options{};
  return retry(policy, std::forward<F>(fn), options);
}

}  // namespace rebound
