// gRPC service configs (gRFC A6) read into rebound values: any input either
// yields a method_config whose policy the call engine can run, or throws
// rebound::config_error naming a field. The first line of the input is the
// method name; the rest is the document. google.protobuf.Duration texts are
// fuzzed by the same input.
#include <stdexcept>

#include "input.hpp"
#include "rebound/call.hpp"
#include "rebound/config.hpp"
#include "rebound/grpc/service_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(rebound::fuzz::text(data, size));
  (void)rebound::grpc::parse_proto_duration(text);
  const auto nl = text.find('\n');
  const std::string method = nl == std::string::npos ? "a.B/C" : text.substr(0, nl);
  const std::string doc = nl == std::string::npos ? text : text.substr(nl + 1);
  try {
    const auto m = rebound::grpc::policy_from_service_config(doc, method);
    if (m.summary.empty()) __builtin_trap();
    if (const auto n = m.policy.stop().max_attempts(); n && (*n < 1 || *n > 5)) __builtin_trap();
    // What it made runs: one call, every attempt failing.
    const bool hedged = m.policy.hedge().has_value();
    rebound::retry_call call(m.policy, {}, {.nested = 0, .concurrent = hedged});
    for (auto step = call.start(); step.attempt();) {
      step = call.failed(rebound::verdict::transient());
      if (!step.wait()) break;
      step = call.resume(true);
    }
  } catch (const rebound::config_error& e) {
    if (std::string(e.field()).empty()) __builtin_trap();  // every error names a field
  }
  return 0;
}
