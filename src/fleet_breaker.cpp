// The fleet breaker's state machine (rebound/fleet_breaker.hpp).
#include "rebound/fleet_breaker.hpp"

#include <algorithm>
#include <utility>

#include "rebound/detail/saturate.hpp"

namespace rebound {

namespace {
// Marks a permit as the fleet's half-open probe (the local breaker's
// generations never reach this bit).
constexpr std::uint64_t fleet_probe_bit = 1ULL << 63;
// The outage marker outlives the open state by this much: after the open
// time, probes are counted against it.
constexpr duration outage_margin = std::chrono::seconds(60);
}  // namespace

fleet_breaker::fleet_breaker(fleet_breaker_store& store, const breaker_options& o, int fleet_probes,
                             clock& c, duration poll_interval)
    : store_(store),
      options_(o),
      fleet_probes_(std::max(1, fleet_probes)),
      clock_(c),
      poll_interval_(poll_interval),
      local_(o, c) {}

void fleet_breaker::poll() {
  const auto v = store_.read();
  if (!v) return;
  const auto now = clock_.now().time_since_epoch().count();
  const bool open = v->open_left > duration::zero();
  // What the store said, not what this process published: a publish that
  // never reached the store must not look like the fleet closing it.
  const bool seen_before = observed_shared_.exchange(open || v->outage);
  if (seen_before && !open && !v->outage) {
    // The fleet closed it (a probe succeeded somewhere, or reset()): so does
    // this process's own breaker, unless an operator isolated it here.
    const breaker_state mine = local_.state();
    if (mine == breaker_state::open || mine == breaker_state::half_open) local_.reset();
  }
  shared_open_until_.store(open ? now + v->open_left.count() : 0, std::memory_order_relaxed);
  shared_half_open_.store(!open && v->outage, std::memory_order_relaxed);
  probes_taken_.store(!open && v->outage && v->probes >= fleet_probes_, std::memory_order_relaxed);
  notice();
}

void fleet_breaker::notice() {
  // Under the lock, so that changes are delivered in the order they were
  // seen (as circuit_breaker's are); the listener must not call the breaker.
  const std::lock_guard g(listen_mu_);
  if (!listener_) return;
  const breaker_state to = state();
  if (to == seen_) return;
  const breaker_state from = std::exchange(seen_, to);
  try {
    listener_(from, to);
  } catch (...) {  // NOLINT(bugprone-empty-catch): a listener must not change the outcome
  }
}

void fleet_breaker::on_state_change(circuit_breaker::state_listener listener) {
  const std::lock_guard g(listen_mu_);
  listener_ = std::move(listener);
  seen_ = state();
}

void fleet_breaker::release(const breaker_permit& permit) {
  auto local_permit = permit;
  local_permit.generation &= ~fleet_probe_bit;
  local_.release(local_permit);
  // A fleet probe that never ran: its slot in the store stays taken until
  // the round's open time passes (the store has no "untake"), so with one
  // fleet probe the fleet's recovery waits a round. docs/redis.md says so.
}

void fleet_breaker::isolate(duration isolate_for) {
  local_.isolate();
  store_.publish_open(isolate_for, isolate_for + outage_margin);
  shared_open_until_.store(
      detail::saturating_add(clock_.now(), isolate_for).time_since_epoch().count(),
      std::memory_order_relaxed);
  shared_half_open_.store(false, std::memory_order_relaxed);
  notice();
}

void fleet_breaker::reset() {
  local_.reset();
  publish_closed();
  notice();
}

breaker_state fleet_breaker::state() const {
  if (store_.available()) {
    const auto now = clock_.now().time_since_epoch().count();
    const auto until = shared_open_until_.load(std::memory_order_relaxed);
    if (now < until) return breaker_state::open;
    if (until != 0 || shared_half_open_.load(std::memory_order_relaxed)) {
      return breaker_state::half_open;
    }
  }
  return local_.state();
}

breaker_permit fleet_breaker::try_acquire() {
  if (!store_.available()) return local_.try_acquire();
  const time_point now = clock_.now();
  const auto until = shared_open_until_.load(std::memory_order_relaxed);
  if (now.time_since_epoch().count() < until) {
    // Open somewhere in the fleet: reject at once, until the shared probe time.
    return {false, false, time_point(duration(until)), 0};
  }
  // Half-open for the fleet: from the moment the open time ran out (before
  // the next poll says so), until a probe closes it.
  if (until != 0 || shared_half_open_.load(std::memory_order_relaxed)) {
    const breaker_permit later{false, false, now + poll_interval_, 0};
    if (probes_taken_.load(std::memory_order_relaxed)) return later;  // no round trip
    auto p = local_.try_acquire();
    if (!p) return p;
    const auto n = store_.take_probe(options_.open_duration);
    if (!n || *n < 0 || *n > fleet_probes_) {
      if (n && *n > fleet_probes_) probes_taken_.store(true, std::memory_order_relaxed);
      if (p.probe) local_.release(p);  // hand the local probe back unused
      return later;                    // *n < 0: open again; the next poll brings the new open time
    }
    p.generation |= fleet_probe_bit;
    return p;
  }
  return local_.try_acquire();
}

void fleet_breaker::record(const breaker_permit& permit, bool succeeded) {
  auto local_permit = permit;
  const bool fleet_probe = (permit.generation & fleet_probe_bit) != 0;
  local_permit.generation &= ~fleet_probe_bit;
  const auto before = local_.state();
  local_.record(local_permit, succeeded);
  if (fleet_probe) {
    succeeded ? publish_closed() : publish_open();
  } else if (before != breaker_state::open && local_.state() == breaker_state::open) {
    publish_open();  // this process found the outage: tell the fleet
  }
  if (!succeeded || permit.probe || fleet_probe) notice();  // a plain success changes nothing
}

void fleet_breaker::publish_open() {
  store_.publish_open(options_.open_duration, options_.open_duration + outage_margin);
  shared_open_until_.store((clock_.now() + options_.open_duration).time_since_epoch().count(),
                           std::memory_order_relaxed);
  shared_half_open_.store(false, std::memory_order_relaxed);
  probes_taken_.store(false, std::memory_order_relaxed);
}

void fleet_breaker::publish_closed() {
  store_.publish_closed();
  shared_open_until_.store(0, std::memory_order_relaxed);
  shared_half_open_.store(false, std::memory_order_relaxed);
  probes_taken_.store(false, std::memory_order_relaxed);
}

}  // namespace rebound
