// The token form of async_retry for an `fn` that takes a completion token
// (`[&](auto&& token) { return sock.async_read_some(buf, token); }`): a
// composed operation with no coroutine. While it waits in back-off it is one
// small state block and one timer wait. Not API; included by rebound/async.hpp.
//
// The lean path serves the plain case: the system clock, no timeout,
// deadline, stop token or hedging. Anything else runs the coroutine loop
// with `fn(asio::use_awaitable)`, from inside the same operation, so both
// complete with (std::exception_ptr, T), or (std::exception_ptr) when the
// operation has no value. Either way the call engine
// (rebound/call.hpp) decides every step.
#pragma once

#include <asio/async_result.hpp>
#include <asio/compose.hpp>
#include <system_error>
#include <variant>

namespace rebound::detail {

template <class F>
concept takes_token = std::invocable<F&, asio::use_awaitable_t<>>;

template <class F>
using token_fn_value_t =
    typename awaitable_value<std::invoke_result_t<F&, asio::use_awaitable_t<>>>::type;

/// What the token form completes with: (exception_ptr, T), or
/// (exception_ptr) for an operation with no value (a timer wait, a
/// handshake). A specialisation, since void(exception_ptr, void) is not a
/// type even in the branch a conditional_t does not take.
template <class T>
struct retry_signature {
  using type = void(std::exception_ptr, T);
};
template <>
struct retry_signature<void> {
  using type = void(std::exception_ptr);
};

/// The awaitable an `fn` taking a completion token gives with use_awaitable.
template <class F>
struct as_awaitable_fn {
  F fn;
  auto operator()() { return std::invoke(fn, asio::use_awaitable); }
};

template <class F>
struct is_relocatable_fn : std::false_type {};
template <class F>
struct is_relocatable_fn<relocatable_fn<F>> : std::true_type {};

/// Whether the lean path keeps `fn` inside the composed operation (no
/// allocation) rather than in a block of its own. Asio moves the operation
/// at every step, while an attempt's initiation may still read `fn`, and an
/// operation may keep a pointer into `fn` (a buffer held in it) past the
/// step. Neither its type nor its size tells whether `fn` does that (a
/// reference and an 8-byte header are as small as two references), so `fn`
/// stays inline only when it holds nothing (a lambda without captures) or
/// the caller says it is safe with rebound::relocatable(fn). Any other `fn`
/// keeps one address until the call ends.
template <class F>
inline constexpr bool lean_keeps_fn_inline = std::is_empty_v<F> || is_relocatable_fn<F>::value;

template <class T, class F, class Executor>
class lean_retry_op {
 public:
  using value_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

  lean_retry_op(const retry_policy& p, F fn, async_options o, Executor ex)
      : policy_(&p), fn_(make_fn(std::move(fn))), ex_(std::move(ex)) {
    if (!lean(p, o)) {
      make_block(std::in_place_type<async_options>, std::move(o));
    } else if (!retry_call::plain_first_attempt(p, {.report = o.report})) {
      make_block(std::in_place_type<state>, p, o.report, o.parent != nullptr);
    } else {
      nested_ = o.parent != nullptr;  // the engine is made at the first failure, if any
    }
  }

  template <class Self>
  void operator()(Self& self) {
    if (async_options* o = delegated()) {
      // The full loop, as a coroutine; it completes this operation.
      auto loop = async_retry(*policy_, as_awaitable_fn<F>{std::move(fn())}, std::move(*o));
      asio::co_spawn(ex_, std::move(loop), std::move(self));
      return;
    }
    if (has_block() && engine().call.start().done()) [[unlikely]]
      return give_up(self);  // throttled
    start_attempt(self);
  }

  // An attempt of an operation completing with (error_code[, T]).
  // The back-off timer completes with (error_code) too.
  template <class Self, class... V>
  void operator()(Self& self, std::error_code ec, V&&... v) {
    if constexpr (sizeof...(V) == 0) {
      if (phase_ == phase::waiting || !std::is_void_v<T>) return wake(self, ec);
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
      if (delegated() != nullptr) {
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
  // `fn` stays in the operation only when that is safe: see
  // lean_keeps_fn_inline. Otherwise it lives in one block with room for the
  // engine's state (holder, below): one allocation per call, as before fn
  // left the operation, and one address for fn until the call ends.
  static constexpr bool inline_fn = lean_keeps_fn_inline<F>;
  struct holder;
  using fn_store = std::conditional_t<inline_fn, F, std::unique_ptr<holder>>;
  static fn_store make_fn(F&& f) {
    if constexpr (inline_fn) {
      return std::move(f);
    } else {
      return std::make_unique<holder>(std::move(f));
    }
  }
  F& fn() noexcept {
    if constexpr (inline_fn) {
      return fn_;
    } else {
      return fn_->fn;
    }
  }

  // What a call keeps once the engine is made: at the start when the
  // policy needs it before the first attempt, else at the first failure, so
  // a first-try success of a plain policy makes nothing, as with the
  // blocking retry().
  struct state {
    state(const retry_policy& p, call_report* report, bool nested)
        : call(p, {.report = report}, {.nested = static_cast<std::int8_t>(nested)}) {}
    // Made at the first wait: a first-try success never touches the
    // io_context's timer service (a lookup under its lock, then a cancel).
    std::optional<asio::basic_waitable_timer<
        std::chrono::steady_clock, asio::wait_traits<std::chrono::steady_clock>, Executor>>
        timer;
    retry_call call;              // its clock is first read at the first failure
    std::optional<value_t> last;  // the last rejected result
    std::exception_ptr error;     // the last attempt's exception
  };
  // One owner, so the operation (moved at every hop through Asio) stays
  // small: the engine's state, or the coroutine loop's options when this is
  // not the lean path.
  using block = std::variant<state, async_options>;
  struct holder {
    explicit holder(F&& f) : fn(std::move(f)) {}
    F fn;
    std::optional<block> b;
  };
  [[nodiscard]] block* block_ptr() noexcept {
    if constexpr (inline_fn) {
      return b_.get();
    } else {
      return fn_->b ? &*fn_->b : nullptr;
    }
  }
  [[nodiscard]] bool has_block() noexcept { return block_ptr() != nullptr; }
  template <class... A>
  void make_block(A&&... a) {
    if constexpr (inline_fn) {
      b_ = std::make_unique<block>(std::forward<A>(a)...);
    } else {
      fn_->b.emplace(std::forward<A>(a)...);
    }
  }
  state& engine() noexcept { return *std::get_if<state>(block_ptr()); }
  async_options* delegated() noexcept {
    block* b = block_ptr();
    return b != nullptr ? std::get_if<async_options>(b) : nullptr;
  }

  template <class Self>
  void start_attempt(Self& self) {
    phase_ = phase::attempting;
    std::invoke(fn(), std::move(self));  // `this` is moved from here on
  }

  template <class Self, class... V>
  void attempt_done(Self& self, std::exception_ptr e, V&&... v) {
    const retry_policy& p = *policy_;
    verdict verd = verdict::success();
    if (e) {
      verd = classify_exception(p, e);
    } else if constexpr (!std::is_void_v<T>) {
      verd = p.classifier().classify_result(v...);
    }
    if (verd.kind == verdict_kind::success) [[likely]] {
      if (has_block()) engine().call.succeeded();  // else a plain first attempt: nothing to tell
      if constexpr (std::is_void_v<T>) {
        self.complete(std::exception_ptr());
      } else {
        self.complete(std::exception_ptr(), std::forward<V>(v)...);
      }
      return;
    }
    if (!has_block()) {
      // The first attempt ran before the engine, and failed: the engine
      // starts here, as the blocking retry()'s does. This runs inside a
      // completion, so a failure to allocate it ends the call with that
      // error rather than escaping from io_context::run() (so does the
      // timer's, below; see docs/async.md for what is not covered).
      try {
        make_block(std::in_place_type<state>, p, nullptr, nested_);
      } catch (...) {
        return complete_with(self, std::current_exception());
      }
      (void)engine().call.start();  // a plain policy has no throttle to refuse it
    }
    state& s = engine();
    retry_call& call = s.call;
    s.error = std::move(e);
    if constexpr (!std::is_void_v<T>) {
      if (!s.error) s.last.emplace(std::forward<V>(v)...);
    }
    if (self.get_cancellation_state().cancelled() != asio::cancellation_type::none) {
      call.end(stop_reason::cancelled);  // a cancelled attempt is never retried
      return give_up(self);
    }
    const call_step step = call.failed(verd);
    if (!step.wait()) return give_up(self);
    phase_ = phase::waiting;
    if (!s.timer) {
      try {
        s.timer.emplace(ex_);  // may make the io_context's timer service
      } catch (...) {
        return complete_with(self, std::current_exception());
      }
    }
    s.timer->expires_at(std::chrono::steady_clock::time_point(step.until.time_since_epoch()));
    s.timer->async_wait(std::move(self));
  }

  template <class Self>
  void wake(Self& self, std::error_code ec) {
    const bool slept =
        !ec && self.get_cancellation_state().cancelled() == asio::cancellation_type::none;
    if (!engine().call.resume(slept).attempt()) return give_up(self);
    start_attempt(self);
  }

  template <class Self>
  void complete_with(Self& self, std::exception_ptr e) {
    if constexpr (std::is_void_v<T>) {
      self.complete(std::move(e));
    } else {
      self.complete(std::move(e), value_t{});
    }
  }

  // Ends the call as the blocking loop would: the last exception (rethrown
  // or wrapped, per policy), or the last rejected result.
  template <class Self>
  void give_up(Self& self) {
    state& s = engine();
    std::exception_ptr out;
    if (s.error || !s.last) out = s.call.give_up_error(s.error);
    if constexpr (std::is_void_v<T>) {
      self.complete(std::move(out));
    } else {
      if (s.last) {
        value_t v = std::move(*s.last);
        self.complete(std::move(out), std::move(v));
      } else {
        self.complete(std::move(out), value_t{});
      }
    }
  }

  const retry_policy* policy_;
  fn_store fn_;
  Executor ex_;
  // See block; empty until the engine is needed. With fn in a holder, the
  // holder keeps it.
  struct no_block {};
  [[no_unique_address]] std::conditional_t<inline_fn, std::unique_ptr<block>, no_block> b_;
  bool nested_ = false;  // for an engine made at the first failure
  phase phase_ = phase::attempting;
};

}  // namespace rebound::detail
