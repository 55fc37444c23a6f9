// A tiny program built against rebound the way users build it (CI only).
#include <rebound/retry.hpp>
#include <rebound/testing/simulated_clock.hpp>

#include <cstdio>
#include <stdexcept>

int main() {
  using namespace std::chrono_literals;
  rebound::testing::simulated_clock clock;
  const auto policy = rebound::retry_policy{}
                          .stop(rebound::stop::after_attempts(5))
                          .backoff(rebound::backoff::exponential(100ms, 2.0, 1s))
                          .clock(clock);
  int calls = 0;
  const int v = rebound::retry(policy, [&] {
    if (++calls < 3) throw std::runtime_error("transient");
    return 42;
  });
  if (v != 42 || calls != 3) {
    std::fprintf(stderr, "consumer: unexpected result %d after %d calls\n", v, calls);
    return 1;
  }
  std::printf("consumer: ok after %d calls\n", calls);
  return 0;
}
