// rebound::grpc against a real gRPC server on loopback (tools/grpc_server,
// started and stopped here): the same policy values as everything else.
//
//   1. A read while the server answers UNAVAILABLE for 300 ms: retried with
//      exponential back-off until it answers (blocking stub).
//   2. A write (not idempotent) whose connection is reset after the server
//      received it: sent once, never replayed.
//   3. A read whose first answer takes 2 s: a hedge after 50 ms answers
//      instead (callback API), and the slow attempt is cancelled.
//   4. A gRPC service config (gRFC A6) imported as a rebound policy.
//
// Exit status 0 when the four ended as described, 1 otherwise.
#include <chrono>
#include <cstdio>
#include <memory>

#include "echo.grpc.pb.h"
#include "echo_server.hpp"
#include "rebound/duration.hpp"
#include "rebound/events.hpp"
#include "rebound/grpc/client.hpp"
#include "rebound/grpc/service_config.hpp"

using namespace std::chrono_literals;
using rebound::test::Echo;

namespace {

std::shared_ptr<rebound::observer> printer() {
  return std::make_shared<rebound::function_observer>([](const rebound::event& e) {
    if (e.kind == rebound::event_kind::attempt_failed) {
      std::printf("    attempt %d failed: %.*s\n", e.attempt, static_cast<int>(e.cause.size()),
                  e.cause.data());
    } else if (e.kind == rebound::event_kind::retry_scheduled) {
      std::printf("    retry in %s\n", rebound::format_duration(e.delay).c_str());
    } else if (e.kind == rebound::event_kind::hedged) {
      std::printf("    hedge: attempt %d starts beside the first\n", e.attempt);
    }
  });
}

// "UNAVAILABLE: Socket closed": the code by name, then gRPC's message.
std::string status_text(const grpc::Status& s) {
  return std::string(rebound::grpc::to_string(static_cast<rebound::grpc::code>(s.error_code()))) +
         ": " + s.error_message();
}

rebound::test::SayRequest request(const char* key) {
  rebound::test::SayRequest r;
  r.set_key(key);
  r.set_text("hello");
  return r;
}

}  // namespace

int main() {
  rebound::testing::grpc_echo_server server;
  rebound::testing::tcp_proxy proxy(server.port());  // can reset every connection
  server.on_drop([&] { proxy.cut_all(); });
  auto channel = rebound::grpc::make_channel("127.0.0.1:" + std::to_string(proxy.port()));
  auto stub = Echo::NewStub(channel);
  const auto policy = rebound::retry_policy{}
                          .stop(rebound::stop::after_attempts(8))
                          .backoff(rebound::backoff::exponential(50ms, 2.0, 400ms))
                          .observer(printer());
  const rebound::grpc::options o{.policy = policy, .channel = channel};
  bool ok = true;
  rebound::call_report report;
  rebound::test::SayReply reply;

  std::printf("== 1. a read while the server answers UNAVAILABLE for 300 ms\n");
  auto r1 = request("read");
  r1.set_unavailable_ms(300);
  auto s = rebound::grpc::call(o, *stub, &Echo::Stub::Say, r1, &reply,
                               {.method = "rebound.test.Echo/Say",
                                .idempotent = true,
                                .timeout = 5s,
                                .call = {.report = &report}});
  std::printf("  -> %s after %d attempts (%s)\n", s.ok() ? "OK" : "failed", report.attempts,
              rebound::format_duration(report.elapsed).c_str());
  ok = ok && s.ok() && report.attempts > 1;

  std::printf("== 2. a write whose connection is reset after the server got it\n");
  auto r2 = request("write");
  r2.set_drop_times(1);
  s = rebound::grpc::call(o, *stub, &Echo::Stub::Charge, r2, &reply,
                          {.method = "rebound.test.Echo/Charge", .call = {.report = &report}});
  std::printf("  -> %s; %s after %d attempt; the server received it %d time\n",
              status_text(s).c_str(), std::string(rebound::to_string(report.reason)).c_str(),
              report.attempts, server.received("write"));
  ok = ok && !s.ok() && report.reason == rebound::stop_reason::not_idempotent &&
       server.received("write") == 1;

  std::printf("== 3. a read whose first answer takes 2 s, hedged after 50 ms\n");
  auto r3 = request("hedged");
  r3.set_delay_ms(2000);
  r3.set_slow_first(1);
  auto hedged = o;
  hedged.policy =
      policy.stop(rebound::stop::after_attempts(3)).hedge({.delay = 50ms, .max_hedges = 2});
  s = rebound::grpc::call(
      hedged, stub->async(), &Echo::Stub::async_interface::Say, r3, &reply,
      {.method = "rebound.test.Echo/Say", .idempotent = true, .call = {.report = &report}});
  std::printf("  -> %s in %s, answered by request %d at the server\n", s.ok() ? "OK" : "failed",
              rebound::format_duration(report.elapsed).c_str(), reply.received());
  ok = ok && s.ok() && report.elapsed < 1s;

  std::printf("== 4. a gRPC service config as a rebound policy\n");
  const auto m = rebound::grpc::policy_from_service_config(
      R"({"methodConfig": [{"name": [{"service": "rebound.test.Echo"}],
          "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.05s", "maxBackoff": "0.2s",
                          "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]})",
      "rebound.test.Echo/Say");
  std::printf("  %s\n", m.summary.c_str());
  auto r4 = request("from-config");
  r4.set_unavailable_ms(100);
  s = rebound::grpc::call(
      {.policy = m.policy.observer(printer()),
       .retryable_codes = m.retryable_codes,
       .channel = channel},
      *stub, &Echo::Stub::Say, r4, &reply,
      {.method = "rebound.test.Echo/Say", .idempotent = true, .call = {.report = &report}});
  std::printf("  -> %s after %d attempts\n", s.ok() ? "OK" : status_text(s).c_str(),
              report.attempts);
  // Four attempts with full jitter under 0.35 s of back-off may or may not
  // outlast the 100 ms window: either end is what the config means.
  ok = ok && (s.ok() || report.reason == rebound::stop_reason::attempts_exhausted);
  std::printf("%s\n", ok ? "all four ended as described" : "something ended differently");
  return ok ? 0 : 1;
}
