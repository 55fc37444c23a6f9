// rebound/sim/engine.hpp: a small discrete-event engine for fleet simulations.
//
// Simulated time, a queue of timed events, a seeded random stream. Events are
// plain function pointers with a context and an argument (no allocation per
// event), run in time order; ties run in the order they were scheduled. The
// engine is also a rebound::clock, so the library's own budgets, throttles
// and breakers run on simulated time unchanged.
//
//   rebound::sim::engine eng(42);
//   eng.after<&client::on_timer>(250ms, &c, 7);   // calls c.on_timer(7) at now + 250ms
//   eng.run_until(eng.start() + 60s);
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "rebound/clock.hpp"
#include "rebound/random.hpp"

namespace rebound::sim {

class engine final : public clock {
 public:
  explicit engine(std::uint64_t seed, time_point start = time_point(std::chrono::hours(1)));

  using handler = void (*)(void* context, std::uint64_t arg);

  /// Runs `fn(context, arg)` at `t` (or now, if `t` is in the past).
  void at(time_point t, handler fn, void* context, std::uint64_t arg = 0);

  /// Runs `(object->*Member)(arg)` at `t`.
  template <auto Member, class C>
  void at(time_point t, C* object, std::uint64_t arg = 0) {
    at(t, &thunk<Member, C>, object, arg);
  }
  /// Runs `(object->*Member)(arg)` after `d`.
  template <auto Member, class C>
  void after(duration d, C* object, std::uint64_t arg = 0) {
    at(now_ + d, &thunk<Member, C>, object, arg);
  }

  /// Runs events in time order until none is left or the next is past `end`;
  /// time then stands at `end` (or at the last event). Returns events run.
  std::uint64_t run_until(time_point end);
  /// Runs until no event is left.
  std::uint64_t run();

  [[nodiscard]] time_point now() const noexcept override { return now_; }
  /// A blocking loop running inside the simulation (one thread): sleeping
  /// runs the events due until `deadline`, then time stands there. Not from
  /// inside an event. Returns false when `stop` is requested.
  bool sleep_until(time_point deadline, std::stop_token stop) override;
  /// Runs `fn` when the simulation reaches `at` (clock::call_at, on simulated time).
  std::uint64_t call_at(time_point at, std::function<void()> fn) override;
  bool cancel_call(std::uint64_t id) noexcept override;

  [[nodiscard]] time_point start() const noexcept { return start_; }
  [[nodiscard]] random_stream& rng() noexcept { return rng_; }
  [[nodiscard]] std::uint64_t events_run() const noexcept { return events_run_; }
  [[nodiscard]] std::size_t pending() const noexcept { return queue_.size(); }

  /// |N(mean, sd)|, by Box-Muller on the engine's stream.
  [[nodiscard]] duration abs_normal(duration mean, duration sd);
  /// Exponentially distributed with the given mean.
  [[nodiscard]] duration exponential(duration mean);

 private:
  struct event {
    time_point t;
    std::uint64_t seq;
    handler fn;
    void* context;
    std::uint64_t arg;
  };
  struct later {
    bool operator()(const event& a, const event& b) const noexcept {
      return a.t != b.t ? a.t > b.t : a.seq > b.seq;
    }
  };
  template <auto Member, class C>
  static void thunk(void* context, std::uint64_t arg) {
    (static_cast<C*>(context)->*Member)(arg);
  }

  time_point start_;
  time_point now_;
  std::uint64_t seq_ = 0;
  std::uint64_t events_run_ = 0;
  std::vector<event> queue_;  // a binary heap ordered by `later`
  random_stream rng_;
  bool running_ = false;                                  // inside run_until
  std::map<std::uint64_t, std::function<void()>> calls_;  // call_at, by id
  std::uint64_t next_call_ = 1;
  static void run_call(void* self, std::uint64_t id);
};

}  // namespace rebound::sim
