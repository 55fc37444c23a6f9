// rebound/detail/traits.hpp: type traits used by the templates. Not API.
#pragma once

#include <concepts>
#include <type_traits>
#include <utility>

namespace rebound::detail {

template <class T>
struct first_arg;
template <class R, class A, class... Rest>
struct first_arg<R (*)(A, Rest...)> {
  using type = A;
};
template <class R, class C, class A, class... Rest>
struct first_arg<R (C::*)(A, Rest...)> {
  using type = A;
};
template <class R, class C, class A, class... Rest>
struct first_arg<R (C::*)(A, Rest...) const> {
  using type = A;
};
template <class R, class C, class A, class... Rest>
struct first_arg<R (C::*)(A, Rest...) noexcept> {
  using type = A;
};
template <class R, class C, class A, class... Rest>
struct first_arg<R (C::*)(A, Rest...) const noexcept> {
  using type = A;
};
template <class R, class A, class... Rest>
struct first_arg<R (*)(A, Rest...) noexcept> {
  using type = A;
};

/// The decayed type of the first parameter of a callable (lambda, function
/// object with one non-template operator(), or function pointer).
template <class F>
struct callable_arg {
  using type = std::remove_cvref_t<typename first_arg<decltype(&F::operator())>::type>;
};
template <class R, class A, class... Rest>
struct callable_arg<R (*)(A, Rest...)> {
  using type = std::remove_cvref_t<A>;
};
template <class F>
using callable_arg_t = typename callable_arg<std::remove_cvref_t<F>>::type;

}  // namespace rebound::detail

namespace rebound {

/// A type shaped like std::expected: `has_value()`, `error()`.
template <class T>
concept expected_like = requires(const T& t) {
  { t.has_value() } -> std::convertible_to<bool>;
  t.error();
};

}  // namespace rebound
