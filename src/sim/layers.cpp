// A call chain of retry loops, nested for real, on simulated time (the
// engine's clock: a blocking loop's sleep runs the simulation forward).
#include <algorithm>
#include <stdexcept>

#include "rebound/random.hpp"
#include "rebound/retry.hpp"
#include "rebound/sim/engine.hpp"
#include "rebound/sim/scenarios.hpp"

namespace rebound::sim {

namespace {

struct bottom_failure : std::runtime_error {
  bottom_failure() : std::runtime_error("bottom layer failed") {}
};

// Layer `level` calls the next one under its own policy; the last calls the dependency.
void call_layer(const retry_policy& p, int level, int depth, random_stream& rng,
                double failure_rate, int& bottom_attempts) {
  rebound::retry(p, [&] {
    if (level + 1 < depth) {
      call_layer(p, level + 1, depth, rng, failure_rate, bottom_attempts);
      return;
    }
    ++bottom_attempts;
    if (rng.uniform() < failure_rate) throw bottom_failure();
  });
}

}  // namespace

layers_result run_layers(const layers_options& o) {
  layers_result r;
  for (const auto mode : {nesting::independent, nesting::defer}) {
    engine clock(o.seed);
    const auto policy = retry_policy{}
                            .stop(stop::after_attempts(std::max(1, o.attempts)))
                            .backoff(backoff::exponential(std::chrono::milliseconds(10), 2.0,
                                                          std::chrono::seconds(1)))
                            .nesting(mode)
                            .clock(clock)
                            .seed(o.seed);
    random_stream rng(o.seed);
    double total = 0;
    double most = 0;
    int ok = 0;
    for (int i = 0; i < o.requests; ++i) {
      int bottom = 0;
      try {
        call_layer(policy, 0, std::max(1, o.depth), rng, o.failure_rate, bottom);
        ++ok;
      } catch (const bottom_failure&) {
      }
      total += bottom;
      most = std::max(most, static_cast<double>(bottom));
    }
    const double n = std::max(1, o.requests);
    r.rows.push_back({mode == nesting::defer ? "guarded" : "independent", total / n, most, ok / n});
  }
  return r;
}

}  // namespace rebound::sim
