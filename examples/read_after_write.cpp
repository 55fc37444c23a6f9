// Scenario 000: read a run back right after writing it, from a replica that
// lags behind the primary. NotFound is retried for up to 5 s with exponential
// back-off and full jitter (500 ms .. 3 s); Forbidden never is. The policy
// comes from examples/scenario_000.json's settings, overridable through
// DEMO_RETRY_* environment variables (e.g. DEMO_RETRY_BACKOFF_MAX=1s).
#include <rebound/config.hpp>
#include <rebound/duration.hpp>
#include <rebound/retry.hpp>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace {

struct not_found : std::runtime_error {
  not_found() : std::runtime_error("404 run not found (replica behind)") {}
};

// A store whose replica sees a write only `lag` after it happened.
class lagging_replica {
 public:
  explicit lagging_replica(std::chrono::milliseconds lag) : lag_(lag) {}
  void write() { written_ = std::chrono::steady_clock::now(); }
  std::string read() const {
    if (std::chrono::steady_clock::now() - written_ < lag_) throw not_found();
    return "run-42: succeeded";
  }

 private:
  std::chrono::milliseconds lag_;
  std::chrono::steady_clock::time_point written_;
};

}  // namespace

int main() {
  using namespace std::chrono_literals;
  const auto settings = rebound::apply_env(rebound::settings_from_json(R"({"max_elapsed": "5s",
        "backoff": {"type": "exponential", "initial": "500ms", "multiplier": 2, "max": "3s"},
        "jitter": "full"})"),
                                           "DEMO_RETRY");
  const auto policy = settings.to_policy().retry_on<not_found>().observer(
      std::make_shared<rebound::function_observer>([](const rebound::event& e) {
        if (e.kind == rebound::event_kind::retry_scheduled) {
          std::printf("  attempt %d failed (%.*s); retrying in %s\n", e.attempt - 1,
                      static_cast<int>(e.cause.size()), e.cause.data(),
                      rebound::format_duration(e.delay).c_str());
        }
      }));

  lagging_replica replica(1200ms);
  replica.write();
  rebound::call_report report;
  const std::string run =
      rebound::retry(policy, [&] { return replica.read(); }, {.report = &report});
  std::printf("read \"%s\" on attempt %d after %s\n", run.c_str(), report.attempts,
              rebound::format_duration(report.elapsed).c_str());
}
