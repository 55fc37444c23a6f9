// The token form of async_retry for an `fn` that takes a completion token
// (`[&](auto&& token) { return sock.async_read_some(buf, token); }`): a
// composed operation with no coroutine. While it waits in back-off it is one
// small state block and one timer wait. Not API; included by rebound/async.hpp.
//
// The lean path serves the plain case: the system clock, no timeout,
// deadline, stop token or hedging. Anything else runs the coroutine loop
// with `fn(asio::use_awaitable)`, from inside the same operation, so both
// complete with (std::exception_ptr, T). Either way the call engine
// (rebound/call.hpp) decides every step.
#pragma once

#include <asio/async_result.hpp>
#include <asio/compose.hpp>
#include <system_error>

namespace rebound::detail {

template <class F>
concept takes_token = std::invocable<F&, asio::use_awaitable_t<>>;

template <class F>
using token_fn_value_t =
    typename awaitable_value<std::invoke_result_t<F&, asio::use_awaitable_t<>>>::type;

/// The awaitable an `fn` taking a completion token gives with use_awaitable.
template <class F>
struct as_awaitable_fn {
  F fn;
  auto operator()() { return std::invoke(fn, asio::use_awaitable); }
};

template <class T, class F, class Executor>
class lean_retry_op {
 public:
  using value_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

  lean_retry_op(const retry_policy& p, F fn, async_options o, Executor ex) {
    if (lean(p, o)) {
      s_ = std::make_unique<state>(p, std::move(fn), o, std::move(ex));
    } else {
      d_ = std::make_unique<delegate>(p, std::move(fn), std::move(o), std::move(ex));
    }
  }

  template <class Self>
  void operator()(Self& self) {
    if (d_) {
      // The full loop, as a coroutine; it completes this operation.
      auto ex = d_->ex;
      auto loop =
          async_retry(d_->policy, as_awaitable_fn<F>{std::move(d_->fn)}, std::move(d_->options));
      asio::co_spawn(ex, std::move(loop), std::move(self));
      return;
    }
    if (s_->call.start().done()) [[unlikely]]
      return give_up(self);  // throttled
    start_attempt(self);
  }

  // An attempt of an operation completing with (error_code[, T]).
  // The back-off timer completes with (error_code) too.
  template <class Self, class... V>
  void operator()(Self& self, std::error_code ec, V&&... v) {
    if constexpr (sizeof...(V) == 0) {
      if (s_->phase_ == phase::waiting || !std::is_void_v<T>) return wake(self, ec);
    }
    if constexpr (std::is_void_v<T> == (sizeof...(V) == 0)) {
      std::exception_ptr e;
      if (ec) e = std::make_exception_ptr(std::system_error(ec));
      attempt_done(self, std::move(e), std::forward<V>(v)...);
    }
  }
  // An attempt completing with (exception_ptr[, T]), or the delegated loop.
  template <class Self, class... V>
  void operator()(Self& self, std::exception_ptr e, V&&... v) {
    if constexpr (std::is_void_v<T> == (sizeof...(V) == 0)) {
      if (d_) {
        self.complete(std::move(e), std::forward<V>(v)...);
        return;
      }
      attempt_done(self, std::move(e), std::forward<V>(v)...);
    }
  }

  /// True when this operation can run without the coroutine loop: on the
  /// system clock, with nothing that runs beside an attempt (a timeout, a
  /// deadline, a stop token, hedging). The engine does the rest (events,
  /// report, throttle, budget, time-based stops, the nested guard).
  static bool lean(const retry_policy& p, const async_options& o) {
    return p.custom_clock() == nullptr && !o.stop.stop_possible() && !o.deadline &&
           !p.has_timeouts_or_hedge();
  }

 private:
  enum class phase : std::uint8_t { attempting, waiting };
  // Everything the lean path keeps while it waits (one allocation).
  struct state {
    state(const retry_policy& p, F f, const async_options& o, Executor e)
        : fn(std::move(f)),
          ex(std::move(e)),
          call(p, {.report = o.report}, {.nested = static_cast<std::int8_t>(o.parent != nullptr)}) {
    }
    F fn;
    Executor ex;
    // Made at the first failure: a first-try success never touches the
    // io_context's timer service (a lookup under its lock, then a cancel).
    std::optional<asio::basic_waitable_timer<
        std::chrono::steady_clock, asio::wait_traits<std::chrono::steady_clock>, Executor>>
        timer;
    retry_call call;              // its clock is first read at the first failure
    std::optional<value_t> last;  // the last rejected result
    std::exception_ptr error;     // the last attempt's exception
    phase phase_ = phase::attempting;
  };

  template <class Self>
  void start_attempt(Self& self) {
    s_->phase_ = phase::attempting;
    std::invoke(s_->fn, std::move(self));
  }

  template <class Self, class... V>
  void attempt_done(Self& self, std::exception_ptr e, V&&... v) {
    retry_call& call = s_->call;
    const retry_policy& p = call.policy();
    verdict verd = verdict::success();
    if (e) {
      verd = classify_exception(p, e);
    } else if constexpr (!std::is_void_v<T>) {
      verd = p.classifier().classify_result(v...);
    }
    if (verd.kind == verdict_kind::success) [[likely]] {
      call.succeeded();
      if constexpr (std::is_void_v<T>) {
        self.complete(std::exception_ptr());
      } else {
        self.complete(std::exception_ptr(), std::forward<V>(v)...);
      }
      return;
    }
    s_->error = std::move(e);
    if constexpr (!std::is_void_v<T>) {
      if (!s_->error) s_->last.emplace(std::forward<V>(v)...);
    }
    if (self.get_cancellation_state().cancelled() != asio::cancellation_type::none) {
      call.end(stop_reason::cancelled);  // a cancelled attempt is never retried
      return give_up(self);
    }
    const call_step step = call.failed(verd);
    if (!step.wait()) return give_up(self);
    s_->phase_ = phase::waiting;
    if (!s_->timer) s_->timer.emplace(s_->ex);
    s_->timer->expires_at(std::chrono::steady_clock::time_point(step.until.time_since_epoch()));
    s_->timer->async_wait(std::move(self));
  }

  template <class Self>
  void wake(Self& self, std::error_code ec) {
    const bool slept =
        !ec && self.get_cancellation_state().cancelled() == asio::cancellation_type::none;
    if (!s_->call.resume(slept).attempt()) return give_up(self);
    start_attempt(self);
  }

  // Ends the call as the blocking loop would: the last exception (rethrown
  // or wrapped, per policy), or the last rejected result.
  template <class Self>
  void give_up(Self& self) {
    std::exception_ptr out;
    if (s_->error || !s_->last) out = s_->call.give_up_error(s_->error);
    if constexpr (std::is_void_v<T>) {
      self.complete(std::move(out));
    } else {
      if (s_->last) {
        value_t v = std::move(*s_->last);
        self.complete(std::move(out), std::move(v));
      } else {
        self.complete(std::move(out), value_t{});
      }
    }
  }

  // What the coroutine loop needs, when this is not the lean path.
  struct delegate {
    delegate(const retry_policy& p, F f, async_options o, Executor e)
        : policy(p), fn(std::move(f)), options(std::move(o)), ex(std::move(e)) {}
    const retry_policy& policy;
    F fn;
    async_options options;
    Executor ex;
  };

  std::unique_ptr<state> s_;
  std::unique_ptr<delegate> d_;
};

}  // namespace rebound::detail
