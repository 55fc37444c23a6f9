// rebound/run_supervisor.hpp: retrying a whole run, not a single call (scenario 002).
//
// Some work is more than one call: an agent run streams messages from a
// provider for a minute and can fail half-way with a 503. The supervisor
// runs it under a key (a conversation id), gives every attempt a fresh run
// id, classifies a failure by type through a retry_policy, cleans up after
// the failed attempt, waits, and starts again, telling subscribers at each
// step so a UI can say "Server error, retry 2 of 5...".
//
//   rebound::run_supervisor runs;  // 5 retries, 2 s doubling to 32 s
//   runs.subscribe([](const rebound::run_event& e) { ui.show(e); });
//   auto result = runs.run({
//       .key = conversation_id,
//       .attempt = [&](const rebound::run_context& run) { agent.stream(run.run_id, run.stop); },
//       .cleanup = [&](const rebound::run_context& failed, std::exception_ptr) {
//         db.discard_messages(failed.run_id);  // not part of the next attempt's history
//       }});
//
// The pitfalls scenario 002's reviewers found are the contract:
//   - a cancel ends the wait at once, and is checked again after every wake:
//     no attempt starts after a cancel;
//   - a failing cleanup ends the run (run_failed, cleanup_failed): the next
//     attempt would see a polluted history;
//   - a failure to start the next attempt ends the run (run_failed,
//     start_failed): no run is left "retrying" forever;
//   - a cancel belongs to one run: it is never remembered for the key, so it
//     cannot abort the next run under the same key;
//   - errors are classified by type (the policy's rules), never by the
//     digits inside a message.
// One run per key at a time; a second start for a busy key throws run_busy_error.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "rebound/policy.hpp"

namespace rebound {

/// What one attempt of a run is given.
struct run_context {
  std::string key;
  std::string run_id;    ///< fresh for every attempt
  int attempt = 1;       ///< 1 for the first attempt, 2 for the first retry, ...
  std::stop_token stop;  ///< requested when the run is cancelled: stop streaming, return or throw
};

/// Why a run failed.
enum class run_failure : std::uint8_t {
  not_retryable,      ///< the policy classified the error permanent (or overloaded)
  retries_exhausted,  ///< the policy's attempt limit
  time_exhausted,     ///< the policy's time limit
  budget_exhausted,   ///< the policy's retry budget or throttle refused
  cleanup_failed,     ///< the cleanup after a failed attempt threw
  start_failed,       ///< starting an attempt (run_spec::start) threw
};
/// "not_retryable", "retries_exhausted", ...
[[nodiscard]] std::string_view to_string(run_failure f) noexcept;

/// Where a run was when its cancel took effect.
enum class run_phase : std::uint8_t { starting, attempt, cleanup, backoff };
[[nodiscard]] std::string_view to_string(run_phase p) noexcept;

/// An attempt began.
struct run_started {
  std::string key;
  std::string run_id;
  int attempt = 1;
};
/// An attempt failed and another will start after `delay`. `attempt` is the
/// number of the retry about to happen (1..max), so "retry {attempt} of {max}".
struct run_retrying {
  std::string key;
  std::string run_id;  ///< the attempt that failed
  int attempt = 1;
  int max = 0;  ///< retries the policy allows (0 when it sets no attempt limit)
  duration delay{};
  std::string error;  ///< what() of the failure
};
/// The run ended in failure.
struct run_failed {
  std::string key;
  std::string run_id;  ///< the last attempt's id (empty when the first could not start)
  std::string error;
  int attempts = 0;  ///< attempts that ran
  run_failure reason = run_failure::not_retryable;
};
/// The run succeeded.
struct run_succeeded {
  std::string key;
  std::string run_id;
  int attempts = 1;
};
/// The run was cancelled.
struct run_cancelled {
  std::string key;
  std::string run_id;  ///< the last attempt's id, if one started
  int attempts = 0;
  run_phase phase = run_phase::attempt;
};
using run_event = std::variant<run_started, run_retrying, run_failed, run_succeeded, run_cancelled>;
/// One line for logs and UIs: "run c-1: retry 2 of 5 in 4s (503 Service Unavailable)".
[[nodiscard]] std::string describe(const run_event& e);

/// The work, and the steps around it.
struct run_spec {
  std::string key{};
  /// One attempt. Returns on success; throws on failure (the exception is
  /// classified by the supervisor's policy). Must watch run_context::stop.
  std::function<void(const run_context&)> attempt{};
  /// Optional: starts attempt `attempt` and returns its run id (e.g. inserts
  /// a row in a runs table). Throwing fails the run with start_failed.
  /// Default: "<key>-<attempt>-<8 random hex digits>".
  std::function<std::string(const std::string& key, int attempt)> start{};
  /// Optional: after a failed attempt that will be retried, before the wait
  /// (e.g. mark its partial messages discarded). Throwing fails the run with cleanup_failed.
  std::function<void(const run_context& failed, const std::exception_ptr& error)> cleanup{};
};

/// How a run ended.
struct run_result {
  enum class status : std::uint8_t { succeeded, failed, cancelled };
  status state = status::succeeded;
  int attempts = 0;
  std::string run_id;  ///< the last attempt's id
  std::optional<run_failure> failure;
  std::exception_ptr error;  ///< failed: the error that ended the run (attempt, cleanup or start)
  [[nodiscard]] bool ok() const noexcept { return state == status::succeeded; }
};

/// A second start for a key whose run is still active.
class run_busy_error : public std::runtime_error {
 public:
  run_busy_error(std::string key, std::string active_run_id);
  [[nodiscard]] const std::string& key() const noexcept { return key_; }
  [[nodiscard]] const std::string& active_run_id() const noexcept { return active_run_id_; }

 private:
  std::string key_;
  std::string active_run_id_;
};

class run_supervisor;

/// A run started on its own thread by run_supervisor::start().
class run_handle {
 public:
  run_handle() = default;
  run_handle(run_handle&&) noexcept = default;
  run_handle& operator=(run_handle&&) noexcept;
  run_handle(const run_handle&) = delete;
  run_handle& operator=(const run_handle&) = delete;
  /// Waits for the run to end (cancel() first to end it early).
  ~run_handle();

  /// Cancels this run (and only this one). False when it has already ended.
  bool cancel();
  /// Blocks until the run ends.
  const run_result& wait();
  [[nodiscard]] const std::string& key() const noexcept { return key_; }

 private:
  friend class run_supervisor;
  struct shared;
  std::string key_;
  std::shared_ptr<shared> state_;
  std::thread thread_;
};

class run_supervisor {
 public:
  /// Scenario 002: up to 5 retries, back-off 2 s doubling to 32 s, no
  /// jitter, every exception transient. Narrow it with .retry_on<E>() or
  /// .retry_if_exception(...), as for any policy.
  [[nodiscard]] static retry_policy default_policy();

  /// Runs use `policy` (its clock for the waits; its classification, stop
  /// condition, back-off, jitter and budget for the decisions).
  explicit run_supervisor(retry_policy policy = default_policy());
  run_supervisor(const run_supervisor&) = delete;
  run_supervisor& operator=(const run_supervisor&) = delete;
  /// Active runs must have ended: cancel and wait for started ones first.
  ~run_supervisor();

  /// Subscribers are called on the run's thread, in order, and must not
  /// block for long; an exception from one is dropped (the run goes on).
  std::uint64_t subscribe(std::function<void(const run_event&)> subscriber);
  void unsubscribe(std::uint64_t id);

  /// Runs `spec` on this thread until it succeeds, fails or is cancelled.
  /// Throws run_busy_error when the key has an active run, and
  /// std::invalid_argument for an empty key or no attempt function.
  run_result run(run_spec spec);
  /// The same on a new thread. The busy check happens here, in the caller.
  [[nodiscard]] run_handle start(run_spec spec);

  /// Cancels the active run under `key`. False when there is none; nothing
  /// is remembered for a later run.
  bool cancel(std::string_view key);
  /// Cancels the active run under `key` only if `run_id` is one of its
  /// attempts. A stale id (an earlier run's) is ignored: false.
  bool cancel(std::string_view key, std::string_view run_id);
  [[nodiscard]] bool active(std::string_view key) const;
  /// The active run's current attempt id, if the key has one.
  [[nodiscard]] std::optional<std::string> current_run_id(std::string_view key) const;
  [[nodiscard]] const retry_policy& policy() const noexcept { return policy_; }

 private:
  struct entry;
  std::shared_ptr<entry> claim(const std::string& key);
  run_result execute(run_spec& spec, const std::shared_ptr<entry>& e);
  void release(const std::string& key, const std::shared_ptr<entry>& e);
  void emit(const run_event& ev);

  retry_policy policy_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<entry>, std::less<>> active_;
  std::mutex subscribers_mu_;
  std::uint64_t next_subscriber_ = 1;
  std::vector<std::pair<std::uint64_t, std::shared_ptr<std::function<void(const run_event&)>>>>
      subscribers_;
};

}  // namespace rebound
