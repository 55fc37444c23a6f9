// rebound-fleet-worker: one process of a fleet, for the multi-process
// measurement of the shared budget (tests/fleet/fleet_test.cpp and
// bench/fleet_processes.cpp). Not installed.
//
//   rebound-fleet-worker MODE URL RATE SECONDS FLEET REDIS_PORT
//
// Sends RATE requests per second to URL (a route of the fault server that
// answers 503: an outage) for SECONDS, each under 4 attempts with a 2 ms
// back-off and a ratio budget (5% of calls, a floor of 5 retries per second
// for the whole fleet, a 10 s window). MODE picks the budget:
//   local            a budget of its own (the floor is the fleet's, per process)
//   shared           one budget for the fleet, in Redis on REDIS_PORT
//   down-share       the same with Redis unreachable and never reached: each
//                    process falls back to its share (FLEET processes assumed)
//   down-whole       the same, each falling back to a whole budget
//   lost             as shared; the harness kills Redis during the run (and
//                    may start it again, empty)
// Prints one JSON object: requests, attempts, retries, decisions, the retry
// decision's p50 and p99 in microseconds, Redis commands, seconds, and the
// time of each granted retry (grants_ms, on the machine's monotonic clock,
// which every process shares).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "rebound/budget.hpp"
#include "rebound/clock.hpp"
#include "rebound/http/client.hpp"
#include "rebound/redis/shared.hpp"

namespace {

using namespace std::chrono_literals;

// Times each retry decision of the budget it wraps, on rebound's clock.
class timed_budget final : public rebound::retry_budget {
 public:
  explicit timed_budget(std::shared_ptr<rebound::retry_budget> inner) : inner_(std::move(inner)) {}
  void on_call() noexcept override { inner_->on_call(); }
  bool try_acquire(const rebound::retry_request& r) noexcept override {
    rebound::clock& c = rebound::system_clock();
    const auto t0 = c.now();
    const bool ok = inner_->try_acquire(r);
    try {
      micros_.push_back(std::chrono::duration<double, std::micro>(c.now() - t0).count());
    } catch (...) {  // NOLINT(bugprone-empty-catch): a lost sample, not a lost decision
    }
    if (ok) {
      ++granted_;
      try {
        grants_ms_.push_back(
            std::chrono::duration_cast<std::chrono::milliseconds>(c.now().time_since_epoch())
                .count());
      } catch (...) {  // NOLINT(bugprone-empty-catch): a lost sample, not a lost decision
      }
    }
    return ok;
  }
  void on_success(const rebound::retry_request* last) noexcept override {
    inner_->on_success(last);
  }
  void on_failure() noexcept override { inner_->on_failure(); }
  std::vector<double> micros_;
  std::vector<long long> grants_ms_;
  long long granted_ = 0;

 private:
  std::shared_ptr<rebound::retry_budget> inner_;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: rebound-fleet-worker MODE URL RATE SECONDS FLEET REDIS_PORT\n");
    return 2;
  }
  const std::string mode = argv[1];
  const std::string url = argv[2];
  const double rate = std::atof(argv[3]);
  const double seconds = std::atof(argv[4]);
  const int fleet = std::atoi(argv[5]);
  const int redis_port = std::atoi(argv[6]);
  const rebound::ratio_budget::options ratio{
      .ratio = 0.05, .min_per_second = 5, .window = std::chrono::seconds(10)};

  std::shared_ptr<rebound::redis::link> link;
  std::shared_ptr<rebound::retry_budget> inner;
  if (mode == "local") {
    inner = std::make_shared<rebound::ratio_budget>(ratio);
  } else if (mode == "shared" || mode == "lost" || mode == "down-share" || mode == "down-whole") {
    const bool reached = mode == "shared" || mode == "lost";
    rebound::redis::options o;
    o.port = reached ? redis_port : 1;  // 1: nothing listens (Redis away)
    o.key_prefix = "fleet";
    o.connect_timeout = 20ms;
    o.share = mode != "down-whole";
    o.expected_fleet_size = fleet;
    link = std::make_shared<rebound::redis::link>(o);
    if (reached && !link->wait_until_available(5000ms)) {
      std::fprintf(stderr, "rebound-fleet-worker: no Redis on port %d\n", redis_port);
      return 1;
    }
    inner = std::make_shared<rebound::redis::shared_budget>(link, "dependency", ratio);
  } else {
    std::fprintf(stderr, "rebound-fleet-worker: unknown mode %s\n", mode.c_str());
    return 2;
  }
  auto budget = std::make_shared<timed_budget>(inner);
  rebound::http::client client({.policy = rebound::retry_policy{}
                                              .stop(rebound::stop::after_attempts(4))
                                              .backoff(rebound::backoff::constant(2ms))
                                              .jitter(rebound::jitter::none())
                                              .budget(budget)});
  rebound::clock& c = rebound::system_clock();
  const auto start = c.now();
  const auto end =
      start + std::chrono::duration_cast<rebound::duration>(std::chrono::duration<double>(seconds));
  const auto gap =
      std::chrono::duration_cast<rebound::duration>(std::chrono::duration<double>(1.0 / rate));
  long long requests = 0;
  long long attempts = 0;
  for (auto next = start; next < end; next += gap) {
    (void)c.sleep_until(next, {});  // the offered rate (a real process, real time)
    const auto r = client.get(url);
    ++requests;
    attempts += r.attempts;
  }
  const double took = std::chrono::duration<double>(c.now() - start).count();
  std::string grants = "[";
  for (std::size_t i = 0; i < budget->grants_ms_.size(); ++i) {
    if (i > 0) grants += ',';
    grants += std::to_string(budget->grants_ms_[i]);
  }
  grants += ']';
  std::printf(
      "{\"mode\": \"%s\", \"requests\": %lld, \"attempts\": %lld, \"retries\": %lld, "
      "\"decisions\": %zu, \"p50_us\": %.2f, \"p99_us\": %.2f, \"redis_commands\": %llu, "
      "\"seconds\": %.3f, \"grants_ms\": %s}\n",
      mode.c_str(), requests, attempts, budget->granted_, budget->micros_.size(),
      percentile(budget->micros_, 0.5), percentile(budget->micros_, 0.99),
      static_cast<unsigned long long>(link ? link->commands() : 0), took, grants.c_str());
  return 0;
}
