#include "rebound/redis/shared.hpp"

#include <algorithm>
#include <cstdio>
#include <utility>

namespace rebound::redis {
namespace {

using steady = std::chrono::steady_clock;

// Fleet-wide ratio budget: per-second counters of calls (c<sec>) and retries
// (r<sec>) in one hash; Redis's own clock, so process clocks do not matter.
//   ARGV: op ('call' | 'retry'), n, ratio, min_per_second, window (s)
// 'call' adds n calls; 'retry' grants up to n retries and returns how many.
script ratio_script{R"lua(
local key = KEYS[1]
local n = tonumber(ARGV[2])
local window = tonumber(ARGV[5])
local now = tonumber(redis.call('TIME')[1])
if ARGV[1] == 'call' then
  redis.call('HINCRBY', key, 'c' .. now, n)
  local old = now - window
  redis.call('HDEL', key, 'c' .. old, 'r' .. old, 'c' .. (old - 1), 'r' .. (old - 1))
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
)lua",
                    {}};

// Fleet-wide token bucket.
//   ARGV: op ('refund' | 'take'), n, capacity, need
// 'refund' adds n tokens (capped); 'take' grants nothing unless `need` tokens
// are there, else up to n, and returns how many.
script bucket_script{R"lua(
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
)lua",
                     {}};

// The shared breaker's state: {pttl of the open key, 1 if an outage is in progress}.
script breaker_poll_script{R"lua(
return {redis.call('PTTL', KEYS[1]), redis.call('EXISTS', KEYS[2])}
)lua",
                           {}};

// A fleet-wide half-open probe slot: the count of probes in this round.
script probe_script{R"lua(
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
)lua",
                    {}};

// Scripts are shared by every budget; loading them is idempotent, and the
// sha1 is set once (a benign race: every writer writes the same value).
std::mutex scripts_mu;

std::optional<reply> eval_shared(link& l, script& s, const std::vector<std::string>& keys,
                                 const std::vector<std::string>& args) {
  script local;
  {
    std::lock_guard lock(scripts_mu);
    local = s;
  }
  auto r = l.eval(local, keys, args);
  std::lock_guard lock(scripts_mu);
  if (!local.sha1.empty()) s.sha1 = local.sha1;
  return r;
}

std::optional<long long> eval_integer(link& l, script& s, const std::vector<std::string>& keys,
                                      const std::vector<std::string>& args) {
  const auto r = eval_shared(l, s, keys, args);
  if (!r || r->type != reply::kind::integer) return std::nullopt;
  return r->integer;
}

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

long long window_seconds(const ratio_budget::options& o) {
  return std::max<long long>(1, std::chrono::duration_cast<std::chrono::seconds>(o.window).count());
}

}  // namespace

// ---- shared_budget -------------------------------------------------------------

shared_budget::shared_budget(std::shared_ptr<link> l, std::string dependency, ratio o)
    : link_(std::move(l)),
      dependency_(std::move(dependency)),
      key_(link_->key("budget:" + dependency_)),
      settings_(o),
      local_(std::make_shared<ratio_budget>(o)),
      max_batch_(link_->settings().max_batch) {
  task_ = link_->every(link_->settings().flush_interval, [this] { flush(); });
}

shared_budget::shared_budget(std::shared_ptr<link> l, std::string dependency, token_bucket o)
    : link_(std::move(l)),
      dependency_(std::move(dependency)),
      key_(link_->key("bucket:" + dependency_)),
      settings_(o),
      local_(std::make_shared<token_bucket_budget>(o)),
      max_batch_(link_->settings().max_batch) {
  task_ = link_->every(link_->settings().flush_interval, [this] { flush(); });
}

shared_budget::~shared_budget() {
  link_->cancel(task_);
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
    link_->poke();
  }
}

void shared_budget::on_success(const retry_request* last_retry) noexcept {
  if (const auto* b = std::get_if<token_bucket>(&settings_)) {
    local_->on_success(last_retry);  // lock-free: fed directly
    const int refund = last_retry != nullptr ? units(*last_retry) : b->success_refund;
    const auto before = pending_.fetch_add(refund, std::memory_order_relaxed);
    if (before < max_batch_ && before + refund >= max_batch_) {
      link_->poke();
    }
  }
}

void shared_budget::on_failure() noexcept { local_->on_failure(); }

void shared_budget::flush() {
  const auto n = pending_.exchange(0, std::memory_order_relaxed);
  if (std::holds_alternative<ratio>(settings_)) {
    static_cast<ratio_budget&>(*local_).on_calls(n);
  }
  // Leased bucket tokens that expired unused go back to the fleet.
  std::int64_t returned = 0;
  if (std::holds_alternative<token_bucket>(settings_)) {
    std::lock_guard lock(lease_mu_);
    if (leased_ > 0 && steady::now() >= lease_until_) {
      returned = leased_;
      leased_ = 0;
    }
  }
  if (n + returned <= 0 || !link_->available()) return;  // unavailable: dropped, conservatively
  if (const auto* r = std::get_if<ratio>(&settings_)) {
    (void)eval_integer(*link_, ratio_script, {key_},
                       {"call", std::to_string(n), number(r->ratio),
                        std::to_string(r->min_per_second), std::to_string(window_seconds(*r))});
  } else {
    const auto& b = std::get<token_bucket>(settings_);
    (void)eval_integer(*link_, bucket_script, {key_},
                       {"refund", std::to_string(n + returned), std::to_string(b.capacity), "0"});
  }
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
  int have = 0;
  {
    std::lock_guard lock(lease_mu_);
    if (steady::now() >= lease_until_ && std::holds_alternative<ratio>(settings_)) {
      leased_ = 0;  // expired: those retries were counted already; nothing to return
    }
    if (leased_ >= need) {
      leased_ -= need;
      shared_.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    have = leased_;
  }
  // One round trip, without holding the lease lock: it may take up to the
  // command timeout, and other threads must not queue behind it.
  try {
    const auto& o = link_->settings();
    std::optional<long long> granted;
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
    if (!granted) return fallback(r);  // Redis failed just now
    std::lock_guard lock(lease_mu_);
    leased_ += static_cast<int>(*granted);
    lease_until_ = steady::now() + o.lease_ttl;
    if (leased_ < need) return false;  // the fleet's budget is spent
    leased_ -= need;
    shared_.fetch_add(1, std::memory_order_relaxed);
    return true;
  } catch (...) {  // allocation failure while building the command
    return fallback(r);
  }
}

// ---- shared_breaker ------------------------------------------------------------

namespace {
constexpr std::uint64_t fleet_probe_bit = 1ULL << 63;
}

shared_breaker::shared_breaker(std::shared_ptr<link> l, std::string dependency,
                               const breaker_options& o, int fleet_probes)
    : link_(std::move(l)),
      dependency_(std::move(dependency)),
      open_key_(link_->key("breaker:" + dependency_ + ":open")),
      half_key_(link_->key("breaker:" + dependency_ + ":outage")),
      probes_key_(link_->key("breaker:" + dependency_ + ":probes")),
      options_(o),
      fleet_probes_(std::max(1, fleet_probes)),
      local_(o) {
  task_ = link_->every(link_->settings().poll_interval, [this] { poll(); });
}

shared_breaker::~shared_breaker() { link_->cancel(task_); }

void shared_breaker::poll() {
  const auto r = eval_shared(*link_, breaker_poll_script, {open_key_, half_key_}, {});
  if (!r || r->type != reply::kind::array || r->elements.size() != 2) return;
  const auto pttl = r->elements[0].integer;
  const auto now = steady::now().time_since_epoch().count();
  shared_open_until_.store(pttl > 0 ? now + pttl * 1000000 : 0, std::memory_order_relaxed);
  shared_half_open_.store(pttl <= 0 && r->elements[1].integer == 1, std::memory_order_relaxed);
}

breaker_state shared_breaker::state() const {
  if (link_->available()) {
    if (steady::now().time_since_epoch().count() < shared_open_until_.load()) {
      return breaker_state::open;
    }
    if (shared_half_open_.load()) return breaker_state::half_open;
  }
  return local_.state();
}

breaker_permit shared_breaker::try_acquire() {
  if (link_->available()) {
    const auto now = steady::now().time_since_epoch().count();
    const auto until = shared_open_until_.load(std::memory_order_relaxed);
    if (now < until) {
      // Open somewhere in the fleet: reject at once, until the shared probe time.
      return {false, false, system_clock().now() + std::chrono::nanoseconds(until - now), 0};
    }
    if (shared_half_open_.load(std::memory_order_relaxed)) {
      const auto n = eval_integer(
          *link_, probe_script, {probes_key_},
          {std::to_string(
              std::chrono::duration_cast<std::chrono::milliseconds>(options_.open_duration)
                  .count())});
      if (n && *n > fleet_probes_) {
        return {false, false, system_clock().now() + link_->settings().poll_interval, 0};
      }
      if (n) {
        auto p = local_.try_acquire();
        if (p) p.generation |= fleet_probe_bit;
        return p;
      }
    }
  }
  return local_.try_acquire();
}

void shared_breaker::record(const breaker_permit& permit, bool succeeded) {
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

void shared_breaker::publish_open() {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.open_duration).count();
  // The outage marker outlives the open state: after it, probes are counted.
  (void)link_->call({"SET", open_key_, "1", "PX", std::to_string(std::max<long long>(ms, 1))});
  (void)link_->call({"SET", half_key_, "1", "PX", std::to_string(ms + 60000)});
  (void)link_->call({"DEL", probes_key_});
  shared_open_until_.store(steady::now().time_since_epoch().count() + ms * 1000000);
  shared_half_open_.store(false);
}

void shared_breaker::publish_closed() {
  (void)link_->call({"DEL", open_key_, half_key_, probes_key_});
  shared_open_until_.store(0);
  shared_half_open_.store(false);
}

}  // namespace rebound::redis
