// rebound/async.hpp: the asynchronous retry loop, on standalone Asio and C++20 coroutines.
//
// `fn` returns an awaitable (`asio::awaitable<T>`); it may take a
// `const rebound::async_attempt&` (number, elapsed, remaining time, stop
// token, hedged or not). A completion-handler operation becomes one by
// passing `asio::use_awaitable` as its token. Back-offs wait on a timer of the
// operation's executor: no thread blocks.
//
//   // In a coroutine:
//   auto body = co_await rebound::async_retry(policy, [&]() -> asio::awaitable<std::string> {
//     co_return co_await fetch(url);
//   });
//
//   // From anywhere, with any completion token (callbacks, use_future, ...):
//   rebound::async_retry(io.get_executor(), policy, fn, {}, [](std::exception_ptr e, std::string
//   body) {
//     ...
//   });
//   std::future<std::string> f = rebound::async_retry(io.get_executor(), policy, fn, {},
//   asio::use_future);
//
// An `fn` taking a completion token runs as a composed operation (no
// coroutine) and is kept at one address until the call ends;
// rebound::relocatable(fn) lets one that holds nothing an operation reads
// later move with the operation instead (one allocation less per call).
//
// Outcomes are as with the blocking retry(): a value, or the last exception
// rethrown (or retry_error, per policy.on_give_up), or for expected-like
// results the last result. Token forms complete with (std::exception_ptr, T),
// as asio::co_spawn does, so T must be default-constructible there.
//
// Cancellation, by an Asio cancellation slot (terminal cancellation, e.g.
// asio::bind_cancellation_slot or awaitable operators) or by
// async_options::stop: a pending back-off ends at once, the attempt in flight
// is cancelled, no attempt is retried after it, and the call ends with
// retry_error (reason cancelled), unless the cancelled attempt still produced
// a value, which is returned.
//
// Timeouts: policy.attempt_timeout cancels an attempt that runs too long and
// counts it as a transient timeout; policy.total_timeout and
// async_options::deadline cancel the attempt in flight at the limit and end
// the call with time_exhausted.
//
// Hedging (policy.hedge, see hedge.hpp): more attempts start while the first
// is still running; the first success wins, the others are cancelled.
//
// Nesting: a loop inside another loop's attempt learns so from
// async_options::parent (the outer attempt's context), not from a
// thread-local: coroutines move between threads and interleave on one.
//
// Lifetimes: the policy and `fn` are held by reference and by value
// respectively; the policy must outlive the operation (a temporary is fine
// in `co_await async_retry(policy, ...)`, which ends within the expression).
//
// Threads: an operation may run on a multi-threaded io_context. Timeouts,
// stop tokens and hedging run the attempts on a strand of the executor.
//
// Simulated time: with policy.clock(simulated_clock), waits are scheduled on
// that clock; rebound::testing::run_simulated (testing/async.hpp) runs an
// io_context and moves the clock to each next wake-up.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <concepts>
#include <deque>
#include <exception>
#include <list>
#include <memory>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>
#include <variant>

#include "rebound/detail/saturate.hpp"
#include "rebound/retry.hpp"

namespace rebound {

class async_attempt;

/// Per-call options of async_retry (designated initializers).
struct async_options {
  std::stop_token stop{};         ///< cancels the call (like an Asio terminal cancellation)
  call_report* report = nullptr;  ///< filled in when the call ends
  /// A deadline for the whole call on the policy's clock: the attempt in
  /// flight is cancelled there and the call ends with time_exhausted.
  std::optional<time_point> deadline{};
  /// The attempt of an enclosing retry loop this call runs in, if any (for the
  /// nested-retry guard: policy.nesting()).
  const async_attempt* parent = nullptr;
};

/// What an asynchronous attempt may look at.
class async_attempt {
 public:
  /// An attempt of `call` (which must outlive it): `number` (1 for the
  /// first; hedges and retries count up from there), started as a hedge or
  /// not, `depth` retry loops deep, cancelled through `stop`, and due to end
  /// by `own_deadline` (its attempt timeout or the call's deadline).
  async_attempt(const retry_call& call, int number, bool hedged, int depth, std::stop_token stop,
                time_point own_deadline = time_point::max()) noexcept
      : call_(&call),
        number_(number),
        hedged_(hedged),
        depth_(depth),
        stop_(std::move(stop)),
        own_deadline_(own_deadline) {}

  /// 1 for the first attempt; hedges and retries count up from there.
  [[nodiscard]] int number() const noexcept { return number_; }
  /// True for an attempt started as a hedge (while another was running).
  [[nodiscard]] bool hedged() const noexcept { return hedged_; }
  /// The policy's attempt limit, when it has one.
  [[nodiscard]] std::optional<int> max_attempts() const noexcept {
    return call_->policy().stop().max_attempts();
  }
  /// Time since the call started.
  [[nodiscard]] duration elapsed() const noexcept { return call_->elapsed(); }
  /// Time left before the nearest of the policy's time limits, the call's
  /// deadline and this attempt's timeout; nullopt when there is none.
  [[nodiscard]] std::optional<duration> remaining() const noexcept {
    std::optional<duration> left = call_->remaining();
    if (own_deadline_ != time_point::max()) {
      const time_point now = call_->now();
      const duration own = own_deadline_ > now ? own_deadline_ - now : duration::zero();
      left = left ? std::min(*left, own) : own;
    }
    return left;
  }
  /// Requested when the call is cancelled or this attempt times out, for
  /// work that is not an Asio operation (which is cancelled directly).
  [[nodiscard]] std::stop_token stop_token() const noexcept { return stop_; }
  /// How many retry loops enclose this attempt (1: an outermost loop).
  [[nodiscard]] int depth() const noexcept { return depth_; }

 private:
  const retry_call* call_;
  int number_;
  bool hedged_;
  int depth_;
  std::stop_token stop_;
  time_point own_deadline_;
};

namespace detail {

template <class F>
concept takes_async_attempt = std::invocable<F&, const async_attempt&>;

template <class F>
using async_fn_awaitable_t =
    std::remove_cvref_t<typename std::conditional_t<takes_async_attempt<F>,
                                                    std::invoke_result<F&, const async_attempt&>,
                                                    std::invoke_result<F&>>::type>;

template <class A>
struct awaitable_value;
template <class T, class E>
struct awaitable_value<asio::awaitable<T, E>> {
  using type = T;
};

template <class F>
decltype(auto) invoke_async(F& fn, const async_attempt& a) {
  if constexpr (takes_async_attempt<F>) {
    return std::invoke(fn, a);
  } else {
    return std::invoke(fn);
  }
}

/// The value an attempt produced, or its exception. void attempts hold a monostate.
template <class T>
struct attempt_outcome {
  using value_type = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
  std::exception_ptr error;
  std::optional<value_type> value;
};

/// Awaits `a` and captures its outcome; never throws. (co_spawn needs a
/// default-constructible result; an outcome is one whatever T is.)
template <class T>
asio::awaitable<attempt_outcome<T>> to_outcome(asio::awaitable<T> a) {
  attempt_outcome<T> out;
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(a);
      out.value.emplace();
    } else {
      out.value.emplace(co_await std::move(a));
    }
  } catch (...) {
    out.error = std::current_exception();
  }
  co_return out;
}

/// Waits until `at` on a clock that is not the system clock: the clock calls
/// back (simulated time moves, or the timer thread fires) and a timer set to
/// "never" is cancelled to wake the coroutine. Ends early on cancellation.
/// Returns true when `at` was reached.
inline asio::awaitable<bool> wait_on_clock(clock& c, time_point at) {
  auto ex = co_await asio::this_coro::executor;
  auto timer = std::make_shared<asio::steady_timer>(ex, asio::steady_timer::time_point::max());
  const std::uint64_t id =
      c.call_at(at, [timer, ex] { asio::post(ex, [timer] { timer->cancel(); }); });
  asio::error_code ec;
  try {
    co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  } catch (...) {
    c.cancel_call(id);
    throw;
  }
  c.cancel_call(id);
  co_return c.now() >= at;
}

/// Waits until `at` on a custom clock (the system clock's waits are a plain
/// steady_timer, inline in the loop). True when reached; false when
/// cancelled (by the coroutine's cancellation slot).
inline asio::awaitable<bool> wait_until(clock& custom, time_point at) {
  try {
    for (;;) {
      const bool reached = co_await wait_on_clock(custom, at);
      if (reached) co_return true;
      auto cs = co_await asio::this_coro::cancellation_state;
      if (cs.cancelled() != asio::cancellation_type::none) co_return false;
    }
  } catch (const std::system_error&) {
    co_return false;  // cancelled before the wait began (throw_if_cancelled)
  }
}

/// Ends a call that gave up: the last exception (or the give-up error),
/// else the last rejected result.
template <class T, class R>
T finish_failure(const retry_call& call, std::optional<R>& result,
                 const std::exception_ptr& error) {
  if (error || !result) std::rethrow_exception(call.give_up_error(error));
  if constexpr (!std::is_void_v<T>) return std::move(*result);
}

/// The engine's step after a failed attempt (a plain function, so its
/// temporaries stay off the coroutine frame).
template <class T, class R>
call_step after_async_failure(retry_call& call, const std::exception_ptr& error,
                              const std::optional<R>& last, bool cancelled) {
  if (cancelled) {
    // A cancelled attempt is never retried.
    call.end(stop_reason::cancelled);
    return {step_kind::done, stop_reason::cancelled, {}, {}};
  }
  const retry_policy& p = call.policy();
  verdict v;
  std::string cause;
  if (error) {
    v = classify_exception(p, error);
    if (call.observed()) cause = describe(error);
  } else {
    if constexpr (!std::is_void_v<T>) {
      v = p.classifier().classify_result(*last);
      if (call.observed()) cause = describe_result(*last);
    }
  }
  return call.failed(v, {.cause = cause});
}

/// The loop when nothing runs concurrently with an attempt: each attempt is
/// awaited directly, so Asio cancellation reaches it through this coroutine.
/// When nothing needs the clock before the first attempt ends (no observer,
/// report, time-based stop or attempt context), a first-try success reads no
/// clock.
///
/// `first`, when not null, is the outcome of a first attempt that already
/// ran and failed (retry_plain_first): the loop starts at its failure.
template <class T, class F>
asio::awaitable<T> retry_direct(const retry_policy& p, F fn, async_options o, int depth,
                                attempt_outcome<T>* first = nullptr,
                                time_point started_at = time_point::min()) {
  const call_options co{.report = o.report};
  constexpr bool takes_attempt = takes_async_attempt<F>;
  retry_call call(p, co,
                  {.eager_start = takes_attempt,
                   .nested = static_cast<std::int8_t>(depth > 1),
                   .started_at = started_at});
  if (call.start().done()) [[unlikely]]
    std::rethrow_exception(call.give_up_error(nullptr));
  using value_t = typename attempt_outcome<T>::value_type;
  std::optional<value_t> last;  // the last rejected result (expected-like)
  std::exception_ptr error;
  for (;;) {
    error = nullptr;
    if (first != nullptr) {  // it ran before the engine was made, and failed
      error = std::move(first->error);
      if constexpr (!std::is_void_v<T>) {
        if (first->value) last.emplace(std::move(*first->value));
      }
      first = nullptr;
    } else {
      try {
        if constexpr (takes_attempt) {
          const async_attempt ctx(call, call.attempt(), false, depth, {});
          if constexpr (std::is_void_v<T>) {
            co_await std::invoke(fn, ctx);
          } else {
            last.emplace(co_await std::invoke(fn, ctx));
          }
        } else {
          if constexpr (std::is_void_v<T>) {
            co_await std::invoke(fn);
          } else {
            last.emplace(co_await std::invoke(fn));
          }
        }
        if constexpr (std::is_void_v<T>) {
          call.succeeded();
          co_return;
        } else {
          if (p.classifier().classify_result(*last).kind == verdict_kind::success) [[likely]] {
            call.succeeded();
            co_return std::move(*last);
          }
        }
      } catch (...) {
        error = std::current_exception();
      }
    }
    auto cs = co_await asio::this_coro::cancellation_state;
    const call_step step =
        after_async_failure<T>(call, error, last, cs.cancelled() != asio::cancellation_type::none);
    if (step.wait()) {
      bool slept = false;
      if (clock* custom = p.custom_clock()) {
        slept = co_await wait_until(*custom, step.until);
      } else {
        // Inline rather than through wait_until: a pending back-off is this
        // frame and one timer operation, nothing more.
        try {
          asio::steady_timer timer(co_await asio::this_coro::executor,
                                   asio::steady_timer::time_point(step.until.time_since_epoch()));
          asio::error_code ec;
          co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
          slept = !ec;
        } catch (const std::system_error&) {
          slept = false;  // cancelled before the wait began
        }
      }
      if (call.resume(slept).attempt()) continue;
    }
    co_return finish_failure<T>(call, last, error);
  }
}

/// The loop when the first attempt needs nothing from the engine (see
/// retry_call::first_attempt_before_engine; `fn` takes no attempt context):
/// the attempt runs before the engine is made, and a first-try success makes
/// none. At a failure retry_direct takes over from that outcome (and from
/// the call's start, when the stop counts time), so the engine decides every
/// step, as in the blocking retry().
template <class T, class F>
asio::awaitable<T> retry_plain_first(const retry_policy& p, F fn, int depth) {
  const time_point started_at = retry_call::start_of(p);
  attempt_outcome<T> first;
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::invoke(fn);
      co_return;
    } else {
      first.value.emplace(co_await std::invoke(fn));
    }
  } catch (...) {
    first.error = std::current_exception();
  }
  if constexpr (std::is_void_v<T>) {
    co_await retry_direct<T>(p, std::move(fn), async_options{}, depth, &first, started_at);
  } else {
    if (!first.error && p.classifier().classify_result(*first.value).kind == verdict_kind::success)
        [[likely]] {
      co_return std::move(*first.value);
    }
    co_return co_await retry_direct<T>(p, std::move(fn), async_options{}, depth, &first,
                                       started_at);
  }
}

}  // namespace detail

/// Wraps an `fn` taking a completion token that is safe to move between
/// attempts: nothing it starts reads `fn`, or points into it, once its
/// initiation has returned (for example a lambda that captures references
/// only). async_retry's token form then keeps it inside the composed
/// operation instead of in a block of its own, and a first-try success
/// allocates nothing. A lambda that holds a buffer the operation writes from
/// must not be wrapped. Trivially copyable `fn` only, so a move leaves the
/// original as it was.
template <class F>
struct relocatable_fn {
  static_assert(std::is_trivially_copyable_v<F>,
                "rebound::relocatable: fn must be trivially copyable (capture references, "
                "pointers or plain values)");
  F fn;
  template <class Token>
  decltype(auto) operator()(Token&& token) {
    return std::invoke(fn, std::forward<Token>(token));
  }
};

/// Marks `fn` as safe to move with the operation (see relocatable_fn).
template <class F>
relocatable_fn<std::decay_t<F>> relocatable(F&& fn) {
  return {std::forward<F>(fn)};
}

}  // namespace rebound

#include "rebound/detail/async_hedged.hpp"
#include "rebound/detail/async_lean.hpp"

namespace rebound {
namespace detail {
/// The concurrent loop, on a strand of the caller's executor.
template <class T, class F>
asio::awaitable<T> retry_spawned(const retry_policy& p, F fn, async_options o, int depth) {
  auto ex = co_await asio::this_coro::executor;
  attempt_outcome<T> out = co_await asio::co_spawn(
      asio::make_strand(ex),
      to_outcome<T>(retry_concurrent<T>(p, std::move(fn), std::move(o), depth)),
      asio::use_awaitable);
  if (out.error) std::rethrow_exception(out.error);
  if constexpr (!std::is_void_v<T>) co_return std::move(*out.value);
}
}  // namespace detail

/// Calls `fn` under `policy` from a coroutine: `co_await async_retry(policy, fn)`.
template <class F>
requires(!detail::takes_token<F> &&
         (std::invocable<F&> ||
          std::invocable<F&, const async_attempt&>)) auto async_retry(const retry_policy& policy,
                                                                      F fn,
                                                                      async_options options = {}) {
  using T = typename detail::awaitable_value<detail::async_fn_awaitable_t<F>>::type;
  const int depth = options.parent != nullptr ? options.parent->depth() + 1 : 1;
  if (options.stop.stop_possible() || options.deadline || policy.has_timeouts_or_hedge())
      [[unlikely]] {
    return detail::retry_spawned<T>(policy, std::move(fn), std::move(options), depth);
  }
  if constexpr (!detail::takes_async_attempt<F>) {
    if (retry_call::first_attempt_before_engine(policy, {.report = options.report})) [[likely]] {
      return detail::retry_plain_first<T>(policy, std::move(fn), depth);
    }
  }
  return detail::retry_direct<T>(policy, std::move(fn), std::move(options), depth);
}

/// Calls `fn` under `policy` on `ex`, completing with `token` (a callback
/// taking (std::exception_ptr, T), asio::use_future, asio::use_awaitable, ...).
template <class Executor, class F, class Token>
requires(!detail::takes_token<F> &&
         (std::invocable<F&> ||
          std::invocable<F&, const async_attempt&>)) auto async_retry(const Executor& ex,
                                                                      const retry_policy& policy,
                                                                      F fn, async_options options,
                                                                      Token&& token) {
  return asio::co_spawn(ex, async_retry(policy, std::move(fn), std::move(options)),
                        std::forward<Token>(token));
}

/// `fn` takes a completion token (an Asio-style operation:
/// `[&](auto&& token) { return sock.async_read_some(buf, token); }`).
/// From a coroutine:
template <class F>
requires detail::takes_token<F>
auto async_retry(const retry_policy& policy, F fn, async_options options = {}) {
  return async_retry(policy, detail::as_awaitable_fn<F>{std::move(fn)}, std::move(options));
}

/// `fn` takes a completion token, on `ex`, completing with `token`. In the
/// plain case (system clock; no timeout, deadline, stop token or hedging)
/// this is a composed operation without a
/// coroutine: a call waiting in back-off is one state block and one timer
/// wait. Otherwise it runs the coroutine loop with fn(asio::use_awaitable).
/// Completes with (std::exception_ptr, T) either way, or with
/// (std::exception_ptr) when the operation has no value.
template <class Executor, class F, class Token>
requires detail::takes_token<F>
auto async_retry(const Executor& ex, const retry_policy& policy, F fn, async_options options,
                 Token&& token) {
  using T = detail::token_fn_value_t<F>;
  using signature = typename detail::retry_signature<T>::type;
  return asio::async_compose<Token, signature>(
      detail::lean_retry_op<T, F, Executor>(policy, std::move(fn), std::move(options), ex), token,
      ex);
}

template <class Executor, class F, class Token>
auto async_retry(const Executor& ex, retry_policy&& policy, F fn, async_options options,
                 Token&& token) = delete;  // the operation would outlive the policy

}  // namespace rebound
