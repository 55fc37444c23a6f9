// Hedged requests against a dependency with a slow tail: how much tail
// latency each hedge delay buys, and what it costs in extra load. Hedge
// decisions are the library's own: hedge_policy::current_delay (fixed or an
// observed percentile, through latency_tracker), the call engine's hedge()
// (attempt limit, retry budget, throttle) and the budget itself.
#include <algorithm>
#include <array>
#include <cmath>
#include <memory>

#include "rebound/budget.hpp"
#include "rebound/call.hpp"
#include "rebound/sim/engine.hpp"
#include "rebound/sim/scenarios.hpp"
#include "seed.hpp"

namespace rebound::sim {

namespace {

using namespace std::chrono_literals;
using detail::mix;

constexpr std::uint64_t max_attempts_per_request = 16;  // hedges are capped at 10 by config

class hedging_run {
 public:
  hedging_run(const hedging_options& o, const strategy& s)
      : o_(o),
        eng_(mix(o.seed, 0x4ed6e)),
        arrivals_(mix(o.seed, 0xa771)),
        latencies_(mix(o.seed, 0x1a7e)),
        policy_(s.make(eng_)) {
    row_.strategy = s.name;
  }

  hedging_row run() {
    eng_.after<&hedging_run::arrive>(gap(), this, 0);
    if (o_.requests == 0) eng_.run_until(eng_.start() + o_.length);
    eng_.run();  // requests in flight finish; no new arrivals after the length or count
    const double n = std::max<double>(1, static_cast<double>(requests_.size()));
    std::sort(done_ms_.begin(), done_ms_.end());
    auto pct = [&](double q) {
      if (done_ms_.empty()) return 0.0;
      const auto i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(done_ms_.size())));
      return done_ms_[std::clamp<std::size_t>(i, 1, done_ms_.size()) - 1];
    };
    row_.requests = requests_.size();
    row_.completed = done_ms_.size();
    row_.latency_p50_ms = pct(0.50);
    row_.latency_p90_ms = pct(0.90);
    row_.latency_p95_ms = pct(0.95);
    row_.latency_p99_ms = pct(0.99);
    row_.latency_p999_ms = pct(0.999);
    row_.latency_max_ms = done_ms_.empty() ? 0 : done_ms_.back();
    row_.attempts_per_request = static_cast<double>(attempts_) / n;
    row_.server_ms_per_request = server_ms_ / n;
    events = eng_.events_run();
    return row_;
  }
  std::uint64_t events = 0;

 private:
  struct request {
    time_point start;
    retry_call call;
    int launched = 0;
    bool done = false;
    std::array<time_point, max_attempts_per_request> started{};
    std::array<time_point, max_attempts_per_request> ends{};
  };

  duration gap() {
    return duration(
        static_cast<duration::rep>(detail::unit_exponential(arrivals_) * 1e9 / o_.rate));
  }
  // A lognormal body (median, sigma) with a uniform slow tail, or with
  // fixed delays added in tiers.
  duration service_time() {
    if (!o_.tiers.empty()) {
      const double u = latencies_.uniform();
      double below = 0;
      duration extra{};
      for (const auto& t : o_.tiers) {
        below += t.probability;
        if (u < below) {
          extra = t.delay;
          break;
        }
      }
      return extra + body();
    }
    if (latencies_.uniform() < o_.slow_probability) {
      const double span = static_cast<double>((o_.slow_max - o_.slow_min).count());
      return o_.slow_min + duration(static_cast<duration::rep>(latencies_.uniform() * span));
    }
    return body();
  }
  duration body() {
    double u1 = latencies_.uniform();
    if (u1 <= 0) u1 = 0x1.0p-53;
    const double z =
        std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * latencies_.uniform());
    return duration(static_cast<duration::rep>(static_cast<double>(o_.latency_median.count()) *
                                               std::exp(o_.latency_sigma * z)));
  }

  void arrive(std::uint64_t) {
    if (o_.requests > 0 ? requests_.size() >= o_.requests
                        : eng_.now() - eng_.start() >= o_.length) {
      return;
    }
    const std::uint64_t id = requests_.size();
    requests_.push_back(std::make_unique<request>(
        request{eng_.now(),
                retry_call(policy_, {.seed = mix(o_.seed, id)},
                           {.eager_start = true, .nested = 0, .concurrent = true}),
                0,
                false,
                {},
                {}}));
    eng_.after<&hedging_run::arrive>(gap(), this, 0);  // the next one, whatever this one does
    if (!requests_.back()->call.start().attempt()) return;
    launch(id);
    schedule_hedge(id);
  }

  void launch(std::uint64_t id) {
    request& r = *requests_[id];
    const auto k = static_cast<std::uint64_t>(r.launched++);
    r.started[k] = eng_.now();
    r.ends[k] = eng_.now() + service_time();
    ++attempts_;
    eng_.at<&hedging_run::attempt_done>(r.ends[k], this, id * max_attempts_per_request + k);
  }

  void schedule_hedge(std::uint64_t id) {
    const auto& h = policy_.hedge();
    if (!h) return;
    eng_.after<&hedging_run::hedge_due>(h->current_delay(), this, id);
  }

  void hedge_due(std::uint64_t id) {
    request& r = *requests_[id];
    if (r.done) return;
    const auto& h = policy_.hedge();
    if (r.launched - 1 >= h->max_hedges ||
        r.launched >= static_cast<int>(max_attempts_per_request)) {
      return;
    }
    if (const auto why_not = r.call.hedge()) {
      if (*why_not == stop_reason::budget_exhausted) ++row_.hedges_refused;
      return;
    }
    ++row_.hedges;
    launch(id);
    schedule_hedge(id);
  }

  void attempt_done(std::uint64_t arg) {
    // The first to answer wins, whichever it is; those still running are
    // cancelled.
    const std::uint64_t id = arg / max_attempts_per_request;
    const auto winner = static_cast<int>(arg % max_attempts_per_request);
    request& r = *requests_[id];
    if (r.done) return;  // a loser: cancelled when the winner answered (counted there)
    r.done = true;
    for (int i = 0; i < r.launched; ++i) {
      if (i != winner && r.ends[static_cast<std::size_t>(i)] > eng_.now())
        r.call.cancelled_by_winner(i + 1);
    }
    r.call.succeeded(winner + 1, winner > 0);
    if (const auto& h = policy_.hedge(); h && h->tracker) {
      // The winner's time, and at least this long for each attempt it beat
      // (as the async loop records them).
      for (int i = 0; i < r.launched; ++i) {
        h->tracker->record(eng_.now() - r.started[static_cast<std::size_t>(i)]);
      }
    }
    done_ms_.push_back(std::chrono::duration<double, std::milli>(eng_.now() - r.start).count());
    // The server worked on every attempt until it answered or was cancelled now.
    for (int i = 0; i < r.launched; ++i) {
      const time_point end = std::min(r.ends[static_cast<std::size_t>(i)], eng_.now());
      server_ms_ +=
          std::chrono::duration<double, std::milli>(end - r.started[static_cast<std::size_t>(i)])
              .count();
    }
  }

  const hedging_options& o_;
  engine eng_;
  random_stream arrivals_;
  random_stream latencies_;
  retry_policy policy_;
  std::vector<std::unique_ptr<request>> requests_;
  std::vector<double> done_ms_;
  std::uint64_t attempts_ = 0;
  double server_ms_ = 0;
  hedging_row row_;
};

}  // namespace

std::vector<strategy> default_hedging_strategies() {
  const auto base = [](clock& c) { return retry_policy{}.stop(stop::after_attempts(2)).clock(c); };
  const auto fixed = [=](duration d) {
    return [=](clock& c) { return base(c).hedge({.delay = d, .max_hedges = 1}); };
  };
  const auto at_percentile = [=](double q) {
    return
        [=](clock& c) { return base(c).hedge({.delay = 50ms, .max_hedges = 1, .percentile = q}); };
  };
  return {
      {"no hedge", base, std::nullopt},
      {"hedge after 10ms", fixed(10ms), std::nullopt},
      {"hedge after 25ms", fixed(25ms), std::nullopt},
      {"hedge after 50ms", fixed(50ms), std::nullopt},
      {"hedge after 100ms", fixed(100ms), std::nullopt},
      {"hedge at p90", at_percentile(0.90), std::nullopt},
      {"hedge at p95", at_percentile(0.95), std::nullopt},
      {"hedge after 10ms + 5% budget",
       [=](clock& c) {
         return fixed(10ms)(c).budget(std::make_shared<ratio_budget>(
             ratio_budget::options{.ratio = 0.05, .min_per_second = 0}, c));
       },
       std::nullopt},
  };
}

hedging_result run_hedging(const hedging_options& o) {
  hedging_result r;
  const auto strategies = o.strategies.empty() ? default_hedging_strategies() : o.strategies;
  for (const auto& s : strategies) {
    hedging_run run(o, s);
    r.rows.push_back(run.run());
    r.events += run.events;
  }
  return r;
}

}  // namespace rebound::sim
