// rebound::metrics against Prometheus's own tools (Debian's `prometheus`
// package, installed by the scripts): promtool checks the exposition, and a
// real Prometheus server on loopback scrapes metrics::server and answers a
// query for a counter this test drove. Each server runs in a temporary
// directory, bounded in time, and is stopped afterwards.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "harness.hpp"
#include "rebound/http/client.hpp"
#include "rebound/metrics.hpp"
#include "rebound/retry.hpp"
#include "rebound/testing/simulated_clock.hpp"

namespace {

using namespace std::chrono_literals;
namespace m = rebound::metrics;
using rebound::chaos::child;
using rebound::chaos::temp_dir;

// A registry with every kind of family, awkward label values included.
void fill(m::registry& r, std::string_view component, int failures) {
  rebound::testing::simulated_clock clock;
  const auto policy = rebound::retry_policy{}
                          .stop(rebound::stop::after_attempts(4))
                          .backoff(rebound::backoff::exponential(10ms, 2.0, 1s))
                          .clock(clock)
                          .observer(std::make_shared<m::call_metrics>(r, component));
  for (int call = 0; call < 5; ++call) {
    int n = 0;
    (void)rebound::retry(policy, [&] {
      if (++n <= failures) throw std::runtime_error("down");
      return n;
    });
  }
  r.gauge("app_info", "Odd label values: quote \" backslash \\ newline", {"value"})
      .with({"a\"b\\c\nd"})
      .set(1);
  rebound::circuit_breaker b({}, clock);
  m::track(r, b, "ledger");
}

TEST(Prometheus, PromtoolAcceptsTheExposition) {
  m::registry r;
  fill(r, "checked", 2);
  temp_dir dir("rebound-promtool");
  const auto file = dir.path() / "metrics.prom";
  m::write_file(r, file.string());
  // promtool reads the exposition on stdin and lints it (names, HELP, TYPE,
  // histogram series, escaping); exit 0 and no output when it is clean.
  child check({"sh", "-c", "promtool check metrics < '" + file.string() + "'"},
              dir.path() / "promtool.log");
  EXPECT_EQ(check.wait(30s), 0) << check.output() << "\n---\n" << r.expose();
  EXPECT_EQ(check.output(), "") << check.output();

  // And a broken file fails it (the check can fail).
  std::ofstream(dir.path() / "bad.prom") << "# TYPE x counter\nx{a=\"unterminated} 1\n";
  child bad({"sh", "-c", "promtool check metrics < '" + (dir.path() / "bad.prom").string() + "'"},
            dir.path() / "bad.log");
  EXPECT_NE(bad.wait(30s), 0);
}

TEST(Prometheus, ARealServerScrapesTheEndpointAndAnswersAQuery) {
  m::registry r;
  fill(r, "e2e", 1);  // 5 calls, each one failure then a success: 5 retries
  m::server endpoint(r);
  temp_dir dir("rebound-prometheus");
  const int port = rebound::chaos::free_port();
  std::ofstream(dir.path() / "prometheus.yml")
      << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
      << "scrape_configs:\n  - job_name: rebound\n    static_configs:\n"
      << "      - targets: ['127.0.0.1:" << endpoint.port() << "']\n";
  child prometheus({"prometheus", "--config.file=" + (dir.path() / "prometheus.yml").string(),
                    "--storage.tsdb.path=" + (dir.path() / "data").string(),
                    "--web.listen-address=127.0.0.1:" + std::to_string(port)},
                   dir.path() / "prometheus.log");
  rebound::chaos::wait_for_port(port, 30s);
  rebound::http::client http;
  const std::string query = "http://127.0.0.1:" + std::to_string(port) +
                            "/api/v1/query?query=rebound_retries_total%7Bcomponent%3D%22e2e%22%7D";
  // Prometheus scrapes every second; ask until the sample is there, for at
  // most 30 s (real time: another process's schedule).
  std::string value;
  std::string last;
  for (int i = 0; i < 300 && value.empty(); ++i) {
    const auto res = http.get(query);
    last = res.body;
    if (res.status == 200) {
      const auto j = nlohmann::json::parse(res.body, nullptr, false);
      if (!j.is_discarded() && j.value("status", "") == "success" && !j["data"]["result"].empty()) {
        value = j["data"]["result"][0]["value"][1].get<std::string>();
        EXPECT_EQ(j["data"]["result"][0]["metric"]["job"], "rebound");
      }
    }
    if (value.empty()) std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(value, "5") << last << "\n" << prometheus.output();
  // The scrape itself was healthy: `up` is 1 for our target.
  const auto up = http.get("http://127.0.0.1:" + std::to_string(port) +
                           "/api/v1/query?query=up%7Bjob%3D%22rebound%22%7D");
  const auto uj = nlohmann::json::parse(up.body, nullptr, false);
  ASSERT_FALSE(uj.is_discarded()) << up.body;
  ASSERT_FALSE(uj["data"]["result"].empty()) << up.body;
  EXPECT_EQ(uj["data"]["result"][0]["value"][1], "1");
}

TEST(Prometheus, TheEndpointAnswersOnlyGetMetrics) {
  m::registry r;
  r.counter("x_total", "x").with({}).add(2);
  m::server endpoint(r);
  EXPECT_EQ(endpoint.url(), "http://127.0.0.1:" + std::to_string(endpoint.port()) + "/metrics");
  rebound::http::client http;
  const auto ok = http.get(endpoint.url());
  EXPECT_EQ(ok.status, 200);
  EXPECT_NE(ok.body.find("x_total 2\n"), std::string::npos) << ok.body;
  EXPECT_EQ(http.get("http://127.0.0.1:" + std::to_string(endpoint.port()) + "/other").status, 404);
  EXPECT_THROW(m::server(r, {.address = "not an address"}), std::invalid_argument);
}

}  // namespace
