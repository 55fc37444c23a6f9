// The response headers as the HTTP client reads them (libcurl hands over one
// line at a time), then what the client does with them: look a header up,
// read Retry-After, classify the status. And a request built from the
// input: validate() refuses it or it carries no CR, LF or NUL anywhere.
#include <chrono>

#include "../src/http/internal.hpp"
#include "input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto s = rebound::fuzz::text(data, size);
  rebound::http::response r;
  for (const auto& line : rebound::fuzz::split(s, '\n')) {
    rebound::http::detail::add_header_line(r.headers, line + "\n");
  }
  r.status = size > 0 ? 100 + data[0] * 2 : 503;
  const rebound::http::client_options o;
  (void)rebound::http::classify_status(r.status, o);
  if (const auto ra = r.header("retry-after")) {
    (void)rebound::http::parse_retry_after(*ra, std::chrono::system_clock::from_time_t(784111777));
  }
  // A request from the input: URL, method, then headers.
  const auto parts = rebound::fuzz::split(s, '\n');
  rebound::http::request req;
  req.url = parts.empty() ? std::string() : parts[0];
  if (parts.size() > 1) req.method = parts[1];
  for (std::size_t i = 2; i + 1 < parts.size(); i += 2)
    req.headers.emplace_back(parts[i], parts[i + 1]);
  try {
    rebound::http::validate(req, o);
    for (const auto& [k, v] : req.headers) {
      for (const char c : k + v) {
        if (c == '\r' || c == '\n' || c == '\0') __builtin_trap();  // would have been sent
      }
    }
  } catch (const rebound::http::invalid_request& e) {
    if (e.field().empty()) __builtin_trap();
  }
  return 0;
}
