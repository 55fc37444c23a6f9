// Small error types and an expected-like result shared by the unit tests.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace rebound_test {

struct not_found_error : std::runtime_error {
  not_found_error() : std::runtime_error("not found") {}
};
struct forbidden_error : std::runtime_error {
  forbidden_error() : std::runtime_error("forbidden") {}
};
struct http_status_error : std::runtime_error {
  explicit http_status_error(int s)
      : std::runtime_error("status " + std::to_string(s)), status(s) {}
  int status;
};

struct api_error {
  int code = 0;
  std::string message() const { return "api error " + std::to_string(code); }
};

// The shape of std::expected<T, E>, which GCC 12 does not ship in C++20 mode.
template <class T, class E>
class result {
 public:
  result(T v) : v_(std::move(v)) {}  // NOLINT: implicit, like std::expected
  static result failure(E e) { return result(std::in_place_index<1>, std::move(e)); }
  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  const T& value() const { return std::get<0>(v_); }
  const T& operator*() const { return std::get<0>(v_); }
  const E& error() const { return std::get<1>(v_); }

 private:
  template <std::size_t I, class A>
  result(std::in_place_index_t<I> i, A&& a) : v_(i, std::forward<A>(a)) {}
  std::variant<T, E> v_;
};

}  // namespace rebound_test
