// rebound/classify.hpp: telling transient failures from permanent ones, by type.
//
// A verdict says what an outcome means. Rules map exceptions (by type, or by
// a predicate on the typed exception), plain results (a predicate on the
// value) and the errors of expected-like results (`has_value()`/`error()`) to
// verdicts. Never by matching text in an error message.
//
//   auto c = rebound::classifier{}
//       .retry_on<not_found_error, timeout_error>()
//       .retry_if_error([](const api_error& e) { return e.code == 503; })
//       .retry_if_error([](const http_error& e) {
//         return e.status == 429 ? rebound::verdict::transient_after(e.retry_after)
//                                : rebound::verdict::permanent();
//       });
//
// Rules are tried in the order they were added; the first that matches wins.
// What no rule matches:
//   - an exception: transient when there are no exception rules at all (retry
//     everything, like tenacity and Polly), otherwise permanent;
//   - the error of an expected-like result: likewise with error rules;
//   - a plain result or an expected's value: success.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <typeindex>
#include <vector>

#include "rebound/clock.hpp"
#include "rebound/detail/traits.hpp"

namespace rebound {

enum class verdict_kind : std::uint8_t {
  success,     ///< done, do not retry
  transient,   ///< will likely pass by itself: retry under the policy
  permanent,   ///< will not pass by retrying: stop (permanent_error)
  overloaded,  ///< the server asks not to be retried: stop at once (overloaded)
};

/// "success", "transient", "permanent", "overloaded".
[[nodiscard]] std::string_view to_string(verdict_kind k) noexcept;

/// What an outcome means for the retry loop.
struct verdict {
  verdict_kind kind = verdict_kind::success;
  /// For transient: a delay the server asked for (Retry-After, pushback). It
  /// replaces the backoff's delay, capped by the policy's max_server_delay.
  std::optional<duration> retry_after;
  /// For transient: the attempt timed out (a token bucket charges such retries more).
  bool timeout = false;

  [[nodiscard]] static constexpr verdict success() noexcept { return {}; }
  [[nodiscard]] static constexpr verdict transient() noexcept {
    return {verdict_kind::transient, std::nullopt, false};
  }
  [[nodiscard]] static constexpr verdict transient_after(duration d) noexcept {
    return {verdict_kind::transient, d < duration::zero() ? duration::zero() : d, false};
  }
  /// Transient, because the attempt timed out.
  [[nodiscard]] static constexpr verdict timed_out() noexcept {
    return {verdict_kind::transient, std::nullopt, true};
  }
  [[nodiscard]] static constexpr verdict permanent() noexcept {
    return {verdict_kind::permanent, std::nullopt, false};
  }
  [[nodiscard]] static constexpr verdict overloaded() noexcept {
    return {verdict_kind::overloaded, std::nullopt, false};
  }
  [[nodiscard]] constexpr bool retryable() const noexcept {
    return kind == verdict_kind::transient;
  }
  friend constexpr bool operator==(const verdict&, const verdict&) noexcept = default;
};

namespace detail {
// A predicate's answer as an optional verdict: bool true means transient,
// false means "not mine" (the next rule is tried).
template <class T>
std::optional<verdict> to_verdict(T&& answer) {
  using A = std::remove_cvref_t<T>;
  if constexpr (std::is_same_v<A, bool>) {
    return answer ? std::optional<verdict>(verdict::transient()) : std::nullopt;
  } else if constexpr (std::is_same_v<A, verdict>) {
    return answer;
  } else {
    static_assert(std::is_same_v<A, std::optional<verdict>>,
                  "a classification predicate returns bool, rebound::verdict or "
                  "std::optional<rebound::verdict>");
    return answer;
  }
}
}  // namespace detail

/// An immutable, ordered list of classification rules. Cheap to copy.
class classifier {
 public:
  /// Exceptions of these types (or derived from them) are transient.
  template <class... E>
  [[nodiscard]] classifier retry_on() const {
    static_assert(sizeof...(E) > 0, "retry_on needs at least one exception type");
    classifier c = *this;
    (c.add_exception(exception_rule_for<E>([](const E&) { return verdict::transient(); })), ...);
    return c;
  }
  /// Exceptions of these types are permanent (never retried).
  template <class... E>
  [[nodiscard]] classifier abort_on() const {
    static_assert(sizeof...(E) > 0, "abort_on needs at least one exception type");
    classifier c = *this;
    (c.add_exception(exception_rule_for<E>([](const E&) { return verdict::permanent(); })), ...);
    return c;
  }
  /// `pred(const E&)` decides for exceptions of type E; returns bool
  /// (true: transient; false: not matched), verdict, or optional<verdict>.
  template <class F>
  [[nodiscard]] classifier retry_if_exception(F pred) const {
    using E = detail::callable_arg_t<F>;
    classifier c = *this;
    c.add_exception(exception_rule_for<E>(std::move(pred)));
    return c;
  }
  /// `pred(const T&)` decides for plain results (and expected values) of type T.
  template <class F>
  [[nodiscard]] classifier retry_if_result(F pred) const {
    using T = detail::callable_arg_t<F>;
    classifier c = *this;
    c.add_typed(channel::result, typeid(T), make_typed<T>(std::move(pred)));
    return c;
  }
  /// `pred(const E&)` decides for the error of expected-like results whose
  /// error type is E.
  template <class F>
  [[nodiscard]] classifier retry_if_error(F pred) const {
    using E = detail::callable_arg_t<F>;
    classifier c = *this;
    c.add_typed(channel::error, typeid(E), make_typed<E>(std::move(pred)));
    return c;
  }

  /// The verdict for an exception (see the header comment for the default).
  [[nodiscard]] verdict classify_exception(const std::exception_ptr& e) const;
  /// The verdict of the first exception rule that matches, or nullopt.
  [[nodiscard]] std::optional<verdict> match_exception(const std::exception_ptr& e) const;

  /// The verdict for a returned value.
  template <class R>
  [[nodiscard]] verdict classify_result(const R& r) const {
    if constexpr (expected_like<R>) {
      if (r.has_value()) {
        if constexpr (requires { *r; }) {
          if (has_result_rules_) return classify_typed(channel::result, *r, verdict::success());
        }
        return verdict::success();
      }
      const verdict unmatched = has_error_rules_ ? verdict::permanent() : verdict::transient();
      if (!has_error_rules_) return unmatched;
      return classify_typed(channel::error, r.error(), unmatched);
    } else {
      if (!has_result_rules_) return verdict::success();
      return classify_typed(channel::result, r, verdict::success());
    }
  }

  [[nodiscard]] bool empty() const noexcept { return !rules_ || rules_->empty(); }
  /// Same rules (the same rule objects, in the same order).
  friend bool operator==(const classifier& a, const classifier& b) noexcept;

 private:
  enum class channel : std::uint8_t { exception, result, error };
  using exception_fn = std::function<std::optional<verdict>(const std::exception_ptr&)>;
  struct rule {
    channel ch;
    std::type_index type;
    std::shared_ptr<const void> fn;  // exception_fn, or std::function<optional<verdict>(const T&)>
  };

  template <class E, class F>
  static exception_fn exception_rule_for(F pred) {
    return [pred = std::move(pred)](const std::exception_ptr& p) -> std::optional<verdict> {
      try {
        std::rethrow_exception(p);
      } catch (const E& e) {
        return detail::to_verdict(pred(e));
      } catch (...) {
        return std::nullopt;
      }
    };
  }
  template <class T, class F>
  static std::shared_ptr<const void> make_typed(F pred) {
    using fn_t = std::function<std::optional<verdict>(const T&)>;
    return std::make_shared<const fn_t>(
        [pred = std::move(pred)](const T& v) { return detail::to_verdict(pred(v)); });
  }
  template <class T>
  verdict classify_typed(channel ch, const T& v, verdict unmatched) const {
    using fn_t = std::function<std::optional<verdict>(const T&)>;
    for (const rule& r : *rules_) {
      if (r.ch != ch || r.type != std::type_index(typeid(T))) continue;
      if (auto answer = (*static_cast<const fn_t*>(r.fn.get()))(v)) return *answer;
    }
    return unmatched;
  }
  void add_exception(exception_fn fn);
  void add_typed(channel ch, const std::type_info& type, std::shared_ptr<const void> fn);

  std::shared_ptr<const std::vector<rule>> rules_;
  bool has_exception_rules_ = false;
  bool has_result_rules_ = false;
  bool has_error_rules_ = false;
};

}  // namespace rebound
