// rebound/http/async_client.hpp: the HTTP client for coroutines, on a libcurl
// multi handle driven by Asio. Same rules and decisions as rebound::http::client
// (client.hpp): what is retried, idempotency, Retry-After, timeouts, events.
// No thread waits: transfers are driven by the executor's reactor, back-offs
// wait on its timers.
//
//   rebound::http::async_client http(io.get_executor(), {.policy = policy});
//   asio::co_spawn(io, [&]() -> asio::awaitable<void> {
//     auto r = co_await http.get("http://127.0.0.1:8080/runs/42");
//   }, asio::detached);
//
// Cancellation: the awaiting coroutine's Asio cancellation slot (terminal)
// or call_options::stop abort the transfer in flight and a pending back-off.
//
// Threads: give it a strand, or an io_context run by one thread; every
// coroutine using one client must run there. Many requests may be in flight
// at once (one easy handle each; connections are reused through the multi
// handle). Destroy the client after its requests have completed.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <memory>
#include <string>

#include "rebound/http/client.hpp"

namespace rebound::http {

class async_client {
 public:
  explicit async_client(asio::any_io_executor ex, client_options options = {});
  ~async_client();
  async_client(const async_client&) = delete;
  async_client& operator=(const async_client&) = delete;

  /// As client::send: the final response, or the last transport_error (or
  /// retry_error) thrown into the awaiting coroutine. `options` is copied.
  asio::awaitable<response> send(request r, call_options options = {});
  asio::awaitable<response> get(std::string url, call_options options = {});

  [[nodiscard]] const client_options& options() const noexcept;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace rebound::http
