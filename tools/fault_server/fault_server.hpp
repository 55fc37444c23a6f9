// A fault-injecting HTTP server on loopback, for rebound's tests, demo and
// docs (not part of the library API). Routes, each taking a key so that
// independent tests do not share state:
//
//   /resume/KEY?ms=N&status=S          S (default 503) for N ms from the key's first
//                                      request (a gateway while its backend resumes), then 200
//   /retry-after/KEY?status=S&seconds=N&form=delta|date&times=K
//                                      the first K (1) requests: S (429) with Retry-After
//                                      in seconds or as an HTTP-date; then 200
//   /bad-retry-after/KEY               first request: 503 with "Retry-After: soon"; then 200
//   /reset/KEY?times=K&bytes=B         the first K (1) requests: headers announcing 1000
//                                      bytes, B (100) sent, then the connection is closed
//   /hang/KEY?ms=N                     waits N ms (at most 10 s) before answering 200
//   /slow/KEY?bytes=B&ms=N             a body of B bytes trickled over N ms
//   /status/CODE                       always CODE
//   /_stats                            JSON: requests received (by method, path and
//                                      Idempotency-Key) and executed (keyed repeats once)
//   /_reset                            forgets keys and counts
//
// Every request outside /_* counts as executed, whatever it is answered.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace rebound::fault {

struct counts {
  int total = 0;  ///< requests received
  std::map<std::string, int> by_method;
  std::map<std::string, int> by_key;  ///< received, by Idempotency-Key header
  std::map<std::string, int> by_path;
  /// Requests executed, as a server that honours idempotency keys would:
  /// every request without a key, and only the first with each key (a
  /// repeat gets the stored outcome, not a second execution).
  int executions = 0;
  std::map<std::string, int> executions_by_method;
};

class server {
 public:
  /// Listens on 127.0.0.1:`port` (0: a free port) on a thread of its own.
  explicit server(std::uint16_t port = 0);
  ~server();  ///< stops and joins
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept;
  /// "http://127.0.0.1:PORT" + path.
  [[nodiscard]] std::string url(std::string_view path) const;
  [[nodiscard]] counts executed() const;
  void reset();
  /// Blocks until stop() (from another thread or a signal handler's thread).
  void wait();
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace rebound::fault
