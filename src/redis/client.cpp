#include "rebound/redis/client.hpp"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <signal.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <ctime>
#include <utility>

#include "internal.hpp"
#include "rebound/detail/clock_wait.hpp"
#include "rebound/detail/saturate.hpp"
#include "rebound/duration.hpp"

namespace rebound::redis {
namespace {

// A command's own bound is real time (the network's), on the system clock;
// the link's schedules run on its injected clock.
time_point real_now() { return system_clock().now(); }

timeval to_timeval(duration d) {
  const auto us = std::max<std::int64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(d).count(), 1000);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(us / 1000000);
  tv.tv_usec = static_cast<suseconds_t>(us % 1000000);
  return tv;
}

// hiredis 0.14 writes with write(2): a reset connection would raise SIGPIPE
// and kill a process that does not ignore it. Blocked around each command;
// a SIGPIPE it raised is consumed before unblocking.
class sigpipe_guard {
 public:
  sigpipe_guard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~sigpipe_guard() {
    if (!was_pending_) {
      const timespec zero{0, 0};
      while (sigtimedwait(&pipe_, nullptr, &zero) == SIGPIPE) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  sigpipe_guard(const sigpipe_guard&) = delete;
  sigpipe_guard& operator=(const sigpipe_guard&) = delete;

 private:
  sigset_t pipe_{};
  sigset_t old_{};
  bool was_pending_ = false;
};

// One command on a live context; nothing (and the context broken) on I/O failure.
std::optional<reply> command(redisContext* c, const std::vector<std::string>& argv) {
  std::vector<const char*> args;
  std::vector<std::size_t> lens;
  args.reserve(argv.size());
  lens.reserve(argv.size());
  for (const auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  const sigpipe_guard guard;
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(args.size()), args.data(), lens.data()));
  if (r == nullptr) return std::nullopt;
  reply out = detail::convert(r);
  freeReplyObject(r);
  return out;
}

constexpr std::pair<std::string_view, error_code> error_codes[] = {
    {"ERR", error_code::err},
    {"WRONGTYPE", error_code::wrongtype},
    {"NOSCRIPT", error_code::noscript},
    {"READONLY", error_code::readonly},
    {"LOADING", error_code::loading},
    {"MASTERDOWN", error_code::masterdown},
    {"BUSY", error_code::busy},
    {"OOM", error_code::oom},
    {"NOAUTH", error_code::noauth},
    {"WRONGPASS", error_code::wrongpass},
    {"NOPERM", error_code::noperm},
    {"TRYAGAIN", error_code::tryagain},
    {"CLUSTERDOWN", error_code::clusterdown},
    {"MOVED", error_code::moved},
    {"ASK", error_code::ask},
};

}  // namespace

namespace detail {

namespace {

// hiredis' own reply functions, read from a reader it sets up (they are
// static inside hiredis).
const redisReplyObjectFunctions* hiredis_functions() noexcept {
  static const redisReplyObjectFunctions* const fns = [] {
    redisReader* r = redisReaderCreate();
    const redisReplyObjectFunctions* f = r != nullptr ? r->fn : nullptr;
    if (r != nullptr) redisReaderFree(r);
    return f;
  }();
  return fns;
}

void* create_bounded_array(const redisReadTask* task, int elements) {
  if (elements < 0 || elements > max_reply_elements) return nullptr;  // hiredis: out of memory
  return hiredis_functions()->createArray(task, elements);
}

redisReplyObjectFunctions* bounded_functions() noexcept {
  static redisReplyObjectFunctions fns = [] {
    redisReplyObjectFunctions f = *hiredis_functions();
    f.createArray = create_bounded_array;
    return f;
  }();
  return &fns;
}

}  // namespace

void limit_reply_size(redisReader* r) noexcept {
  if (r == nullptr || hiredis_functions() == nullptr) return;
  r->fn = bounded_functions();
}

reply convert(const redisReply* r) {
  reply out;
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      out.type = reply::kind::integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      out.type = r->type == REDIS_REPLY_STRING   ? reply::kind::string
                 : r->type == REDIS_REPLY_STATUS ? reply::kind::status
                                                 : reply::kind::error;
      out.text.assign(r->str, r->len);
      if (out.type == reply::kind::error) out.code = parse_error_code(out.text);
      break;
    case REDIS_REPLY_ARRAY:
      out.type = reply::kind::array;
      for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default:
      out.type = reply::kind::nil;
  }
  return out;
}

}  // namespace detail

error_code parse_error_code(std::string_view text) noexcept {
  const std::string_view word = text.substr(0, text.find(' '));
  for (const auto& [name, code] : error_codes) {
    if (word == name) return code;
  }
  return error_code::other;
}

std::string_view to_string(error_code c) noexcept {
  if (c == error_code::none) return "none";
  for (const auto& [name, code] : error_codes) {
    if (code == c) return name;
  }
  return "other";
}

bool server_unusable(error_code c) noexcept {
  return c == error_code::readonly || c == error_code::loading || c == error_code::masterdown;
}

verdict classify(const reply& r) noexcept {
  if (r.type != reply::kind::error) return verdict::success();
  switch (r.code) {
    case error_code::loading:
    case error_code::masterdown:
    case error_code::readonly:
    case error_code::tryagain:
    case error_code::clusterdown:
    case error_code::busy:
      return verdict::transient();
    case error_code::oom:
      return verdict::overloaded();
    default:
      return verdict::permanent();
  }
}

link::link(options o, clock& c)
    : options_((o.validate(), std::move(o))),
      clock_(c),
      reconnect_policy_(options_.reconnect.to_policy(c)),
      where_(options_.sentinels.empty() ? options_.host + ":" + std::to_string(options_.port)
                                        : "master " + options_.master_name + " (via Sentinel)") {
  thread_ = std::thread([this] { run(); });
}

link::~link() {
  {
    std::lock_guard lock(tasks_mu_);
    stopping_ = true;
  }
  tasks_cv_.notify_all();
  thread_.join();
  std::lock_guard lock(mu_);
  if (ctx_ != nullptr) redisFree(ctx_);
  if (sentinel_sub_ != nullptr) redisFree(sentinel_sub_);
}

void link::watch_sentinels() {
  if (options_.sentinels.empty()) return;
  if (sentinel_sub_ == nullptr) {
    const time_point now = real_now();
    if (now < next_subscribe_) return;
    next_subscribe_ = now + std::chrono::seconds(1);
    for (const std::string& s : options_.sentinels) {
      const auto colon = s.rfind(':');
      redisContext* c =
          redisConnectWithTimeout(s.substr(0, colon).c_str(), std::stoi(s.substr(colon + 1)),
                                  to_timeval(options_.connect_timeout));
      if (c == nullptr || c->err != 0) {
        if (c != nullptr) redisFree(c);
        continue;
      }
      detail::limit_reply_size(c->reader);
      redisSetTimeout(c, to_timeval(options_.command_timeout));
      auto* r = static_cast<redisReply*>(redisCommand(c, "SUBSCRIBE +switch-master"));
      if (r == nullptr) {
        redisFree(c);
        continue;
      }
      freeReplyObject(r);
      sentinel_sub_ = c;
      break;
    }
    if (sentinel_sub_ == nullptr) return;
  }
  // Only what has arrived: the wait for more is the link's own loop.
  pollfd p{sentinel_sub_->fd, POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0) return;
  if (redisBufferRead(sentinel_sub_) != REDIS_OK) {  // the Sentinel went away: another, later
    redisFree(sentinel_sub_);
    sentinel_sub_ = nullptr;
    return;
  }
  std::string to;
  void* raw = nullptr;
  while (redisGetReplyFromReader(sentinel_sub_, &raw) == REDIS_OK && raw != nullptr) {
    const auto* r = static_cast<const redisReply*>(raw);
    // ["message", "+switch-master", "<name> <old ip> <old port> <new ip> <new port>"]
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
        r->element[2]->type == REDIS_REPLY_STRING) {
      const std::string payload(r->element[2]->str, r->element[2]->len);
      std::vector<std::string> words;
      for (std::size_t at = 0; at <= payload.size();) {
        const auto space = std::min(payload.find(' ', at), payload.size());
        words.push_back(payload.substr(at, space - at));
        at = space + 1;
      }
      if (words.size() == 5 && words[0] == options_.master_name) to = words[3] + ":" + words[4];
    }
    freeReplyObject(raw);
    raw = nullptr;
  }
  if (to.empty()) return;
  std::unique_lock lock(mu_);
  if (available()) mark_down_locked("Sentinel: +switch-master to " + to);
}

std::string link::key(std::string_view name) const {
  return options_.key_prefix + ":" + std::string(name);
}

void link::on_status(std::function<void(const status_event&)> listener) {
  std::lock_guard lock(status_mu_);
  listeners_.push_back(std::move(listener));
}

void link::emit(status_event e) {
  {
    std::lock_guard lock(tasks_mu_);
    events_.push_back(std::move(e));
    wake_ = true;
  }
  tasks_cv_.notify_all();
}

void link::deliver_events() {
  std::vector<status_event> events;
  {
    std::lock_guard lock(tasks_mu_);
    events.swap(events_);
  }
  if (events.empty()) return;
  std::vector<std::function<void(const status_event&)>> copy;
  {
    std::lock_guard lock(status_mu_);
    copy = listeners_;
  }
  for (const auto& e : events) {
    for (const auto& l : copy) {
      try {
        l(e);
      } catch (...) {  // NOLINT(bugprone-empty-catch): a listener cannot break the link
      }
    }
  }
}

bool link::wait_until_available(std::chrono::milliseconds limit) const {
  std::unique_lock lock(status_mu_);
  return status_cv_.wait_for(lock, limit, [this] { return available(); });
}

duration link::schedule_reconnect_locked() {
  // The reconnects of one outage are one call of the call engine under the
  // reconnect policy; the link never gives up, so when the policy does, a
  // new round begins.
  for (int round = 0; round < 2; ++round) {
    if (!reconnect_) {
      reconnect_.emplace(reconnect_policy_, call_options{}, call_driver{.nested = 0});
      (void)reconnect_->start();
    }
    const call_step step = reconnect_->failed(verdict::transient());
    if (step.wait()) {
      // The next attempt is due at step.until (resume() is implied: the
      // reconnect policy has no throttle, and the link is never cancelled).
      (void)reconnect_->resume(true);
      next_connect_ = step.until;
      return step.delay;
    }
    reconnect_.reset();
  }
  next_connect_ = clock_.now();  // a policy that never waits: try again at once
  return duration::zero();
}

bool link::master_from_sentinels(std::string& host, int& port, std::string& why) {
  std::string asked;
  for (const std::string& s : options_.sentinels) {
    const auto colon = s.rfind(':');
    const std::string shost = s.substr(0, colon);
    const int sport = std::stoi(s.substr(colon + 1));
    asked += (asked.empty() ? "" : ", ") + s;
    redisContext* c =
        redisConnectWithTimeout(shost.c_str(), sport, to_timeval(options_.connect_timeout));
    if (c == nullptr || c->err != 0) {
      if (c != nullptr) redisFree(c);
      continue;
    }
    detail::limit_reply_size(c->reader);
    redisSetTimeout(c, to_timeval(options_.command_timeout));
    const auto r = command(c, {"SENTINEL", "get-master-addr-by-name", options_.master_name});
    redisFree(c);
    // A known master is an array of two strings, its address and port.
    if (!r || r->type != reply::kind::array || r->elements.size() != 2 ||
        r->elements[0].type != reply::kind::string || r->elements[1].type != reply::kind::string) {
      continue;
    }
    const std::string& p = r->elements[1].text;
    int parsed = 0;
    const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), parsed);
    if (ec != std::errc() || end != p.data() + p.size() || parsed < 1 || parsed > 65535) continue;
    host = r->elements[0].text;
    port = parsed;
    return true;
  }
  why = "no Sentinel answered with master \"" + options_.master_name + "\" (asked " + asked + ")";
  return false;
}

bool link::connect_locked(std::string& why) {
  if (ctx_ != nullptr) {
    redisFree(ctx_);
    ctx_ = nullptr;
  }
  std::string host = options_.host;
  int port = options_.port;
  const bool sentinel = !options_.sentinels.empty();
  if (sentinel) {
    if (!master_from_sentinels(host, port, why)) return false;
    where_ = host + ":" + std::to_string(port) + " (master " + options_.master_name + ")";
  }
  redisContext* c =
      redisConnectWithTimeout(host.c_str(), port, to_timeval(options_.connect_timeout));
  if (c == nullptr || c->err != 0) {
    why = c != nullptr ? std::string(c->errstr) : "out of memory";
    if (c != nullptr) redisFree(c);
    return false;
  }
  detail::limit_reply_size(c->reader);
  redisSetTimeout(c, to_timeval(options_.command_timeout));
  redisEnableKeepAlive(c);
  if (!options_.password.empty()) {
    std::vector<std::string> auth{"AUTH"};
    if (!options_.username.empty()) auth.push_back(options_.username);
    auth.push_back(options_.password);
    const auto r = command(c, auth);
    if (!r || r->type == reply::kind::error) {
      // Redis's own message ("WRONGPASS invalid username-password pair")
      // names no secret; ours does not either.
      why = r ? "authentication failed: " + r->text : "no answer to AUTH";
      redisFree(c);
      return false;
    }
  }
  // A server that accepts connections but does not answer (stopped, or
  // swamped), or that cannot serve yet, is not up: ask it something first.
  const auto pong = command(c, {"PING"});
  if (!pong || pong->type == reply::kind::error) {
    why = pong ? pong->text : "no answer to PING";
    redisFree(c);
    return false;
  }
  if (sentinel) {
    // The Sentinels' answer may be stale (a failover in progress): the
    // server itself says whether it is the master (ROLE's first element).
    const auto role = command(c, {"ROLE"});
    if (!role || role->type != reply::kind::array || role->elements.empty() ||
        role->elements[0].text != "master") {
      why = where_ + " is not the master yet (ROLE)";
      redisFree(c);
      return false;
    }
  }
  // The scripts callers use, loaded before anyone calls EVALSHA.
  for (const auto source : scripts_) {
    const auto loaded = command(c, {"SCRIPT", "LOAD", std::string(source)});
    if (loaded && loaded->type == reply::kind::string) shas_[source.data()] = loaded->text;
  }
  ctx_ = c;
  return true;
}

void link::mark_down_locked(const std::string& why) {
  if (ctx_ != nullptr) {
    redisFree(ctx_);
    ctx_ = nullptr;
  }
  const bool was_up = up_.exchange(false, std::memory_order_acq_rel);
  reconnect_.reset();  // a new outage
  const auto wait = schedule_reconnect_locked();
  if (was_up) {
    failure_reported_ = true;
    emit({status_event::kind::unavailable, "redis " + where_ + " unavailable (" + why +
                                               "); deciding locally (fallback " +
                                               std::string(to_string(options_.fallback)) +
                                               "), reconnecting in " + format_duration(wait)});
  }
}

std::optional<reply> link::call_locked(const std::vector<std::string>& argv, time_point deadline) {
  if (ctx_ == nullptr || !available()) return std::nullopt;
  const duration left = deadline - real_now();
  if (left < std::chrono::microseconds(200)) return std::nullopt;  // no time left: busy
  redisSetTimeout(ctx_, to_timeval(left));
  commands_.fetch_add(1, std::memory_order_relaxed);
  const time_point sent = real_now();
  auto r = command(ctx_, argv);
  if (!r) {
    // hiredis's own text ("Resource temporarily unavailable") says little;
    // a read that ran out its time is a timeout.
    const std::string why = real_now() - sent >= left - std::chrono::milliseconds(1)
                                ? "no answer within " + format_duration(options_.command_timeout)
                                : std::string(ctx_->errstr);
    mark_down_locked(why);
    return std::nullopt;
  }
  if (server_unusable(r->code)) {
    // The reply stands (the command was refused, not run: a caller may send
    // it again elsewhere), and this server cannot serve the link now.
    mark_down_locked(std::string(to_string(r->code)));
  }
  return r;
}

std::optional<reply> link::call(const std::vector<std::string>& argv) {
  if (!available()) return std::nullopt;
  const time_point deadline = real_now() + options_.command_timeout;
  std::unique_lock lock(mu_, std::defer_lock);
  if (!lock.try_lock_until(deadline)) return std::nullopt;  // busy for the whole timeout
  return call_locked(argv, deadline);
}

std::optional<reply> link::eval(std::string_view source, const std::vector<std::string>& keys,
                                const std::vector<std::string>& args) {
  if (!available()) return std::nullopt;
  const time_point deadline = real_now() + options_.command_timeout;
  std::unique_lock lock(mu_, std::defer_lock);
  if (!lock.try_lock_until(deadline)) return std::nullopt;
  const auto with = [&](const char* verb, std::string body) {
    std::vector<std::string> argv{verb, std::move(body), std::to_string(keys.size())};
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  };
  if (const auto it = shas_.find(source.data()); it != shas_.end()) {
    auto r = call_locked(with("EVALSHA", it->second), deadline);
    if (!r || r->code != error_code::noscript) return r;
    shas_.erase(it);  // the server forgot it (SCRIPT FLUSH): EVAL, within the same deadline
  }
  if (std::find(scripts_.begin(), scripts_.end(), source) == scripts_.end()) {
    scripts_.push_back(source);  // loaded at the next connection
  }
  auto r = call_locked(with("EVAL", std::string(source)), deadline);
  // EVAL caches the script on the server; ask for its SHA1 on the link's
  // thread, not here.
  lock.unlock();
  {
    std::lock_guard l(tasks_mu_);
    wake_ = true;
  }
  tasks_cv_.notify_all();
  return r;
}

std::uint64_t link::every(duration interval, std::function<void()> fn) {
  std::uint64_t id = 0;
  {
    std::lock_guard lock(tasks_mu_);
    id = next_task_++;
    tasks_.push_back(
        {id, interval, rebound::detail::saturating_add(clock_.now(), interval), std::move(fn)});
    wake_ = true;  // the thread's wait was computed without this task
  }
  tasks_cv_.notify_all();
  return id;
}

void link::cancel(std::uint64_t id) {
  std::unique_lock lock(tasks_mu_);
  std::erase_if(tasks_, [id](const task& t) { return t.id == id; });
  // A copy of it may be running: wait for the batch to end (not from a task
  // itself, which would wait for its own end).
  if (std::this_thread::get_id() != thread_.get_id()) {
    idle_cv_.wait(lock, [this] { return !running_; });
  }
}

void link::poke(std::uint64_t id) {
  {
    std::lock_guard lock(tasks_mu_);
    poked_ids_.push_back(id);
    wake_ = true;
  }
  tasks_cv_.notify_all();
}

void link::run() {
  for (;;) {
    watch_sentinels();
    // Reconnect when due; load scripts learnt since the last connection.
    {
      std::unique_lock lock(mu_);
      if (!available() && clock_.now() >= next_connect_) {
        std::string why;
        if (connect_locked(why)) {
          reconnect_.reset();
          const bool again = ever_up_;
          ever_up_ = true;
          connections_.fetch_add(1, std::memory_order_acq_rel);
          failure_reported_ = false;
          up_.store(true, std::memory_order_release);
          emit({again ? status_event::kind::restored : status_event::kind::connected,
                "redis " + where_ + (again ? " is back; sharing again" : " connected")});
        } else {
          (void)schedule_reconnect_locked();
          if (!failure_reported_) {  // once per outage, also before the first connection
            failure_reported_ = true;
            emit({status_event::kind::unavailable,
                  "redis " + where_ + " unavailable (" + why + "); deciding locally (fallback " +
                      std::string(to_string(options_.fallback)) + ")"});
          }
        }
      } else if (available() && ctx_ != nullptr) {
        for (const auto source : scripts_) {
          if (shas_.contains(source.data())) continue;
          const time_point deadline = real_now() + options_.command_timeout;
          const auto loaded = call_locked({"SCRIPT", "LOAD", std::string(source)}, deadline);
          if (loaded && loaded->type == reply::kind::string) shas_[source.data()] = loaded->text;
        }
      }
    }
    { std::lock_guard lock(status_mu_); }
    status_cv_.notify_all();
    deliver_events();  // outside every lock and every task
    // Run the tasks that are due (or poked).
    std::vector<std::function<void()>> due;
    {
      std::unique_lock lock(tasks_mu_);
      // With Sentinels, the subscription is read at least every 100 ms.
      time_point next = rebound::detail::saturating_add(
          clock_.now(), options_.sentinels.empty() ? duration(std::chrono::seconds(1))
                                                   : duration(std::chrono::milliseconds(100)));
      for (const auto& t : tasks_) next = std::min(next, t.due);
      if (!available()) {
        lock.unlock();
        {
          std::lock_guard l(mu_);
          next = std::min(next, next_connect_);
        }
        lock.lock();
      }
      // Until the next thing is due on the link's clock, or a wake-up.
      (void)rebound::detail::wait_until(clock_, tasks_cv_, lock, next,
                                        [&] { return stopping_ || wake_; });
      if (stopping_) return;
      wake_ = false;
      const time_point now = clock_.now();
      for (auto& t : tasks_) {
        if (now >= t.due ||
            std::find(poked_ids_.begin(), poked_ids_.end(), t.id) != poked_ids_.end()) {
          due.push_back(t.fn);
          t.due = rebound::detail::saturating_add(now, t.interval);
        }
      }
      poked_ids_.clear();
      running_ = !due.empty();  // set before the lock is released: cancel() sees it
    }
    for (const auto& fn : due) {
      try {
        fn();
      } catch (...) {  // NOLINT(bugprone-empty-catch): one task's failure stops no other
      }
    }
    if (!due.empty()) {
      {
        std::lock_guard lock(tasks_mu_);
        running_ = false;
      }
      idle_cv_.notify_all();
    }
  }
}

}  // namespace rebound::redis
