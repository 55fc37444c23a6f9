// rebound/async_limits.hpp: waiting for a bulkhead slot or a rate limiter's
// turn inside an Asio coroutine, without blocking a thread.
//
//   auto slot = co_await rebound::async_acquire(*bulkhead);
//   if (!slot) throw rebound::bulkhead_full_error(bulkhead->settings().max_concurrent);
//   if (!co_await rebound::async_acquire(*rate)) throw rebound::rate_limited_error(...);
//
// Waits go on the coroutine's executor: a steady_timer on the system clock,
// the clock's own call-backs on a custom one (so simulated time drives them,
// testing/async.hpp). Run the coroutine on a strand or a single-threaded
// context, as any Asio timer requires. Cancelling the coroutine (its
// cancellation slot) ends a wait as a refusal.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <memory>

#include "rebound/async.hpp"
#include "rebound/limits.hpp"

namespace rebound {

/// A bulkhead slot: at once when one is free, else after waiting in the
/// bulkhead's queue for up to max_wait. Empty when refused.
inline asio::awaitable<bulkhead::slot> async_acquire(bulkhead& b) {
  if (b.take()) co_return b.adopt();
  const bulkhead_options& o = b.settings();
  if (o.max_queue == 0 || o.max_wait <= duration::zero()) {
    b.count_rejection();
    co_return bulkhead::slot{};
  }
  auto ex = co_await asio::this_coro::executor;
  clock& c = b.time_source();
  const time_point deadline = c.now() + o.max_wait;
  auto timer = std::make_shared<asio::steady_timer>(ex, asio::steady_timer::time_point::max());
  // A release (or the deadline) cancels the timer; the loop then looks again.
  const auto wake = [timer, ex] { asio::post(ex, [timer] { timer->cancel(); }); };
  std::uint64_t handle = 0;
  if (!b.enqueue(handle, wake)) {
    b.count_rejection();
    co_return bulkhead::slot{};
  }
  // Leaves the queue and drops the deadline's call-back however the wait
  // ends: a slot, the deadline, an exception, or the frame destroyed while
  // suspended (its io_context gone): nothing may post to it afterwards.
  struct leave {
    bulkhead& b;
    clock& c;
    std::uint64_t handle;
    std::uint64_t at = 0;
    ~leave() {
      b.dequeue(handle);
      if (at != 0) c.cancel_call(at);
    }
  } queued{b, c, handle};
  queued.at = c.call_at(deadline, wake);
  bulkhead::slot got;
  for (;;) {
    if (b.take()) {
      got = b.adopt();
      break;
    }
    if (c.now() >= deadline) break;
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cs.cancelled() != asio::cancellation_type::none) break;
    asio::error_code ec;
    timer->expires_at(asio::steady_timer::time_point::max());
    co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  if (!got) b.count_rejection();
  co_return got;
}

/// The rate limiter's next turn: true at once, or after waiting for it when
/// it comes within max_wait; false when refused or the wait was cancelled.
inline asio::awaitable<bool> async_acquire(rate_limiter& r) {
  const rate_decision d = r.reserve(r.settings().max_wait);
  if (!d.allowed) co_return false;
  if (d.wait == duration::zero()) co_return true;
  clock& c = r.time_source();
  if (&c == &system_clock()) {
    asio::steady_timer t(co_await asio::this_coro::executor, d.wait);
    asio::error_code ec;
    try {
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    } catch (const std::system_error&) {
      co_return false;  // cancelled before the wait began
    }
    co_return !ec;
  }
  const bool reached = co_await detail::wait_until(c, c.now() + d.wait);
  co_return reached;
}

}  // namespace rebound
