// The async loop when something runs alongside an attempt: a timeout, a
// deadline, a std::stop_token, or hedged attempts. Not API; included by
// rebound/async.hpp.
//
// Attempts are spawned on the loop's strand, each with its own cancellation
// signal and stop source. The loop itself sleeps on one timer and, whenever it
// wakes (an attempt finished, a time came, the call was cancelled), looks at
// the whole state again and acts. It never returns while an attempt it
// started is still running.
#pragma once

#include <algorithm>

namespace rebound::detail {

template <class T>
struct concurrent_state {
  struct slot {
    int number = 1;
    bool hedged = false;
    time_point started{};
    time_point deadline = time_point::max();  // attempt timeout or call deadline
    asio::cancellation_signal signal;
    std::stop_source stop;
    bool cancel_sent = false;
    bool timed_out = false;  // cancelled because its own timeout passed
    std::optional<async_attempt> context;
  };
  using slot_list = std::list<slot>;
  struct finished {
    typename slot_list::iterator it;
    attempt_outcome<T> outcome;
  };

  explicit concurrent_state(const asio::any_io_executor& ex) : strand(ex), wake(ex) {}

  asio::any_io_executor strand;
  asio::steady_timer wake;
  slot_list running;
  std::deque<finished> done;
  bool stop_requested = false;

  void notify() { wake.cancel(); }

  void cancel(slot& s, bool timed_out) {
    if (s.cancel_sent) return;
    s.cancel_sent = true;
    s.timed_out = timed_out;
    s.stop.request_stop();
    s.signal.emit(asio::cancellation_type::terminal);
  }
  void cancel_all() {
    for (auto& s : running) cancel(s, false);
  }

  /// Sleeps until `at`, or until notify(), or cancellation: the caller looks again.
  asio::awaitable<void> sleep_until(clock* custom, time_point at) {
    asio::error_code ec;
    if (custom == nullptr) {
      wake.expires_at(asio::steady_timer::time_point(
          std::min(at, time_point::max() - std::chrono::hours(24)).time_since_epoch()));
      co_await wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      co_return;
    }
    wake.expires_at(asio::steady_timer::time_point::max());
    std::uint64_t id = 0;
    if (at != time_point::max()) {
      auto self = this;
      auto ex = strand;
      id = custom->call_at(at, [self, ex] { asio::post(ex, [self] { self->notify(); }); });
    }
    co_await wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (id != 0) custom->cancel_call(id);
  }
};

/// Posts a stop request into the strand.
template <class T>
struct stop_forwarder {
  std::shared_ptr<concurrent_state<T>> state;
  void operator()() const {
    asio::post(state->strand, [s = state] {
      s->stop_requested = true;
      s->notify();
    });
  }
};

template <class T, class F>
asio::awaitable<T> retry_concurrent(const retry_policy& p, F fn, async_options o, int depth) {
  using value_t = typename attempt_outcome<T>::value_type;
  // Keep going after a cancellation: cancelled attempts are drained first.
  co_await asio::this_coro::throw_if_cancelled(false);
  const asio::any_io_executor strand = co_await asio::this_coro::executor;
  const call_options co{.stop = o.stop, .report = o.report, .deadline = o.deadline};
  retry_call call(
      p, co,
      {.eager_start = true, .nested = static_cast<std::int8_t>(depth > 1), .concurrent = true});
  if (call.start().done()) [[unlikely]]
    std::rethrow_exception(call.give_up_error(nullptr));
  auto st = std::make_shared<concurrent_state<T>>(strand);
  // A stop request can come from any thread: it is posted into the strand.
  // The callback holds the state, which outlives this frame if need be.
  std::optional<std::stop_callback<stop_forwarder<T>>> on_stop;
  if (o.stop.stop_possible()) on_stop.emplace(o.stop, stop_forwarder<T>{st});

  const std::optional<hedge_policy>& hedge = p.hedge();
  const auto launch = [&](int number, bool hedged) {
    auto it = st->running.emplace(st->running.end());
    auto& s = *it;
    s.number = number;
    s.hedged = hedged;
    s.started = call.now();
    s.deadline = call.attempt_deadline();
    s.context.emplace(call, number, hedged, depth, s.stop.get_token(), s.deadline);
    auto handler = [st, it](std::exception_ptr e, attempt_outcome<T> out) {
      if (e && !out.error) out.error = std::move(e);
      st->done.push_back({it, std::move(out)});
      st->notify();
    };
    asio::co_spawn(
        st->strand, to_outcome<T>(invoke_async(fn, *s.context)),
        asio::bind_cancellation_slot(s.signal.slot(), asio::bind_executor(st->strand, handler)));
  };
  const auto next_hedge_after = [&](time_point from) {
    return hedge ? saturating_add(from, hedge->current_delay()) : time_point::max();
  };

  launch(1, false);
  time_point next_hedge = next_hedge_after(call.now());
  int hedges = 0;
  bool backing_off = false;
  time_point backoff_until = time_point::max();
  std::optional<stop_reason> ending;  // set: finishing, draining what still runs
  bool cut_short = false;             // the last failure was our own cancellation
  std::optional<value_t> winner;      // a success
  int winner_number = 1;
  bool winner_hedged = false;
  std::optional<value_t> last_rejected;  // the last rejected result (expected-like)
  std::exception_ptr last_error;

  for (;;) {
    // 1. Finished attempts.
    while (!st->done.empty()) {
      auto f = std::move(st->done.front());
      st->done.pop_front();
      const bool timed_out = f.it->timed_out;
      const bool cancelled_by_us = f.it->cancel_sent;
      const time_point started = f.it->started;
      const int number = f.it->number;
      const bool was_hedge = f.it->hedged;
      st->running.erase(f.it);
      attempt_outcome<T>& out = f.outcome;
      verdict v = verdict::success();
      if (out.error) {
        v = classify_exception(p, out.error);
      } else if constexpr (!std::is_void_v<T>) {
        v = p.classifier().classify_result(*out.value);
      }
      if (v.kind == verdict_kind::success) {
        if (winner || call.ended()) continue;  // a loser that finished anyway
        winner.emplace(std::move(*out.value));
        winner_number = number;
        winner_hedged = was_hedge;
        if (hedge && hedge->tracker) {
          const time_point now = call.now();
          hedge->tracker->record(now - started);
          // The attempts it beat took at least this long: recording only
          // winners would bias the percentile low, and hedge ever earlier.
          for (const auto& s : st->running) hedge->tracker->record(now - s.started);
        }
        ending = stop_reason::succeeded;
        for (const auto& s : st->running) call.cancelled_by_winner(s.number);
        st->cancel_all();
        continue;
      }
      if (timed_out) v = verdict::timed_out();  // cut short by its own timeout: transient
      if (ending || winner) continue;           // draining: the call's end is decided
      std::string cause;
      if (call.observed()) {
        if (out.error) {
          cause = describe(out.error);
        } else if constexpr (!std::is_void_v<T>) {
          cause = describe_result(*out.value);
        }
      }
      if (out.error) {
        last_error = out.error;
        last_rejected.reset();
      } else if constexpr (!std::is_void_v<T>) {
        last_rejected.emplace(std::move(*out.value));
        last_error = nullptr;
      }
      cut_short = cancelled_by_us;
      const bool others = !st->running.empty();
      if (others && v.kind == verdict_kind::transient) {
        // Other attempts are still running: they may yet succeed.
        call.failed_beside_others(v, number, cause);
        continue;
      }
      const call_step step = call.failed(v, {.cause = cause, .timed_out = timed_out});
      if (step.wait()) {
        backing_off = true;
        backoff_until = step.until;
        next_hedge = time_point::max();
      } else {
        ending = step.reason;
        st->cancel_all();
      }
    }

    // 2. The call is cancelled.
    auto cs = co_await asio::this_coro::cancellation_state;
    if (!ending && (st->stop_requested || cs.cancelled() != asio::cancellation_type::none)) {
      ending = stop_reason::cancelled;
      st->cancel_all();
    }
    time_point now = call.now();
    // 3. The call's deadline.
    if (!ending && now >= call.deadline()) {
      ending = stop_reason::time_exhausted;
      for (auto& s : st->running) st->cancel(s, true);
      cut_short = true;
    }
    // 4. Attempts past their own timeout.
    for (auto& s : st->running) {
      if (!s.cancel_sent && now >= s.deadline) st->cancel(s, true);
    }
    // 5. The back-off is over: the next attempt.
    if (!ending && backing_off && now >= backoff_until) {
      backing_off = false;
      const call_step step = call.resume(true);
      if (step.attempt()) {
        launch(call.attempt(), false);
        next_hedge = next_hedge_after(now);
      } else {
        ending = step.reason;
      }
    }
    // 6. A hedge is due.
    if (!ending && hedge && !backing_off && !st->running.empty() && now >= next_hedge) {
      next_hedge = time_point::max();
      if (hedges < hedge->max_hedges && !call.hedge()) {
        ++hedges;
        launch(call.attempt(), true);
        next_hedge = next_hedge_after(now);
      }
    }
    if (ending && st->running.empty()) break;

    // 7. Sleep until the next thing that can happen.
    time_point wake_at = call.deadline();
    if (backing_off) wake_at = std::min(wake_at, backoff_until);
    if (!ending && !backing_off && !st->running.empty()) wake_at = std::min(wake_at, next_hedge);
    for (const auto& s : st->running) {
      if (!s.cancel_sent) wake_at = std::min(wake_at, s.deadline);
    }
    if (ending) wake_at = time_point::max();  // only completions matter now
    co_await st->sleep_until(p.custom_clock(), wake_at);
  }
  on_stop.reset();

  if (winner) {
    call.succeeded(winner_number, winner_hedged);
    if constexpr (std::is_void_v<T>) {
      co_return;
    } else {
      co_return std::move(*winner);
    }
  }
  call.end(*ending);
  if (last_error) {
    if (*ending == stop_reason::cancelled ||
        (*ending == stop_reason::time_exhausted && cut_short)) {
      // The last error is only the echo of our own cancellation.
      throw retry_error(*ending, call.attempt(), call.elapsed(), last_error);
    }
    std::rethrow_exception(call.give_up_error(last_error));
  }
  if constexpr (!std::is_void_v<T>) {
    if (last_rejected) co_return std::move(*last_rejected);
  }
  std::rethrow_exception(call.give_up_error(nullptr));
}

}  // namespace rebound::detail
