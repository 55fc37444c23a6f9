// rebound/events.hpp: what a retry loop tells its observers.
//
// Attach an observer to a policy to log, count or trace what the loop does.
// Without an observer nothing is formatted, counted or allocated.
//
//   auto counters = std::make_shared<rebound::counters_observer>();
//   auto p = rebound::retry_policy{}.observer(counters);
//   ...
//   counters->snapshot().retries;
//
// Observers are called on the thread that runs the loop, synchronously; they
// must be thread-safe when one policy serves several threads, and must not
// throw (on_event is noexcept).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "rebound/classify.hpp"
#include "rebound/clock.hpp"
#include "rebound/stop.hpp"

namespace rebound {

enum class event_kind : std::uint8_t {
  attempt_started,       ///< attempt `attempt` is about to run
  attempt_failed,        ///< attempt `attempt` failed with `verdict` (and `cause`)
  retry_scheduled,       ///< attempt `attempt` will start after `delay`
  gave_up,               ///< the loop ended without success, because of `reason`
  succeeded,             ///< attempt `attempt` succeeded
  budget_rejected,       ///< the retry budget refused the retry before `attempt`
  deferred,              ///< a nested loop handed its failure to the enclosing loop
  hedged,                ///< async loop: attempt `attempt` starts while earlier ones still run
  server_delay_ignored,  ///< a server-given delay (`cause`) could not be parsed and was ignored
  hedge_won,          ///< hedging: attempt `attempt`, a hedge, succeeded first (before `succeeded`)
  attempt_cancelled,  ///< hedging: attempt `attempt` was still running when another won; it is
                      ///< cancelled
};

/// "attempt_started", ... (the enumerator's name).
[[nodiscard]] std::string_view to_string(event_kind k) noexcept;

/// One event. Views in it are valid only during the on_event call.
struct event {
  event_kind kind = event_kind::attempt_started;
  int attempt = 1;                              ///< see event_kind
  std::optional<int> max_attempts;              ///< the attempt limit, when the policy has one
  duration elapsed{};                           ///< since the first attempt started
  duration delay{};                             ///< retry_scheduled: the wait before `attempt`
  rebound::verdict verdict{};                   ///< attempt_failed: how the failure was classified
  stop_reason reason = stop_reason::succeeded;  ///< gave_up, succeeded
  std::string_view cause;  ///< attempt_failed, gave_up: what failed (what(), ...)

  /// OpenTelemetry's `http.request.resend_count` (and gRFC A96's
  /// `grpc-previous-rpc-attempts`) for this event's attempt: how many times
  /// the request was sent before it, hedges included. 0 on a first attempt.
  [[nodiscard]] constexpr int resend_count() const noexcept {
    return attempt > 1 ? attempt - 1 : 0;
  }
};

/// Receives events. Derive and override on_event.
class observer {
 public:
  virtual ~observer() = default;
  virtual void on_event(const event& e) noexcept = 0;
  /// False when on_event never reads event::elapsed: the engine then skips
  /// the clock reads that fill it (and leaves it zero). Metrics that count
  /// events say false; logs that print the elapsed time keep the default.
  [[nodiscard]] virtual bool needs_elapsed() const noexcept { return true; }
};

/// Adapts any callable `void(const event&)` into an observer.
class function_observer final : public observer {
 public:
  explicit function_observer(std::function<void(const event&)> fn) : fn_(std::move(fn)) {}
  void on_event(const event& e) noexcept override;

 private:
  std::function<void(const event&)> fn_;
};

/// Hands each event to several observers in turn (logs and metrics, say).
class fanout_observer final : public observer {
 public:
  explicit fanout_observer(std::vector<std::shared_ptr<observer>> to) : to_(std::move(to)) {}
  void on_event(const event& e) noexcept override {
    for (const auto& o : to_) {
      if (o) o->on_event(e);
    }
  }
  [[nodiscard]] bool needs_elapsed() const noexcept override {
    for (const auto& o : to_) {
      if (o && o->needs_elapsed()) return true;
    }
    return false;
  }

 private:
  std::vector<std::shared_ptr<observer>> to_;
};

/// Thread-safe counters of outcomes: attempts, failures by verdict, retries,
/// and ends by stop reason. Lock-free (relaxed atomics).
class counters_observer final : public observer {
 public:
  struct counts {
    std::uint64_t attempts = 0;
    std::uint64_t retries = 0;
    std::uint64_t failures_transient = 0;
    std::uint64_t failures_permanent = 0;
    std::uint64_t failures_overloaded = 0;
    std::uint64_t budget_rejections = 0;
    std::uint64_t hedges = 0;
    std::uint64_t hedges_won = 0;          ///< calls a hedge (not the first attempt) won
    std::uint64_t attempts_cancelled = 0;  ///< attempts cancelled because another won
    /// Ends of calls, indexed by stop_reason.
    std::array<std::uint64_t, stop_reason_count> ends{};
    [[nodiscard]] std::uint64_t ended(stop_reason r) const noexcept {
      return ends[static_cast<std::size_t>(r)];
    }
  };

  void on_event(const event& e) noexcept override;
  /// A consistent-enough copy of the counters (each read is atomic).
  [[nodiscard]] counts snapshot() const noexcept;

 private:
  std::atomic<std::uint64_t> attempts_{0}, retries_{0}, transient_{0}, permanent_{0},
      overloaded_{0}, budget_rejections_{0}, hedges_{0}, hedges_won_{0}, cancelled_{0};
  std::array<std::atomic<std::uint64_t>, stop_reason_count> ends_{};
};

}  // namespace rebound
