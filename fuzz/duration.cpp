// parse_duration: any text gives a duration in range or invalid_argument;
// what format_duration prints parses back (a duration the user sees can be
// written back into a configuration).
#include <stdexcept>

#include "input.hpp"
#include "rebound/duration.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto s = rebound::fuzz::text(data, size);
  try {
    const rebound::duration d = rebound::parse_duration(s);
    if (d < rebound::duration::zero() || d > rebound::max_config_duration) __builtin_trap();
    (void)rebound::parse_duration(rebound::format_duration(d));
  } catch (const std::invalid_argument&) {  // NOLINT(bugprone-empty-catch): a clear refusal
  }
  return 0;
}
