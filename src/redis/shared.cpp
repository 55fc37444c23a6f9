#include "rebound/redis/shared.hpp"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "rebound/config.hpp"

namespace rebound::redis {
namespace {

// The fleet's members: a sorted set of ids scored by when each stops
// counting as alive (Redis's clock, ms). Prepended to the budget scripts.
//   KEYS[2]: the members; ARGV[6], ARGV[7]: a member id and its ttl (ms), or empty
constexpr std::string_view members_lua = R"lua(
local function beat()
  if ARGV[6] == nil or ARGV[6] == '' then return 0 end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local ttl = tonumber(ARGV[7])
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[6])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  redis.call('PEXPIRE', KEYS[2], ttl * 2)
  return redis.call('ZCARD', KEYS[2])
end
)lua";

// Fleet-wide ratio budget: per-second counters of calls (c<sec>) and retries
// (r<sec>) in one hash, and a sweep watermark (w); Redis's own clock, so
// process clocks do not matter. Needs Redis >= 5 (TIME before a write).
//   ARGV: op ('call' | 'retry'), n, ratio, min_per_second, window (s), member, ttl
// 'call' adds n calls (and beats: returns the live members); 'retry' grants
// up to n retries and returns how many.
constexpr std::string_view ratio_lua = R"lua(
local key = KEYS[1]
local n = tonumber(ARGV[2])
local window = tonumber(ARGV[5])
local now = tonumber(redis.call('TIME')[1])
if ARGV[1] == 'call' then
  if n > 0 then
    redis.call('HINCRBY', key, 'c' .. now, n)
    -- sweep the seconds that left the window since the last sweep (at most 120)
    local oldest = now - window
    local swept = tonumber(redis.call('HGET', key, 'w') or (oldest - 1))
    local from = math.max(swept + 1, oldest - 120)
    for s = from, oldest do redis.call('HDEL', key, 'c' .. s, 'r' .. s) end
    if oldest > swept then redis.call('HSET', key, 'w', oldest) end
    redis.call('EXPIRE', key, window + 5)
  end
  return beat()
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
//   ARGV: op ('refund' | 'take'), n, capacity, need, unused, member, ttl
// 'refund' adds n tokens (capped; and beats: returns the live members);
// 'take' grants nothing unless `need` tokens are there, else up to n, and
// returns how many.
constexpr std::string_view bucket_lua = R"lua(
local key = KEYS[1]
local n = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local tokens = tonumber(redis.call('GET', key) or cap)
if ARGV[1] == 'refund' then
  if n > 0 then
    tokens = math.min(cap, tokens + n)
    redis.call('SET', key, tokens)
  end
  return beat()
end
if tokens < tonumber(ARGV[4]) then return 0 end
local g = math.min(n, tokens)
redis.call('SET', key, tokens - g)
return g
)lua";

// The link keeps a script's source by address (it must outlive the link):
// the members function and each budget script, joined once.
const std::string& ratio_script() {
  static const std::string s = std::string(members_lua) + std::string(ratio_lua);
  return s;
}
const std::string& bucket_script() {
  static const std::string s = std::string(members_lua) + std::string(bucket_lua);
  return s;
}

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
  -- An open never shortens a longer one already published (an isolation
  -- holds until reset, whatever trips meanwhile).
  if redis.call('PTTL', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
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

long long milliseconds(duration d) {
  return std::max<long long>(1, std::chrono::ceil<std::chrono::milliseconds>(d).count());
}

}  // namespace

// ---- shared_budget -------------------------------------------------------------

namespace {

fleet_budget_options fleet_options_of(const options& o) {
  fleet_budget_options f;
  f.max_batch = o.max_batch;
  f.lease_size = o.lease_size;
  f.lease_ttl = o.lease_ttl;
  f.refusal_hold = o.refusal_hold;
  f.fallback = o.fallback;
  f.share = o.share;
  f.expected_fleet_size = o.expected_fleet_size;
  f.member_ttl = o.member_ttl;
  return f;
}

std::string budget_key(link& l, const std::string& dependency, const fleet_budget_settings& s) {
  return l.key((std::holds_alternative<ratio_budget::options>(s) ? "budget:" : "bucket:") +
               dependency);
}

}  // namespace

shared_budget::store::store(link& l, std::string key, std::string members_key)
    : link_(l), key_(std::move(key)), members_key_(std::move(members_key)) {}

duration shared_budget::store::bound() const noexcept { return link_.settings().command_timeout; }

std::optional<long long> shared_budget::store::run(std::string_view script,
                                                   const std::vector<std::string>& args) {
  const bool was_up = link_.available();
  const auto r = link_.eval(script, {key_, members_key_}, args);
  // Nothing at all: never sent if the link was down before the call (it
  // answers at once then); otherwise it may have timed out after sending.
  // An error reply (READONLY from a demoted master): the script did not run.
  unapplied_.store(r ? r->type == reply::kind::error : !was_up, std::memory_order_relaxed);
  if (!r || r->type != reply::kind::integer) return std::nullopt;
  return r->integer;
}

std::optional<long long> shared_budget::store::deposit(const fleet_budget_settings& s, long long n,
                                                       const member* m) {
  const std::string id = m != nullptr ? std::string(m->id) : std::string();
  const std::string ttl = m != nullptr ? std::to_string(milliseconds(m->ttl)) : std::string("0");
  if (const auto* r = std::get_if<ratio_budget::options>(&s)) {
    return run(ratio_script(),
               {"call", std::to_string(n), number(r->ratio), std::to_string(r->min_per_second),
                std::to_string(std::chrono::duration_cast<std::chrono::seconds>(r->window).count()),
                id, ttl});
  }
  const auto& b = std::get<token_bucket_budget::options>(s);
  return run(bucket_script(),
             {"refund", std::to_string(n), std::to_string(b.capacity), "0", "", id, ttl});
}

std::optional<long long> shared_budget::store::take(const fleet_budget_settings& s, long long n,
                                                    long long need) {
  if (const auto* r = std::get_if<ratio_budget::options>(&s)) {
    return eval_integer(
        link_, ratio_script(), {key_, members_key_},
        {"retry", std::to_string(n), number(r->ratio), std::to_string(r->min_per_second),
         std::to_string(std::chrono::duration_cast<std::chrono::seconds>(r->window).count()), "",
         "0"});
  }
  const auto& b = std::get<token_bucket_budget::options>(s);
  return eval_integer(
      link_, bucket_script(), {key_, members_key_},
      {"take", std::to_string(n), std::to_string(b.capacity), std::to_string(need), "", "", "0"});
}

shared_budget::shared_budget(std::shared_ptr<link> l, std::string dependency,
                             fleet_budget_settings s)
    : link_(std::move(l)),
      dependency_(std::move(dependency)),
      store_(*link_, budget_key(*link_, dependency_, s), link_->key("members:" + dependency_)),
      fleet_(store_, std::move(s), fleet_options_of(link_->settings()), link_->time_source()) {
  task_ = link_->every(link_->settings().flush_interval, [this] { fleet_.flush(); });
  fleet_.on_flush_due([this] { link_->poke(task_); });
}

shared_budget::shared_budget(std::shared_ptr<link> l, std::string dependency)
    : shared_budget(l, std::move(dependency), l->settings().budget) {}

shared_budget::shared_budget(std::shared_ptr<link> l, std::string dependency, ratio o)
    : shared_budget(std::move(l), std::move(dependency), fleet_budget_settings(o)) {}

shared_budget::shared_budget(std::shared_ptr<link> l, std::string dependency, token_bucket o)
    : shared_budget(std::move(l), std::move(dependency), fleet_budget_settings(o)) {}

shared_budget::~shared_budget() {
  link_->cancel(task_);
  // Leased bucket tokens go back to the fleet (ratio retries were charged).
  fleet_.release();
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
