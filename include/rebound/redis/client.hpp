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

#include "rebound/call.hpp"
#include "rebound/classify.hpp"
#include "rebound/clock.hpp"
#include "rebound/config.hpp"
#include "rebound/fleet_budget.hpp"

struct redisContext;

namespace rebound::redis {

/// What the shared budget and breaker do while Redis is unavailable: decide
/// with the process's own budget and breaker (local, the default), grant
/// every retry and trust only the local breaker (open), or refuse every
/// retry (closed).
using fallback_mode = ::rebound::fleet_fallback;
using ::rebound::to_string;

/// The reconnect policy from `min` doubling to `max`, equal jitter.
[[nodiscard]] inline policy_settings reconnect_backoff(duration min, duration max) {
  policy_settings s;
  s.max_attempts = 1'000'000;
  s.backoff_type = backoff::kind::exponential;
  s.initial = min;
  s.multiplier = 2.0;
  s.max_delay = max;
  s.jitter = jitter::equal();
  return s;
}

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
  /// Reconnection after Redis became unavailable: a retry policy (its back-off
  /// and jitter; the link never gives up: when the policy stops, a new round
  /// starts). Default: 100 ms doubling to 5 s, equal jitter (each wait in
  /// [d/2, d]), so a fleet does not reconnect, and reload its scripts, in step.
  policy_settings reconnect =
      reconnect_backoff(std::chrono::milliseconds(100), std::chrono::seconds(5));
  /// Shared budget: local deposits (calls, refunds) are flushed this often,
  /// or as soon as `max_batch` of them wait.
  duration flush_interval = std::chrono::milliseconds(100);
  int max_batch = 1000;
  /// Shared budget: retries leased per round trip, and how long an unused
  /// lease stays valid.
  int lease_size = 10;
  duration lease_ttl = std::chrono::seconds(1);
  /// Shared budget: after Redis said the fleet's budget is spent, refuse
  /// locally this long before asking again (0: ask every time).
  duration refusal_hold = std::chrono::milliseconds(100);
  /// Shared breaker: how often the shared state is read.
  duration poll_interval = std::chrono::milliseconds(100);
  fallback_mode fallback = fallback_mode::local;
  /// Shared breaker: probes the whole fleet may run in one half-open round.
  int fleet_probes = 1;
  /// Shared budget: its kind and settings, for shared_budget(link, dependency).
  fleet_budget_settings budget = ratio_budget::options{};
  /// Shared budget while Redis is away: each process's local fallback holds
  /// the fleet budget divided by the fleet's last known size (false: a whole
  /// budget each). Before Redis was ever reached the fleet is assumed
  /// `expected_fleet_size` processes. A process counts as alive for
  /// `member_ttl` after its last heartbeat (sent with a flush).
  bool share = true;
  int expected_fleet_size = 1;
  duration member_ttl = std::chrono::seconds(10);
  /// Redis Sentinel: "host:port" of each Sentinel. When given, the link
  /// asks them (in order) for `master_name`'s address instead of using
  /// host and port, checks with ROLE that the server it reached is the
  /// master, and asks again whenever the link goes down. It also subscribes
  /// to a Sentinel's +switch-master: at a failover it leaves the old master
  /// within about 100 ms of the announcement, instead of writing to it until
  /// it is demoted (what it takes in between is lost at the demotion). A
  /// master that died or refuses writes (READONLY) is followed the same way.
  std::vector<std::string> sentinels{};
  std::string master_name{};

  /// Checks every field; throws rebound::config_error naming the first bad one.
  void validate() const;
  friend bool operator==(const options&, const options&) = default;
};

/// Options from JSON (all keys optional): {"host": "10.0.0.5", "port": 6379,
/// "username": "app", "password": "...", "key_prefix": "myapp",
/// "connect_timeout": "100ms", "command_timeout": "20ms",
/// "reconnect": {"backoff": {"initial": "100ms", "max": "5s"}, "jitter": "equal"},
/// "flush_interval": "100ms", "max_batch": 1000, "lease_size": 10, "lease_ttl": "1s",
/// "refusal_hold": "100ms",
/// "poll_interval": "100ms", "fallback": "local"|"open"|"closed", "fleet_probes": 1,
/// "budget": {"kind": "ratio", "ratio": 0.2, "min_per_second": 10, "window": "10s"} or
/// {"kind": "token_bucket", "capacity": 500, "retry_cost": 5, "timeout_retry_cost": 10,
/// "success_refund": 1}, "share": true, "expected_fleet_size": 1, "member_ttl": "10s",
/// "sentinels": ["10.0.0.7:26379", ...], "master_name": "mymaster"}. "reconnect"
/// takes every key of a policy document; "reconnect_min" and "reconnect_max"
/// are shorthands for reconnect_backoff(min, max). Throws rebound::config_error.
[[nodiscard]] options options_from_json(std::string_view json, options base = {});
/// PREFIX_HOST, PREFIX_PORT, PREFIX_USERNAME, PREFIX_PASSWORD, PREFIX_KEY_PREFIX,
/// PREFIX_CONNECT_TIMEOUT, PREFIX_COMMAND_TIMEOUT, PREFIX_RECONNECT_* (a policy,
/// e.g. PREFIX_RECONNECT_BACKOFF_MAX), PREFIX_RECONNECT_MIN and
/// PREFIX_RECONNECT_MAX (the shorthands), PREFIX_FLUSH_INTERVAL, PREFIX_MAX_BATCH,
/// PREFIX_LEASE_SIZE, PREFIX_LEASE_TTL, PREFIX_REFUSAL_HOLD, PREFIX_POLL_INTERVAL, PREFIX_FALLBACK,
/// PREFIX_FLEET_PROBES, PREFIX_BUDGET_KIND, PREFIX_BUDGET_RATIO (and each budget key),
/// PREFIX_SHARE, PREFIX_EXPECTED_FLEET_SIZE, PREFIX_MEMBER_TTL, PREFIX_SENTINELS
/// (host:port,host:port), PREFIX_MASTER_NAME over `base`; another
/// name under the prefix is an error. Values are never echoed for PASSWORD.
[[nodiscard]] options apply_env(options base, std::string_view prefix,
                                const std::map<std::string, std::string>& vars);
[[nodiscard]] options apply_env(options base, std::string_view prefix);

/// The code a Redis error reply starts with ("-READONLY You can't write
/// against a read only replica."): RESP's typed part of an error, parsed
/// once when the reply arrives. Nothing reads the rest of the text.
enum class error_code : std::uint8_t {
  none,         ///< not an error reply
  err,          ///< ERR: a generic error (bad arguments, a script's error)
  wrongtype,    ///< WRONGTYPE: the key holds another type
  noscript,     ///< NOSCRIPT: EVALSHA of a script the server does not have
  readonly,     ///< READONLY: a replica (a demoted master) refuses writes
  loading,      ///< LOADING: the server is loading its data set
  masterdown,   ///< MASTERDOWN: a replica lost its master
  busy,         ///< BUSY: a script runs too long
  oom,          ///< OOM: maxmemory reached
  noauth,       ///< NOAUTH: authentication required
  wrongpass,    ///< WRONGPASS: bad credentials
  noperm,       ///< NOPERM: the ACL user may not do this
  tryagain,     ///< TRYAGAIN: a cluster resharding is in progress
  clusterdown,  ///< CLUSTERDOWN: the cluster cannot serve
  moved,        ///< MOVED: the slot lives on another node
  ask,          ///< ASK: the slot is migrating
  other,        ///< any other code
};
/// The code of an error reply's text (its first word, as RESP defines it).
[[nodiscard]] error_code parse_error_code(std::string_view reply_text) noexcept;
/// "READONLY", ... (the code as Redis spells it).
[[nodiscard]] std::string_view to_string(error_code c) noexcept;

/// One Redis reply.
struct reply {
  enum class kind : std::uint8_t { nil, integer, string, array, status, error };
  kind type = kind::nil;
  long long integer = 0;
  std::string text{};  ///< string, status and error replies
  std::vector<reply> elements{};
  error_code code = error_code::none;  ///< for error replies
};

/// The Redis error table: how a reply becomes a verdict, from its type and
/// its error code (hiredis' reply structure), never from the message.
///   not an error reply ................................... success
///   LOADING, MASTERDOWN, READONLY, TRYAGAIN, CLUSTERDOWN,
///   BUSY ................................................. transient
///   OOM .................................................. overloaded
///   ERR, WRONGTYPE, NOSCRIPT, NOAUTH, WRONGPASS, NOPERM,
///   MOVED, ASK, other codes .............................. permanent
/// No reply at all (a timeout, a reset) is the link's to handle: it is
/// marked down and the caller decides locally. docs/reference.md shows
/// every adapter's table side by side.
[[nodiscard]] verdict classify(const reply& r) noexcept;
/// The server cannot serve this link now (READONLY: a demoted master;
/// LOADING; MASTERDOWN): the link marks itself down and reconnects.
[[nodiscard]] bool server_unusable(error_code c) noexcept;

/// The link's health changed.
struct status_event {
  enum class kind : std::uint8_t { connected, unavailable, restored };
  kind type = kind::connected;
  std::string message;  ///< "redis 127.0.0.1:6379 unavailable (timeout after 20ms); ..."
};

class link {
 public:
  /// Connects in the background; calls return nothing until it is up. Its
  /// schedules (reconnects, tasks) run on `c`; each command's own bound is
  /// real time (the network's).
  explicit link(options o, clock& c = system_clock());
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
  /// Connections made so far (0: never connected). Each reconnection may
  /// reach a Redis that restarted or was failed over and lost its data.
  [[nodiscard]] std::uint64_t connections() const noexcept {
    return connections_.load(std::memory_order_acquire);
  }
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
  /// The clock the link's schedules run on.
  [[nodiscard]] clock& time_source() const noexcept { return clock_; }
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
  void run();
  bool connect_locked(std::string& why);
  // Sentinel: the master's address, from the first Sentinel that knows it.
  bool master_from_sentinels(std::string& host, int& port, std::string& why);
  // Sentinel: reads +switch-master from a subscription (the link's thread
  // only), and follows a failover at once instead of writing to a master
  // that is being demoted.
  void watch_sentinels();
  void mark_down_locked(const std::string& why);
  duration schedule_reconnect_locked();
  std::optional<reply> call_locked(const std::vector<std::string>& argv, time_point deadline);
  void emit(status_event e);
  void deliver_events();

  options options_;
  clock& clock_;
  retry_policy reconnect_policy_;  // options_.reconnect on clock_
  std::string where_;              // "host:port", for messages
  // A mutex with a timed lock, built on a condition variable: std::timed_mutex
  // uses pthread_mutex_clocklock, which ThreadSanitizer does not see. The
  // bound is real time, on the system clock (a command's own bound).
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
    bool try_lock_until(time_point t) {
      std::unique_lock l(m_);
      if (!cv_.wait_until(l, std::chrono::steady_clock::time_point(t.time_since_epoch()),
                          [this] { return !held_; })) {
        return false;
      }
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
  redisContext* sentinel_sub_ = nullptr;  // SUBSCRIBE +switch-master (the link's thread)
  time_point next_subscribe_{};           // real time (the link's thread)
  std::atomic<bool> up_{false};
  bool ever_up_ = false;
  std::atomic<std::uint64_t> connections_{0};
  std::optional<retry_call> reconnect_;  // the current outage's reconnects, under mu_
  time_point next_connect_{};            // on clock_, under mu_
  std::atomic<std::uint64_t> commands_{0};

  std::mutex tasks_mu_;
  std::condition_variable tasks_cv_;
  struct task {
    std::uint64_t id;
    duration interval;
    time_point due;  // on clock_
    std::function<void()> fn;
  };
  std::vector<task> tasks_;
  std::vector<std::uint64_t> poked_ids_;
  std::uint64_t next_task_ = 1;
  std::vector<status_event> events_;         // delivered by the link's thread
  std::map<const char*, std::string> shas_;  // script source -> SHA1, under mu_
  std::vector<std::string_view> scripts_;    // to load on (re)connection, under mu_
  bool failure_reported_ = false;            // under mu_
  bool running_ = false;                     // a batch of tasks is running (under tasks_mu_)
  std::condition_variable idle_cv_;
  bool stopping_ = false;
  bool wake_ = false;
  mutable std::mutex status_mu_;
  mutable std::condition_variable status_cv_;
  std::vector<std::function<void(const status_event&)>> listeners_;
  std::thread thread_;
};

}  // namespace rebound::redis
