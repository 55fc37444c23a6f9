// The HTTP adapter against the fault-injecting server, on loopback. Waits
// are real only where the server's own clock is the subject (its resume
// window) or where the issue asks for one bounded real-time check.
#include "rebound/http/client.hpp"

#include <gtest/gtest.h>

#include <chrono>

#include "fault_server.hpp"
#include "rebound/events.hpp"
#include "rebound/testing/simulated_clock.hpp"

namespace {

using namespace std::chrono_literals;
using rebound::stop_reason;
using rebound::http::client;
using rebound::http::request;

struct HttpTest : ::testing::Test {
  rebound::fault::server server;  // 127.0.0.1, a free port; stopped by its destructor
  std::vector<rebound::event> events;
  std::vector<std::string> causes;  // events' views last only during the call
  rebound::retry_policy policy =
      rebound::retry_policy{}
          .stop(rebound::stop::after_attempts(30) | rebound::stop::after_elapsed(10s))
          .backoff(rebound::backoff::exponential(50ms, 2.0, 300ms))
          .jitter(rebound::jitter::full())
          .observer(std::make_shared<rebound::function_observer>([this](const rebound::event& e) {
            events.push_back(e);
            causes.emplace_back(e.cause);
          }));
  int count(rebound::event_kind k) const {
    return static_cast<int>(std::count_if(events.begin(), events.end(),
                                          [k](const rebound::event& e) { return e.kind == k; }));
  }
};

TEST_F(HttpTest, GetRidesThroughAResumeWindowOf503) {
  client c({.policy = policy});
  const auto start = std::chrono::steady_clock::now();
  const auto r = c.get(server.url("/resume/get?ms=1500&status=503"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok get\n");
  EXPECT_EQ(r.reason, stop_reason::succeeded);
  EXPECT_GT(r.attempts, 2);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 1500ms);  // the server's window, for real
  EXPECT_EQ(server.executed().by_path.at("/resume/get"), r.attempts);
}

TEST_F(HttpTest, EachAttemptsEventCarriesItsResendCount) {
  rebound::testing::simulated_clock clock;
  client c({.policy = policy.clock(clock)});
  const auto r = c.get(server.url("/retry-after/resend?status=503&seconds=1&times=2"));
  EXPECT_EQ(r.status, 200);
  // OpenTelemetry's http.request.resend_count: 0 on the first send, then 1, 2.
  std::vector<int> resends;
  for (const auto& e : events) {
    if (e.kind == rebound::event_kind::attempt_started) resends.push_back(e.resend_count());
  }
  EXPECT_EQ(resends, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(r.attempts, 3);
}

TEST_F(HttpTest, PostWithoutAKeyIsSentOnceAndStopsAsNotIdempotent) {
  client c({.policy = policy});
  const auto r = c.send({.method = "POST", .url = server.url("/resume/post?ms=1500"), .body = "x"});
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.reason, stop_reason::not_idempotent);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(server.executed().executions_by_method.at("POST"), 1);
}

TEST_F(HttpTest, PostWithAKeyIsRetriedAndExecutedOncePerKey) {
  client c({.policy = policy});
  const auto r = c.send({.method = "POST",
                         .url = server.url("/resume/keyed?ms=800"),
                         .body = "x",
                         .idempotency_key = "order-17"});
  EXPECT_EQ(r.status, 200);
  EXPECT_GT(r.attempts, 1);
  const auto seen = server.executed();
  EXPECT_EQ(seen.by_key.at("order-17"), r.attempts);   // every attempt carried the key
  EXPECT_EQ(seen.executions_by_method.at("POST"), 1);  // and it was executed once
}

TEST_F(HttpTest, GeneratedKeysMakePostRetryable) {
  client c({.policy = policy, .generate_idempotency_key = true});
  const auto r = c.send({.method = "POST", .url = server.url("/resume/gen?ms=300"), .body = "x"});
  EXPECT_EQ(r.status, 200);
  ASSERT_EQ(server.executed().by_key.size(), 1u);
  EXPECT_EQ(server.executed().by_key.begin()->first.size(), 32u);
}

TEST_F(HttpTest, PerRequestOverrideRetriesAPostTheCallerKnowsIsSafe) {
  client c({.policy = policy});
  const auto r = c.send({.method = "POST",
                         .url = server.url("/resume/override?ms=300"),
                         .retry = rebound::http::retry_mode::always});
  EXPECT_EQ(r.status, 200);
  EXPECT_GT(r.attempts, 1);
  const auto never =
      c.send({.url = server.url("/status/503"), .retry = rebound::http::retry_mode::never});
  EXPECT_EQ(never.attempts, 1);
  EXPECT_EQ(never.reason, stop_reason::not_idempotent);
}

TEST_F(HttpTest, RetryAfterSecondsIsWaitedOnTheSystemClock) {
  // The one real-time check of a server-given delay: 2 s, within 10%.
  client c({.policy = policy});
  const auto start = std::chrono::steady_clock::now();
  const auto r = c.get(server.url("/retry-after/real?status=429&seconds=2"));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.attempts, 2);
  EXPECT_GE(took, 2000ms);
  EXPECT_LE(took, 2200ms);
}

TEST_F(HttpTest, RetryAfterIsWaitedExactlyOnTheSimulatedClock) {
  rebound::testing::simulated_clock clock;
  client c({.policy = policy.clock(clock)});
  auto r = c.get(server.url("/retry-after/sim?status=503&seconds=7"));
  EXPECT_EQ(r.status, 200);
  ASSERT_EQ(clock.sleeps().size(), 1u);
  EXPECT_EQ(clock.sleeps()[0], rebound::duration(7s));
}

TEST_F(HttpTest, RetryAfterAsAnHttpDateUsesTheInjectedWallClock) {
  rebound::testing::simulated_clock clock;
  // The client's wall clock runs 30 s behind the server's: the date is 30 s further away.
  client c({.policy = policy.clock(clock),
            .wall_clock = [] { return std::chrono::system_clock::now() - 30s; }});
  const auto r = c.get(server.url("/retry-after/date?status=503&seconds=5&form=date"));
  EXPECT_EQ(r.status, 200);
  ASSERT_EQ(clock.sleeps().size(), 1u);
  EXPECT_GE(clock.sleeps()[0], rebound::duration(33s));  // 35 s, less date rounding
  EXPECT_LE(clock.sleeps()[0], rebound::duration(35s));
}

TEST_F(HttpTest, RetryAfterBeyondTheCapFailsAtOnce) {
  rebound::testing::simulated_clock clock;
  client c({.policy = policy.clock(clock), .max_retry_after = 60s});
  const auto r = c.get(server.url("/retry-after/cap?status=429&seconds=3600"));
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.reason, stop_reason::server_delay_too_long);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_TRUE(clock.sleeps().empty());
  EXPECT_EQ(r.header("retry-after"), "3600");
}

TEST_F(HttpTest, AMalformedRetryAfterIsIgnoredWithAnEvent) {
  rebound::testing::simulated_clock clock;
  client c({.policy = policy.clock(clock)});
  const auto r = c.get(server.url("/bad-retry-after/x"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(count(rebound::event_kind::server_delay_ignored), 1);
  ASSERT_EQ(clock.sleeps().size(), 1u);
  EXPECT_LE(clock.sleeps()[0], rebound::duration(50ms));  // the back-off's, not "soon"
}

TEST_F(HttpTest, AResetMidBodyOnGetIsRetried) {
  client c({.policy = policy});
  const auto r = c.get(server.url("/reset/get?times=1&bytes=100"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(r.body, std::string(1000, 'y'));  // the failed attempt's partial body is gone
  ASSERT_FALSE(events.empty());
  bool saw_partial = false;
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (events[i].kind == rebound::event_kind::attempt_failed) {
      saw_partial = causes[i].find("partial_body") != std::string::npos;
    }
  }
  EXPECT_TRUE(saw_partial);
}

TEST_F(HttpTest, NotImplementedAndNotFoundAreNotRetried) {
  client c({.policy = policy});
  for (const char* path : {"/status/501", "/status/404"}) {
    const auto r = c.get(server.url(path));
    EXPECT_EQ(r.attempts, 1) << path;
    EXPECT_EQ(r.reason, stop_reason::succeeded) << path;  // an answer, not a failure to retry
  }
  EXPECT_EQ(server.executed().total, 2);
}

TEST_F(HttpTest, ConnectRefusedIsRetriedEvenForPostAndThenThrown) {
  rebound::testing::simulated_clock clock;
  client c({.policy = policy.clock(clock).stop(rebound::stop::after_attempts(3))});
  // Port 1 on loopback: nothing listens, nothing of the request is sent.
  rebound::call_report report;
  try {
    c.send({.method = "POST", .url = "http://127.0.0.1:1/x", .body = "x"}, {.report = &report});
    ADD_FAILURE() << "expected a transport error";
  } catch (const rebound::http::transport_error& e) {
    EXPECT_EQ(e.kind(), rebound::http::transport_kind::connect_refused);
    EXPECT_FALSE(e.request_sent());
  }
  EXPECT_EQ(report.attempts, 3);
  EXPECT_EQ(report.reason, stop_reason::attempts_exhausted);
}

TEST_F(HttpTest, AttemptTimeoutCutsAHangingAttemptAndRetries) {
  client c({.policy = policy.attempt_timeout(300ms).stop(rebound::stop::after_attempts(2)),
            .attempt_header = "X-Attempt"});
  rebound::call_report report;
  try {
    (void)c.get(server.url("/hang/t?ms=700"), {.report = &report});
    ADD_FAILURE() << "expected a timeout";
  } catch (const rebound::http::transport_error& e) {
    EXPECT_EQ(e.kind(), rebound::http::transport_kind::timeout);
  }
  EXPECT_EQ(report.attempts, 2);
  bool timeout_verdict = false;
  for (const auto& e : events) {
    if (e.kind == rebound::event_kind::attempt_failed) timeout_verdict = e.verdict.timeout;
  }
  EXPECT_TRUE(timeout_verdict);
}

TEST_F(HttpTest, AStopRequestCancelsTheBackoff) {
  rebound::testing::simulated_clock clock;
  std::stop_source stop;
  clock.on_sleep([&](rebound::duration) { stop.request_stop(); });
  client c({.policy = policy.clock(clock)});
  EXPECT_THROW((void)c.get(server.url("/status/503"), {.stop = stop.get_token()}),
               rebound::retry_error);
  EXPECT_EQ(server.executed().total, 1);
}

TEST_F(HttpTest, OneClientSendsMixedRequestsWithoutLeakingOptions) {
  client c({.policy = policy});
  EXPECT_EQ(c.send({.method = "POST", .url = server.url("/status/200"), .body = "abc"}).status,
            200);
  EXPECT_EQ(c.send({.method = "HEAD", .url = server.url("/status/200")}).body, "");
  EXPECT_EQ(c.get(server.url("/status/200")).body, "status 200\n");
  EXPECT_EQ(c.send({.method = "DELETE", .url = server.url("/status/200")}).status, 200);
  const auto seen = server.executed();
  EXPECT_EQ(seen.by_method.at("POST"), 1);
  EXPECT_EQ(seen.by_method.at("HEAD"), 1);
  EXPECT_EQ(seen.by_method.at("GET"), 1);
  EXPECT_EQ(seen.by_method.at("DELETE"), 1);
}

TEST(RetryAfterParse, BothFormsOfRfc9110) {
  using rebound::http::parse_retry_after;
  const auto now = std::chrono::system_clock::from_time_t(784111777);  // Sun, 06 Nov 1994 08:49:37
  EXPECT_EQ(parse_retry_after("120", now), rebound::duration(120s));
  EXPECT_EQ(parse_retry_after(" 0 ", now), rebound::duration(0s));
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now), rebound::duration(60s));
  EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:51:37 GMT", now), rebound::duration(120s));
  EXPECT_EQ(parse_retry_after("Sun Nov  6 08:49:47 1994", now), rebound::duration(10s));
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), rebound::duration(0s));
  EXPECT_FALSE(parse_retry_after("soon", now));
  EXPECT_FALSE(parse_retry_after("-5", now));
  EXPECT_FALSE(parse_retry_after("1.5", now));
  EXPECT_FALSE(parse_retry_after("Sun, 06 Foo 1994 08:50:37 GMT", now));
  EXPECT_FALSE(parse_retry_after("", now));
  EXPECT_EQ(parse_retry_after("99999999999999999999", now), rebound::duration::max());
  // Past what nanoseconds hold: saturated (then the cap ends the call), never wrapped.
  EXPECT_EQ(parse_retry_after("9223372037", now), rebound::duration::max());
  EXPECT_EQ(parse_retry_after("18446744074", now), rebound::duration::max());
  // Past 2262, where a nanosecond time_point ends: computed in seconds, not wrapped.
  EXPECT_GT(parse_retry_after("Sat, 12 Apr 2262 00:00:00 GMT", now),
            rebound::duration(24h * 365 * 260));
  EXPECT_EQ(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now), rebound::duration::max());
  EXPECT_FALSE(parse_retry_after("Tue, 31 Feb 2026 20:00:00 GMT", now));  // no such day
}

// RFC 9110 section 5.6.7, to the letter.
TEST(RetryAfterParse, Rfc9110HttpDateGrammar) {
  using rebound::http::parse_retry_after;
  const auto now = std::chrono::system_clock::from_time_t(784111777);  // Sun, 06 Nov 1994 08:49:37
  // "A recipient that parses a timestamp value in an HTTP header field MUST
  // accept all three HTTP-date formats."
  EXPECT_TRUE(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now));
  EXPECT_TRUE(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now));
  EXPECT_TRUE(parse_retry_after("Sun Nov  6 08:49:37 1994", now));
  // "HTTP-date is case sensitive": day and month names as written.
  EXPECT_FALSE(parse_retry_after("sun, 06 Nov 1994 08:50:37 GMT", now));
  EXPECT_FALSE(parse_retry_after("Sun, 06 nov 1994 08:50:37 GMT", now));
  EXPECT_FALSE(parse_retry_after("Sun, 06 Nov 1994 08:50:37 gmt", now));
  // day-name, day-name-l: the seven names, short in IMF-fixdate and asctime,
  // long in rfc850-date.
  EXPECT_FALSE(parse_retry_after("Fun, 06 Nov 1994 08:50:37 GMT", now));
  EXPECT_FALSE(parse_retry_after("Sun, 06-Nov-94 08:50:37 GMT", now));
  EXPECT_FALSE(parse_retry_after("Sunday, 06 Nov 1994 08:50:37 GMT", now));
  // date1: day = 2DIGIT, year = 4DIGIT.
  EXPECT_FALSE(parse_retry_after("Sun, 6 Nov 1994 08:50:37 GMT", now));
  EXPECT_FALSE(parse_retry_after("Sun, 06 Nov 94 08:50:37 GMT", now));
  // time-of-day: second 60 is a leap second (it counts as the second after :59).
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:50:60 GMT", now), rebound::duration(83s));
  EXPECT_FALSE(parse_retry_after("Sun, 06 Nov 1994 24:00:00 GMT", now));
  EXPECT_FALSE(parse_retry_after("Sun, 06 Nov 1994 08:60:00 GMT", now));
  // "Recipients of a timestamp value in rfc850-date format, which uses a
  // two-digit year, MUST interpret a timestamp that appears to be more than
  // 50 years in the future as representing the most recent year in the past
  // that had the same last two digits."
  const auto in_2026 = std::chrono::system_clock::from_time_t(1795000000);  // 2026-11-18
  EXPECT_EQ(parse_retry_after("Friday, 20-Nov-26 00:00:00 GMT", in_2026).value_or(-1s) > 0s, true);
  EXPECT_EQ(parse_retry_after("Monday, 20-Nov-76 00:00:00 GMT", in_2026).value_or(-1s) > 0s,
            true);  // 2076: 50 years ahead, not more
  EXPECT_EQ(parse_retry_after("Saturday, 20-Nov-77 00:00:00 GMT", in_2026), 0s);  // 1977: past
  EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", in_2026), 0s);    // 1994
}

// No request that could carry a header of the sender's choosing, or that has
// no valid URL, is ever sent: refused before the first attempt.
TEST_F(HttpTest, HeaderInjectionAndMalformedUrlsAreRefusedBeforeSending) {
  using rebound::http::invalid_request;
  rebound::http::client c({.policy = policy});
  const auto refused = [&](rebound::http::request r, const std::string& field) {
    try {
      (void)c.send(r);
      ADD_FAILURE() << "sent a request with a bad " << field;
    } catch (const invalid_request& e) {
      EXPECT_EQ(e.field(), field) << e.what();
    }
  };
  const std::string url = server.url("/status/200");
  refused({.url = url, .headers = {{"X", "a\r\nEvil: b"}}}, "headers[0]");
  refused({.url = url, .headers = {{"X-Ok", "fine"}, {"Y", std::string("a\0b", 3)}}}, "headers[1]");
  refused({.url = url, .headers = {{"Bad Name", "v"}}}, "headers[0]");
  refused({.url = url, .headers = {{"X\r\nEvil", "v"}}}, "headers[0]");
  refused({.method = "POST", .url = url, .idempotency_key = "k\nEvil: 1"}, "idempotency_key");
  refused({.method = "GE T", .url = url}, "method");
  refused({.url = "http://"}, "url");
  refused({.url = "ftp://example.com/"}, "url");
  refused({.url = "not a url"}, "url");
  rebound::http::client with_attempt_header({.policy = policy, .attempt_header = "X\nY"});
  try {
    (void)with_attempt_header.get(url);
    ADD_FAILURE();
  } catch (const invalid_request& e) {
    EXPECT_EQ(e.field(), "attempt_header");
  }
  EXPECT_EQ(server.executed().total, 0);  // nothing reached the server
  // A tab and obs-text are allowed in a value.
  EXPECT_EQ(c.send({.url = url, .headers = {{"X", "a\tb \xC3\xA9"}}}).status, 200);
}

TEST(Idempotency, MethodsSafeToRepeat) {
  for (const char* m : {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}) {
    EXPECT_TRUE(rebound::http::idempotent_method(m)) << m;
  }
  for (const char* m : {"POST", "PATCH", "CONNECT", "get"}) {
    EXPECT_FALSE(rebound::http::idempotent_method(m)) << m;
  }
}

}  // namespace
