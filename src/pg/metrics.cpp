// A replica router's counts in a metrics registry: rebound/pg/metrics.hpp.
#include "rebound/pg/metrics.hpp"

#include <array>
#include <string>

namespace rebound::pg {

metrics::registration track(metrics::registry& r, const router& rt, std::string_view name) {
  const std::string n(name);
  auto& reads = r.counter("rebound_pg_reads_total", "Reads through the replica router, by outcome",
                          {"router", "outcome"});
  std::array<metrics::counter*, read_outcome_count> by_outcome{};
  for (std::size_t i = 0; i < by_outcome.size(); ++i) {
    by_outcome[i] = &reads.with({n, std::string(to_string(static_cast<read_outcome>(i)))});
  }
  auto* polls = &r.counter("rebound_pg_lsn_polls_total",
                           "Polls of the replica's replay position (session tokens)", {"router"})
                     .with({n});
  auto* failures = &r.counter("rebound_pg_replica_failures_total",
                              "Errors on the replica (connect or query)", {"router"})
                        .with({n});
  auto& states = r.gauge("rebound_pg_replica_state",
                         "The replica breaker: 1 for its current state, 0 for the others",
                         {"router", "state"});
  std::array<metrics::gauge*, 4> by_state{};
  for (std::size_t i = 0; i < by_state.size(); ++i) {
    by_state[i] = &states.with({n, std::string(to_string(static_cast<breaker_state>(i)))});
  }
  const std::uint64_t id = r.on_collect([&rt, by_outcome, polls, failures, by_state] {
    const router_counters c = rt.counters();
    for (std::size_t i = 0; i < by_outcome.size(); ++i) by_outcome[i]->mirror(c.reads[i]);
    polls->mirror(c.lsn_polls);
    failures->mirror(c.replica_failures);
    const auto now = static_cast<std::size_t>(rt.replica_state());
    for (std::size_t i = 0; i < by_state.size(); ++i) by_state[i]->set(i == now ? 1.0 : 0.0);
  });
  return metrics::registration([&r, id] { r.remove_collector(id); });
}

}  // namespace rebound::pg
