// Read-after-write on a lagging replica: naive reads, retry-then-primary
// (scenario 001) and LSN wait, under exactly the pg router's default
// policies (pg::router_options{}), driven by the call engine.
#include <algorithm>
#include <cmath>
#include <deque>

#include "rebound/call.hpp"
#include "rebound/pg/options.hpp"
#include "rebound/sim/engine.hpp"
#include "rebound/sim/scenarios.hpp"
#include "seed.hpp"

namespace rebound::sim {

namespace {

using namespace std::chrono_literals;
using detail::mix;

enum class kind { naive, retry_then_primary, lsn_wait, primary_only };

class replica_run {
 public:
  replica_run(const replica_lag_options& o, kind k)
      : o_(o), kind_(k), eng_(mix(o.seed, 0x7e1)), lag_rng_(mix(o.seed, 0x1a6)) {
    // What rebound::pg::router runs: its default replica retry (scenario
    // 001: one retry after 50..200 ms, then the primary) and its default LSN
    // wait (polls from 1 ms doubling to 20 ms, none past 1 s).
    const pg::router_options router;
    retry_policy_ = router.replica_retry.to_policy(eng_);
    lsn_policy_ = router.lsn_wait.to_policy(eng_);
  }

  replica_lag_row run(const char* name) {
    eng_.after<&replica_run::write>(next_gap(), this, 0);
    eng_.run_until(eng_.start() + o_.length);
    eng_.run();  // let reads in flight finish; no new writes after the length
    replica_lag_row row;
    row.strategy = name;
    row.reads = done_;
    const double n = std::max<double>(1, static_cast<double>(done_));
    row.error_rate = static_cast<double>(errors_) / n;
    row.primary_share = static_cast<double>(primary_reads_) / n;
    row.replica_queries = static_cast<double>(replica_queries_) / n;
    std::sort(latencies_.begin(), latencies_.end());
    if (!latencies_.empty()) {
      row.latency_p50_ms = latencies_[latencies_.size() / 2];
      row.latency_p99_ms = latencies_[static_cast<std::size_t>(0.99 * (latencies_.size() - 1))];
      row.latency_max_ms = latencies_.back();
    }
    events = eng_.events_run();
    return row;
  }
  std::uint64_t events = 0;
  std::uint64_t started = 0;

 private:
  struct request {
    time_point visible_at;  // when the replica has replayed the write
    time_point read_started;
    std::optional<retry_call> call;  // made when the read starts
  };

  // Arrivals and lags come from their own stream, so every strategy sees the same writes.
  duration next_gap() {
    return duration(static_cast<duration::rep>(detail::unit_exponential(lag_rng_) * 1e9 / o_.rate));
  }
  duration lag() {
    if (lag_rng_.uniform() < o_.spike_probability) {
      const double span = static_cast<double>((o_.spike_max - o_.spike_min).count());
      return o_.spike_min + duration(static_cast<duration::rep>(lag_rng_.uniform() * span));
    }
    return duration(static_cast<duration::rep>(detail::unit_exponential(lag_rng_) *
                                               static_cast<double>(o_.lag_mean.count())));
  }
  call_options call_for(std::uint64_t id) const { return {.seed = mix(o_.seed, id)}; }
  duration replica_rtt() { return eng_.abs_normal(o_.replica_latency, o_.replica_latency / 4); }
  duration primary_rtt() { return eng_.abs_normal(o_.primary_latency, o_.primary_latency / 4); }

  void write(std::uint64_t) {
    if (eng_.now() - eng_.start() >= o_.length) return;
    const std::uint64_t id = requests_.size();
    requests_.push_back(request{eng_.now() + lag(), {}, std::nullopt});
    ++started;
    eng_.after<&replica_run::read>(o_.read_after, this, id);
    eng_.after<&replica_run::write>(next_gap(), this, 0);
  }

  void read(std::uint64_t id) {
    request& r = requests_[id];
    r.read_started = eng_.now();
    const retry_policy& p = kind_ == kind::lsn_wait ? lsn_policy_ : retry_policy_;
    r.call.emplace(p, call_for(id), call_driver{.nested = 0});
    (void)r.call->start();
    switch (kind_) {
      case kind::primary_only:
        eng_.after<&replica_run::primary_answer>(primary_rtt(), this, id);
        break;
      case kind::lsn_wait:
        ++replica_queries_;
        eng_.after<&replica_run::lsn_answer>(replica_rtt(), this, id);
        break;
      default:
        ++replica_queries_;
        eng_.after<&replica_run::replica_answer>(replica_rtt(), this, id);
    }
  }

  void replica_answer(std::uint64_t id) {
    request& r = requests_[id];
    if (eng_.now() >= r.visible_at) return finish(id, true);
    if (kind_ == kind::naive) return finish(id, false);  // a lag miss becomes an error
    // retry-then-primary: the typed not-found is transient for the policy.
    const call_step step = r.call->failed(verdict::transient());
    if (step.wait()) {
      eng_.at<&replica_run::retry_replica>(step.until, this, id);
    } else {
      ++primary_reads_;
      eng_.after<&replica_run::primary_answer>(primary_rtt(), this, id);
    }
  }
  void retry_replica(std::uint64_t id) {
    (void)requests_[id].call->resume(true);
    ++replica_queries_;
    eng_.after<&replica_run::replica_answer>(replica_rtt(), this, id);
  }

  void lsn_answer(std::uint64_t id) {
    request& r = requests_[id];
    if (eng_.now() >= r.visible_at) {
      // Caught up: the read itself goes to the replica and finds the row.
      ++replica_queries_;
      eng_.after<&replica_run::replica_answer>(replica_rtt(), this, id);
      return;
    }
    const call_step step = r.call->failed(verdict::transient());
    if (step.wait()) {
      eng_.at<&replica_run::retry_lsn>(step.until, this, id);
    } else {
      ++primary_reads_;
      eng_.after<&replica_run::primary_answer>(primary_rtt(), this, id);
    }
  }
  void retry_lsn(std::uint64_t id) {
    (void)requests_[id].call->resume(true);
    ++replica_queries_;
    eng_.after<&replica_run::lsn_answer>(replica_rtt(), this, id);
  }

  void primary_answer(std::uint64_t id) {
    if (kind_ == kind::primary_only) ++primary_reads_;
    finish(id, true);
  }

  void finish(std::uint64_t id, bool found) {
    ++done_;
    if (!found) ++errors_;
    latencies_.push_back(
        std::chrono::duration<double, std::milli>(eng_.now() - requests_[id].read_started).count());
  }

  const replica_lag_options& o_;
  kind kind_;
  engine eng_;
  random_stream lag_rng_;  // arrivals and lags: the same for every strategy
  retry_policy retry_policy_;
  retry_policy lsn_policy_;
  std::deque<request> requests_;
  std::uint64_t done_ = 0, errors_ = 0, primary_reads_ = 0, replica_queries_ = 0;
  std::vector<double> latencies_;
};

}  // namespace

replica_lag_result run_replica_lag(const replica_lag_options& o) {
  replica_lag_result r;
  const std::pair<kind, const char*> kinds[] = {{kind::naive, "naive replica read"},
                                                {kind::retry_then_primary, "retry, then primary"},
                                                {kind::lsn_wait, "LSN wait, then primary"},
                                                {kind::primary_only, "primary only"}};
  for (const auto& [k, name] : kinds) {
    replica_run run(o, k);
    r.rows.push_back(run.run(name));
    r.events += run.events;
  }
  return r;
}

}  // namespace rebound::sim
