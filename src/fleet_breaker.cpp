// The fleet breaker's state machine (rebound/fleet_breaker.hpp).
#include "rebound/fleet_breaker.hpp"

#include <algorithm>

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
  shared_open_until_.store(open ? now + v->open_left.count() : 0, std::memory_order_relaxed);
  shared_half_open_.store(!open && v->outage, std::memory_order_relaxed);
  probes_taken_.store(!open && v->outage && v->probes >= fleet_probes_, std::memory_order_relaxed);
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
      if (p.probe) local_.record(p, true);  // hand the local probe back unused
      return later;  // *n < 0: open again; the next poll brings the new open time
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
