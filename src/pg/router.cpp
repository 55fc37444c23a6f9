#include "rebound/pg/router.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "rebound/call.hpp"
#include "rebound/config.hpp"
#include "rebound/duration.hpp"

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
      replica_retry_(options_.replica_retry.to_policy(c)),
      lsn_wait_(options_.lsn_wait.to_policy(c)),
      primary_(primary,
               {.max_size = options_.pool_size,
                .wait = options_.pool_wait,
                .connect_timeout = options_.connect_timeout,
                .statement_bound = options_.primary_query_timeout},
               c),
      breaker_(options_.replica_breaker, c) {
  if (!replica.empty()) {
    const bool distinct = !same_server(primary, replica);
    std::string on_connect;
    if (options_.replica_query_timeout > duration::zero()) {
      // The server stops the work too, when it runs.
      on_connect =
          "SET statement_timeout = " +
          std::to_string(
              std::chrono::ceil<std::chrono::milliseconds>(options_.replica_query_timeout).count());
    }
    replica_ =
        std::make_unique<pool>(std::move(replica),
                               pool::options{.max_size = options_.pool_size,
                                             .wait = options_.pool_wait,
                                             .connect_timeout = options_.connect_timeout,
                                             .on_connect = std::move(on_connect),
                                             .statement_bound = options_.replica_query_timeout},
                               c);
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

// Errors that say the replica is unreachable or struggling, and so count
// against its health: not a recovery conflict (40001), not the caller's SQL.
bool replica_unhealthy(const error& e) {
  const verdict v = classify(e);
  return v.kind == verdict_kind::overloaded || v.timeout || e.connection_lost();
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

  // Both waits are calls of the call engine, under the router's policies.
  // They are steps of one read, not retry layers of their own: never nested.
  call_options call;
  call.stop = o.stop;
  if (options_.seed) call.seed = *options_.seed + seq_.fetch_add(1, std::memory_order_relaxed);
  const auto sleep = [&](retry_call& c, const call_step& step) {
    r.waited += step.delay;
    const call_step next = sleep_then_resume(c, step);
    if (next.done()) std::rethrow_exception(c.give_up_error(nullptr));  // cancelled
  };
  const bool with_token = o.token != nullptr && !o.token->empty();
  bool found = false;
  bool retried = false;
  std::string lag;  // why the replica did not serve, for the log
  try {
    pool::lease lease;
    bool caught_up = true;
    if (with_token) {
      // Read-your-writes: poll the replay position under the lsn_wait
      // policy. The connection goes back to the pool between polls.
      retry_call wait(lsn_wait_, call, {.eager_start = true, .nested = 0});
      if (wait.start().done()) std::rethrow_exception(wait.give_up_error(nullptr));
      for (;;) {
        lease = replica_->acquire();
        ++r.lsn_polls;
        lsn_polls_.fetch_add(1, std::memory_order_relaxed);
        const auto replayed = replay_lsn(*lease);
        if (!replayed) {
          caught_up = false;
          lag = "the replica " + replica_->target() + " is not in recovery";
          wait.end(stop_reason::permanent_error);
          break;
        }
        if (*replayed >= o.token->position()) {
          wait.succeeded();
          break;
        }
        lease.release();
        const call_step step = wait.failed(verdict::transient());
        if (!step.wait()) {
          caught_up = false;
          lag = "replica " + replica_->target() + " had replayed " + replayed->to_string() +
                ", not " + o.token->to_string() + ", after " +
                format_duration(clock_.now() - started);
          break;
        }
        sleep(wait, step);
      }
      retried = r.lsn_polls > 1;
      if (caught_up) {
        if (!lease) lease = replica_->acquire();
        ++r.replica_reads;
        replica_reads_.fetch_add(1, std::memory_order_relaxed);
        found = attempt(*lease);
      }
    } else {
      // A miss (fn's typed not-found) is transient for the replica_retry
      // policy: most lag is shorter than its wait.
      retry_call again(replica_retry_, call, {.nested = 0});
      if (again.start().done()) std::rethrow_exception(again.give_up_error(nullptr));
      for (;;) {
        lease = replica_->acquire();
        ++r.replica_reads;
        replica_reads_.fetch_add(1, std::memory_order_relaxed);
        found = attempt(*lease);
        if (found) {
          again.succeeded();
          break;
        }
        lease.release();  // not held across the wait
        const call_step step = again.failed(verdict::transient());
        if (!step.wait()) break;  // the policy is done with the replica
        sleep(again, step);
        retried = true;
      }
    }
    if (caught_up && !found) {
      lag = with_token ? "not on the replica " + replica_->target() + " although it had replayed " +
                             o.token->to_string()
                       : "not visible on the replica " + replica_->target() + " after " +
                             std::to_string(r.replica_reads) + " reads in " +
                             format_duration(clock_.now() - started);
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
    // an unreachable, struggling or hung server counts against its health.
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
