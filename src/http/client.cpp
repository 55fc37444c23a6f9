// The blocking HTTP client: one libcurl easy handle, driven by the call engine.
#include "rebound/http/client.hpp"

#include <curl/curl.h>

#include "internal.hpp"
#include "rebound/random.hpp"

namespace rebound::http {

std::optional<std::string> response::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (detail::iequals(k, name)) return v;
  }
  return std::nullopt;
}

bool idempotent_method(std::string_view m) noexcept {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE";
}

std::string client::new_idempotency_key() {
  random_stream rng(random_stream::fresh_seed());
  static constexpr char hex[] = "0123456789abcdef";
  std::string key(32, '0');
  std::uint64_t bits = 0;
  for (std::size_t i = 0; i < key.size(); ++i) {
    if (i % 16 == 0) bits = rng.next();
    key[i] = hex[bits & 0xF];
    bits >>= 4;
  }
  return key;
}

struct client::impl {
  client_options options;
  retry_policy policy;  // options.policy with the Retry-After cap applied
  CURL* curl = nullptr;

  explicit impl(client_options o) : options(std::move(o)) {
    detail::init_curl();
    policy = options.policy.max_server_delay(options.max_retry_after, server_delay_mode::give_up);
    curl = curl_easy_init();
    if (curl == nullptr) throw std::runtime_error("rebound::http: curl_easy_init failed");
    // Set once; perform() sets what changes per request (no curl_easy_reset,
    // which costs more than the request on loopback).
    detail::prepare_handle(curl);
  }
  ~impl() {
    if (curl != nullptr) curl_easy_cleanup(curl);
  }

  // One transfer. Returns the response, or throws transport_error.
  response perform(const request& r, const header_list& extra, std::optional<duration> limit,
                   const std::stop_token& stop) {
    detail::transfer t;
    t.stop = &stop;
    curl_slist* list = detail::setup_transfer(curl, r, extra, limit, options.connect_timeout, t,
                                              stop.stop_possible());
    const CURLcode rc = curl_easy_perform(curl);
    curl_slist_free_all(list);
    return detail::finish_transfer(curl, rc, t);
  }
};

client::client(client_options options) : impl_(std::make_unique<impl>(std::move(options))) {}
client::~client() = default;
client::client(client&&) noexcept = default;
client& client::operator=(client&&) noexcept = default;

const client_options& client::options() const noexcept { return impl_->options; }

response client::get(std::string url, const call_options& options) {
  return send(request{.url = std::move(url)}, options);
}

response client::send(const request& r, const call_options& call) {
  detail::call_run run(impl_->options, impl_->policy, r, call);
  run.start();
  clock& clk = impl_->policy.clock();
  for (;;) {
    const detail::call_run::attempt_plan plan = run.begin_attempt();
    std::optional<response> got;
    std::exception_ptr error;
    try {
      got.emplace(impl_->perform(run.req(), plan.headers, plan.limit, call.stop));
    } catch (const transport_error&) {
      error = std::current_exception();
    }
    detail::call_run::step s = run.on_outcome(std::move(got), std::move(error));
    if (s.kind == detail::call_run::step::kind_t::retry) {
      const bool slept = clk.sleep_until(s.wake, call.stop);
      s = run.after_sleep(slept);
    }
    if (s.kind == detail::call_run::step::kind_t::done) {
      if (s.error) std::rethrow_exception(s.error);
      return std::move(*s.result);
    }
  }
}

}  // namespace rebound::http
