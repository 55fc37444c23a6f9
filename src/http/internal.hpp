// Shared by the sync and the async HTTP clients. Not API.
#pragma once

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

#include "rebound/call.hpp"
#include "rebound/http/client.hpp"

namespace rebound::http::detail {

inline bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

/// Without the optional whitespace around a field value (RFC 9110 5.5), and a line end.
inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

/// What one transfer collects.
struct transfer {
  std::string body;
  header_list headers;
  const std::stop_token* stop = nullptr;
};

/// One response header line as libcurl hands it over ("Name: value\r\n",
/// or a status line, which starts a new response), into `headers`.
void add_header_line(header_list& headers, std::string_view line);
/// curl_global_init, once per process.
void init_curl();
/// Options set once per easy handle.
void prepare_handle(CURL* curl);
/// Sets the per-request options; returns the header list to free after the transfer.
curl_slist* setup_transfer(CURL* curl, const request& r, const header_list& extra,
                           std::optional<duration> limit, duration connect_timeout, transfer& t,
                           bool cancellable);
/// The response of a finished transfer, or throws its transport_error.
response finish_transfer(CURL* curl, CURLcode rc, transfer& t);

/// One HTTP call as a driver of the call engine (rebound/call.hpp): the
/// request's idempotency, its headers, and the mapping of each outcome to a
/// verdict through the HTTP error table (http::classify). How transfers run
/// and how time passes is the caller's: the sync client blocks for both,
/// the async one awaits them.
class call_run {
 public:
  /// `nested`: as call_driver::nested (-1: this thread's blocking loops tell).
  call_run(const client_options& o, const retry_policy& p, const request& r,
           const call_options& call, std::int8_t nested = -1);

  struct attempt_plan {
    header_list headers;              ///< Idempotency-Key, attempt header
    std::optional<duration> limit{};  ///< the attempt's time limit
  };
  struct step {
    enum class kind_t { retry, done } kind = kind_t::done;
    std::optional<response> result{};  ///< done: the response to return
    std::exception_ptr error{};        ///< done: or the exception to throw
    time_point wake{};                 ///< retry: sleep until then, then after_sleep()
  };

  /// Throws retry_error (cancelled) when the stop was requested before the
  /// call, or throttled_error when adaptive throttling refuses it.
  void start();
  [[nodiscard]] const request& req() const noexcept { return req_; }
  attempt_plan begin_attempt();
  /// After an attempt: its response, or its exception (a transport_error).
  step on_outcome(std::optional<response> got, std::exception_ptr error);
  /// After the sleep of a retry step; `slept` false when it was cut short.
  /// Returns a retry step (run the next attempt) or a done step.
  step after_sleep(bool slept);
  /// The call's clock.
  [[nodiscard]] clock& time_source() const noexcept { return call_.time_source(); }

 private:
  step done(std::optional<response> got, std::exception_ptr error);

  const client_options& o_;
  request req_;
  retry_call call_;
  header_list extra_;
  bool safe_ = false;
  std::optional<response> last_;
  std::exception_ptr last_error_;
};

}  // namespace rebound::http::detail
