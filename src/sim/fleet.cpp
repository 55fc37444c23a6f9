// A fleet of processes against one dependency that goes down: per-process
// retry budgets and breakers against one budget and one breaker view shared
// through Redis (rebound::redis), as retries per second reaching the
// dependency and the time until the whole fleet stops calling it.
//
// Every process runs the library's own objects, as rebound::redis does: a
// rebound::fleet_budget (batched deposits flushed every flush_interval at the
// process's own phase, retries leased lease_size at a time, heartbeats, the
// local fallback and its share) and a rebound::fleet_breaker (polled every
// poll_interval, at its own phase), all over one rebound::sim::fleet_store:
// the Redis keys and their expiry on simulated time. Redis answers at once.
#include <algorithm>
#include <cmath>
#include <memory>

#include "rebound/budget.hpp"
#include "rebound/call.hpp"
#include "rebound/fleet_breaker.hpp"
#include "rebound/fleet_budget.hpp"
#include "rebound/sim/engine.hpp"
#include "rebound/sim/fleet_store.hpp"
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
  bool redis_down = false;  // Redis goes away when the dependency does
  bool share = true;        // the fallback holds the process's share
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
    fleet_budget_options fo;
    fo.lease_size = o.lease_size;
    fo.share = s.share;
    fo.expected_fleet_size = o.expected_fleet_size;
    for (std::size_t p = 0; p < n; ++p) {
      if (s.shared_budget) {
        auto b = std::make_shared<fleet_budget>(store_, o.ratio, fo, eng_);
        budgets_.push_back(b.get());
        policies_.push_back(base.budget(std::move(b)));
        const duration phase(static_cast<duration::rep>(
            phases_.uniform() * static_cast<double>(o.flush_interval.count())));
        eng_.after<&fleet_run::flush>(phase, this, p);
      } else {
        policies_.push_back(base.budget(std::make_shared<ratio_budget>(o.ratio, eng_)));
      }
    }
    if (s.breakers && !s.shared_breaker) {
      for (std::size_t p = 0; p < n; ++p) {
        breakers_.push_back(std::make_unique<circuit_breaker>(o.breaker, eng_));
      }
    }
    if (s.shared_breaker) {
      for (std::size_t p = 0; p < n; ++p) {
        fleet_.push_back(
            std::make_unique<fleet_breaker>(store_, o.breaker, 1, eng_, o.poll_interval));
        const duration phase(static_cast<duration::rep>(
            phases_.uniform() * static_cast<double>(o.poll_interval.count())));
        eng_.after<&fleet_run::poll>(phase, this, p);
      }
    }
    first_reject_.assign(n, time_point::max());
  }

  fleet_row run() {
    eng_.after<&fleet_run::arrive>(gap(), this, 0);
    eng_.at<&fleet_run::outage_begins>(outage_start(), this, 0);
    eng_.at<&fleet_run::outage_ends>(outage_end(), this, 0);
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
    if (s_.shared_breaker) row_.probes_during = probes_during_;
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

  const retry_policy& policy_of(std::uint32_t p) const { return policies_[p]; }

  void outage_begins(std::uint64_t) {
    probes_during_ = store_.totals().probes_granted;
    if (s_.redis_down) store_.set_available(false);
  }
  void outage_ends(std::uint64_t) {
    probes_during_ = store_.totals().probes_granted - probes_during_;
    store_.set_available(true);
  }

  // Process p's budget deposits what it counted (the link's flush task).
  void flush(std::uint64_t p) {
    budgets_[p]->flush();
    eng_.after<&fleet_run::flush>(o_.flush_interval, this, p);
  }

  // Process p reads the shared state (its poll task), and knows of the
  // outage once its view is open.
  void poll(std::uint64_t p) {
    auto& b = *fleet_[p];
    b.poll();
    if (b.state() == breaker_state::open) knows(static_cast<std::uint32_t>(p), eng_.now());
    eng_.after<&fleet_run::poll>(o_.poll_interval, this, p);
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
    if (!s_.breakers) return true;
    if (s_.shared_breaker) {
      r.permit = fleet_[r.process]->try_acquire();
    } else {
      r.permit = breakers_[r.process]->try_acquire();
      if (r.permit && r.permit.probe && down()) ++row_.probes_during;
    }
    if (!r.permit) {
      note_reject(r.process);
      return false;
    }
    return true;
  }

  void record(request& r, bool ok) {
    if (!s_.breakers) return;
    if (s_.shared_breaker) {
      auto& b = *fleet_[r.process];
      b.record(r.permit, ok);
      if (b.state() == breaker_state::open) knows(r.process, eng_.now());
      return;
    }
    auto& b = *breakers_[r.process];
    b.record(r.permit, ok);
    if (b.state() == breaker_state::open) knows(r.process, eng_.now());
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
  fleet_store store_{eng_};  // before the objects that use it
  std::vector<retry_policy> policies_;
  std::vector<fleet_budget*> budgets_;                      // shared: owned by policies_
  std::vector<std::unique_ptr<circuit_breaker>> breakers_;  // per-process breakers
  std::vector<std::unique_ptr<fleet_breaker>> fleet_;       // shared: one state machine per process
  std::vector<time_point> first_reject_;
  std::vector<request> requests_;
  std::uint64_t offered_during_ = 0, attempts_during_ = 0, retries_during_ = 0;
  std::uint64_t ended_after_ = 0, succeeded_after_ = 0;
  std::uint64_t probes_during_ = 0;
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
  if (o.poll_interval <= duration::zero() || o.flush_interval <= duration::zero()) {
    throw std::invalid_argument("fleet: poll_interval and flush_interval must be above 0");
  }
  if (o.lease_size < 1) throw std::invalid_argument("fleet: lease_size must be at least 1");
  if (o.trigger_at + o.trigger_for > o.length) {
    throw std::invalid_argument(
        "fleet: the outage must end within the run (trigger_at + "
        "trigger_for <= length)");
  }
  fleet_result out;
  for (const auto& s :
       {fleet_strategy{"per-process budgets", false, false, false},
        fleet_strategy{"shared budget (Redis)", true, false, false},
        fleet_strategy{"Redis down: whole local budgets", true, false, false, true, false},
        fleet_strategy{"Redis down: shares of one budget", true, false, false, true, true},
        fleet_strategy{"per-process budgets + breakers", false, true, false},
        fleet_strategy{"shared budget + shared breaker", true, true, true}}) {
    fleet_run run(o, s);
    out.rows.push_back(run.run());
    out.events += run.events_;
  }
  return out;
}

}  // namespace rebound::sim
