// A load generator for the Redis chaos test: one process of a fleet. It runs
// retry() calls under a shared budget on its own link for `seconds`, and
// prints what it saw: calls, retries refused (the call's own error), errors
// of any other kind reaching the caller, the slowest success path and the
// slowest retry decision (microseconds).
//   redis_load PORT PREFIX SECONDS
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "rebound/redis/shared.hpp"
#include "rebound/retry.hpp"

int main(int argc, char** argv) {
  if (argc != 4) return 2;
  using namespace std::chrono_literals;
  using steady = std::chrono::steady_clock;  // measuring a process boundary: real time
  rebound::redis::options o;
  o.port = std::atoi(argv[1]);
  o.key_prefix = argv[2];
  o.command_timeout = 20ms;
  o.reconnect = rebound::redis::reconnect_backoff(20ms, 100ms);
  auto link = std::make_shared<rebound::redis::link>(o);
  (void)link->wait_until_available(5s);
  auto budget = std::make_shared<rebound::redis::shared_budget>(
      link, "chaos", rebound::redis::shared_budget::ratio{.ratio = 0.5, .min_per_second = 100});
  const auto policy = rebound::retry_policy{}
                          .stop(rebound::stop::after_attempts(2))
                          .backoff(rebound::backoff::constant(0ms))
                          .budget(budget);
  const auto until = steady::now() + std::chrono::seconds(std::atoi(argv[3]));
  long calls = 0, refused = 0, surfaced = 0;
  long long worst_success_us = 0, worst_decision_us = 0;
  while (steady::now() < until) {
    const auto start = steady::now();
    try {
      // Every tenth call fails once: a retry decision against the budget.
      int tries = 0;
      rebound::retry(policy, [&] {
        if (++tries == 1 && calls % 10 == 0) throw std::runtime_error("transient");
      });
    } catch (const std::runtime_error&) {
      ++refused;  // a refused retry ends the call with its own last error, as documented
    } catch (...) {
      ++surfaced;  // anything else (a Redis error) reaching the caller breaks the promise
    }
    const auto us =
        std::chrono::duration_cast<std::chrono::microseconds>(steady::now() - start).count();
    if (calls % 10 == 0) {
      worst_decision_us = std::max<long long>(worst_decision_us, us);
    } else {
      worst_success_us = std::max<long long>(worst_success_us, us);
    }
    ++calls;
  }
  std::printf(
      "calls %ld refused %ld surfaced %ld worst_success_us %lld worst_decision_us %lld "
      "fallback %llu\n",
      calls, refused, surfaced, worst_success_us, worst_decision_us,
      static_cast<unsigned long long>(budget->fallback_decisions()));
  return 0;
}
