// The connection pool of the pg router.
#include "rebound/pg/pool.hpp"

#include <utility>

#include "rebound/detail/clock_wait.hpp"
#include "rebound/detail/saturate.hpp"
#include "rebound/duration.hpp"

namespace rebound::pg {

pool::pool(std::string conninfo, options o, clock& c)
    : conninfo_(std::move(conninfo)),
      target_(describe_target(conninfo_)),
      options_(std::move(o)),
      clock_(c) {}

pool::lease& pool::lease::operator=(lease&& o) noexcept {
  if (this != &o) {
    release();
    pool_ = std::exchange(o.pool_, nullptr);
    conn_ = std::move(o.conn_);
    generation_ = o.generation_;
    reused_ = o.reused_;
  }
  return *this;
}

void pool::lease::release() noexcept {
  if (pool_ != nullptr && conn_ != nullptr) pool_->give_back(std::move(conn_), generation_);
  pool_ = nullptr;
  conn_.reset();
}

pool::lease pool::open_new(std::unique_lock<std::mutex>& lock) {
  ++open_;
  const auto generation = generation_;
  lock.unlock();
  try {
    auto c = std::make_unique<connection>(
        conninfo_, std::chrono::ceil<std::chrono::seconds>(options_.connect_timeout));
    c->set_statement_bound(options_.statement_bound);
    if (!options_.on_connect.empty()) c->exec(options_.on_connect);
    return lease(this, std::move(c), generation, false);
  } catch (...) {
    lock.lock();
    --open_;
    cv_.notify_one();
    throw;
  }
}

pool::lease pool::acquire() {
  std::unique_lock lock(mu_);
  const auto until = rebound::detail::saturating_add(clock_.now(), options_.wait);
  for (;;) {
    while (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      if (c->idle()) return lease(this, std::move(c), generation_, true);
      --open_;  // broke while idle
    }
    if (open_ < options_.max_size) return open_new(lock);
    if (!rebound::detail::wait_until(clock_, cv_, lock, until,
                                     [&] { return !idle_.empty() || open_ < options_.max_size; })) {
      throw busy();
    }
  }
}

pool::lease pool::acquire_fresh() {
  std::unique_lock lock(mu_);
  const auto until = rebound::detail::saturating_add(clock_.now(), options_.wait);
  for (;;) {
    if (open_ < options_.max_size) return open_new(lock);
    if (!idle_.empty()) {  // make room: close an idle one
      idle_.pop_back();
      --open_;
      continue;
    }
    if (!rebound::detail::wait_until(clock_, cv_, lock, until,
                                     [&] { return !idle_.empty() || open_ < options_.max_size; })) {
      throw busy();
    }
  }
}

pool_exhausted pool::busy() const {
  return pool_exhausted("53300", "all " + std::to_string(options_.max_size) + " connections to " +
                                     target_ + " stayed busy for " +
                                     format_duration(options_.wait));
}

void pool::give_back(std::unique_ptr<connection> c, std::uint64_t generation) noexcept {
  std::unique_ptr<connection> dropped;
  {
    std::lock_guard lock(mu_);
    if (c->idle() && generation == generation_) {
      idle_.push_back(std::move(c));
    } else {
      dropped = std::move(c);  // closed outside the lock
      --open_;
    }
  }
  cv_.notify_one();
}

void pool::discard_idle() noexcept {
  std::vector<std::unique_ptr<connection>> dropped;
  {
    std::lock_guard lock(mu_);
    ++generation_;  // those in use are dropped when they come back
    dropped.swap(idle_);
    open_ -= static_cast<int>(dropped.size());
  }
  cv_.notify_all();
}

int pool::open_connections() const {
  std::lock_guard lock(mu_);
  return open_;
}

}  // namespace rebound::pg
