// rebound/testing/async.hpp: running asynchronous retries on simulated time.
//
//   rebound::testing::simulated_clock clock;
//   asio::io_context io;
//   auto p = policy.clock(clock);
//   auto f = rebound::async_retry(io.get_executor(), p, fn, {}, asio::use_future);
//   rebound::testing::run_simulated(io, clock);   // a minute of back-offs in microseconds
//
// Single-threaded and deterministic: the io_context runs everything that is
// ready; when nothing is, the clock jumps to the next scheduled wake-up.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/error.hpp>
#include <asio/io_context.hpp>
#include <cstddef>
#include <system_error>

#include "rebound/async.hpp"
#include "rebound/testing/simulated_clock.hpp"

namespace rebound::testing {

/// Runs `io` until it has nothing ready and `clock` has nothing scheduled,
/// advancing `clock` from one scheduled call to the next. Returns the number
/// of handlers run. Work waiting on anything else (real sockets, real timers)
/// is left pending.
inline std::size_t run_simulated(asio::io_context& io, simulated_clock& clock) {
  std::size_t handlers = 0;
  for (;;) {
    if (io.stopped()) io.restart();
    handlers += io.poll();
    if (!clock.advance_to_next_call()) {
      if (io.stopped()) io.restart();
      handlers += io.poll();
      if (!clock.next_call()) return handlers;
    }
  }
}

/// Waits `d` on `clock` inside a coroutine, as a slow service would. Throws
/// std::system_error (asio::error::operation_aborted) when cancelled.
inline asio::awaitable<void> sleep_for(clock& on, duration d) {
  // (co_await kept out of the condition: GCC 12 miscompiles some such forms.)
  const bool reached = co_await detail::wait_until(on, on.now() + d);
  if (!reached) throw std::system_error(asio::error::operation_aborted);
}

}  // namespace rebound::testing
