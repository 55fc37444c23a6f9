// Retry-After values (RFC 9110 10.2.3: delta-seconds, or an HTTP-date in any
// of the three forms of 5.6.7), against a fixed and an input-chosen "now":
// a duration, never negative, or nothing.
#include <chrono>
#include <cstring>

#include "input.hpp"
#include "rebound/http/client.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::int64_t seconds = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT
  if (size >= 8) {
    std::memcpy(&seconds, data, 8);
    seconds %= 9'000'000'000;  // within what a nanosecond system_clock holds (+-285 years)
  }
  for (const auto now : {std::chrono::system_clock::from_time_t(784111777),
                         std::chrono::system_clock::time_point(std::chrono::seconds(seconds))}) {
    const auto d = rebound::http::parse_retry_after(rebound::fuzz::text(data, size), now);
    if (d && *d < rebound::duration::zero()) __builtin_trap();
  }
  return 0;
}
