// A gRPC test server on loopback, for rebound::grpc's tests, benchmark and
// example (not part of the library API). It serves rebound.test.Echo
// (echo.proto); each request names a key and the fault to inject for it:
//   unavailable_ms  UNAVAILABLE for this long from the key's first request
//   exhausted_times the key's first N requests: RESOURCE_EXHAUSTED, with a
//                   grpc-retry-pushback-ms trailer (`pushback`) and/or a
//                   google.rpc.RetryInfo detail (`retry_info_ms`)
//   delay_ms        answer after this long (only the first `slow_first`
//                   requests of the key, if set); a cancelled call stops waiting
//   drop_times      the key's first N requests: received, then every
//                   connection through the proxy is reset before the answer
//   status          answer with this status code every time
// It counts, per key, the requests received, those the client cancelled,
// and the deadline each carried.
//
// tcp_proxy forwards loopback connections to the server and can reset them
// all at once (SO_LINGER 0): a connection lost after the request arrived.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace rebound::testing {

class tcp_proxy {
 public:
  /// Listens on 127.0.0.1 (a free port) and forwards to 127.0.0.1:`upstream`.
  explicit tcp_proxy(int upstream);
  ~tcp_proxy();
  tcp_proxy(const tcp_proxy&) = delete;
  tcp_proxy& operator=(const tcp_proxy&) = delete;
  [[nodiscard]] int port() const noexcept { return port_; }
  /// Resets every connection open now (both sides).
  void cut_all();

 private:
  struct pair;
  void accept_loop();
  int upstream_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::shared_ptr<pair>> pairs_;
  std::thread acceptor_;
};

class grpc_echo_server {
 public:
  /// Listens on 127.0.0.1 (a free port).
  grpc_echo_server();
  ~grpc_echo_server();
  grpc_echo_server(const grpc_echo_server&) = delete;
  grpc_echo_server& operator=(const grpc_echo_server&) = delete;

  [[nodiscard]] int port() const noexcept;
  /// "127.0.0.1:PORT"
  [[nodiscard]] std::string target() const;
  /// Requests received for `key` (every method), and those cancelled by the client.
  [[nodiscard]] int received(const std::string& key) const;
  [[nodiscard]] int cancelled(const std::string& key) const;
  /// The time left before each request's deadline, as the server saw it
  /// (-1: no deadline).
  [[nodiscard]] std::vector<std::chrono::milliseconds> deadlines(const std::string& key) const;
  /// grpc-previous-rpc-attempts of each request of `key` (-1: absent).
  [[nodiscard]] std::vector<int> previous_attempts(const std::string& key) const;
  /// Called when a drop_times request arrives (the test resets its proxy).
  void on_drop(std::function<void()> f);

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

/// The serialized google.rpc.Status with one google.rpc.RetryInfo detail:
/// what a server puts in grpc-status-details-bin.
[[nodiscard]] std::string status_with_retry_info(int code, const std::string& message,
                                                 std::chrono::milliseconds delay);

}  // namespace rebound::testing
