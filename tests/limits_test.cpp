// Bulkhead, concurrency limiter, rate limiter, admission control, and the
// pipeline that composes them with fallback. All on simulated time.
#include "rebound/limits.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <future>
#include <stdexcept>
#include <thread>

#include "rebound/config.hpp"
#include "rebound/pipeline.hpp"
#include "rebound/testing/simulated_clock.hpp"

namespace {

using namespace std::chrono_literals;
using rebound::duration;
using rebound::stop_reason;
using rebound::testing::simulated_clock;

// ---- bulkhead -------------------------------------------------------------------

TEST(Bulkhead, AtMostMaxConcurrentSlotsAndASlotFreesWhenItGoes) {
  simulated_clock clock;
  rebound::bulkhead b({.max_concurrent = 2}, clock);
  auto one = b.try_acquire();
  auto two = b.try_acquire();
  EXPECT_TRUE(one);
  EXPECT_TRUE(two);
  EXPECT_FALSE(b.try_acquire());
  EXPECT_EQ(b.in_flight(), 2);
  one.reset();
  EXPECT_EQ(b.in_flight(), 1);
  auto three = b.acquire();  // no queue: a free slot is taken at once
  EXPECT_TRUE(three);
  EXPECT_FALSE(b.acquire());  // full, and no queue: refused at once
  EXPECT_EQ(b.rejected(), 1u);
  EXPECT_TRUE(clock.sleeps().empty());
}

TEST(Bulkhead, AQueuedCallerGetsTheNextFreeSlot) {
  simulated_clock clock(simulated_clock::mode::manual);
  rebound::bulkhead b({.max_concurrent = 1, .max_queue = 1, .max_wait = 1s}, clock);
  auto held = b.try_acquire();
  auto waiter = std::async(std::launch::async, [&] { return static_cast<bool>(b.acquire()); });
  for (int i = 0; i < 2000 && b.queued() == 0; ++i)
    std::this_thread::sleep_for(1ms);  // real: the thread starts
  ASSERT_EQ(b.queued(), 1);
  EXPECT_FALSE(b.acquire());  // the queue (1) is full: refused without waiting
  clock.advance(500ms);
  held.reset();  // the waiter takes it
  EXPECT_TRUE(waiter.get());
  EXPECT_EQ(b.in_flight(), 0);  // the waiter's slot went with its future's value
  EXPECT_EQ(b.queued(), 0);
}

TEST(Bulkhead, AQueuedCallerGivesUpAtMaxWaitOnTheClock) {
  simulated_clock clock(simulated_clock::mode::manual);
  rebound::bulkhead b({.max_concurrent = 1, .max_queue = 4, .max_wait = 200ms}, clock);
  auto held = b.try_acquire();
  auto waiter = std::async(std::launch::async, [&] { return static_cast<bool>(b.acquire()); });
  for (int i = 0; i < 2000 && b.queued() == 0; ++i) std::this_thread::sleep_for(1ms);
  clock.advance(199ms);
  EXPECT_EQ(waiter.wait_for(20ms),
            std::future_status::timeout);  // still waiting (bounded real wait)
  clock.advance(1ms);
  EXPECT_FALSE(waiter.get());
  EXPECT_EQ(b.rejected(), 1u);
}

TEST(Bulkhead, AStopRequestEndsTheWait) {
  simulated_clock clock(simulated_clock::mode::manual);
  rebound::bulkhead b({.max_concurrent = 1, .max_queue = 4, .max_wait = 1h}, clock);
  auto held = b.try_acquire();
  std::stop_source stop;
  auto waiter = std::async(std::launch::async,
                           [&] { return static_cast<bool>(b.acquire(stop.get_token())); });
  for (int i = 0; i < 2000 && b.queued() == 0; ++i) std::this_thread::sleep_for(1ms);
  stop.request_stop();
  EXPECT_FALSE(waiter.get());
  EXPECT_EQ(b.queued(), 0);
}

TEST(Bulkhead, AStopRequestedBeforeTheCallRefusesAtOnce) {
  // The stop callback used to be made under the bulkhead's lock: a token
  // already stopped ran it there, on this thread, and deadlocked.
  simulated_clock clock(simulated_clock::mode::manual);
  rebound::bulkhead b({.max_concurrent = 1, .max_queue = 4, .max_wait = 1h}, clock);
  auto held = b.try_acquire();
  std::stop_source stop;
  stop.request_stop();
  EXPECT_FALSE(b.acquire(stop.get_token()));
  EXPECT_EQ(b.queued(), 0);
  held.reset();
  EXPECT_TRUE(b.try_acquire());  // nothing was left locked
}

TEST(Bulkhead, AWaitEndsAtTheCallersDeadline) {
  simulated_clock clock(simulated_clock::mode::manual);
  rebound::bulkhead b({.max_concurrent = 1, .max_queue = 4, .max_wait = 1h}, clock);
  auto held = b.try_acquire();
  auto waiter = std::async(std::launch::async,
                           [&] { return static_cast<bool>(b.acquire({}, clock.now() + 100ms)); });
  for (int i = 0; i < 2000 && b.queued() == 0; ++i) std::this_thread::sleep_for(1ms);
  clock.advance(100ms);
  EXPECT_FALSE(waiter.get());
}

TEST(Bulkhead, ManyThreadsNeverExceedTheLimit) {
  rebound::bulkhead b({.max_concurrent = 3});
  std::atomic<int> now{0};
  std::atomic<int> peak{0};
  std::atomic<int> went{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        if (auto s = b.try_acquire()) {
          const int n = ++now;
          int p = peak.load();
          while (n > p && !peak.compare_exchange_weak(p, n)) {
          }
          ++went;
          --now;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(peak.load(), 3);
  EXPECT_GT(went.load(), 0);
  EXPECT_EQ(b.in_flight(), 0);
}

// ---- concurrency limiter -----------------------------------------------------------

TEST(Limiter, RefusesPastTheLimitAndCountsRefusals) {
  simulated_clock clock;
  rebound::concurrency_limiter l(rebound::limiter_options::fixed(2), clock);
  auto a = l.try_acquire();
  auto b = l.try_acquire();
  EXPECT_TRUE(a && b);
  EXPECT_FALSE(l.try_acquire());
  EXPECT_EQ(l.rejected(), 1u);
  l.on_success(a);
  EXPECT_TRUE(l.try_acquire());
  EXPECT_EQ(l.limit(), 2);  // fixed
}

TEST(Limiter, AimdAddsOneUnderLoadAndMultipliesByTheRatioOnADrop) {
  simulated_clock clock;
  auto o = rebound::limiter_options::aimd();
  o.min_limit = 5;
  rebound::concurrency_limiter l(o, clock);
  ASSERT_EQ(l.limit(), 20);  // Netflix's initial limit
  // At least half the limit in flight: each success adds one.
  std::vector<rebound::limiter_permit> permits;
  for (int i = 0; i < 10; ++i) permits.push_back(l.try_acquire());
  clock.advance(10ms);
  l.on_success(permits.back());  // taken with 10 in flight: 10 * 2 >= 20
  EXPECT_EQ(l.limit(), 21);
  l.on_success(permits.front());  // taken with 1 in flight: the caller does not use the limit
  EXPECT_EQ(l.limit(), 21);
  l.on_dropped(permits[1]);
  EXPECT_EQ(l.limit(), 18);  // floor(21 * 0.9)
  // A sample slower than the timeout (5 s) is a drop as well.
  clock.advance(6s);
  l.on_success(permits[2]);
  EXPECT_EQ(l.limit(), 16);
  l.on_ignore(permits[3]);  // says nothing about load
  EXPECT_EQ(l.limit(), 16);
  EXPECT_EQ(l.in_flight(), 5);
}

TEST(Limiter, AimdStaysWithinMinAndMax) {
  simulated_clock clock;
  rebound::concurrency_limiter l(rebound::limiter_options::aimd(), clock);  // min 20, max 200
  for (int i = 0; i < 5; ++i) l.on_dropped(l.try_acquire());
  EXPECT_EQ(l.limit(), 20);
  for (int i = 0; i < 400; ++i) {
    std::vector<rebound::limiter_permit> ps;
    const int n = std::min(l.limit(), 150);
    for (int k = 0; k < n; ++k) ps.push_back(l.try_acquire());
    for (auto& p : ps) l.on_success(p);
  }
  EXPECT_EQ(l.limit(), 200);
}

// Fills the limiter to `n` in flight and reports each with `rtt`.
void round_trip(rebound::concurrency_limiter& l, simulated_clock& clock, int n, duration rtt) {
  std::vector<rebound::limiter_permit> ps;
  for (int k = 0; k < n; ++k) ps.push_back(l.try_acquire());
  clock.advance(rtt);
  for (auto& p : ps) l.on_success(p);
}

TEST(Limiter, Gradient2GrowsAtSteadyLatencyAndShrinksWhenLatencyRises) {
  simulated_clock clock;
  rebound::concurrency_limiter l(rebound::limiter_options::gradient2(), clock);
  // Steady 10 ms with at least half the limit in use: the gradient is 1, so
  // each sample moves the estimate by smoothing * queue_size = 0.8:
  // 20 -> 20.8 -> 21.6.
  std::vector<rebound::limiter_permit> ps;
  for (int k = 0; k < 12; ++k) ps.push_back(l.try_acquire());
  clock.advance(10ms);
  l.on_success(ps[10]);      // taken with 11 in flight
  EXPECT_EQ(l.limit(), 20);  // 20.8
  l.on_success(ps[11]);      // 12 in flight
  EXPECT_EQ(l.limit(), 21);  // 21.6
  l.on_success(ps[0]);       // taken with 1 in flight: the caller does not use the limit
  EXPECT_EQ(l.limit(), 21);
  for (int k = 1; k < 10; ++k) l.on_ignore(ps[static_cast<std::size_t>(k)]);
  ASSERT_EQ(l.in_flight(), 0);
  for (int i = 0; i < 300; ++i) round_trip(l, clock, l.limit(), 10ms);
  EXPECT_EQ(l.limit(), 200);  // max
  // Latency four times the long-term average: the gradient is clamped to
  // 0.5, and each sample takes about a tenth off: 200 -> 180.8 -> 163.5 ...
  int before = l.limit();
  for (int i = 0; i < 3; ++i) {
    ps.clear();
    for (int k = 0; k < before; ++k) ps.push_back(l.try_acquire());
    ASSERT_TRUE(ps.back());
    clock.advance(40ms);
    l.on_success(ps.back());
    EXPECT_LT(l.limit(), before);
    before = l.limit();
    ps.pop_back();
    for (const auto& p : ps) l.on_ignore(p);
  }
  EXPECT_EQ(l.limit(), 147);
}

TEST(Limiter, VegasGrowsByBetaWithNoQueueAndShrinksWhenTheQueueGrows) {
  simulated_clock clock;
  // With the no-load latency known (10 ms), a sample at 10 ms means no queue:
  // limit + beta, beta = 6 * max(1, floor(log10(limit))).
  rebound::concurrency_limiter v(rebound::limiter_options::vegas(), clock);
  ASSERT_EQ(v.limit(), 20);
  auto first = v.try_acquire();
  clock.advance(10ms);
  v.on_success(first);  // sets rtt_noload = 10 ms
  EXPECT_EQ(v.limit(), 20);
  std::vector<rebound::limiter_permit> ps;
  for (int k = 0; k < 20; ++k) ps.push_back(v.try_acquire());
  clock.advance(10ms);
  v.on_success(ps.back());  // 20 in flight; queue = ceil(20 * (1 - 10/10)) = 0
  EXPECT_EQ(v.limit(), 26);
  // 20 ms: queue = ceil(26 * 0.5) = 13 > beta (6): limit - log10root = 25.
  clock.advance(10ms);
  ps.pop_back();
  v.on_success(ps.back());
  EXPECT_EQ(v.limit(), 25);
  v.on_dropped(ps.front());  // a drop: limit - 1
  EXPECT_EQ(v.limit(), 24);
}

TEST(Limiter, PartitionsKeepTheirShareWhenAnotherFloods) {
  simulated_clock clock;
  auto o = rebound::limiter_options::fixed(10);
  o.partitions = {{"live", 0.9}, {"batch", 0.1}};
  rebound::concurrency_limiter l(o, clock);
  const int live = l.partition_index("live");
  const int batch = l.partition_index("batch");
  ASSERT_EQ(live, 0);
  ASSERT_EQ(batch, 1);
  EXPECT_EQ(l.partition_limit(live), 9);
  EXPECT_EQ(l.partition_limit(batch), 1);
  // Batch may use the whole limit while live is idle...
  std::vector<rebound::limiter_permit> flood;
  for (int i = 0; i < 10; ++i) flood.push_back(l.try_acquire(batch));
  for (const auto& p : flood) EXPECT_TRUE(p);
  EXPECT_FALSE(l.try_acquire(batch));
  // ...but live still gets its 9, over the total.
  for (int i = 0; i < 9; ++i) EXPECT_TRUE(l.try_acquire(live)) << i;
  EXPECT_FALSE(l.try_acquire(live));
  EXPECT_EQ(l.in_flight(), 19);
}

// ---- Netflix concurrency-limits' own tests, ported ----------------------------
// From concurrency-limits-core/src/test (AIMDLimitTest, VegasLimitTest,
// ExpAvgMeasurementTest, AbstractPartitionedLimiterTest, SimpleLimiterTest),
// same inputs, same expected values. Netflix feeds Limit.onSample(start,
// rtt, inflight, didDrop) directly; here a real permit carries the sample.
void sample(rebound::concurrency_limiter& l, simulated_clock& clock, duration rtt, int inflight,
            bool dropped) {
  auto p = l.try_acquire();
  ASSERT_TRUE(p);
  p.in_flight = inflight;
  clock.advance(rtt);
  if (dropped) {
    l.on_dropped(p);
  } else {
    l.on_success(p);
  }
}

// Issue 25, item 7: with initial_limit 10 AIMD started at 20 (raised to the
// minimum). AIMDLimitTest.testDefault: initialLimit(10) -> 10.
TEST(NetflixAimdLimit, TestDefault) {
  simulated_clock clock;
  auto o = rebound::limiter_options::aimd();
  o.initial_limit = 10;
  rebound::concurrency_limiter l(o, clock);
  EXPECT_EQ(l.limit(), 10);
}

TEST(NetflixAimdLimit, IncreaseOnSuccess) {
  simulated_clock clock;
  auto o = rebound::limiter_options::aimd();
  o.initial_limit = 20;
  rebound::concurrency_limiter l(o, clock);
  sample(l, clock, 1ms, 10, false);
  EXPECT_EQ(l.limit(), 21);
}

TEST(NetflixAimdLimit, DecreaseOnDrops) {
  simulated_clock clock;
  auto o = rebound::limiter_options::aimd();
  o.initial_limit = 30;
  rebound::concurrency_limiter l(o, clock);
  sample(l, clock, 0ms, 0, true);
  EXPECT_EQ(l.limit(), 27);
}

TEST(NetflixAimdLimit, SuccessOverflow) {
  simulated_clock clock;
  auto o = rebound::limiter_options::aimd();
  o.initial_limit = 21;
  o.max_limit = 21;
  o.min_limit = 1;  // Netflix: minLimit(0); ours are 1 or more
  rebound::concurrency_limiter l(o, clock);
  sample(l, clock, 1ms, 10, false);
  EXPECT_EQ(l.limit(), 21);
}

// The start is kept outside [min, max]; the first update clamps (AbstractLimit).
TEST(NetflixAimdLimit, TheFirstUpdateMovesAStartBelowTheMinimumIntoTheBounds) {
  simulated_clock clock;
  auto o = rebound::limiter_options::aimd();  // min 20
  o.initial_limit = 10;
  rebound::concurrency_limiter l(o, clock);
  sample(l, clock, 1ms, 10, false);  // 10 * 2 >= 10: 11, then clamped to 20
  EXPECT_EQ(l.limit(), 20);
}

rebound::limiter_options netflix_vegas(int initial, int max) {
  // VegasLimitTest.create(): alpha 3, beta 6 (3 and 6 x log10root at a limit
  // of 10), smoothing 1.0, initialLimit 10, maxConcurrency 20.
  auto o = rebound::limiter_options::vegas();
  o.initial_limit = initial;
  o.max_limit = max;
  o.smoothing = 1.0;
  return o;
}

TEST(NetflixVegasLimit, IncreaseLimit) {
  simulated_clock clock;
  rebound::concurrency_limiter l(netflix_vegas(10, 20), clock);
  sample(l, clock, 10ms, 10, false);
  EXPECT_EQ(l.limit(), 10);
  sample(l, clock, 10ms, 11, false);
  EXPECT_EQ(l.limit(), 16);
}

TEST(NetflixVegasLimit, DecreaseLimit) {
  simulated_clock clock;
  rebound::concurrency_limiter l(netflix_vegas(10, 20), clock);
  sample(l, clock, 10ms, 10, false);
  EXPECT_EQ(l.limit(), 10);
  sample(l, clock, 50ms, 11, false);
  EXPECT_EQ(l.limit(), 9);
}

TEST(NetflixVegasLimit, NoChangeIfWithinThresholds) {
  simulated_clock clock;
  rebound::concurrency_limiter l(netflix_vegas(10, 20), clock);
  sample(l, clock, 10ms, 10, false);
  EXPECT_EQ(l.limit(), 10);
  sample(l, clock, 14ms, 14, false);
  EXPECT_EQ(l.limit(), 10);
}

TEST(NetflixVegasLimit, LargeLimitIncrease) {
  simulated_clock clock;
  auto o = rebound::limiter_options::vegas();
  o.initial_limit = 10000;
  o.max_limit = 20000;
  rebound::concurrency_limiter l(o, clock);
  sample(l, clock, 10s, 5000, false);
  EXPECT_EQ(l.limit(), 10000);
  sample(l, clock, 10s, 6000, false);
  EXPECT_EQ(l.limit(), 10024);
}

// Issue 25, item 8: Gradient2's warm-up kept the 0.95 pull-down in its
// mean. Netflix has no Gradient2LimitTest; this is Gradient2Limit's own
// arithmetic with its defaults (ExpAvgMeasurement's warm-up is a plain
// sum / count, ExpAvgMeasurementTest.testWarmup), worked by hand:
// 100, 10, 10, 75 ms at full use give 20, 21, 22, 23 (22 with the
// pull-down kept, as before the fix).
TEST(NetflixGradient2Limit, TheWarmUpIsAPlainMeanAndDropsThePullDown) {
  simulated_clock clock;
  rebound::concurrency_limiter l(rebound::limiter_options::gradient2(), clock);
  const std::vector<std::pair<duration, int>> want = {
      {100ms, 20}, {10ms, 21}, {10ms, 22}, {75ms, 23}};
  for (const auto& [rtt, limit] : want) {
    sample(l, clock, rtt, l.limit(), false);
    EXPECT_EQ(l.limit(), limit) << "after " << rtt.count() << " ns";
  }
}

rebound::limiter_options batch_live(int limit) {
  auto o = rebound::limiter_options::fixed(limit);
  o.partitions = {{"batch", 0.3}, {"live", 0.7}};
  return o;
}

TEST(NetflixPartitionedLimiter, LimitAllocatedToBins) {
  rebound::concurrency_limiter l(batch_live(10));
  EXPECT_EQ(l.partition_limit(0), 3);
  EXPECT_EQ(l.partition_limit(1), 7);
}

TEST(NetflixPartitionedLimiter, UseExcessCapacityUntilTotalLimit) {
  rebound::concurrency_limiter l(batch_live(10));
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(l.try_acquire(0)) << i;
  EXPECT_FALSE(l.try_acquire(0));
}

TEST(NetflixPartitionedLimiter, ExceedTotalLimitForUnusedBin) {
  rebound::concurrency_limiter l(batch_live(10));
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(l.try_acquire(0)) << i;
  EXPECT_FALSE(l.try_acquire(0));
  for (int i = 0; i < 7; ++i) EXPECT_TRUE(l.try_acquire(1)) << i;
  EXPECT_EQ(l.in_flight(), 17);
  EXPECT_FALSE(l.try_acquire(1));
}

TEST(NetflixPartitionedLimiter, RejectOnceAllLimitsReached) {
  rebound::concurrency_limiter l(batch_live(10));
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(l.try_acquire(0));
    EXPECT_EQ(l.in_flight(), i + 1);
  }
  for (int i = 0; i < 7; ++i) {
    EXPECT_TRUE(l.try_acquire(1));
    EXPECT_EQ(l.in_flight(), i + 4);
  }
  EXPECT_FALSE(l.try_acquire(0));
  EXPECT_FALSE(l.try_acquire(1));
}

TEST(NetflixPartitionedLimiter, ReleaseLimit) {
  rebound::concurrency_limiter l(batch_live(10));
  const auto first = l.try_acquire(0);
  ASSERT_TRUE(first);
  for (int i = 1; i < 10; ++i) EXPECT_TRUE(l.try_acquire(0));
  EXPECT_EQ(l.in_flight(), 10);
  EXPECT_FALSE(l.try_acquire(0));
  l.on_success(first);
  EXPECT_EQ(l.in_flight(), 9);
  EXPECT_TRUE(l.try_acquire(0));
  EXPECT_EQ(l.in_flight(), 10);
}

// Issue 25, item 5: with partitions the total and the partition were counted
// in two steps, and 64 threads held 11 permits of a fixed 10 at once, with
// one partition of share 1.0 (SimpleLimiterTest.testConcurrentSimple's
// shape: one "default" partition of 1.0, many threads; its bound, 10). A
// call that had counted itself in the total but not yet in its partition
// let another pass on the partition's count. With the old code this run
// saw 11 in about one run of three on 2 cores; with the fix, 0 in 30.
TEST(NetflixPartitionedLimiter, ConcurrentCallersNeverHoldMoreThanTheLimit) {
  auto o = rebound::limiter_options::fixed(10);
  o.partitions = {{"default", 1.0}};
  rebound::concurrency_limiter l(o);
  std::atomic<int> held{0}, most{0};
  std::atomic<long> granted{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 64; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) {
        const auto p = l.try_acquire(0);
        if (!p) {
          ++refused;
          continue;
        }
        ++granted;
        const int now = ++held;
        int m = most.load();
        while (now > m && !most.compare_exchange_weak(m, now)) {
        }
        std::this_thread::yield();
        --held;
        l.on_success(p);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_LE(most.load(), 10);
  EXPECT_EQ(granted + refused, 64L * 5000);
  EXPECT_EQ(l.in_flight(), 0);
}

TEST(Limiter, ReportsEachNewLimitToItsListener) {
  simulated_clock clock;
  rebound::concurrency_limiter l(rebound::limiter_options::vegas(), clock);
  std::vector<int> seen;
  l.on_limit_change([&](int limit) { seen.push_back(limit); });
  auto first = l.try_acquire();
  clock.advance(10ms);
  l.on_success(first);
  std::vector<rebound::limiter_permit> ps;
  for (int k = 0; k < 20; ++k) ps.push_back(l.try_acquire());
  clock.advance(10ms);
  l.on_dropped(ps.back());  // limit - log10root(20) = 19
  EXPECT_EQ(seen, (std::vector<int>{19}));
}

// ---- rate limiter ------------------------------------------------------------------

TEST(RateLimiter, ABurstThenOneTurnPerInterval) {
  simulated_clock clock;
  rebound::rate_limiter r({.rate = 10, .burst = 3}, clock);
  EXPECT_TRUE(r.try_acquire());
  EXPECT_TRUE(r.try_acquire());
  EXPECT_TRUE(r.try_acquire());
  const auto refused = r.try_acquire();
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.wait, duration(100ms));
  EXPECT_EQ(r.rejected(), 1u);
  // Reservations queue up one interval apart.
  EXPECT_EQ(r.reserve(1s).wait, duration(100ms));
  EXPECT_EQ(r.reserve(1s).wait, duration(200ms));
  EXPECT_FALSE(r.reserve(250ms).allowed);  // 300 ms ahead
  clock.advance(10s);
  EXPECT_TRUE(r.try_acquire());  // a quiet spell restores the burst, not more
  EXPECT_TRUE(r.try_acquire());
  EXPECT_TRUE(r.try_acquire());
  EXPECT_FALSE(r.try_acquire());
}

TEST(RateLimiter, AcquireWaitsForItsTurnOnTheClockUpToMaxWait) {
  simulated_clock clock;  // auto-advance: a sleep moves time to its end
  rebound::rate_limiter r({.rate = 20, .burst = 1, .max_wait = 100ms}, clock);
  const auto start = clock.now();
  EXPECT_TRUE(r.acquire());
  EXPECT_TRUE(r.acquire());
  EXPECT_TRUE(r.acquire());
  EXPECT_EQ(clock.sleeps(), (std::vector<duration>{50ms, 50ms}));
  EXPECT_EQ(clock.now() - start, duration(100ms));
  // 20 calls at once would need 950 ms of queue; past 100 ms they are refused.
  int went = 0;
  for (int i = 0; i < 20; ++i) went += r.reserve(100ms).allowed ? 1 : 0;
  EXPECT_EQ(went, 2);
}

TEST(RateLimiter, NeverMoreThanRateTimesTimePlusBurst) {
  simulated_clock clock;
  rebound::rate_limiter r({.rate = 100, .burst = 5}, clock);
  int went = 0;
  for (int ms = 0; ms < 10'000; ++ms) {
    for (int k = 0; k < 3; ++k) went += r.try_acquire() ? 1 : 0;
    clock.advance(1ms);
  }
  EXPECT_LE(went, 100 * 10 + 5);
  EXPECT_GE(went, 100 * 10);
}

// ---- admission control ----------------------------------------------------------------

TEST(Admission, EnvoysFormulaWithItsDefaults) {
  simulated_clock clock;
  rebound::admission_control a({}, clock);
  EXPECT_TRUE(a.admit(0.0));  // nothing seen: never shed
  for (int i = 0; i < 100; ++i) a.record(i < 50);
  // ((100 - 50 / 0.95) / 101) ^ (1 / 1)
  const double expected = (100 - 50 / 0.95) / 101;
  EXPECT_NEAR(a.rejection_probability(), expected, 1e-12);
  EXPECT_FALSE(a.admit(expected - 1e-9));
  EXPECT_TRUE(a.admit(expected + 1e-9));
  // All failing: capped at 80%.
  for (int i = 0; i < 1000; ++i) a.record(false);
  EXPECT_DOUBLE_EQ(a.rejection_probability(), 0.8);
  // The window (30 s) forgets.
  clock.advance(31s);
  EXPECT_EQ(a.rejection_probability(), 0);
}

TEST(Admission, AggressionAndTheRpsThreshold) {
  simulated_clock clock;
  rebound::admission_control a({.aggression = 2.0, .rps_threshold = 5}, clock);
  for (int i = 0; i < 100; ++i) a.record(i < 50);  // 100 in 30 s: 3.3 per second
  EXPECT_EQ(a.rejection_probability(), 0);         // below the threshold
  for (int i = 0; i < 100; ++i) a.record(i < 50);  // 6.7 per second
  EXPECT_NEAR(a.rejection_probability(), std::sqrt((200 - 100 / 0.95) / 201), 1e-12);
  rebound::admission_control healthy({}, clock);
  for (int i = 0; i < 100; ++i) healthy.record(i < 96);  // above 95%
  EXPECT_EQ(healthy.rejection_probability(), 0);
}

// ---- the pipeline ---------------------------------------------------------------------

rebound::retry_policy quick(simulated_clock& clock) {
  return rebound::retry_policy{}
      .stop(rebound::stop::after_attempts(3))
      .backoff(rebound::backoff::constant(100ms))
      .jitter(rebound::jitter::none())
      .clock(clock);
}

TEST(Pipeline, AFullBulkheadEndsTheCallAsOverloadedWithoutTrippingTheBreaker) {
  simulated_clock clock;
  auto bh =
      std::make_shared<rebound::bulkhead>(rebound::bulkhead_options{.max_concurrent = 1}, clock);
  auto breaker = std::make_shared<rebound::circuit_breaker>(
      rebound::breaker_options{.failure_threshold = 1}, clock);
  const auto p = rebound::pipeline(quick(clock), breaker).bulkhead(bh);
  auto held = bh->try_acquire();
  int calls = 0;
  rebound::call_report report;
  EXPECT_THROW(p.execute([&] { return ++calls; }, {.report = &report}),
               rebound::bulkhead_full_error);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(report.reason, stop_reason::overloaded);  // not retried into the same wall
  EXPECT_EQ(report.attempts, 1);
  EXPECT_EQ(breaker->state(), rebound::breaker_state::closed);
  held.reset();
  EXPECT_EQ(p.execute([&] { return ++calls; }), 1);
  EXPECT_EQ(bh->in_flight(), 0);
}

TEST(Pipeline, AHalfOpenProbeRefusedLocallyIsHandedBack) {
  simulated_clock clock;
  auto bh =
      std::make_shared<rebound::bulkhead>(rebound::bulkhead_options{.max_concurrent = 1}, clock);
  auto breaker = std::make_shared<rebound::circuit_breaker>(
      rebound::breaker_options{.failure_threshold = 1, .open_duration = 1s}, clock);
  const auto p =
      rebound::pipeline(quick(clock).stop(rebound::stop::after_attempts(1)), breaker).bulkhead(bh);
  EXPECT_THROW(p.execute([]() -> int { throw std::runtime_error("down"); }), std::exception);
  ASSERT_EQ(breaker->state(), rebound::breaker_state::open);
  clock.advance(1s);
  {
    auto held = bh->try_acquire();
    EXPECT_THROW(p.execute([] { return 1; }), rebound::bulkhead_full_error);
  }
  // The probe was given back: the next call may probe, and closes the circuit.
  EXPECT_EQ(p.execute([] { return 2; }), 2);
  EXPECT_EQ(breaker->state(), rebound::breaker_state::closed);
}

TEST(Pipeline, TheLimiterHearsDropsAndSuccesses) {
  simulated_clock clock;
  auto o = rebound::limiter_options::aimd();
  o.min_limit = 1;
  o.initial_limit = 10;
  auto lim = std::make_shared<rebound::concurrency_limiter>(o, clock);
  const auto p = rebound::pipeline(quick(clock)).limiter(lim);
  int n = 0;
  EXPECT_EQ(p.execute([&] {
    if (++n < 3) throw std::runtime_error("flaky");  // transient by default: two drops
    return n;
  }),
            3);
  EXPECT_EQ(lim->limit(), 8);  // 10 -> 9 -> 8; the success (1 in flight of 8) adds nothing
  EXPECT_EQ(lim->in_flight(), 0);
}

TEST(Pipeline, RateLimitedAttemptsWaitTheirTurnOnThePolicysClock) {
  simulated_clock clock;
  auto rate = std::make_shared<rebound::rate_limiter>(
      rebound::rate_limiter_options{.rate = 10, .burst = 1, .max_wait = 150ms}, clock);
  const auto p = rebound::pipeline(quick(clock)).rate_limit(rate);
  EXPECT_EQ(p.execute([] { return 1; }), 1);
  EXPECT_EQ(p.execute([] { return 2; }), 2);  // waits 100 ms
  EXPECT_EQ(clock.sleeps(), (std::vector<duration>{100ms}));
  (void)rate->reserve(1s);  // someone else takes the next two turns
  (void)rate->reserve(1s);
  EXPECT_THROW(p.execute([] { return 3; }), rebound::rate_limited_error);
}

TEST(Pipeline, TheLimiterDoesNotCountTheWaitForARateTurnAsLatency) {
  simulated_clock clock;
  auto o = rebound::limiter_options::aimd();
  o.initial_limit = 10;
  o.min_limit = 1;
  o.timeout = 50ms;  // a sample slower than this is a drop
  auto lim = std::make_shared<rebound::concurrency_limiter>(o, clock);
  auto rate = std::make_shared<rebound::rate_limiter>(
      rebound::rate_limiter_options{.rate = 10, .burst = 1, .max_wait = 150ms}, clock);
  const auto p = rebound::pipeline(quick(clock)).limiter(lim).rate_limit(rate);
  EXPECT_EQ(p.execute([] { return 1; }), 1);
  EXPECT_EQ(p.execute([] { return 2; }), 2);  // waited 100 ms for its turn, then answered at once
  EXPECT_EQ(clock.sleeps(), (std::vector<duration>{100ms}));
  EXPECT_EQ(lim->limit(), 10);  // not a drop
}

TEST(Pipeline, NoWaitForATurnEndsPastTheTotalTimeout) {
  simulated_clock clock;
  auto rate = std::make_shared<rebound::rate_limiter>(
      rebound::rate_limiter_options{.rate = 10, .burst = 1, .max_wait = 1s}, clock);
  const auto p = rebound::pipeline(quick(clock), nullptr, 50ms).rate_limit(rate);
  EXPECT_EQ(p.execute([] { return 1; }), 1);
  EXPECT_THROW(p.execute([] { return 2; }), rebound::rate_limited_error);  // 100 ms away
  EXPECT_TRUE(clock.sleeps().empty());
}

TEST(Pipeline, FallbackGetsTheReasonAndNeverHidesCancellation) {
  simulated_clock clock;
  const rebound::pipeline p(quick(clock));
  rebound::fallback_context seen;
  const int v = p.execute_or([]() -> int { throw std::runtime_error("down"); },
                             [&](const rebound::fallback_context& why) {
                               seen = why;
                               return -1;
                             });
  EXPECT_EQ(v, -1);
  EXPECT_EQ(seen.reason, stop_reason::attempts_exhausted);
  EXPECT_EQ(seen.attempts, 3);
  EXPECT_THROW(seen.rethrow(), std::exception);
  // A plain value works too, and a success never reaches it.
  EXPECT_EQ(p.execute_or([]() -> int { throw std::runtime_error("down"); }, 7), 7);
  EXPECT_EQ(p.execute_or([] { return 1; }, 7), 1);
  // Cancelled: thrown, not replaced.
  std::stop_source stop;
  clock.on_sleep([&](duration) { stop.request_stop(); });
  EXPECT_THROW(p.execute_or([]() -> int { throw std::runtime_error("down"); }, 7,
                            {.stop = stop.get_token()}),
               rebound::retry_error);
}

TEST(Pipeline, FallbackForARefusalAndForARejectedResult) {
  simulated_clock clock;
  auto lim =
      std::make_shared<rebound::concurrency_limiter>(rebound::limiter_options::fixed(1), clock);
  const auto p = rebound::pipeline(quick(clock)).limiter(lim);
  const auto held = lim->try_acquire();
  rebound::fallback_context seen;
  EXPECT_EQ(p.execute_or([] { return 1; },
                         [&](const rebound::fallback_context& why) {
                           seen = why;
                           return 2;
                         }),
            2);
  EXPECT_EQ(seen.reason, stop_reason::overloaded);
  lim->on_ignore(held);
  // An expected-like result the policy rejects: the fallback replaces the last one.
  const auto q = rebound::pipeline(quick(clock).retry_if_result([](int r) { return r < 0; }));
  EXPECT_EQ(q.execute_or([] { return -5; }, 9), 9);
}

// ---- settings -------------------------------------------------------------------------

TEST(LimitSettings, JsonAndEnvironmentThroughOneSchema) {
  const auto b =
      rebound::bulkhead_from_json(R"({"max_concurrent": 8, "max_queue": 16, "max_wait": "200ms"})");
  EXPECT_EQ(b,
            (rebound::bulkhead_options{.max_concurrent = 8, .max_queue = 16, .max_wait = 200ms}));
  const auto l = rebound::limiter_from_json(
      R"({"algorithm": "vegas", "partitions": [{"name": "live", "share": 0.9},
                                               {"name": "batch", "share": 0.1}]})");
  EXPECT_EQ(l.algorithm, rebound::limit_algorithm::vegas);
  EXPECT_EQ(l.max_limit, 1000);  // Vegas's default, not AIMD's
  EXPECT_EQ(l.smoothing, 1.0);
  ASSERT_EQ(l.partitions.size(), 2u);
  EXPECT_EQ(l.partitions[1].name, "batch");
  const auto e = rebound::apply_limiter_env(rebound::limiter_options::aimd(), "APP",
                                            {{"APP_ALGORITHM", "gradient2"},
                                             {"APP_PARTITIONS", "live:0.9,batch:0.1"},
                                             {"APP_QUEUE_SIZE", "6"}});
  EXPECT_EQ(e.algorithm, rebound::limit_algorithm::gradient2);
  EXPECT_EQ(e.queue_size, 6);
  EXPECT_EQ(e.partitions.size(), 2u);
  const auto r = rebound::apply_rate_limiter_env({}, "RL", {{"RL_RATE", "2.5"}, {"RL_BURST", "4"}});
  EXPECT_EQ(r.rate, 2.5);
  EXPECT_EQ(r.burst, 4);
  const auto a =
      rebound::admission_from_json(R"({"success_rate_threshold": 0.9, "window": "10s"})");
  EXPECT_EQ(a.success_rate_threshold, 0.9);
  EXPECT_EQ(a.window, duration(10s));
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const rebound::config_error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(LimitSettings, ErrorsNameWhatTheUserWrote) {
  EXPECT_EQ(error_of([] { (void)rebound::bulkhead_from_json(R"({"max_concurrent": 0})"); }),
            "max_concurrent: 0 is out of range; allowed: 1..1000000");
  EXPECT_EQ(error_of([] { (void)rebound::limiter_from_json(R"({"algorithm": "bbr"})"); }),
            "algorithm: \"bbr\" is not a limit algorithm; allowed: fixed, aimd, gradient2, vegas");
  EXPECT_EQ(error_of([] {
              (void)rebound::limiter_from_json(R"({"algorithm": "vegas", "queue_size": 3})");
            }),
            "queue_size: used only by the gradient2 algorithm; this limiter is vegas");
  EXPECT_EQ(
      error_of([] {
        (void)rebound::apply_limiter_env({}, "APP", {{"APP_PARTITIONS", "live:0.9,batch:0.2"}});
      }),
      "APP_PARTITIONS: the shares sum to 1.1; allowed: at most 1");
  EXPECT_EQ(error_of([] {
              (void)rebound::apply_limiter_env({}, "APP", {{"APP_PARTITIONS", "live"}});
            }),
            "APP_PARTITIONS: \"live\" is not NAME:SHARE (e.g. live:0.9,batch:0.1)");
  EXPECT_EQ(
      error_of([] { (void)rebound::limiter_from_json(R"({"min_limit": 50, "max_limit": 10})"); }),
      "min_limit: 50 is above max_limit (10)");
  EXPECT_EQ(error_of([] {
              (void)rebound::apply_rate_limiter_env({}, "RL", {{"RL_RATE", "0"}});
            }),
            "RL_RATE: \"0\" is out of range; allowed: 1e-06..1e+09");
  EXPECT_EQ(error_of([] { rebound::validate(rebound::rate_limiter_options{.rate = 1e-12}); }),
            "rate: 1e-12 is out of range; allowed: 1e-06..1e+09");
  EXPECT_EQ(error_of([] { (void)rebound::admission_from_json(R"({"window": "1.5s"})"); }),
            "window: 1.5s is not allowed; allowed: whole seconds, 1s..600s");
}

}  // namespace
