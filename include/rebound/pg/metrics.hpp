// rebound/pg/metrics.hpp: a replica router's counts in a metrics registry.
//
//   rebound::metrics::registry reg;
//   auto handle = rebound::pg::track(reg, router, "orders");   // keep it while the router lives
//
// At each exposition the router's own counters (router::counters()) are
// copied into:
//   rebound_pg_reads_total{router, outcome}   replica, replica_retry, primary_fallback,
//                                             not_found, replica_error, primary, failed
//   rebound_pg_lsn_polls_total{router}        replay-position polls (session tokens)
//   rebound_pg_replica_failures_total{router} errors on the replica (connect or query)
//   rebound_pg_replica_state{router, state}   the replica breaker: 1 for its current state
#pragma once

#include <string_view>

#include "rebound/metrics.hpp"
#include "rebound/pg/router.hpp"

namespace rebound::pg {

[[nodiscard]] metrics::registration track(metrics::registry& r, const router& rt,
                                          std::string_view name);

}  // namespace rebound::pg
