// rebound/redis/metrics.hpp: a fleet budget's decisions in a metrics registry.
//
//   auto handle = rebound::redis::track(reg, *budget);   // keep it while the budget lives
//
// At each exposition:
//   rebound_fleet_budget_decisions_total{dependency, source}  retry decisions taken with
//                                       Redis ("shared") or without it ("fallback")
//   rebound_fleet_size{dependency}      live members seen in Redis (the share divides by it)
//   rebound_redis_up{dependency}        1 while the link to Redis is available
#pragma once

#include <string_view>

#include "rebound/metrics.hpp"
#include "rebound/redis/shared.hpp"

namespace rebound::redis {

[[nodiscard]] metrics::registration track(metrics::registry& r, const shared_budget& b);

}  // namespace rebound::redis
