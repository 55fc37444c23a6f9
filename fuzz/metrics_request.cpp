// The metrics endpoint's request handling (src/metrics_endpoint.hpp): any
// bytes a client sends get one well-formed answer whose Content-Length is
// its body's length, and nothing crashes. The input is what the client sent.
#include <cstdint>
#include <string>

#include "../src/metrics_endpoint.hpp"
#include "input.hpp"

namespace {

const rebound::metrics::registry& registry() {
  static rebound::metrics::registry r;
  static const bool filled = [] {
    r.counter("fuzz_total", "a counter", {"label"}).with({"a\"b"}).add(3);
    return true;
  }();
  (void)filled;
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string req(rebound::fuzz::text(data, size));
  const std::string out = rebound::metrics::detail::answer_request(registry(), req);
  if (!out.starts_with("HTTP/1.1 ")) __builtin_trap();
  const auto head_end = out.find("\r\n\r\n");
  if (head_end == std::string::npos) __builtin_trap();
  const auto at = out.find("Content-Length: ");
  if (at == std::string::npos || at > head_end) __builtin_trap();
  const std::size_t length = std::stoul(out.substr(at + 16));
  if (length != out.size() - head_end - 4) __builtin_trap();
  return 0;
}
