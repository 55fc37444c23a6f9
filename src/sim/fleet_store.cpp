// The fleet's Redis keys in memory (rebound/sim/fleet_store.hpp): what the
// Lua scripts of src/redis/shared.cpp compute, on the given clock.
#include "rebound/sim/fleet_store.hpp"

#include <algorithm>
#include <cmath>

#include "rebound/detail/window.hpp"

namespace rebound::sim {

void fleet_store::set_available(bool up) {
  if (!up_.exchange(up) && up) generation_.fetch_add(1, std::memory_order_relaxed);
}

void fleet_store::start_unreached() {
  up_.store(false);
  generation_.store(0, std::memory_order_relaxed);
}

void fleet_store::restart(bool keep_data) {
  {
    std::lock_guard lock(mu_);
    if (!keep_data) {
      seconds_.clear();
      tokens_.reset();
      members_.clear();
      open_until_ = outage_until_ = probes_until_ = time_point{};
      probes_ = 0;
    }
  }
  up_.store(true);
  generation_.fetch_add(1, std::memory_order_relaxed);
}

void fleet_store::busy_for(int n) {
  std::lock_guard lock(mu_);
  busy_ = std::max(0, n);
}

bool fleet_store::available() const noexcept { return up_.load(); }

bool fleet_store::answers() {
  if (!up_.load() || busy_ > 0) {
    if (busy_ > 0 && up_.load()) --busy_;
    ++counts_.refused;
    return false;
  }
  ++counts_.operations;
  return true;
}

long long fleet_store::live_members(time_point now) {
  std::erase_if(members_, [&](const auto& m) { return m.second <= now; });
  return static_cast<long long>(members_.size());
}

std::optional<long long> fleet_store::deposit(const fleet_budget_settings& s, long long n,
                                              const member* m) {
  std::lock_guard lock(mu_);
  if (!answers()) {
    unapplied_.store(!up_.load(), std::memory_order_relaxed);
    return std::nullopt;
  }
  const time_point now = clock_.now();
  if (std::holds_alternative<ratio_budget::options>(s)) {
    const std::int64_t sec = detail::whole_seconds(now);
    if (n > 0) {
      seconds_[sec].first += n;
      counts_.calls += static_cast<std::uint64_t>(n);
    }
    // The script's sweep: seconds older than two minutes go.
    seconds_.erase(seconds_.begin(), seconds_.lower_bound(sec - 120));
  } else {
    const auto& b = std::get<token_bucket_budget::options>(s);
    if (n > 0) tokens_ = std::min<long long>(b.capacity, tokens_.value_or(b.capacity) + n);
  }
  if (time_out_next_) {  // applied, but the answer never came
    time_out_next_ = false;
    up_.store(false);
    ++counts_.refused;
    unapplied_.store(false, std::memory_order_relaxed);
    return std::nullopt;
  }
  if (m == nullptr || m->id.empty()) return 0;
  members_.insert_or_assign(std::string(m->id), now + m->ttl);
  return live_members(now);
}

void fleet_store::time_out_after_next_deposit() {
  std::lock_guard lock(mu_);
  time_out_next_ = true;
}

std::optional<long long> fleet_store::take(const fleet_budget_settings& s, long long n,
                                           long long need) {
  std::lock_guard lock(mu_);
  if (!answers()) return std::nullopt;
  const time_point now = clock_.now();
  if (const auto* r = std::get_if<ratio_budget::options>(&s)) {
    const std::int64_t sec = detail::whole_seconds(now);
    const auto w = std::chrono::duration_cast<std::chrono::seconds>(r->window).count();
    long long calls = 0, retries = 0;
    for (auto it = seconds_.lower_bound(sec - w + 1); it != seconds_.end() && it->first <= sec;
         ++it) {
      calls += it->second.first;
      retries += it->second.second;
    }
    const long long allowed =
        static_cast<long long>(std::floor(r->ratio * static_cast<double>(calls) +
                                          static_cast<double>(r->min_per_second * w))) -
        retries;
    const long long g = std::min(n, allowed);
    if (g <= 0) return 0;
    seconds_[sec].second += g;
    counts_.retries += static_cast<std::uint64_t>(g);
    return g;
  }
  const auto& b = std::get<token_bucket_budget::options>(s);
  const long long tokens = tokens_.value_or(b.capacity);
  if (tokens < need) return 0;
  const long long g = std::min(n, tokens);
  tokens_ = tokens - g;
  return g;
}

std::optional<fleet_breaker_store::view> fleet_store::read() {
  std::lock_guard lock(mu_);
  if (!answers()) return std::nullopt;
  const time_point now = clock_.now();
  return view{.open_left = open_until_ > now ? open_until_ - now : duration::zero(),
              .outage = now < outage_until_,
              .probes = now < probes_until_ ? probes_ : 0};
}

std::optional<long long> fleet_store::take_probe(duration round) {
  std::lock_guard lock(mu_);
  if (!answers()) return std::nullopt;
  const time_point now = clock_.now();
  if (now < open_until_) return -1;       // open again: no probe
  if (now >= probes_until_) probes_ = 0;  // the key expired
  if (++probes_ == 1) {
    probes_until_ = now + round;
    ++counts_.probes_granted;
  }
  return probes_;
}

void fleet_store::publish_open(duration open, duration outage) {
  std::lock_guard lock(mu_);
  if (!answers()) return;
  const time_point now = clock_.now();
  if (open_until_ - now >= open) return;  // never shortens a longer open (an isolation)
  open_until_ = now + open;
  outage_until_ = now + outage;
  probes_ = 0;
  probes_until_ = time_point{};
  ++counts_.opens;
}

void fleet_store::publish_closed() {
  std::lock_guard lock(mu_);
  if (!answers()) return;
  open_until_ = outage_until_ = probes_until_ = time_point{};
  probes_ = 0;
}

fleet_store::counts fleet_store::totals() const {
  std::lock_guard lock(mu_);
  return counts_;
}

long long fleet_store::members() const {
  std::lock_guard lock(mu_);
  const time_point now = clock_.now();
  return std::count_if(members_.begin(), members_.end(),
                       [&](const auto& m) { return m.second > now; });
}

std::pair<long long, long long> fleet_store::window(duration w) const {
  std::lock_guard lock(mu_);
  const std::int64_t sec = detail::whole_seconds(clock_.now());
  const auto ws = std::chrono::duration_cast<std::chrono::seconds>(w).count();
  long long calls = 0, retries = 0;
  for (auto it = seconds_.lower_bound(sec - ws + 1); it != seconds_.end() && it->first <= sec;
       ++it) {
    calls += it->second.first;
    retries += it->second.second;
  }
  return {calls, retries};
}

}  // namespace rebound::sim
