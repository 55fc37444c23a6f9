#include "rebound/pg/router.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "rebound/config.hpp"
#include "rebound/duration.hpp"
#include "rebound/random.hpp"
#include "rebound/retry.hpp"

namespace rebound::pg {

std::string_view to_string(read_outcome o) noexcept {
  switch (o) {
    case read_outcome::replica:
      return "replica";
    case read_outcome::replica_retry:
      return "replica_retry";
    case read_outcome::primary_fallback:
      return "primary_fallback";
    case read_outcome::not_found:
      return "not_found";
    case read_outcome::replica_error:
      return "replica_error";
    case read_outcome::primary:
      return "primary";
    case read_outcome::failed:
      return "failed";
  }
  return "unknown";
}

// ---- pool --------------------------------------------------------------------

pool::pool(std::string conninfo, int max_size, duration wait, duration connect_timeout,
           std::string on_connect)
    : conninfo_(std::move(conninfo)),
      target_(describe_target(conninfo_)),
      max_size_(max_size),
      wait_(wait),
      connect_timeout_(connect_timeout),
      on_connect_(std::move(on_connect)) {}

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
        conninfo_, std::chrono::ceil<std::chrono::seconds>(connect_timeout_));
    if (!on_connect_.empty()) c->exec(on_connect_);
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
  const auto until = std::chrono::steady_clock::now() + wait_;
  for (;;) {
    while (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      if (c->idle()) return lease(this, std::move(c), generation_, true);
      --open_;  // broke while idle
    }
    if (open_ < max_size_) return open_new(lock);
    if (cv_.wait_until(lock, until) == std::cv_status::timeout && idle_.empty() &&
        open_ >= max_size_) {
      throw pool_exhausted("53300", "all " + std::to_string(max_size_) + " connections to " +
                                        target_ + " stayed busy for " + format_duration(wait_));
    }
  }
}

pool::lease pool::acquire_fresh() {
  std::unique_lock lock(mu_);
  const auto until = std::chrono::steady_clock::now() + wait_;
  for (;;) {
    if (open_ < max_size_) return open_new(lock);
    if (!idle_.empty()) {  // make room: close an idle one
      idle_.pop_back();
      --open_;
      continue;
    }
    if (cv_.wait_until(lock, until) == std::cv_status::timeout && idle_.empty() &&
        open_ >= max_size_) {
      throw pool_exhausted("53300", "all " + std::to_string(max_size_) + " connections to " +
                                        target_ + " stayed busy for " + format_duration(wait_));
    }
  }
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

// ---- transaction -------------------------------------------------------------

transaction::transaction(pool::lease lease) : lease_(std::move(lease)) { lease_->exec("BEGIN"); }

transaction::~transaction() {
  if (open_ && lease_) {
    try {
      rollback();
    } catch (...) {  // NOLINT(bugprone-empty-catch): the lease drops a broken connection
    }
  }
}

void transaction::commit(session_token* token) {
  if (!open_) throw std::logic_error("pg::transaction::commit: the transaction already ended");
  open_ = false;
  if (lease_->in_failed_transaction()) {
    // PostgreSQL would answer COMMIT with ROLLBACK, silently.
    lease_->exec("ROLLBACK");
    throw error("25P02",
                "commit of an aborted transaction: an earlier statement failed, so it was "
                "rolled back and nothing was written");
  }
  const auto r = lease_->exec("COMMIT");
  if (r.command_status() != "COMMIT") {
    throw error("40000", "COMMIT answered " + std::string(r.command_status()) +
                             ": the transaction was rolled back");
  }
  detail::record_position(*lease_, token);
}

void transaction::rollback() {
  if (!open_) return;
  open_ = false;
  lease_->exec("ROLLBACK");
}

// ---- router ------------------------------------------------------------------

void detail::record_position(connection& c, session_token* token) noexcept {
  if (token == nullptr) return;
  try {
    token->observe(current_wal_lsn(c));
  } catch (...) {
    token->mark_unknown();  // the write happened; its reads go to the primary
  }
}

router::router(std::string primary, std::string replica, router_options options, clock& c)
    : options_((options.validate(), std::move(options))),
      clock_(c),
      primary_(primary, options_.pool_size, options_.pool_wait, options_.connect_timeout),
      breaker_(options_.replica_breaker, c) {
  if (!replica.empty()) {
    const bool distinct = !same_server(primary, replica);
    std::string on_connect;
    if (options_.replica_query_timeout > duration::zero()) {
      on_connect =
          "SET statement_timeout = " +
          std::to_string(
              std::chrono::ceil<std::chrono::milliseconds>(options_.replica_query_timeout).count());
    }
    replica_ = std::make_unique<pool>(std::move(replica), options_.pool_size, options_.pool_wait,
                                      options_.connect_timeout, std::move(on_connect));
    has_replica_ = distinct;
  }
  enabled_.store(options_.enabled, std::memory_order_relaxed);
  breaker_.on_state_change([this](breaker_state from, breaker_state to) {
    // Called under the breaker's lock: only queue the line here.
    if (replica_ == nullptr) return;
    std::lock_guard lock(log_mu_);
    if (to == breaker_state::open) {
      breaker_log_.emplace_back(
          log_level::warning,
          "replica " + replica_->target() + " is down (" + std::string(to_string(from)) +
              " -> open); reads go to the primary " + primary_.target() +
              " until it is probed in " + format_duration(options_.replica_breaker.open_duration));
    } else if (to == breaker_state::closed) {
      breaker_log_.emplace_back(log_level::info,
                                "replica " + replica_->target() + " is back; reads use it again");
    }
  });
}

router::~router() = default;

void router::on_log(log_sink sink) { log_ = std::move(sink); }

void router::log(log_level level, const std::string& message) const {
  if (log_) log_(level, message);
}

void router::flush_breaker_log() {
  std::vector<std::pair<log_level, std::string>> lines;
  {
    std::lock_guard lock(log_mu_);
    lines.swap(breaker_log_);
  }
  for (const auto& [level, line] : lines) log(level, line);
}

void router::warn_served_by_primary(const std::string& why) {
  std::string line;
  {
    std::lock_guard lock(log_mu_);
    const auto now = clock_.now();
    ++unwarned_;
    if (options_.warning_interval > duration::zero() && last_warning_ != time_point{} &&
        now - last_warning_ < options_.warning_interval) {
      return;  // counted in the next warning
    }
    line = "read served by the primary " + primary_.target() + ": " + why;
    if (unwarned_ > 1) {
      line += " (" + std::to_string(unwarned_) + " such reads since the last warning)";
    }
    unwarned_ = 0;
    last_warning_ = now;
  }
  log(log_level::warning, line);
}

transaction router::begin() { return transaction(primary_.acquire()); }

router_counters router::counters() const noexcept {
  router_counters c;
  for (std::size_t i = 0; i < read_outcome_count; ++i) {
    c.reads[i] = reads_[i].load(std::memory_order_relaxed);
  }
  c.replica_reads = replica_reads_.load(std::memory_order_relaxed);
  c.primary_reads = primary_reads_.load(std::memory_order_relaxed);
  c.lsn_polls = lsn_polls_.load(std::memory_order_relaxed);
  c.replica_failures = replica_failures_.load(std::memory_order_relaxed);
  c.primary_retries = primary_retries_.load(std::memory_order_relaxed);
  return c;
}

bool router::on_primary(detail::attempt_ref attempt, read_report& r) {
  auto lease = primary_.acquire();
  ++r.primary_reads;
  primary_reads_.fetch_add(1, std::memory_order_relaxed);
  try {
    return attempt(*lease);
  } catch (const error& e) {
    // A pooled connection that died while idle (the primary restarted):
    // the others are likely dead too. Once more, on a new connection.
    if (!e.connection_lost() || !lease.reused()) throw;
    lease = pool::lease{};
    primary_.discard_idle();
    lease = primary_.acquire_fresh();
    primary_retries_.fetch_add(1, std::memory_order_relaxed);
    return attempt(*lease);
  }
}

namespace {

// Uniform in [lo, hi].
duration jittered(random_stream& rng, duration lo, duration hi) {
  if (hi <= lo) return lo;
  const auto span = static_cast<double>((hi - lo).count());
  return lo + duration(static_cast<duration::rep>(std::floor(rng.uniform() * (span + 1))));
}

[[noreturn]] void cancelled(int attempts, duration elapsed) {
  throw retry_error(stop_reason::cancelled, attempts, elapsed, nullptr);
}

// Errors that say the replica is unreachable or struggling, and so count
// against its health: not a recovery conflict (40001), not the caller's SQL.
bool replica_unhealthy(const error& e) {
  return e.connection_lost() || e.sqlstate() == "57014" || e.sqlstate().starts_with("53");
}

}  // namespace

void router::run_read(detail::attempt_ref attempt, const read_options& o) {
  read_report local;
  read_report& r = o.report != nullptr ? *o.report : local;
  r = read_report{};
  const auto finish = [&](read_outcome outcome) {
    r.outcome = outcome;
    reads_[static_cast<std::size_t>(outcome)].fetch_add(1, std::memory_order_relaxed);
  };
  try {
    if (o.tx != nullptr || o.on != nullptr) {
      // Pinned: the caller's transaction or connection, never the replica.
      connection& c = o.tx != nullptr ? o.tx->conn() : *o.on;
      ++r.primary_reads;
      primary_reads_.fetch_add(1, std::memory_order_relaxed);
      finish(attempt(c) ? read_outcome::primary : read_outcome::not_found);
      return;
    }
    if (!replica_engaged() || (o.token != nullptr && o.token->unknown())) {
      finish(on_primary(attempt, r) ? read_outcome::primary : read_outcome::not_found);
      return;
    }
    const auto outcome = read_replica_first(attempt, o, r);
    flush_breaker_log();
    finish(outcome);
  } catch (...) {
    flush_breaker_log();
    finish(read_outcome::failed);
    throw;
  }
}

read_outcome router::read_replica_first(detail::attempt_ref attempt, const read_options& o,
                                        read_report& r) {
  const auto started = clock_.now();
  const auto attempts = [&] { return r.replica_reads + r.primary_reads; };
  const auto fallback = [&](const std::string& why) {
    const bool found = on_primary(attempt, r);
    if (found) warn_served_by_primary(why);
    return found;
  };

  const auto permit = breaker_.try_acquire();
  if (!permit) {
    // Known down: skip it without a connection attempt until the probe time.
    r.replica_error = "replica " + replica_->target() + " is down (circuit open)";
    return on_primary(attempt, r) ? read_outcome::replica_error : read_outcome::not_found;
  }

  random_stream rng(options_.seed ? *options_.seed + seq_.fetch_add(1, std::memory_order_relaxed)
                                  : random_stream::fresh_seed());
  const bool with_token = o.token != nullptr && !o.token->empty();
  bool found = false;
  bool retried = false;
  std::string lag;  // why the replica did not serve, for the log
  try {
    pool::lease lease;
    bool caught_up = true;
    if (with_token) {
      // Read-your-writes: poll the replay position, jittered and bounded.
      // The connection goes back to the pool between polls.
      const auto give_up_at = started + options_.lsn_wait_max;
      auto step = options_.lsn_poll_min;
      for (;;) {
        lease = replica_->acquire();
        ++r.lsn_polls;
        lsn_polls_.fetch_add(1, std::memory_order_relaxed);
        const auto replayed = replay_lsn(*lease);
        if (!replayed) {
          caught_up = false;
          lag = "the replica " + replica_->target() + " is not in recovery";
          break;
        }
        if (*replayed >= o.token->position()) break;
        const auto now = clock_.now();
        // Each pause in [step, 2 step], capped at lsn_poll_max (then in
        // [max/2, max]); the last one is cut to end at the bound, for one
        // final poll there.
        const auto hi = std::min(2 * step, options_.lsn_poll_max);
        const auto lo = std::min(step, hi / 2);
        const auto pause = std::min(jittered(rng, lo, hi), give_up_at - now);
        step = hi;
        if (pause <= duration::zero()) {
          caught_up = false;
          lag = "replica " + replica_->target() + " had replayed " + replayed->to_string() +
                ", not " + o.token->to_string() + ", after " + format_duration(now - started);
          break;
        }
        lease.release();
        if (!clock_.sleep_for(pause, o.stop)) cancelled(attempts(), clock_.now() - started);
        r.waited += pause;
      }
      retried = r.lsn_polls > 1;
    } else {
      lease = replica_->acquire();
    }
    if (caught_up) {
      ++r.replica_reads;
      replica_reads_.fetch_add(1, std::memory_order_relaxed);
      found = attempt(*lease);
      if (!found && !with_token && options_.replica_retry_max > duration::zero()) {
        // One jittered retry on the replica: most lag is shorter than this.
        const auto pause = jittered(rng, options_.replica_retry_min, options_.replica_retry_max);
        lease.release();  // not held across the wait
        if (!clock_.sleep_for(pause, o.stop)) cancelled(attempts(), clock_.now() - started);
        r.waited += pause;
        retried = true;
        lease = replica_->acquire();
        ++r.replica_reads;
        replica_reads_.fetch_add(1, std::memory_order_relaxed);
        found = attempt(*lease);
      }
      if (!found) {
        lag = with_token ? "not on the replica " + replica_->target() +
                               " although it had replayed " + o.token->to_string()
                         : "not visible on the replica " + replica_->target() + " after " +
                               std::to_string(r.replica_reads) + " reads in " +
                               format_duration(clock_.now() - started);
      }
    }
    breaker_.record(permit, true);
  } catch (const pool_exhausted& e) {
    // Our own pool is busy: the replica is not at fault.
    breaker_.record(permit, true);
    r.replica_error = e.what();
    return fallback("the replica's pool is busy: " + r.replica_error) ? read_outcome::replica_error
                                                                      : read_outcome::not_found;
  } catch (const error& e) {
    // Any PostgreSQL error on the replica sends the read to the primary; only
    // an unreachable or struggling server counts against its health.
    const bool unhealthy = replica_unhealthy(e);
    breaker_.record(permit, !unhealthy);
    replica_failures_.fetch_add(1, std::memory_order_relaxed);
    if (e.connection_lost()) replica_->discard_idle();
    r.replica_error = e.what();
    return fallback("the replica failed: " + r.replica_error) ? read_outcome::replica_error
                                                              : read_outcome::not_found;
  } catch (...) {
    // fn's own exception (not a database error), or a cancel: the replica is
    // fine. It propagates, as it would on the primary.
    breaker_.record(permit, true);
    throw;
  }
  if (found) return retried ? read_outcome::replica_retry : read_outcome::replica;
  return fallback(lag) ? read_outcome::primary_fallback : read_outcome::not_found;
}

}  // namespace rebound::pg
