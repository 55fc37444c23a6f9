// rebound::metrics: the registry, the engine's events as metrics, and the
// Prometheus text exposition format 0.0.4 (prometheus.io/docs/instrumenting/
// exposition_formats, "Text-based format"), checked line by line here and by
// Prometheus's own promtool in tests/metrics/prometheus_test.cpp.
#include "rebound/metrics.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "rebound/call.hpp"
#include "rebound/retry.hpp"
#include "rebound/testing/simulated_clock.hpp"

namespace {

using namespace std::chrono_literals;
namespace m = rebound::metrics;

TEST(Metrics, CountersAndGaugesWithHelpTypeAndEscapedLabels) {
  m::registry r;
  auto& c = r.counter("app_requests_total", "Requests\\handled\nby path", {"path"});
  c.with({"/a\"b\\c\nd"}).add(3);
  c.with({"/plain"}).add();
  r.gauge("app_temperature", "A gauge").with({}).set(-1.5);
  const std::string text = r.expose();
  // "Text-based format": HELP escapes \ and line feed; label values also ".
  EXPECT_NE(text.find("# HELP app_requests_total Requests\\\\handled\\nby path\n"
                      "# TYPE app_requests_total counter\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("app_requests_total{path=\"/a\\\"b\\\\c\\nd\"} 3\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("app_requests_total{path=\"/plain\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE app_temperature gauge\napp_temperature -1.5\n"), std::string::npos)
      << text;
  // Families in name order.
  EXPECT_LT(text.find("app_requests_total"), text.find("app_temperature"));
}

TEST(Metrics, HistogramsAreCumulativeWithInfSumAndCount) {
  m::registry r;
  const std::array<double, 3> bounds{0.1, 0.5, 1};
  auto& h = r.histogram("app_wait_seconds", "Waits", {"kind"}, bounds).with({"x"});
  for (const double v : {0.05, 0.1, 0.3, 2.0}) h.observe(v);
  const std::string text = r.expose();
  EXPECT_NE(text.find("# TYPE app_wait_seconds histogram\n"
                      "app_wait_seconds_bucket{kind=\"x\",le=\"0.1\"} 2\n"  // <= 0.1: 0.05, 0.1
                      "app_wait_seconds_bucket{kind=\"x\",le=\"0.5\"} 3\n"
                      "app_wait_seconds_bucket{kind=\"x\",le=\"1\"} 3\n"
                      "app_wait_seconds_bucket{kind=\"x\",le=\"+Inf\"} 4\n"
                      "app_wait_seconds_sum{kind=\"x\"} 2.45\n"
                      "app_wait_seconds_count{kind=\"x\"} 4\n"),
            std::string::npos)
      << text;
}

TEST(Metrics, BadNamesAndMismatchesAreRefused) {
  m::registry r;
  EXPECT_THROW((void)r.counter("1bad", "x"), std::invalid_argument);
  EXPECT_THROW((void)r.counter("bad-name", "x"), std::invalid_argument);
  EXPECT_THROW((void)r.counter("ok_total", "x", {"__reserved"}), std::invalid_argument);
  EXPECT_THROW((void)r.histogram("h", "x", {"le"}), std::invalid_argument);
  const std::array<double, 2> unsorted{1, 0.5};
  EXPECT_THROW((void)r.histogram("h", "x", {}, unsorted), std::invalid_argument);
  auto& c = r.counter("ok_total", "x", {"a"});
  EXPECT_EQ(&r.counter("ok_total", "x", {"a"}), &c);  // the same family again
  EXPECT_THROW((void)r.gauge("ok_total", "x", {"a"}), std::invalid_argument);
  EXPECT_THROW((void)r.counter("ok_total", "x", {"b"}), std::invalid_argument);
  EXPECT_THROW((void)c.with({"1", "2"}), std::invalid_argument);
}

// The engine's events: attempts, retries, failures by verdict, the end by
// reason and the delays, for one component.
TEST(Metrics, CallMetricsCountWhatTheEngineDid) {
  m::registry r;
  rebound::testing::simulated_clock clock;
  const auto policy = rebound::retry_policy{}
                          .stop(rebound::stop::after_attempts(3))
                          .backoff(rebound::backoff::constant(200ms))
                          .jitter(rebound::jitter::none())
                          .clock(clock)
                          .observer(std::make_shared<m::call_metrics>(r, "billing"));
  int n = 0;
  EXPECT_EQ(rebound::retry(policy,
                           [&] {
                             if (++n < 3) throw std::runtime_error("flaky");
                             return 7;
                           }),
            7);
  EXPECT_THROW(rebound::retry(policy, []() -> int { throw std::runtime_error("down"); }),
               std::exception);
  const std::string text = r.expose();
  EXPECT_NE(text.find("rebound_attempts_total{component=\"billing\"} 6\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("rebound_retries_total{component=\"billing\"} 4\n"), std::string::npos);
  EXPECT_NE(text.find("rebound_attempt_failures_total{component=\"billing\",verdict=\"transient\"} "
                      "5\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("rebound_calls_total{component=\"billing\",reason=\"succeeded\"} 1\n"),
            std::string::npos);
  EXPECT_NE(
      text.find("rebound_calls_total{component=\"billing\",reason=\"attempts_exhausted\"} 1\n"),
      std::string::npos);
  EXPECT_NE(text.find("rebound_retry_delay_seconds_bucket{component=\"billing\",le=\"0.25\"} 4\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("rebound_retry_delay_seconds_sum{component=\"billing\"} 0.8\n"),
            std::string::npos);
}

TEST(Metrics, HedgesStartedWonAndCancelled) {
  m::registry r;
  rebound::testing::simulated_clock clock;
  const auto policy = rebound::retry_policy{}
                          .stop(rebound::stop::after_attempts(3))
                          .hedge({.delay = 10ms, .max_hedges = 2})
                          .clock(clock)
                          .observer(std::make_shared<m::call_metrics>(r, "search"));
  // A concurrent driver's calls, as the async loop, gRPC and the simulator make them.
  for (const bool hedge_wins : {true, false}) {
    rebound::retry_call call(policy, {}, {.concurrent = true});
    ASSERT_TRUE(call.start().attempt());
    clock.advance(10ms);
    ASSERT_FALSE(call.hedge().has_value());  // attempt 2, a hedge, starts
    if (hedge_wins) {
      call.cancelled_by_winner(1);
      call.succeeded(2, true);
    } else {
      call.cancelled_by_winner(2);
      call.succeeded(1, false);
    }
  }
  const std::string text = r.expose();
  EXPECT_NE(text.find("rebound_attempts_total{component=\"search\"} 4\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("rebound_hedges_total{component=\"search\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("rebound_hedges_won_total{component=\"search\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("rebound_attempts_cancelled_total{component=\"search\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("rebound_calls_total{component=\"search\",reason=\"succeeded\"} 2\n"),
            std::string::npos);
}

TEST(Metrics, ConcurrencyLimitsAreExposed) {
  m::registry r;
  rebound::testing::simulated_clock clock;
  rebound::concurrency_limiter lim(rebound::limiter_options::fixed(2), clock);
  rebound::bulkhead bh({.max_concurrent = 1}, clock);
  rebound::rate_limiter rl({.rate = 1, .burst = 1}, clock);
  const auto a = track(r, lim, "db");
  const auto b = track(r, bh, "db");
  const auto c = track(r, rl, "db");
  const auto p1 = lim.try_acquire();
  const auto p2 = lim.try_acquire();
  EXPECT_FALSE(lim.try_acquire());
  const auto slot = bh.try_acquire();
  EXPECT_FALSE(bh.acquire());
  EXPECT_TRUE(rl.try_acquire());
  EXPECT_FALSE(rl.try_acquire());
  const std::string text = r.expose();
  for (const char* line : {"rebound_concurrency_limit{limiter=\"db\"} 2\n",
                           "rebound_limiter_in_flight{limiter=\"db\"} 2\n",
                           "rebound_limiter_rejections_total{limiter=\"db\"} 1\n",
                           "rebound_bulkhead_in_flight{bulkhead=\"db\"} 1\n",
                           "rebound_bulkhead_queued{bulkhead=\"db\"} 0\n",
                           "rebound_bulkhead_rejections_total{bulkhead=\"db\"} 1\n",
                           "rebound_rate_limiter_rejections_total{rate_limiter=\"db\"} 1\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << text;
  }
  lim.on_ignore(p1);
  lim.on_ignore(p2);
}

TEST(Metrics, BreakerStateAndTransitions) {
  m::registry r;
  rebound::testing::simulated_clock clock;
  rebound::circuit_breaker b({.failure_threshold = 2, .open_duration = 1s}, clock);
  m::track(r, b, "ledger");
  EXPECT_NE(r.expose().find("rebound_breaker_state{breaker=\"ledger\",state=\"closed\"} 1\n"),
            std::string::npos);
  for (int i = 0; i < 2; ++i) b.record(b.try_acquire(), false);
  const std::string text = r.expose();
  EXPECT_NE(text.find("rebound_breaker_state{breaker=\"ledger\",state=\"open\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("rebound_breaker_state{breaker=\"ledger\",state=\"closed\"} 0\n"),
            std::string::npos);
  EXPECT_NE(text.find("rebound_breaker_transitions_total{breaker=\"ledger\",to=\"open\"} 1\n"),
            std::string::npos);
}

// Many threads adding while another exposes: every add is counted.
TEST(Metrics, ConcurrentAddsAreAllCounted) {
  m::registry r;
  auto& c = r.counter("hits_total", "x").with({});
  auto& h = r.histogram("lat_seconds", "x", {}).with({});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.add();
        h.observe(0.002);
      }
    });
  }
  for (int i = 0; i < 20; ++i) (void)r.expose();
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.value(), 40000U);
  EXPECT_EQ(h.count(), 40000U);
  EXPECT_EQ(h.cumulative().back(), 40000U);
}

// Runs retried as a whole: attempts, retries, results and failures.
TEST(Metrics, RunSupervisorRuns) {
  m::registry r;
  rebound::testing::simulated_clock clock;
  rebound::run_supervisor runs(rebound::retry_policy{}
                                   .stop(rebound::stop::after_attempts(3))
                                   .backoff(rebound::backoff::constant(1s))
                                   .clock(clock));
  {
    const auto handle = m::track(r, runs, "agent");
    int n = 0;
    EXPECT_TRUE(runs.run({.key = "a",
                          .attempt =
                              [&](const rebound::run_context&) {
                                if (++n < 2) throw std::runtime_error("provider 503");
                              }})
                    .ok());
    EXPECT_FALSE(
        runs.run({.key = "b",
                  .attempt =
                      [](const rebound::run_context&) { throw std::runtime_error("always"); }})
            .ok());
  }
  // The handle is gone: later runs are not counted.
  (void)runs.run({.key = "c", .attempt = [](const rebound::run_context&) {}});
  const std::string text = r.expose();
  EXPECT_NE(text.find("rebound_run_attempts_total{supervisor=\"agent\"} 5\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("rebound_run_retries_total{supervisor=\"agent\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("rebound_runs_total{supervisor=\"agent\",result=\"succeeded\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("rebound_runs_total{supervisor=\"agent\",result=\"failed\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("rebound_run_failures_total{supervisor=\"agent\",failure=\"retries_"
                      "exhausted\"} 1\n"),
            std::string::npos)
      << text;
}

TEST(Metrics, CollectorsRunBeforeEachExposition) {
  m::registry r;
  std::uint64_t source = 0;
  auto& mirror = r.counter("mirrored_total", "x").with({});
  const auto id = r.on_collect([&] { mirror.mirror(source); });
  source = 41;
  EXPECT_NE(r.expose().find("mirrored_total 41\n"), std::string::npos);
  r.remove_collector(id);
  source = 99;
  EXPECT_NE(r.expose().find("mirrored_total 41\n"), std::string::npos);
}

// Issue 25, item 10: the temporary file was path.tmp.PID, shared by two
// threads writing one path: a reader saw empty, truncated or mixed files
// (392 of 3,708 reads) and the writers threw. Every read must now be one
// whole exposition, and no write may fail.
TEST(Metrics, TwoWritersOfOnePathNeverShowAPartialFile) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("rebound-metrics-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "m.prom").string();
  m::registry a, b;
  for (int i = 0; i < 200; ++i) {
    a.counter("a_total", "a", {"i"}).with({std::to_string(i)}).add(1);
    b.counter("b_total", "b", {"i"}).with({std::to_string(i)}).add(2);
  }
  const std::string text_a = a.expose(), text_b = b.expose();
  m::write_file(a, path);
  std::atomic<int> failures{0};
  std::atomic<bool> done{false};
  const auto writer = [&](const m::registry& r) {
    for (int i = 0; i < 300; ++i) {
      try {
        m::write_file(r, path);
      } catch (const std::exception&) {
        ++failures;
      }
    }
  };
  int reads = 0, bad = 0;
  std::thread reader([&] {
    while (!done) {
      std::ifstream in(path, std::ios::binary);
      const std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      ++reads;
      if (got != text_a && got != text_b) ++bad;
    }
  });
  std::thread w1(writer, std::cref(a)), w2(writer, std::cref(b));
  w1.join();
  w2.join();
  done = true;
  reader.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(bad, 0) << "of " << reads << " reads";
  EXPECT_GT(reads, 0);
  // No temporary file is left behind.
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1);
  // The file has the mode a plain create gives (0666 less the umask), not
  // mkstemp's 0600 nor a fixed 0644 (review of issue 25).
  const mode_t mask = ::umask(077);
  m::write_file(a, path);
  ::umask(mask);
  EXPECT_EQ(std::filesystem::status(path).permissions(),
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  std::filesystem::remove_all(dir);
}

}  // namespace
