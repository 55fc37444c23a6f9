// Shared by the sync and the async HTTP clients. Not API.
#pragma once

#include <curl/curl.h>

#include <optional>
#include <stop_token>
#include <string>

#include "rebound/events.hpp"
#include "rebound/http/client.hpp"

namespace rebound::http::detail {

/// What one transfer collects.
struct transfer {
  std::string body;
  header_list headers;
  const std::stop_token* stop = nullptr;
};

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

inline time_point clock_now(clock* c) {
  return c != nullptr ? c->now()
                      : std::chrono::time_point_cast<duration>(std::chrono::steady_clock::now());
}

/// One call's decisions, apart from how transfers run and how time passes:
/// the sync client blocks for both, the async one awaits them.
class call_run {
 public:
  call_run(const client_options& o, const retry_policy& p, const request& r,
           const call_options& call);

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

  /// Throws retry_error (cancelled) when the stop was requested before the call.
  void check_not_cancelled();
  [[nodiscard]] const request& req() const noexcept { return req_; }
  attempt_plan begin_attempt();
  /// After an attempt: its response, or its exception (a transport_error).
  step on_outcome(std::optional<response> got, std::exception_ptr error);
  /// After the sleep of a retry step; `slept` false when it was cut short.
  /// Returns a retry step (run the next attempt) or a done step.
  step after_sleep(bool slept);

 private:
  [[nodiscard]] time_point now() const;
  [[nodiscard]] event make_event(event_kind k, int attempt) const;
  duration finish(stop_reason reason, int attempts);
  step done(std::optional<response> got, std::exception_ptr error, stop_reason reason, int attempt);

  const client_options& o_;
  const retry_policy& p_;
  const call_options& call_;
  request req_;
  clock* custom_;
  observer* obs_;
  time_point start_;
  retry_state state_;
  header_list extra_;
  bool safe_ = false;
  time_point deadline_ = time_point::max();
  std::optional<response> last_;
  std::exception_ptr last_error_;
};

}  // namespace rebound::http::detail
