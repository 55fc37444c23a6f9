// The fleet budget (rebound/fleet_budget.hpp): local deposits, leases, the
// fallback and the share, over any fleet_budget_store.
#include "rebound/fleet_budget.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <memory>

#include "rebound/config.hpp"
#include "rebound/detail/clock_wait.hpp"
#include "rebound/random.hpp"

namespace rebound {

namespace {

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string random_member_id() {
  char buf[32];
  std::snprintf(buf, sizeof buf, "m-%016" PRIx64, random_stream::fresh_seed());
  return buf;
}

}  // namespace

void fleet_budget::validate(const fleet_budget_settings& s) {
  if (const auto* o = std::get_if<ratio_budget::options>(&s)) {
    if (!(o->ratio >= 0 && o->ratio <= 1)) {
      throw config_error("ratio", number(o->ratio) + " is out of range; allowed: 0..1");
    }
    if (o->min_per_second < 0) {
      throw config_error("min_per_second", std::to_string(o->min_per_second) + " is negative");
    }
    const auto w = std::chrono::duration_cast<std::chrono::seconds>(o->window);
    if (w.count() < 1 || w.count() > 60 || w != o->window) {
      throw config_error("window", "allowed: 1s..60s, whole seconds");
    }
    return;
  }
  const auto& o = std::get<token_bucket_budget::options>(s);
  if (o.capacity < 1) {
    throw config_error("capacity", std::to_string(o.capacity) + " is below 1");
  }
  if (o.retry_cost < 1 || o.retry_cost > o.capacity) {
    throw config_error("retry_cost", std::to_string(o.retry_cost) +
                                         " is out of range; allowed: 1.." +
                                         std::to_string(o.capacity) + " (the capacity)");
  }
  if (o.timeout_retry_cost < 1 || o.timeout_retry_cost > o.capacity) {
    throw config_error("timeout_retry_cost", std::to_string(o.timeout_retry_cost) +
                                                 " is out of range; allowed: 1.." +
                                                 std::to_string(o.capacity) + " (the capacity)");
  }
  if (o.success_refund < 0) {
    throw config_error("success_refund", std::to_string(o.success_refund) + " is negative");
  }
}

void fleet_budget::validate(const fleet_budget_options& o) {
  if (o.max_batch < 1) throw config_error("max_batch", std::to_string(o.max_batch) + " is below 1");
  if (o.lease_size < 1) {
    throw config_error("lease_size", std::to_string(o.lease_size) + " is below 1");
  }
  if (o.lease_ttl <= duration::zero()) throw config_error("lease_ttl", "must be above 0");
  if (o.expected_fleet_size < 1) {
    throw config_error("expected_fleet_size",
                       std::to_string(o.expected_fleet_size) + " is below 1");
  }
  if (o.member_ttl < std::chrono::seconds(1)) {
    throw config_error("member_ttl", "allowed: 1s or more");
  }
}

std::string_view to_string(fleet_fallback m) noexcept {
  switch (m) {
    case fleet_fallback::local:
      return "local";
    case fleet_fallback::open:
      return "open";
    case fleet_fallback::closed:
      return "closed";
  }
  return "local";
}

fleet_budget::fleet_budget(fleet_budget_store& store, fleet_budget_settings s,
                           fleet_budget_options o, clock& c)
    : store_(store), settings_(std::move(s)), options_(std::move(o)), clock_(c) {
  validate(settings_);
  validate(options_);
  if (options_.member_id.empty()) options_.member_id = random_member_id();
  if (const auto* r = std::get_if<ratio>(&settings_)) {
    local_ = std::make_unique<ratio_budget>(*r, c);
    // A leased retry was charged when it was leased; spent much later, it
    // would count in a window it no longer belongs to.
    lease_ttl_ = std::min(options_.lease_ttl, r->window / 2);
  } else {
    local_ = std::make_unique<token_bucket_budget>(std::get<token_bucket>(settings_));
    lease_ttl_ = options_.lease_ttl;
  }
  cold_for_ = std::holds_alternative<ratio>(settings_) ? std::get<ratio>(settings_).window
                                                       : options_.member_ttl;
  generation_.store(store_.generation(), std::memory_order_relaxed);
  warm_since_ticks_.store(clock_.now().time_since_epoch().count(), std::memory_order_relaxed);
  fleet_size_.store(options_.expected_fleet_size);
  set_fleet_size(options_.expected_fleet_size);
}

bool fleet_budget::cold(time_point now) noexcept {
  const std::uint64_t g = store_.generation();
  const std::uint64_t seen = generation_.load(std::memory_order_relaxed);
  if (g != seen) {
    // A new connection: the member set is cold again (the divisor keeps
    // expected_fleet_size and the largest count seen until it is warm).
    // The store may also have lost its counts, unless this is the very
    // first connection of a process that decided nothing without it (0 is
    // "never reached"): for one window, grants need the local budget too.
    // Stored before the generation is published, so a thread that sees the
    // new generation sees the cold window (a race only repeats the stores).
    warm_since_ticks_.store(now.time_since_epoch().count(), std::memory_order_relaxed);
    if (seen != 0 || fallback_.load(std::memory_order_relaxed) > 0) {
      cold_until_.store((now + cold_for_).time_since_epoch().count(), std::memory_order_release);
    }
    generation_.store(g, std::memory_order_release);
  }
  return now.time_since_epoch().count() < cold_until_.load(std::memory_order_acquire);
}

void fleet_budget::observe_fleet_size(long long live, time_point now) {
  // The largest count seen: a member set that is refilling (each member
  // beats every member_ttl / 3) shows fewer members than there are, never
  // more. It gives way to a smaller count only once the set is warm (watched
  // for member_ttl since this process started or last reconnected) and the
  // largest is older than member_ttl: a fleet that shrank.
  const time_point warm_since{duration(warm_since_ticks_.load(std::memory_order_relaxed))};
  const bool warm = now - warm_since >= options_.member_ttl;
  if (live >= seen_max_ || (warm && now - seen_max_at_ > options_.member_ttl)) {
    seen_max_ = live;
    seen_max_at_ = now;
  }
  long long size = seen_max_;
  if (!warm) size = std::max<long long>(size, options_.expected_fleet_size);
  set_fleet_size(size);
}

void fleet_budget::charge_local(int units) noexcept {
  if (std::holds_alternative<ratio>(settings_)) {
    static_cast<ratio_budget&>(*local_).charge(units);
  } else {
    static_cast<token_bucket_budget&>(*local_).charge(units);
  }
}

std::optional<bool> fleet_budget::spend_lease_locked(int need, bool charged) noexcept {
  if (leased_ < need) return std::nullopt;
  // A cold decision asked the local budget first, which charged it.
  if (!charged) charge_local(need);
  leased_ -= need;
  shared_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void fleet_budget::set_fleet_size(long long n) noexcept {
  const int size = static_cast<int>(std::clamp<long long>(n, 1, 1'000'000));
  fleet_size_.store(size, std::memory_order_relaxed);
  const int parts = options_.share ? size : 1;
  if (std::holds_alternative<ratio>(settings_)) {
    static_cast<ratio_budget&>(*local_).share(parts);
  } else {
    static_cast<token_bucket_budget&>(*local_).share(parts);
  }
}

int fleet_budget::units(const retry_request& r) const noexcept {
  if (const auto* b = std::get_if<token_bucket>(&settings_)) {
    return r.after_timeout ? b->timeout_retry_cost : b->retry_cost;
  }
  return 1;
}

void fleet_budget::on_call() noexcept {
  // The success path: one relaxed atomic add. The local fallback budget gets
  // the same calls in bulk at each flush, so it is warm when the store goes.
  if (std::holds_alternative<ratio>(settings_) &&
      pending_.fetch_add(1, std::memory_order_relaxed) + 1 == options_.max_batch && flush_due_) {
    flush_due_();
  }
}

void fleet_budget::on_success(const retry_request* last_retry) noexcept {
  if (const auto* b = std::get_if<token_bucket>(&settings_)) {
    local_->on_success(last_retry);  // lock-free: fed directly
    const int refund = last_retry != nullptr ? units(*last_retry) : b->success_refund;
    const auto before = pending_.fetch_add(refund, std::memory_order_relaxed);
    if (before < options_.max_batch && before + refund >= options_.max_batch && flush_due_) {
      flush_due_();
    }
  }
}

void fleet_budget::on_failure() noexcept { local_->on_failure(); }

void fleet_budget::flush() {
  // One flush at a time: a caller's flush() waits for the owner's.
  std::lock_guard flushing(flush_mu_);
  const auto fresh = pending_.exchange(0, std::memory_order_relaxed);
  // Each call reaches the local fallback budget exactly once: when it is
  // first taken from pending_, never again when a busy deposit is retried.
  if (std::holds_alternative<ratio>(settings_)) static_cast<ratio_budget&>(*local_).on_calls(fresh);
  const time_point now = clock_.now();
  // Deposits kept across an outage are sent once the store is back, unless
  // they are older than the budget's window (a ratio budget's; a bucket's
  // member_ttl): counted so late they would count twice in effect, inflating
  // what the fleet may retry just after it recovers.
  const duration keep_for = std::holds_alternative<ratio>(settings_)
                                ? std::get<ratio>(settings_).window
                                : options_.member_ttl;
  if (unsent_ > 0 && now - unsent_since_ > keep_for) unsent_ = 0;
  const bool had_unsent = unsent_ > 0;
  auto n = fresh + std::exchange(unsent_, 0);
  if (std::holds_alternative<token_bucket>(settings_)) {
    // Leased bucket tokens that expired unused go back to the fleet.
    std::lock_guard lock(lease_mu_);
    if (leased_ > 0 && now >= lease_until_) n += std::exchange(leased_, 0);
  }
  const auto keep = [&] {
    unsent_ = n;
    if (!had_unsent) unsent_since_ = now;
  };
  const bool beat = now >= next_beat_;
  if (n <= 0 && !beat) return;
  if (!store_.available()) {  // down: kept for when it is back (a failover, a restart)
    if (n > 0) keep();
    return;
  }
  const fleet_budget_store::member me{options_.member_id, options_.member_ttl};
  std::optional<long long> done;
  try {
    done = store_.deposit(settings_, n, beat ? &me : nullptr);
  } catch (...) {  // an allocation failure while building the command: as not sent
  }
  if (done && beat) {
    next_beat_ = now + options_.member_ttl / 3;
    (void)cold(now);  // a new generation makes the member set cold again
    if (*done > 0) observe_fleet_size(*done, now);
  }
  // Not sent (the store was busy or down), or refused by the server: kept
  // for the next flush, apart from pending_ (the local budget has them). A
  // timeout marks the store down and whether it applied the deposit is
  // unknown: dropped, so that nothing is counted twice.
  if (!done && n > 0 && (store_.available() || store_.last_failure_unapplied())) keep();
}

void fleet_budget::release() {
  if (std::holds_alternative<token_bucket>(settings_)) {
    std::lock_guard lock(lease_mu_);
    pending_.fetch_add(std::exchange(leased_, 0), std::memory_order_relaxed);
  }
  flush();
}

bool fleet_budget::fallback(const retry_request& r, bool charged) noexcept {
  fallback_.fetch_add(1, std::memory_order_relaxed);
  switch (options_.fallback) {
    case fleet_fallback::open:
      return true;
    case fleet_fallback::closed:
      return false;
    case fleet_fallback::local:
      break;
  }
  return charged || local_->try_acquire(r);
}

bool fleet_budget::try_acquire(const retry_request& r) noexcept {
  const bool up = store_.available();  // before the generation: see cold()
  const bool is_cold = cold(clock_.now());
  // Cold (the store may have lost its counts): the local budget, charged
  // with everything this process spent, must agree first, before a lease
  // is taken from the store that a refusal here would waste.
  const bool charged = is_cold && options_.fallback == fleet_fallback::local;
  if (charged && !local_->try_acquire(r)) return false;
  const int need = units(r);
  if (!up || !store_.available()) {
    // What the fleet leased to this process is still this process's to spend.
    std::lock_guard lock(lease_mu_);
    if (leased_ > 0 && clock_.now() < lease_until_) {
      if (const auto spent = spend_lease_locked(need, charged)) return *spent;
    }
    return fallback(r, charged);
  }
  int have = 0;
  {
    std::unique_lock lock(lease_mu_);
    // Waiting for another thread's round trip: real time, bounded like one.
    std::optional<time_point> deadline;
    for (;;) {
      if (leased_ > 0 && clock_.now() >= lease_until_) {
        // Expired: ratio retries were charged already (nothing to return);
        // bucket tokens go back at the next flush.
        if (std::holds_alternative<token_bucket>(settings_)) {
          pending_.fetch_add(leased_, std::memory_order_relaxed);
        }
        leased_ = 0;
      }
      if (const auto spent = spend_lease_locked(need, charged)) return *spent;
      // The store said "spent" a moment ago: it would say so again.
      if (refused_until_ != time_point{} && clock_.now() < refused_until_) return false;
      if (!refilling_) break;
      // Another thread is asking the store: wait for its answer (single
      // flight), never past this decision's own bound.
      if (!deadline) deadline = system_clock().now() + store_.bound();
      try {
        if (!detail::wait_until(system_clock(), lease_cv_, lock, *deadline,
                                [&] { return !refilling_; })) {
          return false;
        }
      } catch (...) {  // the timer could not be set: refuse, as on a timeout
        return false;
      }
    }
    refilling_ = true;
    have = leased_;
  }
  std::optional<long long> granted;
  try {
    if (std::holds_alternative<ratio>(settings_)) {
      granted = store_.take(settings_, options_.lease_size, 1);
    } else {
      const auto& b = std::get<token_bucket>(settings_);
      granted = store_.take(settings_, need - have + (options_.lease_size - 1) * b.retry_cost,
                            need - have);
    }
  } catch (...) {  // an allocation failure while building the command
  }
  std::unique_lock lock(lease_mu_);
  refilling_ = false;
  lease_cv_.notify_all();
  if (!granted) {
    lock.unlock();
    // Down now: decide locally. Busy for the whole bound (still up): refuse
    // rather than hand out a full local budget in a retry storm.
    return store_.available() ? false : fallback(r, charged);
  }
  if (*granted > 0) {
    leased_ += static_cast<int>(*granted);
    lease_until_ = clock_.now() + lease_ttl_;
  }
  if (const auto spent = spend_lease_locked(need, charged)) return *spent;
  // The fleet's budget is spent.
  if (options_.refusal_hold > duration::zero())
    refused_until_ = clock_.now() + options_.refusal_hold;
  return false;
}

}  // namespace rebound
