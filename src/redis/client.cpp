#include "rebound/redis/client.hpp"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <utility>

#include "rebound/duration.hpp"

namespace rebound::redis {
namespace {

using steady = std::chrono::steady_clock;

timeval to_timeval(duration d) {
  const auto us = std::max<std::int64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(d).count(), 1000);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(us / 1000000);
  tv.tv_usec = static_cast<suseconds_t>(us % 1000000);
  return tv;
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
  reply out = convert(r);
  freeReplyObject(r);
  return out;
}

// Error replies that mean "this server cannot serve us now": reconnect.
bool server_unusable(const reply& r) {
  return r.type == reply::kind::error &&
         (r.text.starts_with("READONLY") || r.text.starts_with("LOADING") ||
          r.text.starts_with("MASTERDOWN"));
}

}  // namespace

std::string_view to_string(fallback_mode m) noexcept {
  switch (m) {
    case fallback_mode::local:
      return "local";
    case fallback_mode::open:
      return "open";
    case fallback_mode::closed:
      return "closed";
  }
  return "unknown";
}

link::link(options o)
    : options_((o.validate(), std::move(o))),
      where_(options_.host + ":" + std::to_string(options_.port)),
      backoff_(options_.reconnect_min),
      jitter_state_(static_cast<std::uint64_t>(steady::now().time_since_epoch().count()) | 1ULL) {
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

duration link::jittered_backoff_locked() {
  // Full jitter, so a fleet does not reconnect (and reload scripts) in step.
  jitter_state_ ^= jitter_state_ << 13;
  jitter_state_ ^= jitter_state_ >> 7;
  jitter_state_ ^= jitter_state_ << 17;
  const auto u = static_cast<double>(jitter_state_ >> 11) * 0x1.0p-53;
  const auto wait = duration(static_cast<duration::rep>(u * static_cast<double>(backoff_.count())));
  backoff_ = std::min(backoff_ * 2, options_.reconnect_max);
  return std::max(wait, options_.reconnect_min / 2);
}

bool link::connect_locked(std::string& why) {
  if (ctx_ != nullptr) {
    redisFree(ctx_);
    ctx_ = nullptr;
  }
  redisContext* c = redisConnectWithTimeout(options_.host.c_str(), options_.port,
                                            to_timeval(options_.connect_timeout));
  if (c == nullptr || c->err != 0) {
    why = c != nullptr ? std::string(c->errstr) : "out of memory";
    if (c != nullptr) redisFree(c);
    return false;
  }
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
  const auto wait = jittered_backoff_locked();
  next_connect_ = steady::now() + wait;
  if (was_up) {
    failure_reported_ = true;
    emit({status_event::kind::unavailable, "redis " + where_ + " unavailable (" + why +
                                               "); deciding locally (fallback " +
                                               std::string(to_string(options_.fallback)) +
                                               "), reconnecting in " + format_duration(wait)});
  }
}

std::optional<reply> link::call_locked(const std::vector<std::string>& argv,
                                       deadline_type deadline) {
  if (ctx_ == nullptr || !available()) return std::nullopt;
  const auto left = deadline - steady::now();
  if (left < std::chrono::microseconds(200)) return std::nullopt;  // no time left: busy
  redisSetTimeout(ctx_, to_timeval(std::chrono::duration_cast<duration>(left)));
  commands_.fetch_add(1, std::memory_order_relaxed);
  const auto sent = steady::now();
  auto r = command(ctx_, argv);
  if (!r) {
    // hiredis's own text ("Resource temporarily unavailable") says little;
    // a read that ran out its time is a timeout.
    const std::string why = steady::now() - sent >= left - std::chrono::milliseconds(1)
                                ? "no answer within " + format_duration(options_.command_timeout)
                                : std::string(ctx_->errstr);
    mark_down_locked(why);
    return std::nullopt;
  }
  if (server_unusable(*r)) {
    mark_down_locked(r->text.substr(0, r->text.find(' ')));
    return std::nullopt;
  }
  return r;
}

std::optional<reply> link::call(const std::vector<std::string>& argv) {
  if (!available()) return std::nullopt;
  const auto deadline = steady::now() + options_.command_timeout;
  std::unique_lock lock(mu_, std::defer_lock);
  if (!lock.try_lock_until(deadline)) return std::nullopt;  // busy for the whole timeout
  return call_locked(argv, deadline);
}

std::optional<reply> link::eval(std::string_view source, const std::vector<std::string>& keys,
                                const std::vector<std::string>& args) {
  if (!available()) return std::nullopt;
  const auto deadline = steady::now() + options_.command_timeout;
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
    if (!r || r->type != reply::kind::error || !r->text.starts_with("NOSCRIPT")) return r;
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
    tasks_.push_back({id, interval, steady::now() + interval, std::move(fn)});
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
    // Reconnect when due; load scripts learnt since the last connection.
    {
      std::unique_lock lock(mu_);
      if (!available() && steady::now() >= next_connect_) {
        std::string why;
        if (connect_locked(why)) {
          backoff_ = options_.reconnect_min;
          const bool again = ever_up_;
          ever_up_ = true;
          failure_reported_ = false;
          up_.store(true, std::memory_order_release);
          emit({again ? status_event::kind::restored : status_event::kind::connected,
                "redis " + where_ + (again ? " is back; sharing again" : " connected")});
        } else {
          next_connect_ = steady::now() + jittered_backoff_locked();
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
          const auto deadline = steady::now() + options_.command_timeout;
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
      auto next = steady::now() + std::chrono::seconds(1);
      for (const auto& t : tasks_) next = std::min(next, t.due);
      if (!available()) {
        lock.unlock();
        {
          std::lock_guard l(mu_);
          next = std::min(next, next_connect_);
        }
        lock.lock();
      }
      tasks_cv_.wait_until(lock, next, [&] { return stopping_ || wake_; });
      if (stopping_) return;
      wake_ = false;
      const auto now = steady::now();
      for (auto& t : tasks_) {
        if (now >= t.due ||
            std::find(poked_ids_.begin(), poked_ids_.end(), t.id) != poked_ids_.end()) {
          due.push_back(t.fn);
          t.due = now + t.interval;
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
