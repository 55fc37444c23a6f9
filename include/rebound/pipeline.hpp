// rebound/pipeline.hpp: timeout, retry, budget, throttling and a circuit breaker around one call.
//
// The order, outermost first:
//   1. total timeout  a deadline for the whole call (no back-off sleep ends past it);
//   2. retry          the policy, which consults its adaptive throttle before
//                     each attempt and its retry budget before each retry;
//   3. breaker        each attempt asks the circuit breaker; an open circuit
//                     throws circuit_open_error, which the retry layer treats
//                     as "overloaded": the call ends at once instead of
//                     retrying into an open circuit;
//   4. the call.
// Failures the policy calls transient or overloaded count as breaker
// failures; successes and permanent errors (the dependency answered) count
// as successes. The success path allocates nothing.
//
//   rebound::pipeline p(policy.budget(budget), breaker, 10s);
//   auto v = p.execute([&] { return client.get(key); });
#pragma once

#include <memory>
#include <optional>

#include "rebound/breaker.hpp"
#include "rebound/detail/coarse_clock.hpp"
#include "rebound/retry.hpp"

namespace rebound {

class pipeline {
 public:
  /// `breaker` may be null (no breaker); `total_timeout` may be empty (none).
  explicit pipeline(retry_policy policy, std::shared_ptr<circuit_breaker> breaker = nullptr,
                    std::optional<duration> total_timeout = std::nullopt)
      : policy_(std::move(policy)), breaker_(std::move(breaker)), timeout_(total_timeout) {}

  /// Runs `fn` (no argument, or `const attempt&`) through the pipeline. Throws
  /// and returns as rebound::retry does; an open circuit on the first attempt
  /// throws circuit_open_error.
  template <class F>
  retry_result_t<F> execute(F&& fn, call_options options = {}) const {
    using R = retry_result_t<F>;
    if (timeout_) {
      const time_point now = policy_.custom_clock() != nullptr ? policy_.custom_clock()->now()
                                                               : detail::coarse_steady_now();
      const time_point d =
          *timeout_ >= time_point::max() - now ? time_point::max() : now + *timeout_;
      options.deadline = options.deadline ? std::min(*options.deadline, d) : d;
    }
    auto through_breaker = [&](const attempt* a) -> R {
      breaker_permit permit{.allowed = true};
      if (breaker_) {
        permit = breaker_->try_acquire();
        if (!permit) throw circuit_open_error(permit.retry_at);
      }
      try {
        if constexpr (std::is_void_v<R>) {
          call(fn, a);
          if (breaker_) breaker_->record(permit, true);
        } else {
          R r = call(fn, a);
          if (breaker_) {
            const verdict v = policy_.classifier().classify_result(r);
            breaker_->record(permit, !v.retryable() && v.kind != verdict_kind::overloaded);
          }
          return r;
        }
      } catch (...) {
        if (breaker_) breaker_->record(permit, !counts_as_failure(std::current_exception()));
        throw;
      }
    };
    // The attempt context is passed on only when `fn` takes it: the loop arms
    // a deadline timer for attempts that can see their stop token.
    if constexpr (std::invocable<F&, const attempt&>) {
      return retry(
          policy_, [&](const attempt& a) -> R { return through_breaker(&a); }, options);
    } else {
      return retry(
          policy_, [&]() -> R { return through_breaker(nullptr); }, options);
    }
  }

  [[nodiscard]] const retry_policy& policy() const noexcept { return policy_; }
  [[nodiscard]] const std::shared_ptr<circuit_breaker>& breaker() const noexcept {
    return breaker_;
  }

 private:
  template <class F>
  static decltype(auto) call(F& fn, const attempt* a) {
    if constexpr (std::invocable<F&, const attempt&>) {
      return std::invoke(fn, *a);
    } else {
      return std::invoke(fn);
    }
  }
  [[nodiscard]] bool counts_as_failure(const std::exception_ptr& e) const {
    const verdict v = classify_exception(policy_, e);
    return v.retryable() || v.kind == verdict_kind::overloaded;
  }

  retry_policy policy_;
  std::shared_ptr<circuit_breaker> breaker_;
  std::optional<duration> timeout_;
};

}  // namespace rebound
