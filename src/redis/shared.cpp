#include "rebound/redis/shared.hpp"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "rebound/config.hpp"

namespace rebound::redis {
namespace {

// Fleet-wide ratio budget: per-second counters of calls (c<sec>) and retries
// (r<sec>) in one hash, and a sweep watermark (w); Redis's own clock, so
// process clocks do not matter. Needs Redis >= 5 (TIME before a write).
//   ARGV: op ('call' | 'retry'), n, ratio, min_per_second, window (s)
// 'call' adds n calls; 'retry' grants up to n retries and returns how many.
constexpr std::string_view ratio_script = R"lua(
local key = KEYS[1]
local n = tonumber(ARGV[2])
local window = tonumber(ARGV[5])
local now = tonumber(redis.call('TIME')[1])
if ARGV[1] == 'call' then
  redis.call('HINCRBY', key, 'c' .. now, n)
  -- sweep the seconds that left the window since the last sweep (at most 120)
  local oldest = now - window
  local swept = tonumber(redis.call('HGET', key, 'w') or (oldest - 1))
  local from = math.max(swept + 1, oldest - 120)
  for s = from, oldest do redis.call('HDEL', key, 'c' .. s, 'r' .. s) end
  if oldest > swept then redis.call('HSET', key, 'w', oldest) end
  redis.call('EXPIRE', key, window + 5)
  return 0
end
local fields = {}
for s = now - window + 1, now do
  fields[#fields + 1] = 'c' .. s
  fields[#fields + 1] = 'r' .. s
end
local v = redis.call('HMGET', key, unpack(fields))
local calls, retries = 0, 0
for i = 1, #v, 2 do
  calls = calls + (tonumber(v[i]) or 0)
  retries = retries + (tonumber(v[i + 1]) or 0)
end
local allowed = math.floor(tonumber(ARGV[3]) * calls + tonumber(ARGV[4]) * window) - retries
local g = math.min(n, allowed)
if g <= 0 then return 0 end
redis.call('HINCRBY', key, 'r' .. now, g)
redis.call('EXPIRE', key, window + 5)
return g
)lua";

// Fleet-wide token bucket.
//   ARGV: op ('refund' | 'take'), n, capacity, need
// 'refund' adds n tokens (capped); 'take' grants nothing unless `need` tokens
// are there, else up to n, and returns how many.
constexpr std::string_view bucket_script = R"lua(
local key = KEYS[1]
local n = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local tokens = tonumber(redis.call('GET', key) or cap)
if ARGV[1] == 'refund' then
  tokens = math.min(cap, tokens + n)
  redis.call('SET', key, tokens)
  return tokens
end
if tokens < tonumber(ARGV[4]) then return 0 end
local g = math.min(n, tokens)
redis.call('SET', key, tokens - g)
return g
)lua";

// The shared breaker's state: {pttl of the open key, 1 if an outage is in
// progress, probes taken in this half-open round}.
constexpr std::string_view breaker_poll_script = R"lua(
return {redis.call('PTTL', KEYS[1]), redis.call('EXISTS', KEYS[2]),
        tonumber(redis.call('GET', KEYS[3]) or 0)}
)lua";

// A fleet-wide half-open probe slot: the count of probes in this round (the
// first sets its expiry), or -1 while the open key still exists (a process
// whose view is stale must not probe an open circuit: the fleet simulation
// found it).
//   KEYS: probes, open
constexpr std::string_view probe_script = R"lua(
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
)lua";

// Publishes the open state (open key with the open time as TTL, an outage
// marker that outlives it, a fresh probe round) or clears it, in one step.
constexpr std::string_view publish_script = R"lua(
if ARGV[1] == 'open' then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  redis.call('DEL', KEYS[3])
else
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
end
return 1
)lua";

std::optional<long long> eval_integer(link& l, std::string_view s,
                                      const std::vector<std::string>& keys,
                                      const std::vector<std::string>& args) {
  const auto r = l.eval(s, keys, args);
  if (!r || r->type != reply::kind::integer) return std::nullopt;
  return r->integer;
}

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

long long window_seconds(const ratio_budget::options& o) {
  return std::chrono::duration_cast<std::chrono::seconds>(o.window).count();
}

long long milliseconds(duration d) {
  return std::max<long long>(1, std::chrono::ceil<std::chrono::milliseconds>(d).count());
}

const ratio_budget::options& checked(const ratio_budget::options& o) {
  if (!(o.ratio >= 0 && o.ratio <= 1)) {
    throw config_error("ratio", number(o.ratio) + " is out of range; allowed: 0..1");
  }
  if (o.min_per_second < 0) {
    throw config_error("min_per_second", std::to_string(o.min_per_second) + " is negative");
  }
  const auto w = window_seconds(o);
  if (w < 1 || w > 60 || std::chrono::seconds(w) != o.window) {
    throw config_error("window", "allowed: 1s..60s, whole seconds");
  }
  return o;
}

const token_bucket_budget::options& checked(const token_bucket_budget::options& o) {
  if (o.capacity < 1 || o.retry_cost < 1 || o.timeout_retry_cost < 1 || o.success_refund < 0 ||
      o.retry_cost > o.capacity || o.timeout_retry_cost > o.capacity) {
    throw config_error("token_bucket",
                       "allowed: capacity >= 1, 1 <= retry costs <= capacity, success_refund >= 0");
  }
  return o;
}

}  // namespace

// ---- shared_budget -------------------------------------------------------------

shared_budget::shared_budget(std::shared_ptr<link> l, std::string dependency, ratio o)
    : link_(std::move(l)),
      dependency_(std::move(dependency)),
      key_(link_->key("budget:" + dependency_)),
      settings_(checked(o)),
      local_(std::make_shared<ratio_budget>(o)),
      max_batch_(link_->settings().max_batch),
      // A leased retry was charged when it was leased; spent much later, it
      // would count in a window it no longer belongs to.
      lease_ttl_(std::min(link_->settings().lease_ttl, o.window / 2)) {
  task_ = link_->every(link_->settings().flush_interval, [this] { flush(); });
}

shared_budget::shared_budget(std::shared_ptr<link> l, std::string dependency, token_bucket o)
    : link_(std::move(l)),
      dependency_(std::move(dependency)),
      key_(link_->key("bucket:" + dependency_)),
      settings_(checked(o)),
      local_(std::make_shared<token_bucket_budget>(o)),
      max_batch_(link_->settings().max_batch),
      lease_ttl_(link_->settings().lease_ttl) {
  task_ = link_->every(link_->settings().flush_interval, [this] { flush(); });
}

shared_budget::~shared_budget() {
  link_->cancel(task_);
  // Leased bucket tokens go back to the fleet.
  if (std::holds_alternative<token_bucket>(settings_)) {
    std::lock_guard lock(lease_mu_);
    pending_.fetch_add(std::exchange(leased_, 0), std::memory_order_relaxed);
  }
  flush();
}

int shared_budget::units(const retry_request& r) const noexcept {
  if (const auto* b = std::get_if<token_bucket>(&settings_)) {
    return r.after_timeout ? b->timeout_retry_cost : b->retry_cost;
  }
  return 1;
}

void shared_budget::on_call() noexcept {
  // The success path: one relaxed atomic add. The local fallback budget gets
  // the same calls in bulk at each flush, so it is warm when Redis goes away.
  if (std::holds_alternative<ratio>(settings_) &&
      pending_.fetch_add(1, std::memory_order_relaxed) + 1 == max_batch_) {
    link_->poke(task_);
  }
}

void shared_budget::on_success(const retry_request* last_retry) noexcept {
  if (const auto* b = std::get_if<token_bucket>(&settings_)) {
    local_->on_success(last_retry);  // lock-free: fed directly
    const int refund = last_retry != nullptr ? units(*last_retry) : b->success_refund;
    const auto before = pending_.fetch_add(refund, std::memory_order_relaxed);
    if (before < max_batch_ && before + refund >= max_batch_) link_->poke(task_);
  }
}

void shared_budget::on_failure() noexcept { local_->on_failure(); }

void shared_budget::flush() {
  // One flush at a time: a caller's flush() waits for the link thread's.
  std::lock_guard flushing(flush_mu_);
  const auto fresh = pending_.exchange(0, std::memory_order_relaxed);
  // Each call reaches the local fallback budget exactly once: when it is
  // first taken from pending_, never again when a busy send is retried.
  if (std::holds_alternative<ratio>(settings_)) static_cast<ratio_budget&>(*local_).on_calls(fresh);
  auto n = fresh + std::exchange(unsent_, 0);
  if (std::holds_alternative<token_bucket>(settings_)) {
    // Leased bucket tokens that expired unused go back to the fleet.
    std::lock_guard lock(lease_mu_);
    if (leased_ > 0 && link_->time_source().now() >= lease_until_) n += std::exchange(leased_, 0);
  }
  if (n <= 0) return;
  if (!link_->available()) return;  // down: dropped (fewer calls counted: fewer retries allowed)
  std::optional<long long> done;
  if (const auto* r = std::get_if<ratio>(&settings_)) {
    done = eval_integer(*link_, ratio_script, {key_},
                        {"call", std::to_string(n), number(r->ratio),
                         std::to_string(r->min_per_second), std::to_string(window_seconds(*r))});
  } else {
    const auto& b = std::get<token_bucket>(settings_);
    done = eval_integer(*link_, bucket_script, {key_},
                        {"refund", std::to_string(n), std::to_string(b.capacity), "0"});
  }
  // Not sent because the link was busy: kept for the next flush, apart from
  // pending_ (the local budget has them). A timeout marks the link down;
  // whether Redis applied it is unknown: dropped.
  if (!done && link_->available()) unsent_ = n;
}

bool shared_budget::fallback(const retry_request& r) noexcept {
  fallback_.fetch_add(1, std::memory_order_relaxed);
  switch (link_->settings().fallback) {
    case fallback_mode::open:
      return true;
    case fallback_mode::closed:
      return false;
    case fallback_mode::local:
      break;
  }
  return local_->try_acquire(r);
}

bool shared_budget::try_acquire(const retry_request& r) noexcept {
  if (!link_->available()) return fallback(r);
  const int need = units(r);
  // Waiting for another thread's round trip: real time, bounded like a command.
  const auto deadline = std::chrono::steady_clock::time_point(
      (system_clock().now() + link_->settings().command_timeout).time_since_epoch());
  int have = 0;
  {
    std::unique_lock lock(lease_mu_);
    for (;;) {
      if (leased_ > 0 && link_->time_source().now() >= lease_until_) {
        // Expired: ratio retries were charged already (nothing to return);
        // bucket tokens go back at the next flush.
        if (std::holds_alternative<token_bucket>(settings_)) {
          pending_.fetch_add(leased_, std::memory_order_relaxed);
        }
        leased_ = 0;
      }
      if (leased_ >= need) {
        leased_ -= need;
        shared_.fetch_add(1, std::memory_order_relaxed);
        return true;
      }
      if (!refilling_) break;
      // Another thread is asking Redis: wait for its answer (single flight),
      // never past this decision's own bound.
      if (lease_cv_.wait_until(lock, deadline) == std::cv_status::timeout) return false;
    }
    refilling_ = true;
    have = leased_;
  }
  std::optional<long long> granted;
  try {
    const auto& o = link_->settings();
    if (const auto* rs = std::get_if<ratio>(&settings_)) {
      granted =
          eval_integer(*link_, ratio_script, {key_},
                       {"retry", std::to_string(o.lease_size), number(rs->ratio),
                        std::to_string(rs->min_per_second), std::to_string(window_seconds(*rs))});
    } else {
      const auto& b = std::get<token_bucket>(settings_);
      granted =
          eval_integer(*link_, bucket_script, {key_},
                       {"take", std::to_string(need - have + (o.lease_size - 1) * b.retry_cost),
                        std::to_string(b.capacity), std::to_string(need - have)});
    }
  } catch (...) {  // allocation failure while building the command
  }
  std::unique_lock lock(lease_mu_);
  refilling_ = false;
  lease_cv_.notify_all();
  if (!granted) {
    lock.unlock();
    // Down now: decide locally. Busy for the whole timeout (still up):
    // refuse rather than hand out a full local budget in a retry storm.
    return link_->available() ? false : fallback(r);
  }
  if (*granted > 0) {
    leased_ += static_cast<int>(*granted);
    lease_until_ = link_->time_source().now() + lease_ttl_;
  }
  if (leased_ < need) return false;  // the fleet's budget is spent
  leased_ -= need;
  shared_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

// ---- shared_breaker ------------------------------------------------------------

shared_breaker::store::store(link& l, const std::string& dependency)
    : link_(l),
      open_key_(l.key("breaker:" + dependency + ":open")),
      outage_key_(l.key("breaker:" + dependency + ":outage")),
      probes_key_(l.key("breaker:" + dependency + ":probes")) {}

std::optional<fleet_breaker_store::view> shared_breaker::store::read() {
  const auto r = link_.eval(breaker_poll_script, {open_key_, outage_key_, probes_key_}, {});
  if (!r || r->type != reply::kind::array || r->elements.size() != 3) return std::nullopt;
  return view{
      .open_left = std::chrono::milliseconds(std::max<long long>(r->elements[0].integer, 0)),
      .outage = r->elements[1].integer == 1,
      .probes = r->elements[2].integer};
}

std::optional<long long> shared_breaker::store::take_probe(duration round) {
  return eval_integer(link_, probe_script, {probes_key_, open_key_},
                      {std::to_string(milliseconds(round))});
}

void shared_breaker::store::publish_open(duration open, duration outage) {
  (void)link_.eval(
      publish_script, {open_key_, outage_key_, probes_key_},
      {"open", std::to_string(milliseconds(open)), std::to_string(milliseconds(outage))});
}

void shared_breaker::store::publish_closed() {
  (void)link_.eval(publish_script, {open_key_, outage_key_, probes_key_}, {"close"});
}

shared_breaker::shared_breaker(std::shared_ptr<link> l, std::string dependency,
                               const breaker_options& o, std::optional<int> fleet_probes)
    : link_(std::move(l)),
      dependency_(std::move(dependency)),
      store_(*link_, dependency_),
      fleet_(store_, o, fleet_probes.value_or(link_->settings().fleet_probes), link_->time_source(),
             link_->settings().poll_interval) {
  task_ = link_->every(link_->settings().poll_interval, [this] { poll(); });
}

shared_breaker::~shared_breaker() { link_->cancel(task_); }

}  // namespace rebound::redis
