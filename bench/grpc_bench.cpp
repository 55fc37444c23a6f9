// The gRPC adapter's cost over the stub alone: both call the same loopback
// server (tools/grpc_server) on one channel, one unary call per iteration.
#include <benchmark/benchmark.h>

#include <future>

#include "echo.grpc.pb.h"
#include "echo_server.hpp"
#include "rebound/grpc/client.hpp"

namespace {

using rebound::test::Echo;
using rebound::test::SayReply;
using rebound::test::SayRequest;

struct local {
  rebound::testing::grpc_echo_server server;  // 127.0.0.1, a free port, for the whole run
  std::shared_ptr<grpc::Channel> channel = rebound::grpc::make_channel(server.target());
  std::unique_ptr<Echo::Stub> stub = Echo::NewStub(channel);
  SayRequest request;
  local() {
    request.set_key("bench");
    request.set_text("hello");
  }
};

local& shared() {
  static local l;
  return l;
}

// Baseline: the generated stub alone, as a careful gRPC user would call it.
void BM_grpc_unary_raw(benchmark::State& state) {
  auto& l = shared();
  SayReply reply;
  for (auto _ : state) {
    grpc::ClientContext ctx;
    const grpc::Status s = l.stub->Say(&ctx, l.request, &reply);
    if (!s.ok()) state.SkipWithError("call failed");
    benchmark::DoNotOptimize(reply);
  }
}
BENCHMARK(BM_grpc_unary_raw)->Unit(benchmark::kMicrosecond);

// The same call through rebound::grpc::call (the default policy; first-try success).
void BM_grpc_unary_local(benchmark::State& state) {
  auto& l = shared();
  const rebound::grpc::options o{.channel = l.channel};
  SayReply reply;
  for (auto _ : state) {
    const grpc::Status s = rebound::grpc::call(o, *l.stub, &Echo::Stub::Say, l.request, &reply,
                                               {.method = "rebound.test.Echo/Say"});
    if (!s.ok()) state.SkipWithError("call failed");
    benchmark::DoNotOptimize(reply);
  }
}
BENCHMARK(BM_grpc_unary_local)->Unit(benchmark::kMicrosecond);

// The callback API: the stub's async() with a promise, and the same through
// rebound::grpc::async_call (the driver, its lock and its timer).
void BM_grpc_unary_callback_raw(benchmark::State& state) {
  auto& l = shared();
  SayReply reply;
  for (auto _ : state) {
    grpc::ClientContext ctx;
    std::promise<grpc::Status> p;
    l.stub->async()->Say(&ctx, &l.request, &reply, [&p](grpc::Status s) { p.set_value(s); });
    if (!p.get_future().get().ok()) state.SkipWithError("call failed");
    benchmark::DoNotOptimize(reply);
  }
}
BENCHMARK(BM_grpc_unary_callback_raw)->Unit(benchmark::kMicrosecond);

void BM_grpc_unary_callback_local(benchmark::State& state) {
  auto& l = shared();
  const rebound::grpc::options o{.channel = l.channel};
  SayReply reply;
  for (auto _ : state) {
    std::promise<grpc::Status> p;
    rebound::grpc::async_call(o, l.stub->async(), &Echo::Stub::async_interface::Say, l.request,
                              &reply, {.method = "rebound.test.Echo/Say"},
                              [&p](grpc::Status s) { p.set_value(s); });
    if (!p.get_future().get().ok()) state.SkipWithError("call failed");
    benchmark::DoNotOptimize(reply);
  }
}
BENCHMARK(BM_grpc_unary_callback_local)->Unit(benchmark::kMicrosecond);

}  // namespace
