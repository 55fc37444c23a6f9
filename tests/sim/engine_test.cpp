#include "rebound/sim/engine.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

namespace {

using namespace std::chrono_literals;

struct recorder {
  rebound::sim::engine* eng = nullptr;
  std::vector<std::pair<std::uint64_t, rebound::duration>> seen;
  void on(std::uint64_t arg) { seen.emplace_back(arg, eng->now() - eng->start()); }
};

TEST(SimEngineTest, RunsEventsInTimeOrderAndTiesInScheduleOrder) {
  rebound::sim::engine eng(1);
  recorder r{&eng, {}};
  eng.after<&recorder::on>(30ms, &r, 3);
  eng.after<&recorder::on>(10ms, &r, 1);
  eng.after<&recorder::on>(20ms, &r, 2);
  eng.after<&recorder::on>(20ms, &r, 22);  // same time: after the earlier-scheduled one
  EXPECT_EQ(eng.run(), 4u);
  EXPECT_EQ(r.seen, (std::vector<std::pair<std::uint64_t, rebound::duration>>{
                        {1, 10ms}, {2, 20ms}, {22, 20ms}, {3, 30ms}}));
}

TEST(SimEngineTest, RunUntilStopsAndTimeStandsAtTheEnd) {
  rebound::sim::engine eng(1);
  recorder r{&eng, {}};
  eng.after<&recorder::on>(1s, &r, 1);
  eng.after<&recorder::on>(5s, &r, 2);
  EXPECT_EQ(eng.run_until(eng.start() + 2s), 1u);
  EXPECT_EQ(eng.now(), eng.start() + 2s);
  EXPECT_EQ(eng.pending(), 1u);
  EXPECT_EQ(eng.run(), 1u);
  EXPECT_EQ(eng.events_run(), 2u);
}

struct sleeper {
  rebound::sim::engine* eng;
  bool threw = false;
  void inside(std::uint64_t) {
    try {
      eng->sleep_until(eng->now() + 1s, {});
    } catch (const std::logic_error&) {
      threw = true;
    }
  }
};

TEST(SimEngineTest, IsAClockWhoseSleepRunsTheSimulation) {
  rebound::sim::engine eng(1);
  rebound::clock& c = eng;
  EXPECT_EQ(c.now(), eng.start());
  // From outside the events (a blocking loop in the simulation), sleeping
  // runs what is due meanwhile and leaves time at the deadline.
  int fired = 0;
  const auto id = c.call_at(eng.start() + 500ms, [&] { ++fired; });
  EXPECT_NE(id, 0u);
  EXPECT_TRUE(c.sleep_until(eng.start() + 1s, {}));
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(c.now(), eng.start() + 1s);
  // A cancelled call never runs.
  const auto later = c.call_at(eng.start() + 2s, [&] { ++fired; });
  EXPECT_TRUE(c.cancel_call(later));
  EXPECT_TRUE(c.sleep_until(eng.start() + 3s, {}));
  EXPECT_EQ(fired, 1);
  // An event cannot sleep: it would run the events after it, out of order.
  sleeper s{&eng};
  eng.after<&sleeper::inside>(1s, &s);
  eng.run();
  EXPECT_TRUE(s.threw);
  // A stop already requested: no sleep.
  std::stop_source stop;
  stop.request_stop();
  EXPECT_FALSE(c.sleep_until(c.now() + 1s, stop.get_token()));
}

TEST(SimEngineTest, DistributionsHaveTheirMeans) {
  rebound::sim::engine eng(7);
  double normal = 0, expo = 0;
  const int n = 100'000;
  for (int i = 0; i < n; ++i) {
    const auto d = eng.abs_normal(10ms, 2ms);
    ASSERT_GE(d, 0ms);
    normal += std::chrono::duration<double, std::milli>(d).count();
    expo += std::chrono::duration<double, std::milli>(eng.exponential(4ms)).count();
  }
  EXPECT_NEAR(normal / n, 10.0, 0.05);
  EXPECT_NEAR(expo / n, 4.0, 0.05);
}

}  // namespace
