// rebound/pg/options.hpp: the replica router's settings.
//
// The router's own retry rules are retry policies like any other, carried in
// their data form (policy_settings): `policy show` previews them, JSON and
// the environment change them, and the simulator (`rebound simulate
// replica-lag`) runs exactly these defaults. This header needs no libpq.
//
//   rebound::pg::router_options o;
//   o.replica_retry = rebound::pg::one_replica_retry(20ms, 80ms);
//   o.lsn_wait.before_elapsed = 2s;                      // wait longer for a token
//   auto preview = o.replica_retry.to_policy();          // what a read will do
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string_view>

#include "rebound/breaker.hpp"
#include "rebound/config.hpp"

namespace rebound::pg {

/// One retry on the replica after a miss, after a pause uniform in
/// [min, max] (scenario 001: 50..200 ms): at most 2 attempts, a constant
/// `min` plus additive jitter up to `max - min`. A `max` of 0 means no
/// retry: a miss goes straight to the primary.
[[nodiscard]] inline policy_settings one_replica_retry(duration min, duration max) {
  policy_settings s;
  s.max_attempts = max == duration::zero() ? 1 : 2;
  s.backoff_type = backoff::kind::constant;
  s.initial = min;
  s.jitter = max > min ? jitter::additive(max - min) : jitter::none();
  return s;
}

/// Read-your-writes: poll the replica's replay position until it reaches
/// the token, starting no poll later than `limit` after the first. Pauses
/// start in [poll_min, 2 poll_min] and double up to [poll_max/2, poll_max]
/// (exponential from min(2 poll_min, poll_max), equal jitter): a short lag
/// is seen within a millisecond or two; a 1 s wait costs about 60 polls.
[[nodiscard]] inline policy_settings lsn_polling(
    duration limit, duration poll_min = std::chrono::milliseconds(1),
    duration poll_max = std::chrono::milliseconds(20)) {
  policy_settings s;
  s.before_elapsed = limit;
  s.backoff_type = backoff::kind::exponential;
  s.initial = std::min(2 * poll_min, poll_max);
  s.multiplier = 2.0;
  s.max_delay = poll_max;
  s.jitter = jitter::equal();
  return s;
}

struct router_options {
  /// Replica reads on. Off: every read goes to the primary, as without a replica.
  bool enabled = true;
  /// The retry on the replica after a miss (a typed not-found), before the
  /// primary is asked. Default: one retry after 50..200 ms.
  policy_settings replica_retry =
      one_replica_retry(std::chrono::milliseconds(50), std::chrono::milliseconds(200));
  /// Read-your-writes: how a read with a token waits for the replica to
  /// replay the token's position, before it reads the primary instead.
  /// Default: polls from 1 ms doubling to 20 ms, none later than 1 s.
  policy_settings lsn_wait = lsn_polling(std::chrono::seconds(1));
  /// When the replica counts as down and when it is probed again.
  breaker_options replica_breaker{.mode = breaker_mode::consecutive,
                                  .failure_threshold = 3,
                                  .open_duration = std::chrono::seconds(5),
                                  .half_open_probes = 1};
  /// Connections per server (opened on demand), and how long a read waits
  /// for one when all are busy. A busy replica pool sends the read to the
  /// primary after the wait; it does not count against the replica's health.
  int pool_size = 4;
  duration pool_wait = std::chrono::seconds(5);
  /// libpq's connect_timeout for connection strings that set none: 1s..1h,
  /// rounded up to whole seconds (libpq treats 1 as 2).
  duration connect_timeout = std::chrono::seconds(5);
  /// A bound on every replica statement, kept by the client: past it the
  /// statement is cancelled (PQcancel), the connection dropped, the failure
  /// counted against the replica's health, and the read goes to the
  /// primary. Also set as the replica connections' statement_timeout, so
  /// the server stops the work too. It holds when the server hangs
  /// (stopped, or its host gone), where a server-side timeout cannot fire.
  /// Default 10 s: surviving a bad standby is what the router is for, and
  /// without a bound a hung one (stopped, or its host gone) blocks every
  /// read that reaches it for as long as it hangs. Keep it above your
  /// slowest legitimate read (a read cut off here goes to the primary);
  /// 0 turns the bound off, a choice to make knowingly.
  duration replica_query_timeout = std::chrono::seconds(10);
  /// The same bound for reads on the primary (0: none). The caller's own
  /// statement_timeout still applies.
  duration primary_query_timeout = duration::zero();
  /// Warnings about reads the primary served: at most one per this interval,
  /// with the number of reads since the last one. 0: one per read.
  duration warning_interval = std::chrono::seconds(1);
  /// Seeds the jitter (tests); unset: a fresh stream per read.
  std::optional<std::uint64_t> seed;

  /// Checks every field; throws rebound::config_error naming the first bad one.
  void validate() const;
  friend bool operator==(const router_options&, const router_options&) = default;
};

/// Router options from JSON (all keys optional):
///   {"enabled": true,
///    "replica_retry": {"max_attempts": 2, "backoff": {"type": "constant", "initial": "50ms"},
///                      "jitter": "additive:150ms"},
///    "lsn_wait": {"before_elapsed": "1s", "backoff": {"initial": "2ms", "max": "20ms"},
///                 "jitter": "equal"},
///    "pool_size": 4, "pool_wait": "5s", "connect_timeout": "5s",
///    "replica_query_timeout": "2s", "primary_query_timeout": "10s",
///    "warning_interval": "1s", "seed": 7,
///    "replica_breaker": {"failure_threshold": 3, "open_duration": "5s", ...}}
/// `replica_retry` and `lsn_wait` take every key of a policy document
/// (rebound/config.hpp). Shorthands kept from earlier versions:
/// "replica_retry_min"/"replica_retry_max" (one_replica_retry),
/// "lsn_wait_max", "lsn_poll_min", "lsn_poll_max" (lsn_polling).
/// Throws rebound::config_error naming the field.
[[nodiscard]] router_options router_options_from_json(std::string_view json,
                                                      router_options base = {});
/// PREFIX_ENABLED (true/false/1/0/on/off), PREFIX_REPLICA_RETRY_* and
/// PREFIX_LSN_WAIT_* (every policy variable, e.g. PREFIX_REPLICA_RETRY_MAX_ATTEMPTS,
/// PREFIX_LSN_WAIT_BEFORE_ELAPSED), PREFIX_POOL_SIZE, PREFIX_POOL_WAIT,
/// PREFIX_CONNECT_TIMEOUT, PREFIX_REPLICA_QUERY_TIMEOUT,
/// PREFIX_PRIMARY_QUERY_TIMEOUT, PREFIX_WARNING_INTERVAL, PREFIX_SEED and
/// PREFIX_REPLICA_BREAKER_* (as apply_breaker_env). A duration may also be
/// given in milliseconds as X_MS (setting both X and X_MS is an error), and
/// the shorthands PREFIX_REPLICA_RETRY_MIN/MAX[_MS], PREFIX_LSN_WAIT_MAX[_MS],
/// PREFIX_LSN_POLL_MIN/MAX[_MS] still work. Another name under the prefix is
/// an error (give the router a prefix of its own, e.g. APP_PG, not APP).
[[nodiscard]] router_options apply_router_env(router_options base, std::string_view prefix,
                                              const std::map<std::string, std::string>& vars);
[[nodiscard]] router_options apply_router_env(router_options base, std::string_view prefix);

}  // namespace rebound::pg
