// rebound::grpc against a real gRPC server on loopback (tools/grpc_server),
// started by each test and stopped after it. Back-offs run on a simulated
// clock wherever the rule allows; the network is real.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "echo.grpc.pb.h"
#include "echo_server.hpp"
#include "rebound/grpc/client.hpp"
#include "rebound/retry.hpp"
#include "rebound/testing/simulated_clock.hpp"

namespace {

using namespace std::chrono_literals;
using rebound::stop_reason;
using rebound::grpc::code;
using rebound::test::Echo;
using rebound::test::SayReply;
using rebound::test::SayRequest;

// Attempts and back-off on a simulated clock that moves at once: the back-off
// costs no real time; each attempt is a real call.
struct fixture : ::testing::Test {
  rebound::testing::grpc_echo_server server;
  rebound::testing::simulated_clock clock;
  std::shared_ptr<grpc::Channel> channel = rebound::grpc::make_channel(server.target());
  std::unique_ptr<Echo::Stub> stub = Echo::NewStub(channel);
  rebound::call_report report;

  rebound::grpc::options with(rebound::retry_policy p) {
    return {.policy = p.clock(clock), .channel = channel};
  }
  static rebound::retry_policy five() {
    return rebound::retry_policy{}
        .stop(rebound::stop::after_attempts(5))
        .backoff(rebound::backoff::exponential(10ms, 2.0, 100ms))
        .jitter(rebound::jitter::none());
  }
  static SayRequest request(const std::string& key) {
    SayRequest r;
    r.set_key(key);
    r.set_text("hello");
    return r;
  }
  rebound::grpc::call_spec spec(bool idempotent = true) {
    return {
        .method = "rebound.test.Echo/Say", .idempotent = idempotent, .call = {.report = &report}};
  }
};

// The error table, from gRPC's codes and trailers (never the message).
TEST(GrpcClassify, TheErrorTable) {
  const rebound::grpc::options o;
  using rebound::verdict;
  using F = rebound::grpc::attempt_facts;
  EXPECT_EQ(classify(code::ok, {}, o), verdict::success());
  EXPECT_EQ(classify(code::unavailable, {}, o), verdict::transient());
  EXPECT_EQ(classify(code::resource_exhausted, {}, o), verdict::overloaded());
  EXPECT_EQ(
      classify(code::resource_exhausted, {.pushback = F::pushback_kind::delay, .delay = 30ms}, o),
      verdict::transient_after(30ms));
  EXPECT_EQ(classify(code::unavailable, {.pushback = F::pushback_kind::stop}, o),
            verdict::overloaded());
  EXPECT_EQ(classify(code::deadline_exceeded, {.own_deadline = true}, o), verdict::timed_out());
  EXPECT_EQ(classify(code::deadline_exceeded, {}, o), verdict::permanent());
  EXPECT_EQ(classify(code::internal, {}, o), verdict::permanent());
  EXPECT_EQ(classify(code::unimplemented, {}, o), verdict::permanent());
  const rebound::grpc::options more{.retryable_codes = {code::unavailable, code::aborted}};
  EXPECT_EQ(classify(code::aborted, {}, more), verdict::transient());
}

// gRFC A6, "Pushback": a non-negative integer of milliseconds is a delay;
// a negative or unparseable value means do not retry.
TEST(GrpcClassify, OurDeadlineMayFireUpToTenMillisecondsEarly) {
  // gRPC's millisecond timers fired up to 1.9 ms before gpr_now() reached
  // the deadline (ASan, 2 loaded cores); 10 ms of slack, and no more.
  const gpr_timespec deadline = gpr_time_from_seconds(100, GPR_CLOCK_MONOTONIC);
  const auto early = [&](std::int64_t ms) {
    return gpr_time_sub(deadline, gpr_time_from_millis(ms, GPR_TIMESPAN));
  };
  using rebound::grpc::detail::deadline_reached;
  EXPECT_TRUE(
      deadline_reached(gpr_time_add(deadline, gpr_time_from_millis(5, GPR_TIMESPAN)), deadline));
  EXPECT_TRUE(deadline_reached(deadline, deadline));
  EXPECT_TRUE(deadline_reached(early(2), deadline));
  EXPECT_TRUE(deadline_reached(early(9), deadline));
  EXPECT_TRUE(deadline_reached(early(10), deadline));
  EXPECT_FALSE(deadline_reached(early(11), deadline));
  EXPECT_FALSE(deadline_reached(early(1000), deadline));
}

TEST(GrpcClassify, PushbackPerGrfcA6) {
  using K = rebound::grpc::attempt_facts::pushback_kind;
  rebound::duration d{};
  EXPECT_EQ(rebound::grpc::parse_pushback(std::nullopt, d), K::none);
  EXPECT_EQ(rebound::grpc::parse_pushback("250", d), K::delay);
  EXPECT_EQ(d, 250ms);
  EXPECT_EQ(rebound::grpc::parse_pushback("0", d), K::delay);
  EXPECT_EQ(rebound::grpc::parse_pushback("-1", d), K::stop);
  EXPECT_EQ(rebound::grpc::parse_pushback("soon", d), K::stop);
  EXPECT_EQ(rebound::grpc::parse_pushback("", d), K::stop);
  EXPECT_EQ(rebound::grpc::parse_pushback("1.5", d), K::stop);
  // Issue 25, item 13: 13 digits and more were taken as "do not retry". Only
  // a negative or unparseable value stops (A6, "Pushback"); a large value is
  // a delay that saturates, and max_server_delay caps it.
  EXPECT_EQ(rebound::grpc::parse_pushback("1234567890123", d), K::delay);
  EXPECT_EQ(d, std::chrono::milliseconds(1'000'000'000'000LL));
  EXPECT_EQ(rebound::grpc::parse_pushback("99999999999999999999999999999999", d), K::delay);
  EXPECT_EQ(d, std::chrono::milliseconds(1'000'000'000'000LL));
  EXPECT_EQ(rebound::grpc::parse_pushback("999999999999", d), K::delay);
  EXPECT_EQ(d, std::chrono::milliseconds(999'999'999'999LL));
}

TEST(GrpcClassify, RetryInfoFromStatusDetails) {
  const auto bytes = rebound::testing::status_with_retry_info(8, "exhausted", 1500ms);
  EXPECT_EQ(rebound::grpc::retry_info_delay(bytes), 1500ms);
  EXPECT_EQ(rebound::grpc::retry_info_delay(""), std::nullopt);
  EXPECT_EQ(rebound::grpc::retry_info_delay(bytes.substr(0, bytes.size() - 3)), std::nullopt);
  EXPECT_EQ(rebound::grpc::retry_info_delay("\xff\xff\xff"), std::nullopt);
}

TEST_F(fixture, AnUnavailableWindowIsRiddenOutAndRetriesCarryTheirNumber) {
  auto req = request("window");
  req.set_unavailable_ms(150);
  SayReply reply;
  // Real back-offs here: the window is the server's real time.
  const rebound::grpc::options o{.policy = rebound::retry_policy{}
                                               .stop(rebound::stop::after_attempts(40))
                                               .backoff(rebound::backoff::constant(20ms)),
                                 .channel = channel};
  const auto s = rebound::grpc::call(o, *stub, &Echo::Stub::Say, req, &reply, spec());
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(reply.text(), "hello");
  EXPECT_GT(report.attempts, 1);
  EXPECT_EQ(server.received("window"), report.attempts);
  // gRPC's own header: absent on the first attempt, then 1, 2, ...
  const auto prev = server.previous_attempts("window");
  ASSERT_EQ(static_cast<int>(prev.size()), report.attempts);
  EXPECT_EQ(prev[0], -1);
  for (std::size_t i = 1; i < prev.size(); ++i) EXPECT_EQ(prev[i], static_cast<int>(i));
  EXPECT_EQ(reply.attempt(), report.attempts);
}

TEST_F(fixture, ResourceExhaustedIsOverloadedAndEndsAtOnce) {
  auto req = request("exhausted");
  req.set_exhausted_times(3);
  SayReply reply;
  const auto s = rebound::grpc::call(with(five()), *stub, &Echo::Stub::Say, req, &reply, spec());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(report.attempts, 1);
  EXPECT_EQ(report.reason, stop_reason::overloaded);
  EXPECT_EQ(server.received("exhausted"), 1);
}

TEST_F(fixture, PushbackDelaysTheNextAttempt) {
  auto req = request("pushback");
  req.set_exhausted_times(1);
  req.set_pushback("300");
  SayReply reply;
  const auto start = clock.now();
  const auto s = rebound::grpc::call(with(five()), *stub, &Echo::Stub::Say, req, &reply, spec());
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(report.attempts, 2);
  // The wait was the server's 300 ms, not the back-off's 10 ms (simulated time).
  EXPECT_GE(clock.now() - start, 300ms);
  EXPECT_LT(clock.now() - start, 310ms);
}

TEST_F(fixture, NegativePushbackMeansDoNotRetry) {
  auto req = request("no-pushback");
  req.set_exhausted_times(1);
  req.set_pushback("-1");
  SayReply reply;
  const rebound::grpc::options o{.policy = five().clock(clock),
                                 .retryable_codes = {code::unavailable, code::resource_exhausted}};
  const auto s = rebound::grpc::call(o, *stub, &Echo::Stub::Say, req, &reply, spec());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(report.attempts, 1);
  EXPECT_EQ(server.received("no-pushback"), 1);
}

TEST_F(fixture, RetryInfoDelaysTheNextAttempt) {
  auto req = request("retry-info");
  req.set_exhausted_times(1);
  req.set_retry_info_ms(450);
  SayReply reply;
  const auto start = clock.now();
  const auto s = rebound::grpc::call(with(five()), *stub, &Echo::Stub::Say, req, &reply, spec());
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(report.attempts, 2);
  EXPECT_GE(clock.now() - start, 450ms);
}

TEST_F(fixture, EachAttemptsDeadlineIsItsTimeoutOrWhatRemains) {
  auto req = request("deadlines");
  req.set_delay_ms(2000);  // every attempt runs out of time
  SayReply reply;
  // Real time: the deadlines are the network's.
  const rebound::grpc::options o{.policy = rebound::retry_policy{}
                                               .stop(rebound::stop::after_attempts(10))
                                               .backoff(rebound::backoff::constant(0ms))
                                               .attempt_timeout(150ms)};
  auto sp = spec();
  sp.timeout = 400ms;
  const auto s = rebound::grpc::call(o, *stub, &Echo::Stub::Say, req, &reply, sp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(report.reason, stop_reason::time_exhausted);
  const auto seen = server.deadlines("deadlines");
  ASSERT_GE(seen.size(), 2U);
  // The first attempts carry their own 150 ms; the last what was left of 400 ms.
  EXPECT_LE(seen[0], 150ms);
  EXPECT_GT(seen[0], 50ms);
  EXPECT_LE(seen.back(), 150ms);
  EXPECT_LE(static_cast<int>(seen.size()), 4);
}

TEST_F(fixture, ABackoffThatCannotFitIsNotSlept) {
  auto req = request("no-room");
  req.set_unavailable_ms(60000);
  SayReply reply;
  const rebound::grpc::options o{.policy = rebound::retry_policy{}
                                               .stop(rebound::stop::after_attempts(5))
                                               .backoff(rebound::backoff::constant(2s))
                                               .jitter(rebound::jitter::none())
                                               .clock(clock)};
  auto sp = spec();
  sp.timeout = 1s;
  const auto start = clock.now();
  const auto s = rebound::grpc::call(o, *stub, &Echo::Stub::Say, req, &reply, sp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(report.reason, stop_reason::time_exhausted);
  EXPECT_EQ(report.attempts, 1);
  EXPECT_EQ(clock.now(), start);  // nothing slept
}

// A DEADLINE_EXCEEDED the server sends before our deadline is its verdict,
// not our timeout: permanent, even with a deadline set and room to retry.
TEST_F(fixture, TheServersDeadlineExceededIsNotOurTimeout) {
  auto req = request("server-deadline");
  req.set_status(static_cast<int>(grpc::StatusCode::DEADLINE_EXCEEDED));
  SayReply reply;
  auto sp = spec();
  sp.timeout = 10s;
  const auto s = rebound::grpc::call(with(five()), *stub, &Echo::Stub::Say, req, &reply, sp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(report.reason, stop_reason::permanent_error);
  EXPECT_EQ(report.attempts, 1);
}

// Hedges are the same request sent again: refused for a method that is not idempotent.
TEST_F(fixture, HedgingAMethodThatIsNotIdempotentIsRefused) {
  SayReply reply;
  const rebound::grpc::options o{.policy = rebound::retry_policy{}.hedge({.delay = 10ms})};
  EXPECT_THROW(rebound::grpc::async_call(o, stub->async(), &Echo::Stub::async_interface::Charge,
                                         request("h"), &reply, spec(false), [](grpc::Status) {}),
               std::invalid_argument);
  EXPECT_EQ(server.received("h"), 0);
}

TEST_F(fixture, OtherCodesArePermanent) {
  auto req = request("internal");
  req.set_status(static_cast<int>(grpc::StatusCode::INTERNAL));
  SayReply reply;
  const auto s = rebound::grpc::call(with(five()), *stub, &Echo::Stub::Say, req, &reply, spec());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(report.attempts, 1);
  EXPECT_EQ(report.reason, stop_reason::permanent_error);
}

// A connection reset after the server received the request: a method not
// marked idempotent is not sent again; one that is, is.
TEST_F(fixture, AResetAfterTheRequestArrivedIsRetriedOnlyWhenIdempotent) {
  rebound::testing::tcp_proxy proxy(server.port());
  server.on_drop([&] { proxy.cut_all(); });
  auto ch = rebound::grpc::make_channel("127.0.0.1:" + std::to_string(proxy.port()));
  auto via = Echo::NewStub(ch);
  auto req = request("charge");
  req.set_drop_times(1);
  SayReply reply;
  auto o = with(five());
  o.channel = ch;  // the connectivity states say it was sent: the connection existed
  auto s = rebound::grpc::call(o, *via, &Echo::Stub::Charge, req, &reply, spec(false));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_EQ(report.reason, stop_reason::not_idempotent);
  EXPECT_EQ(report.attempts, 1);
  EXPECT_EQ(server.received("charge"), 1);

  req.set_key("say");
  s = rebound::grpc::call(o, *via, &Echo::Stub::Say, req, &reply, spec(true));
  EXPECT_TRUE(s.ok()) << s.error_message();
  // Twice at the server: the answer lost, then the one that came back. (An
  // attempt made while the channel reconnects fails unsent and may add one.)
  EXPECT_EQ(server.received("say"), 2);
  EXPECT_GE(report.attempts, 2);
}

// The idempotency predicate, by method name.
TEST_F(fixture, IdempotentMethodsByPredicate) {
  rebound::testing::tcp_proxy proxy(server.port());
  server.on_drop([&] { proxy.cut_all(); });
  auto ch = rebound::grpc::make_channel("127.0.0.1:" + std::to_string(proxy.port()));
  auto via = Echo::NewStub(ch);
  auto o = with(five());
  o.channel = ch;  // the channel the stub calls on
  o.idempotent = [](std::string_view m) { return m == "rebound.test.Echo/Say"; };
  auto req = request("pred");
  req.set_drop_times(1);
  SayReply reply;
  auto s = rebound::grpc::call(o, *via, &Echo::Stub::Say, req, &reply,
                               {.method = "rebound.test.Echo/Say", .call = {.report = &report}});
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(server.received("pred"), 2);
  EXPECT_GE(report.attempts, 2);
}

// Nothing listens: no attempt had a connection (the channel was never READY
// and ended in TRANSIENT_FAILURE), so even a method that is not idempotent
// is retried: it cannot have reached a server. Without the channel to read,
// the adapter cannot know, and does not retry it.
TEST_F(fixture, FailuresBeforeTheRequestWasSentAreAlwaysRetried) {
  int closed_port = 0;
  {
    rebound::testing::grpc_echo_server gone;
    closed_port = gone.port();
  }
  auto ch = rebound::grpc::make_channel("127.0.0.1:" + std::to_string(closed_port));
  auto nowhere = Echo::NewStub(ch);
  auto o = with(five());
  o.channel = ch;
  SayReply reply;
  auto s = rebound::grpc::call(o, *nowhere, &Echo::Stub::Charge, request("x"), &reply, spec(false));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(report.reason, stop_reason::attempts_exhausted);
  EXPECT_EQ(report.attempts, 5);
  // Without the channel there is no way to tell: every failure counts as sent.
  o.channel = nullptr;
  s = rebound::grpc::call(o, *nowhere, &Echo::Stub::Charge, request("x"), &reply, spec(false));
  EXPECT_EQ(report.reason, stop_reason::not_idempotent);
  EXPECT_EQ(report.attempts, 1);
}

TEST_F(fixture, HedgingThroughTheCallbackApiCutsTheTail) {
  auto req = request("hedge");
  req.set_delay_ms(3000);
  req.set_slow_first(1);  // only the first request is slow
  SayReply reply;
  // Real time: the hedge delay races a real server.
  auto counts = std::make_shared<rebound::counters_observer>();
  const rebound::grpc::options o{.policy = rebound::retry_policy{}
                                               .stop(rebound::stop::after_attempts(3))
                                               .hedge({.delay = 50ms, .max_hedges = 2})
                                               .observer(counts)};
  std::promise<grpc::Status> done;
  rebound::grpc::async_call(o, stub->async(), &Echo::Stub::async_interface::Say, req, &reply,
                            spec(), [&](grpc::Status s) { done.set_value(std::move(s)); });
  auto f = done.get_future();
  ASSERT_EQ(f.wait_for(2s), std::future_status::ready) << "the hedge did not win";
  const auto s = f.get();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(reply.received(), 2);  // the hedge's answer
  EXPECT_EQ(report.attempts, 2);
  EXPECT_EQ(counts->snapshot().hedges_won, 1u);
  EXPECT_EQ(counts->snapshot().attempts_cancelled, 1u);  // the slow first attempt
  // The slow first attempt was cancelled, and the server saw it.
  for (int i = 0; i < 200 && server.cancelled("hedge") == 0; ++i) {
    std::this_thread::sleep_for(5ms);  // the cancellation crosses the network
  }
  EXPECT_EQ(server.cancelled("hedge"), 1);
}

TEST_F(fixture, TheBlockingFormOfTheCallbackApiRetriesToo) {
  auto req = request("async-retry");
  req.set_unavailable_ms(100);
  SayReply reply;
  const rebound::grpc::options o{.policy = rebound::retry_policy{}
                                               .stop(rebound::stop::after_attempts(40))
                                               .backoff(rebound::backoff::constant(20ms)),
                                 .channel = channel};
  const auto s =
      rebound::grpc::call(o, stub->async(), &Echo::Stub::async_interface::Say, req, &reply, spec());
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_GT(report.attempts, 1);
  EXPECT_EQ(server.received("async-retry"), report.attempts);
}

TEST_F(fixture, ACallbackCallStopsWhenAsked) {
  auto req = request("stop");
  req.set_delay_ms(5000);
  SayReply reply;
  std::stop_source stop;
  auto sp = spec();
  sp.call.stop = stop.get_token();
  std::promise<grpc::Status> done;
  rebound::grpc::async_call(with(five()), stub->async(), &Echo::Stub::async_interface::Say, req,
                            &reply, sp, [&](grpc::Status s) { done.set_value(std::move(s)); });
  std::this_thread::sleep_for(50ms);  // the call is in flight at the server
  stop.request_stop();
  auto f = done.get_future();
  ASSERT_EQ(f.wait_for(2s), std::future_status::ready);
  EXPECT_EQ(f.get().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(report.reason, stop_reason::cancelled);
  EXPECT_EQ(report.attempts, 1);
  // The server saw the cancellation (its handler polls every 2 ms; bounded real wait).
  for (int i = 0; i < 200 && server.cancelled("stop") == 0; ++i) {
    std::this_thread::sleep_for(5ms);  // the cancellation crosses the network (at most 1 s)
  }
  EXPECT_EQ(server.cancelled("stop"), 1);
}

TEST_F(fixture, AHedgingPolicyOnABlockingStubMethodIsRefused) {
  SayReply reply;
  const rebound::grpc::options o{.policy = rebound::retry_policy{}.hedge({.delay = 10ms})};
  EXPECT_THROW((void)rebound::grpc::call(o, *stub, &Echo::Stub::Say, request("h"), &reply),
               std::invalid_argument);
}

// The nested-retry guard: inside another retry loop, the gRPC call makes one
// attempt and leaves retrying to the outer loop (no multiplication).
TEST_F(fixture, InsideAnotherRetryLoopOnlyTheOuterRetries) {
  auto req = request("nested");
  req.set_unavailable_ms(60000);
  SayReply reply;
  const auto outer = rebound::retry_policy{}
                         .stop(rebound::stop::after_attempts(3))
                         .backoff(rebound::backoff::constant(0ms))
                         .clock(clock);
  int outer_attempts = 0;
  try {
    rebound::retry(outer, [&] {
      ++outer_attempts;
      const auto s =
          rebound::grpc::call(with(five()), *stub, &Echo::Stub::Say, req, &reply, spec());
      if (!s.ok()) throw std::runtime_error("unavailable");
    });
  } catch (const std::exception&) {
  }
  EXPECT_EQ(outer_attempts, 3);
  EXPECT_EQ(server.received("nested"), 3);  // not 3 x 5
}

TEST(GrpcChannel, AChannelWithItsOwnRetryPolicyIsRefused) {
  grpc::ChannelArguments args;
  args.SetServiceConfigJSON(R"({"methodConfig": [{"name": [{"service": "rebound.test.Echo"}],
      "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.1s", "maxBackoff": "1s",
      "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]})");
  auto ch = grpc::CreateCustomChannel("127.0.0.1:1", grpc::InsecureChannelCredentials(), args);
  // The service config is applied once the channel resolves its target.
  (void)ch->GetState(true);
  for (int i = 0; i < 100 && ch->GetServiceConfigJSON().empty(); ++i) {
    std::this_thread::sleep_for(10ms);  // the resolver runs on gRPC's threads
  }
  EXPECT_THROW(rebound::grpc::check_channel(*ch), std::invalid_argument);
  EXPECT_NO_THROW(rebound::grpc::check_channel(*rebound::grpc::make_channel("127.0.0.1:1")));
}

}  // namespace
