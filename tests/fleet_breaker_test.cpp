// The fleet breaker's state machine (rebound/fleet_breaker.hpp) on simulated
// time, over the simulator's model of the Redis keys (rebound::sim::fleet_store;
// tests/redis covers the real Redis store).
#include "rebound/fleet_breaker.hpp"

#include <gtest/gtest.h>

#include "rebound/sim/fleet_store.hpp"
#include "rebound/testing/simulated_clock.hpp"

namespace {

using namespace std::chrono_literals;
using rebound::breaker_state;

using store_t = rebound::sim::fleet_store;

const rebound::breaker_options bo{.failure_threshold = 3, .open_duration = 5s};

void open_it(rebound::fleet_breaker& b) {
  for (int i = 0; i < 3; ++i) {
    auto p = b.try_acquire();
    ASSERT_TRUE(p);
    b.record(p, false);
  }
}

TEST(FleetBreaker, OneProcessOpensItAndTheOthersRejectAfterTheirPoll) {
  rebound::testing::simulated_clock clock;
  store_t store(clock);
  rebound::fleet_breaker a(store, bo, 1, clock, 100ms);
  rebound::fleet_breaker b(store, bo, 1, clock, 100ms);
  open_it(a);
  EXPECT_EQ(a.state(), breaker_state::open);
  EXPECT_EQ(store.totals().opens, 1);
  EXPECT_EQ(b.state(), breaker_state::closed);  // it has not polled yet
  b.poll();
  EXPECT_EQ(b.state(), breaker_state::open);
  const auto refused = b.try_acquire();
  EXPECT_FALSE(refused);
  EXPECT_EQ(refused.retry_at, clock.now() + 5s);        // the shared probe time
  EXPECT_EQ(b.local().state(), breaker_state::closed);  // b saw no failure itself
}

TEST(FleetBreaker, OneProbeForTheFleetAndItsResultForEveryone) {
  rebound::testing::simulated_clock clock;
  store_t store(clock);
  rebound::fleet_breaker a(store, bo, 1, clock, 100ms);
  rebound::fleet_breaker b(store, bo, 1, clock, 100ms);
  open_it(a);
  b.poll();
  clock.advance(5s);  // the open time ran out: half-open for the fleet
  auto pa = a.try_acquire();
  auto pb = b.try_acquire();
  EXPECT_EQ((pa ? 1 : 0) + (pb ? 1 : 0), 1);
  EXPECT_FALSE(b.try_acquire());
  auto& prober = pa ? a : b;
  prober.record(pa ? pa : pb, true);
  a.poll();
  b.poll();
  EXPECT_EQ(a.state(), breaker_state::closed);
  EXPECT_EQ(b.state(), breaker_state::closed);
  EXPECT_TRUE(a.try_acquire());
  EXPECT_TRUE(b.try_acquire());
}

// Found by running this state machine in `rebound simulate fleet`: a process
// whose view is stale (its last poll predates a new open state) reached its
// own idea of the probe time and took a probe slot while the circuit was
// open again. The store now refuses a probe while the open state lasts.
TEST(FleetBreaker, AStaleViewCannotProbeAnOpenCircuit) {
  rebound::testing::simulated_clock clock;
  store_t store(clock);
  rebound::fleet_breaker a(store, bo, 1, clock, 100ms);
  rebound::fleet_breaker b(store, bo, 1, clock, 100ms);
  open_it(a);
  b.poll();  // b: open until t0 + 5s
  clock.advance(5s);
  auto probe = a.try_acquire();
  ASSERT_TRUE(probe);
  a.record(probe, false);  // the probe failed: open again until t0 + 10s
  EXPECT_EQ(store.totals().opens, 2);
  // b has not polled since: it thinks the fleet is half-open, but may not probe.
  EXPECT_FALSE(b.try_acquire());
  b.poll();
  EXPECT_EQ(b.state(), breaker_state::open);
}

TEST(FleetBreaker, WithoutTheStoreEachProcessDecidesAlone) {
  rebound::testing::simulated_clock clock;
  store_t store(clock);
  store.set_available(false);
  rebound::fleet_breaker a(store, bo, 1, clock, 100ms);
  open_it(a);
  EXPECT_EQ(a.state(), breaker_state::open);  // its own breaker
  EXPECT_EQ(store.totals().opens, 0);         // publishing was tried, best effort,
  EXPECT_GE(store.totals().refused, 1);       // and found the store away
  EXPECT_FALSE(a.try_acquire());
}

}  // namespace

namespace {

TEST(FleetBreaker, IsolateAndResetReachTheWholeFleetAndListenersHearThem) {
  rebound::testing::simulated_clock clock;
  store_t store(clock);
  rebound::fleet_breaker a(store, bo, 1, clock, 100ms);
  rebound::fleet_breaker b(store, bo, 1, clock, 100ms);
  std::vector<std::pair<breaker_state, breaker_state>> heard;
  b.on_state_change([&](breaker_state from, breaker_state to) { heard.emplace_back(from, to); });
  a.isolate();  // maintenance: nobody calls the dependency
  EXPECT_EQ(a.state(), breaker_state::open);
  b.poll();
  EXPECT_EQ(b.state(), breaker_state::open);
  clock.advance(1h);  // far past the open duration: still isolated
  b.poll();
  EXPECT_FALSE(b.try_acquire());
  a.reset();
  b.poll();
  EXPECT_EQ(b.state(), breaker_state::closed);
  EXPECT_TRUE(b.try_acquire());
  EXPECT_EQ(heard, (std::vector<std::pair<breaker_state, breaker_state>>{
                       {breaker_state::closed, breaker_state::open},
                       {breaker_state::open, breaker_state::closed}}));
}

TEST(FleetBreaker, AProbeRefusedLocallyIsHandedBack) {
  rebound::testing::simulated_clock clock;
  store_t store(clock);
  const rebound::breaker_options one{.failure_threshold = 1, .open_duration = 1s};
  rebound::fleet_breaker a(store, one, 1, clock, 100ms);
  auto p = a.try_acquire();
  a.record(p, false);
  ASSERT_EQ(a.local().state(), breaker_state::open);
  // With the store away, the local breaker decides alone: its half-open probe.
  store.set_available(false);
  clock.advance(1s);
  const auto probe = a.try_acquire();
  ASSERT_TRUE(probe.probe);
  EXPECT_FALSE(a.try_acquire());  // the one probe is out
  a.release(probe);               // it never reached the dependency
  EXPECT_TRUE(a.try_acquire());   // so it may go again
}

TEST(FleetBreaker, AnIsolationHoldsWhenAnotherProcessTrips) {
  rebound::testing::simulated_clock clock;
  store_t store(clock);
  rebound::fleet_breaker a(store, bo, 1, clock, 100ms);
  rebound::fleet_breaker b(store, bo, 1, clock, 100ms);
  a.isolate();
  // b has not polled yet: its calls fail, its own breaker trips and
  // publishes a 5 s open, which must not shorten the isolation.
  open_it(b);
  clock.advance(10s);
  b.poll();
  EXPECT_EQ(b.state(), breaker_state::open);
  EXPECT_FALSE(b.try_acquire());
  a.reset();
  b.poll();
  EXPECT_EQ(b.state(), breaker_state::closed);
}

TEST(FleetBreaker, APublishThatNeverLandedDoesNotCloseTheLocalBreaker) {
  rebound::testing::simulated_clock clock;
  store_t store(clock);
  rebound::fleet_breaker a(store, bo, 1, clock, 100ms);
  store.busy_for(1);  // the publish of the open state is refused (busy)
  for (int i = 0; i < 3; ++i) {
    auto p = a.try_acquire();
    ASSERT_TRUE(p);
    a.record(p, false);
  }
  ASSERT_EQ(a.local().state(), breaker_state::open);
  a.poll();  // the store never heard of it: closed, no outage
  EXPECT_EQ(a.local().state(), breaker_state::open);
}

}  // namespace
