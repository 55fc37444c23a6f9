// The README's quick start: retry a flaky call under a policy.
#include <rebound/retry.hpp>

#include <cstdio>
#include <stdexcept>

struct unavailable : std::runtime_error {
  unavailable() : std::runtime_error("503 service unavailable") {}
};
struct forbidden : std::runtime_error {
  forbidden() : std::runtime_error("403 forbidden") {}
};

int main() {
  using namespace std::chrono_literals;
  const auto policy = rebound::retry_policy{}
                          .stop(rebound::stop::after_attempts(5) | rebound::stop::after_elapsed(2s))
                          .backoff(rebound::backoff::exponential(50ms, 2.0, 500ms))
                          .jitter(rebound::jitter::full())
                          .retry_on<unavailable>();  // anything else is permanent

  int calls = 0;
  const int answer = rebound::retry(policy, [&] {
    if (++calls < 3) throw unavailable();
    return 42;
  });
  std::printf("answer %d after %d calls\n", answer, calls);

  try {
    rebound::retry(policy, [&] { throw forbidden(); });
  } catch (const forbidden& e) {
    std::printf("not retried: %s\n", e.what());
  }
}
