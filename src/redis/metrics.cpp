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
  const std::uint64_t id = r.on_collect([&b, shared, fallback, size] {
    shared->mirror(b.shared_decisions());
    fallback->mirror(b.fallback_decisions());
    size->set(b.fleet_size());
  });
  return metrics::registration([&r, id] { r.remove_collector(id); });
}

}  // namespace rebound::redis
