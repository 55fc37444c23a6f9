// rebound/redis/client.hpp: a small Redis link that never makes a caller wait long.
//
// The fleet-wide budget and breaker (rebound/redis/shared.hpp) talk to Redis
// through one `link`. Every command is bounded by `command_timeout` (the
// wait for the link included); a Redis that is down, slow or hung costs a
// caller at most that, once: the link is then marked unavailable, calls
// return nothing at once, and a background thread reconnects with back-off.
//
//   auto link = std::make_shared<rebound::redis::link>(rebound::redis::options{
//       .host = "127.0.0.1", .port = 6379, .key_prefix = "myapp"});
//   link->on_status([](const rebound::redis::status_event& e) { log(e.message); });
//
// Credentials (password, username) are sent with AUTH and never appear in
// messages, events or errors.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "rebound/clock.hpp"

struct redisContext;

namespace rebound::redis {

/// What the shared budget and breaker do while Redis is unavailable.
enum class fallback_mode : std::uint8_t {
  local,  ///< decide with the process's own budget and breaker (the default)
  open,   ///< fail open: grant retries, trust only the local breaker
  closed  ///< fail closed: refuse retries
};
[[nodiscard]] std::string_view to_string(fallback_mode m) noexcept;

struct options {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string username{};  ///< ACL user; empty: the default user
  std::string password{};  ///< never logged
  /// Every key rebound writes starts with this (and ':').
  std::string key_prefix = "rebound";
  duration connect_timeout = std::chrono::milliseconds(100);
  /// The most a command may take, the wait for the link included.
  duration command_timeout = std::chrono::milliseconds(20);
  /// Reconnection back-off after Redis became unavailable.
  duration reconnect_min = std::chrono::milliseconds(100);
  duration reconnect_max = std::chrono::seconds(5);
  /// Shared budget: local deposits (calls, refunds) are flushed this often,
  /// or as soon as `max_batch` of them wait.
  duration flush_interval = std::chrono::milliseconds(100);
  int max_batch = 1000;
  /// Shared budget: retries leased per round trip, and how long an unused
  /// lease stays valid.
  int lease_size = 10;
  duration lease_ttl = std::chrono::seconds(1);
  /// Shared breaker: how often the shared state is read.
  duration poll_interval = std::chrono::milliseconds(100);
  fallback_mode fallback = fallback_mode::local;

  /// Checks every field; throws rebound::config_error naming the first bad one.
  void validate() const;
  friend bool operator==(const options&, const options&) = default;
};

/// Options from JSON (all keys optional): {"host": "10.0.0.5", "port": 6379,
/// "username": "app", "password": "...", "key_prefix": "myapp",
/// "connect_timeout": "100ms", "command_timeout": "20ms", "reconnect_min": "100ms",
/// "reconnect_max": "5s", "flush_interval": "100ms", "max_batch": 1000,
/// "lease_size": 10, "lease_ttl": "1s", "poll_interval": "100ms",
/// "fallback": "local"|"open"|"closed"}. Throws rebound::config_error.
[[nodiscard]] options options_from_json(std::string_view json, options base = {});
/// PREFIX_HOST, PREFIX_PORT, PREFIX_USERNAME, PREFIX_PASSWORD, PREFIX_KEY_PREFIX,
/// PREFIX_CONNECT_TIMEOUT, PREFIX_COMMAND_TIMEOUT, PREFIX_RECONNECT_MIN,
/// PREFIX_RECONNECT_MAX, PREFIX_FLUSH_INTERVAL, PREFIX_MAX_BATCH, PREFIX_LEASE_SIZE,
/// PREFIX_LEASE_TTL, PREFIX_POLL_INTERVAL, PREFIX_FALLBACK over `base`; another
/// name under the prefix is an error. Values are never echoed for PASSWORD.
[[nodiscard]] options apply_env(options base, std::string_view prefix,
                                const std::map<std::string, std::string>& vars);
[[nodiscard]] options apply_env(options base, std::string_view prefix);

/// One Redis reply.
struct reply {
  enum class kind : std::uint8_t { nil, integer, string, array, status, error };
  kind type = kind::nil;
  long long integer = 0;
  std::string text{};  ///< string, status and error replies
  std::vector<reply> elements{};
};

/// The link's health changed.
struct status_event {
  enum class kind : std::uint8_t { connected, unavailable, restored };
  kind type = kind::connected;
  std::string message;  ///< "redis 127.0.0.1:6379 unavailable (timeout after 20ms); ..."
};

class link {
 public:
  /// Connects in the background; calls return nothing until it is up.
  explicit link(options o);
  link(const link&) = delete;
  link& operator=(const link&) = delete;
  ~link();

  /// One command, bounded by command_timeout (the wait for the link
  /// included). Nothing when Redis is unavailable (then available() is
  /// false), or when the link stayed busy for the whole timeout (then it is
  /// still true). A server error reply (e.g. WRONGTYPE) is a reply, of kind
  /// error; READONLY, LOADING and MASTERDOWN also mark the link down.
  [[nodiscard]] std::optional<reply> call(const std::vector<std::string>& argv);
  /// Runs a Lua script: EVALSHA once the link has loaded it (in the
  /// background, again after every reconnection), EVAL until then or when
  /// the server forgot it; one deadline for the whole. `source` must outlive
  /// the link (a string literal).
  [[nodiscard]] std::optional<reply> eval(std::string_view source,
                                          const std::vector<std::string>& keys,
                                          const std::vector<std::string>& args);

  /// Connected and not known to be down.
  [[nodiscard]] bool available() const noexcept { return up_.load(std::memory_order_acquire); }
  /// Blocks until available() or `limit` passes (a real wait, for tests and start-up).
  bool wait_until_available(std::chrono::milliseconds limit) const;
  /// Runs `task` on the link's thread every `interval` (flushes, polls).
  /// Returns an id for cancel().
  std::uint64_t every(duration interval, std::function<void()> fn);
  /// Removes a task; when it is running, waits for it to finish. Not from a task.
  void cancel(std::uint64_t id);
  /// Receives health changes, on the link's thread (never on a caller's),
  /// outside its tasks: a listener may log, cancel tasks or destroy budgets.
  void on_status(std::function<void(const status_event&)> listener);
  /// Commands sent so far (for tests and metrics).
  [[nodiscard]] std::uint64_t commands() const noexcept {
    return commands_.load(std::memory_order_relaxed);
  }
  /// `key_prefix:` + name.
  [[nodiscard]] std::string key(std::string_view name) const;
  [[nodiscard]] const options& settings() const noexcept { return options_; }
  /// Makes task `id` due now (a budget's flush when its batch is full).
  void poke(std::uint64_t id);

 private:
  using deadline_type = std::chrono::steady_clock::time_point;
  void run();
  bool connect_locked(std::string& why);
  void mark_down_locked(const std::string& why);
  std::optional<reply> call_locked(const std::vector<std::string>& argv, deadline_type deadline);
  void emit(status_event e);
  void deliver_events();
  duration jittered_backoff_locked();

  options options_;
  std::string where_;  // "host:port", for messages
  // A mutex with a timed lock, built on a condition variable: std::timed_mutex
  // uses pthread_mutex_clocklock, which ThreadSanitizer does not see.
  class timed_lockable {
   public:
    void lock() {
      std::unique_lock l(m_);
      cv_.wait(l, [this] { return !held_; });
      held_ = true;
    }
    bool try_lock() {
      std::lock_guard l(m_);
      if (held_) return false;
      held_ = true;
      return true;
    }
    template <class Clock, class Duration>
    bool try_lock_until(const std::chrono::time_point<Clock, Duration>& t) {
      std::unique_lock l(m_);
      if (!cv_.wait_until(l, t, [this] { return !held_; })) return false;
      held_ = true;
      return true;
    }
    void unlock() {
      {
        std::lock_guard l(m_);
        held_ = false;
      }
      cv_.notify_one();
    }

   private:
    std::mutex m_;
    std::condition_variable cv_;
    bool held_ = false;
  };
  timed_lockable mu_;
  redisContext* ctx_ = nullptr;
  std::atomic<bool> up_{false};
  bool ever_up_ = false;
  duration backoff_{};
  std::chrono::steady_clock::time_point next_connect_{};
  std::atomic<std::uint64_t> commands_{0};

  std::mutex tasks_mu_;
  std::condition_variable tasks_cv_;
  struct task {
    std::uint64_t id;
    duration interval;
    std::chrono::steady_clock::time_point due;
    std::function<void()> fn;
  };
  std::vector<task> tasks_;
  std::vector<std::uint64_t> poked_ids_;
  std::uint64_t next_task_ = 1;
  std::vector<status_event> events_;         // delivered by the link's thread
  std::map<const char*, std::string> shas_;  // script source -> SHA1, under mu_
  std::vector<std::string_view> scripts_;    // to load on (re)connection, under mu_
  bool failure_reported_ = false;            // under mu_
  std::uint64_t jitter_state_ = 0x9e3779b97f4a7c15ULL;
  bool running_ = false;  // a batch of tasks is running (under tasks_mu_)
  std::condition_variable idle_cv_;
  bool stopping_ = false;
  bool wake_ = false;
  mutable std::mutex status_mu_;
  mutable std::condition_variable status_cv_;
  std::vector<std::function<void(const status_event&)>> listeners_;
  std::thread thread_;
};

}  // namespace rebound::redis
