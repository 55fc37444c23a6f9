// A fleet of processes against one dependency that goes down: per-process
// retry budgets and breakers against one budget and one breaker view shared
// through Redis (rebound::redis), as retries per second reaching the
// dependency and the time until the whole fleet stops calling it.
//
// The shared budget is modelled as one ratio_budget for the fleet (what the
// Redis script computes; leases and batched deposits are left out). The
// shared breaker: when a process's own breaker opens it publishes the open
// state; every other process sees it at its next poll; after the open time,
// one probe runs for the fleet.
#include <algorithm>
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

struct fleet_strategy {
  const char* name;
  bool shared_budget;
  bool breakers;
  bool shared_breaker;
};

class fleet_run {
 public:
  fleet_run(const fleet_options& o, const fleet_strategy& s)
      : o_(o), s_(s), eng_(mix(o.seed, 0xf1ee7)), phases_(mix(o.seed, 0x9011)) {
    row_.strategy = s.name;
    const auto base = retry_policy{}
                          .stop(stop::after_attempts(4))
                          .backoff(backoff::exponential(100ms, 2.0, 1s))
                          .jitter(jitter::full())
                          .clock(eng_);
    const auto n = static_cast<std::size_t>(o.processes);
    if (s.shared_budget) {
      policies_.push_back(base.budget(std::make_shared<ratio_budget>(o.ratio, eng_)));
    } else {
      for (std::size_t p = 0; p < n; ++p) {
        policies_.push_back(base.budget(std::make_shared<ratio_budget>(o.ratio, eng_)));
      }
    }
    if (s.breakers) {
      for (std::size_t p = 0; p < n; ++p) {
        breakers_.push_back(std::make_unique<circuit_breaker>(o.breaker, eng_));
      }
      poll_phase_.resize(n);
      for (auto& ph : poll_phase_) {
        ph = duration(static_cast<duration::rep>(phases_.uniform() *
                                                 static_cast<double>(o.poll_interval.count())));
      }
    }
    first_reject_.assign(n, time_point::max());
  }

  fleet_row run() {
    eng_.after<&fleet_run::arrive>(gap(), this, 0);
    eng_.run_until(eng_.start() + o_.length);
    const double during = std::chrono::duration<double>(o_.trigger_for).count();
    row_.offered_per_s = static_cast<double>(offered_during_) / during;
    row_.attempts_per_s_during = static_cast<double>(attempts_during_) / during;
    row_.retries_per_s_during = static_cast<double>(retries_during_) / during;
    row_.amplification_during = offered_during_ > 0 ? static_cast<double>(attempts_during_) /
                                                          static_cast<double>(offered_during_)
                                                    : 0;
    row_.goodput_after =
        ended_after_ > 0 ? static_cast<double>(succeeded_after_) / static_cast<double>(ended_after_)
                         : 0;
    if (s_.breakers) {
      std::vector<double> detect;
      for (const auto t : first_reject_) {
        detect.push_back(t == time_point::max()
                             ? 1e9
                             : std::chrono::duration<double>(t - outage_start()).count());
      }
      std::sort(detect.begin(), detect.end());
      row_.detect_p50_s = detect[detect.size() / 2] >= 1e9 ? -1 : detect[detect.size() / 2];
      row_.detect_all_s = detect.back() >= 1e9 ? -1 : detect.back();
    }
    events_ = eng_.events_run();
    return row_;
  }
  std::uint64_t events_ = 0;

 private:
  struct request {
    std::uint32_t process;
    retry_call call;
    time_point started;
    bool after_outage;
    breaker_permit permit{};
    bool fleet_probe = false;
  };

  [[nodiscard]] time_point outage_start() const { return eng_.start() + o_.trigger_at; }
  [[nodiscard]] time_point outage_end() const { return outage_start() + o_.trigger_for; }
  [[nodiscard]] bool down() const {
    return eng_.now() >= outage_start() && eng_.now() < outage_end();
  }

  duration gap() {
    const double rate = o_.rate_per_process * o_.processes;
    return duration(static_cast<duration::rep>(detail::unit_exponential(eng_.rng()) / rate * 1e9));
  }

  const retry_policy& policy_of(std::uint32_t p) const {
    return s_.shared_budget ? policies_.front() : policies_[p];
  }

  // When process p first sees a shared state published at `t` (its next poll).
  [[nodiscard]] time_point seen_by(std::uint32_t p, time_point t) const {
    const auto since = t - eng_.start() - poll_phase_[p];
    const auto polls = since < duration::zero() ? 0 : since / o_.poll_interval + 1;
    return eng_.start() + poll_phase_[p] + polls * o_.poll_interval;
  }

  void arrive(std::uint64_t) {
    const auto p =
        static_cast<std::uint32_t>(eng_.rng().next() % static_cast<std::uint64_t>(o_.processes));
    const auto id = requests_.size();
    requests_.push_back({p, retry_call(policy_of(p), {.seed = mix(o_.seed, id)}, {.nested = 0}),
                         eng_.now(), eng_.now() >= outage_end()});
    if (down()) ++offered_during_;
    if (!requests_.back().call.start().attempt()) {
      finish(requests_.back(), false);
      return;
    }
    attempt(id);
    eng_.after<&fleet_run::arrive>(gap(), this, 0);
  }

  // Process p knows of the outage (would reject at once) from `t` on.
  void knows(std::uint32_t p, time_point t) {
    if (t >= outage_start() && t < outage_end()) first_reject_[p] = std::min(first_reject_[p], t);
  }
  void note_reject(std::uint32_t p) { knows(p, eng_.now()); }

  // Asks the breakers; false: the attempt is refused locally (the request fails).
  bool admit(request& r) {
    r.fleet_probe = false;
    if (!s_.breakers) return true;
    if (s_.shared_breaker && shared_closed_at_ != time_point{} &&
        eng_.now() < seen_by(r.process, shared_closed_at_)) {
      // Closed by a probe, but this process has not polled since: it still
      // sees a half-open round whose probe is taken.
      note_reject(r.process);
      return false;
    }
    if (s_.shared_breaker && shared_open_until_ != time_point{}) {
      const auto now = eng_.now();
      if (now >= seen_by(r.process, shared_published_) &&
          now < seen_by(r.process, shared_open_until_)) {
        note_reject(r.process);
        return false;
      }
      if (now >= seen_by(r.process, shared_open_until_)) {
        // Half-open for the fleet: one probe per round.
        if (probe_in_flight_) {
          note_reject(r.process);
          return false;
        }
        probe_in_flight_ = true;
        r.fleet_probe = true;
        if (down()) ++row_.probes_during;
        return true;
      }
    }
    r.permit = breakers_[r.process]->try_acquire();
    if (!r.permit) {
      note_reject(r.process);
      return false;
    }
    if (r.permit.probe && down()) ++row_.probes_during;
    return true;
  }

  void publish_open() {
    shared_published_ = eng_.now();
    shared_open_until_ = eng_.now() + o_.breaker.open_duration;
    probe_in_flight_ = false;
    for (std::uint32_t p = 0; p < static_cast<std::uint32_t>(o_.processes); ++p) {
      knows(p, seen_by(p, shared_published_));
    }
  }

  void record(request& r, bool ok) {
    if (!s_.breakers) return;
    if (r.fleet_probe) {
      probe_in_flight_ = false;
      if (ok) {
        shared_open_until_ = time_point{};
        shared_closed_at_ = eng_.now();
      } else {
        publish_open();
      }
      return;
    }
    auto& b = *breakers_[r.process];
    const auto before = b.state();
    b.record(r.permit, ok);
    if (before != breaker_state::open && b.state() == breaker_state::open)
      knows(r.process, eng_.now());
    if (s_.shared_breaker && before != breaker_state::open && b.state() == breaker_state::open &&
        (shared_open_until_ == time_point{} || eng_.now() >= shared_open_until_)) {
      publish_open();
    }
  }

  void attempt(std::uint64_t id) {
    auto& r = requests_[id];
    if (!admit(r)) {
      (void)r.call.failed(verdict::overloaded());  // an open circuit ends the call
      finish(r, false);
      return;
    }
    const int n = r.call.attempt();
    if (down()) {
      ++attempts_during_;
      if (n > 1) ++retries_during_;
      // Refused at once: a failure now.
      fail(id);
    } else {
      eng_.after<&fleet_run::answer>(o_.latency, this, id);
    }
  }

  void answer(std::uint64_t id) {
    auto& r = requests_[id];
    if (down()) {  // went down while in flight
      fail(id);
      return;
    }
    record(r, true);
    r.call.succeeded();
    finish(r, true);
  }

  void fail(std::uint64_t id) {
    auto& r = requests_[id];
    record(r, false);
    const call_step step = r.call.failed(verdict::transient());
    if (!step.wait()) {
      finish(r, false);
      return;
    }
    eng_.at<&fleet_run::retry>(step.until, this, id);
  }
  void retry(std::uint64_t id) {
    auto& r = requests_[id];
    if (!r.call.resume(true).attempt()) {
      finish(r, false);
      return;
    }
    attempt(id);
  }

  void finish(request& r, bool ok) {
    if (r.after_outage) {
      ++ended_after_;
      if (ok) ++succeeded_after_;
    }
  }

  fleet_options o_;
  fleet_strategy s_;
  engine eng_;
  random_stream phases_;
  std::vector<retry_policy> policies_;
  std::vector<std::unique_ptr<circuit_breaker>> breakers_;
  std::vector<duration> poll_phase_;
  std::vector<time_point> first_reject_;
  std::vector<request> requests_;
  time_point shared_published_{};
  time_point shared_open_until_{};
  time_point shared_closed_at_{};
  bool probe_in_flight_ = false;
  std::uint64_t offered_during_ = 0, attempts_during_ = 0, retries_during_ = 0;
  std::uint64_t ended_after_ = 0, succeeded_after_ = 0;
  fleet_row row_;
};

}  // namespace

fleet_result run_fleet(const fleet_options& o) {
  if (o.processes < 1 || o.processes > 100000) {
    throw std::invalid_argument("fleet: processes " + std::to_string(o.processes) +
                                " is out of range; allowed: 1..100000");
  }
  if (!(o.rate_per_process > 0) || o.rate_per_process > 10000) {
    throw std::invalid_argument("fleet: rate per process must be in (0, 10000]");
  }
  if (o.poll_interval <= duration::zero()) {
    throw std::invalid_argument("fleet: poll_interval must be above 0");
  }
  if (o.trigger_at + o.trigger_for > o.length) {
    throw std::invalid_argument(
        "fleet: the outage must end within the run (trigger_at + "
        "trigger_for <= length)");
  }
  fleet_result out;
  for (const auto& s : {fleet_strategy{"per-process budgets", false, false, false},
                        fleet_strategy{"shared budget (Redis)", true, false, false},
                        fleet_strategy{"per-process budgets + breakers", false, true, false},
                        fleet_strategy{"shared budget + shared breaker", true, true, true}}) {
    fleet_run run(o, s);
    out.rows.push_back(run.run());
    out.events += run.events_;
  }
  return out;
}

}  // namespace rebound::sim
