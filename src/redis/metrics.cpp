// A fleet budget's decisions in a metrics registry: rebound/redis/metrics.hpp.
#include "rebound/redis/metrics.hpp"

#include <string>

namespace rebound::redis {

metrics::registration track(metrics::registry& r, const shared_budget& b) {
  const std::string& dep = b.dependency();
  auto& decisions = r.counter("rebound_fleet_budget_decisions_total",
                              "Retry decisions of the fleet budget, with Redis or without it",
                              {"dependency", "source"});
  auto* shared = &decisions.with({dep, "shared"});
  auto* fallback = &decisions.with({dep, "fallback"});
  auto* size =
      &r.gauge("rebound_fleet_size", "Live members of the fleet seen in Redis", {"dependency"})
           .with({dep});
  auto* up = &r.gauge("rebound_redis_up",
                      "1 while the link to Redis is available, 0 while the budget decides alone",
                      {"dependency"})
                  .with({dep});
  const std::uint64_t id = r.on_collect([&b, shared, fallback, size, up] {
    shared->mirror(b.shared_decisions());
    fallback->mirror(b.fallback_decisions());
    size->set(b.fleet_size());
    up->set(b.redis_available() ? 1.0 : 0.0);
  });
  return metrics::registration([&r, id] { r.remove_collector(id); });
}

}  // namespace rebound::redis
