// rebound/pipeline.hpp: fallback, timeout, retry, budget, throttling, a circuit
// breaker and concurrency limits around one call.
//
// The order, outermost first:
//   1. fallback       execute_or(): a value or a function used when the call
//                     gives up, with the reason in hand (never on cancellation);
//   2. total timeout  a deadline for the whole call (no back-off sleep ends past it);
//   3. retry          the policy, which consults its adaptive throttle before
//                     each attempt and its retry budget before each retry;
//   4. breaker        each attempt asks the circuit breaker (the local one, or
//                     one the fleet shares: .breaker(redis::shared_breaker)); an open circuit
//                     throws circuit_open_error, which the retry layer treats
//                     as "overloaded": the call ends at once instead of
//                     retrying into an open circuit;
//   5. limits         admission control, then the bulkhead, then the
//                     concurrency limiter: each attempt takes a slot or is
//                     refused with a rejected_error (overloaded as well);
//   6. rate limiter   each attempt waits for its turn, up to the limiter's
//                     max_wait, or is refused (rate_limited_error);
//   7. attempt timeout (the policy's), then the call.
// Failures the policy calls transient or overloaded count as breaker
// failures and limiter drops; successes and permanent errors (the dependency
// answered) count as successes. A local refusal (step 5 or 6) counts as
// neither: the dependency never saw the call. The success path allocates
// nothing.
//
//   rebound::pipeline p = rebound::pipeline(policy.budget(budget), breaker, 10s)
//                             .limiter(limiter).rate_limit(rate);
//   auto v = p.execute([&] { return client.get(key); });
//   auto w = p.execute_or([&] { return client.get(key); },
//                         [](const rebound::fallback_context& why) { return cached(key); });
#pragma once

#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "rebound/breaker.hpp"
#include "rebound/detail/coarse_clock.hpp"
#include "rebound/detail/saturate.hpp"
#include "rebound/limits.hpp"
#include "rebound/retry.hpp"

namespace rebound {

/// What a fallback is told: why the pipeline gave up.
struct fallback_context {
  stop_reason reason = stop_reason::attempts_exhausted;
  int attempts = 0;
  /// The exception the pipeline would have thrown, or null when the last
  /// attempt returned a rejected result.
  std::exception_ptr error;
  /// Throws `error` (for a fallback that handles only some reasons).
  void rethrow() const {
    if (error) std::rethrow_exception(error);
  }
};

class pipeline {
 public:
  /// `breaker` may be null (no breaker); `total_timeout` may be empty (none).
  explicit pipeline(retry_policy policy, std::shared_ptr<circuit_breaker> breaker = nullptr,
                    std::optional<duration> total_timeout = std::nullopt)
      : policy_(std::move(policy)), breaker_(std::move(breaker)), timeout_(total_timeout) {}

  /// A breaker whose state lives elsewhere (redis::shared_breaker), in
  /// place of the local one: it takes the breaker's place in the order.
  [[nodiscard]] pipeline breaker(std::shared_ptr<breaker_gate> gate) const {
    pipeline p = *this;
    p.breaker_.reset();
    p.gate_ = std::move(gate);
    return p;
  }

  // ---- the limits (each may be shared by many pipelines; null: none) ----
  [[nodiscard]] pipeline bulkhead(std::shared_ptr<rebound::bulkhead> b) const {
    pipeline p = *this;
    p.bulkhead_ = std::move(b);
    return p;
  }
  [[nodiscard]] pipeline limiter(std::shared_ptr<concurrency_limiter> l) const {
    pipeline p = *this;
    p.limiter_ = std::move(l);
    return p;
  }
  [[nodiscard]] pipeline rate_limit(std::shared_ptr<rate_limiter> r) const {
    pipeline p = *this;
    p.rate_ = std::move(r);
    return p;
  }
  [[nodiscard]] pipeline admission(std::shared_ptr<admission_control> a) const {
    pipeline p = *this;
    p.admission_ = std::move(a);
    return p;
  }

  /// Runs `fn` (no argument, or `const attempt&`) through the pipeline. Throws
  /// and returns as rebound::retry does; an open circuit or a local refusal
  /// on the first attempt throws circuit_open_error or the rejected_error.
  /// `partition` is the limiter's partition (limiter_options::partitions) for
  /// this call's attempts; -1: none.
  template <class F>
  retry_result_t<F> execute(F&& fn, call_options options = {}, int partition = -1) const {
    using R = retry_result_t<F>;
    if (timeout_) {
      const time_point now = policy_.custom_clock() != nullptr ? policy_.custom_clock()->now()
                                                               : detail::coarse_steady_now();
      const time_point d =
          *timeout_ >= time_point::max() - now ? time_point::max() : now + *timeout_;
      options.deadline = options.deadline ? std::min(*options.deadline, d) : d;
    }
    std::uint64_t draws = 0;  // admission control's random stream (splitmix64), seeded lazily
    const auto through_layers = [&](const attempt* a) -> R {
      breaker_permit permit{.allowed = true};
      if (breaker_) {
        permit = breaker_->try_acquire();
        if (!permit) throw circuit_open_error(permit.retry_at);
      } else if (gate_) {
        permit = gate_->try_acquire();
        if (!permit) throw circuit_open_error(permit.retry_at);
      }
      limits held;
      try {
        if (bulkhead_ || limiter_ || rate_ || admission_) [[unlikely]]
          held = take_limits(options, partition, draws);
      } catch (...) {
        release(permit);  // the dependency never saw it
        throw;
      }
      try {
        if constexpr (std::is_void_v<R>) {
          call(fn, a);
          held.done(*this, verdict::success());
          record(permit, true);
        } else {
          R r = call(fn, a);
          if (breaker_ || gate_ || held.any()) {
            const verdict v = policy_.classifier().classify_result(r);
            held.done(*this, v);
            record(permit, !is_overload(v));
          }
          return r;
        }
      } catch (...) {
        const verdict v = classify_exception(policy_, std::current_exception());
        held.done(*this, v);
        record(permit, !is_overload(v));
        throw;
      }
    };
    // The attempt context is passed on only when `fn` takes it: the loop arms
    // a deadline timer for attempts that can see their stop token.
    if constexpr (std::invocable<F&, const attempt&>) {
      return retry(
          policy_, [&](const attempt& a) -> R { return through_layers(&a); }, options);
    } else {
      return retry(
          policy_, [&]() -> R { return through_layers(nullptr); }, options);
    }
  }

  /// execute(), and when the call gives up, `fallback`: a value of the
  /// result type, or a function of `const fallback_context&` returning one.
  /// Cancellation is never hidden: a cancelled call throws as execute() does.
  /// A fallback that throws throws out of execute_or.
  template <class F, class G>
  retry_result_t<F> execute_or(F&& fn, G&& fallback, call_options options = {},
                               int partition = -1) const {
    using R = retry_result_t<F>;
    call_report report;
    call_report* const caller_report = options.report;
    options.report = &report;
    fallback_context why;
    try {
      if constexpr (std::is_void_v<R>) {
        execute(std::forward<F>(fn), options, partition);
        if (caller_report != nullptr) *caller_report = report;
        return;
      } else {
        R r = execute(std::forward<F>(fn), options, partition);
        if (caller_report != nullptr) *caller_report = report;
        if (report.reason == stop_reason::succeeded || report.reason == stop_reason::cancelled) {
          return r;
        }
        why = {report.reason, report.attempts, nullptr};
      }
    } catch (...) {
      if (caller_report != nullptr) *caller_report = report;
      why = {report.reason, report.attempts, std::current_exception()};
      // Thrown before the engine reported an end (bad options, no memory):
      // not a give-up, so not the fallback's.
      if (report.attempts == 0 && report.reason == stop_reason::succeeded) throw;
      if (why.reason == stop_reason::cancelled || options.stop.stop_requested()) throw;
    }
    if constexpr (std::is_invocable_v<G&, const fallback_context&>) {
      return std::invoke(fallback, std::as_const(why));
    } else {
      if constexpr (std::is_void_v<R>) {
        return;
      } else {
        return R(std::forward<G>(fallback));
      }
    }
  }

  [[nodiscard]] const retry_policy& policy() const noexcept { return policy_; }
  [[nodiscard]] const std::shared_ptr<circuit_breaker>& breaker() const noexcept {
    return breaker_;
  }
  [[nodiscard]] const std::shared_ptr<breaker_gate>& shared_breaker() const noexcept {
    return gate_;
  }
  [[nodiscard]] const std::shared_ptr<rebound::bulkhead>& bulkhead() const noexcept {
    return bulkhead_;
  }
  [[nodiscard]] const std::shared_ptr<concurrency_limiter>& limiter() const noexcept {
    return limiter_;
  }
  [[nodiscard]] const std::shared_ptr<rate_limiter>& rate_limit() const noexcept { return rate_; }
  [[nodiscard]] const std::shared_ptr<admission_control>& admission() const noexcept {
    return admission_;
  }

 private:
  // What one attempt holds of the limits; done() gives it back with the outcome.
  struct limits {
    const pipeline* owner = nullptr;
    rebound::bulkhead::slot slot;
    limiter_permit permit;
    bool admitted = false;
    limits() = default;
    explicit limits(const pipeline* p) : owner(p) {}
    limits(limits&& o) noexcept
        : owner(o.owner),
          slot(std::move(o.slot)),
          permit(std::exchange(o.permit, {})),
          admitted(std::exchange(o.admitted, false)) {}
    limits& operator=(limits&& o) noexcept {
      if (this != &o) {
        if (owner != nullptr) abandon(*owner);
        owner = o.owner;
        slot = std::move(o.slot);
        permit = std::exchange(o.permit, {});
        admitted = std::exchange(o.admitted, false);
      }
      return *this;
    }
    limits(const limits&) = delete;
    limits& operator=(const limits&) = delete;
    /// An attempt that ended without done() (an exception on the way) gives
    /// everything back and counts nothing.
    ~limits() {
      if (owner != nullptr) abandon(*owner);
    }
    [[nodiscard]] bool any() const noexcept { return slot || permit || admitted; }
    void done(const pipeline& p, const verdict& v) noexcept {
      if (permit) {
        if (is_overload(v)) {
          p.limiter_->on_dropped(permit);
        } else if (v.kind == verdict_kind::success || v.kind == verdict_kind::permanent) {
          p.limiter_->on_success(permit);
        } else {
          p.limiter_->on_ignore(permit);
        }
        permit = {};
      }
      if (admitted) {
        p.admission_->record(!is_overload(v));
        admitted = false;
      }
      slot.reset();
    }
    /// The attempt was refused locally: give everything back, count nothing.
    void abandon(const pipeline& p) noexcept {
      if (permit) p.limiter_->on_ignore(permit);
      permit = {};
      admitted = false;
      slot.reset();
    }
  };
  void record(const breaker_permit& permit, bool ok) const {
    if (breaker_) {
      breaker_->record(permit, ok);
    } else if (gate_) {
      gate_->record(permit, ok);
    }
  }
  void release(const breaker_permit& permit) const {
    if (breaker_) {
      breaker_->release(permit);
    } else if (gate_) {
      gate_->release(permit);
    }
  }
  [[nodiscard]] static bool is_overload(const verdict& v) noexcept {
    return v.retryable() || v.kind == verdict_kind::overloaded;
  }
  limits take_limits(const call_options& o, int partition, std::uint64_t& draws) const {
    limits held(this);
    // No wait for a slot or a turn ends past the call's deadline.
    const time_point until = o.deadline.value_or(time_point::max());
    if (admission_) {
      if (draws == 0) draws = (o.seed ? *o.seed : random_stream::fresh_seed()) | 1ULL;
      std::uint64_t z = (draws += 0x9e3779b97f4a7c15ULL);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      z ^= z >> 31;
      if (!admission_->admit(static_cast<double>(z >> 11) * 0x1.0p-53)) {
        throw admission_rejected_error(admission_->rejection_probability());
      }
      held.admitted = true;
    }
    if (bulkhead_) {
      held.slot = bulkhead_->acquire(o.stop, until);
      if (!held.slot) {
        held.abandon(*this);
        throw bulkhead_full_error(bulkhead_->settings().max_concurrent);
      }
    }
    if (limiter_) {
      held.permit = limiter_->try_acquire(partition);
      if (!held.permit) {
        held.abandon(*this);
        throw limit_exceeded_error(limiter_->limit());
      }
    }
    if (rate_) {
      const rate_decision d = rate_->reserve(rate_->settings().max_wait);
      if (!d.allowed) {
        held.abandon(*this);
        throw rate_limited_error(d.wait);
      }
      if (d.wait > duration::zero()) {
        // The wait for the turn is on the policy's clock; a stop request
        // ends it, and the attempt is refused (its turn is lost), as is a
        // turn past the call's deadline.
        clock& c = policy_.clock();
        const time_point at = detail::saturating_add(c.now(), d.wait);
        if (at > until || !c.sleep_until(at, o.stop)) {
          held.abandon(*this);
          throw rate_limited_error(d.wait);
        }
        // The limiter samples the call's latency, not this wait.
        if (held.permit) held.permit.started += d.wait;
      }
    }
    return held;
  }
  template <class F>
  static decltype(auto) call(F& fn, const attempt* a) {
    if constexpr (std::invocable<F&, const attempt&>) {
      return std::invoke(fn, *a);
    } else {
      return std::invoke(fn);
    }
  }

  retry_policy policy_;
  std::shared_ptr<circuit_breaker> breaker_;
  std::shared_ptr<breaker_gate> gate_;  // a breaker whose state is shared (instead of breaker_)
  std::optional<duration> timeout_;
  std::shared_ptr<rebound::bulkhead> bulkhead_;
  std::shared_ptr<concurrency_limiter> limiter_;
  std::shared_ptr<rate_limiter> rate_;
  std::shared_ptr<admission_control> admission_;
};

}  // namespace rebound
