#include "rebound/redis/client.hpp"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
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
      out.type = reply::kind::string;
      out.text.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = reply::kind::status;
      out.text.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = reply::kind::error;
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
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(args.size()), args.data(), lens.data()));
  if (r == nullptr) return std::nullopt;
  reply out = convert(r);
  freeReplyObject(r);
  return out;
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
      backoff_(options_.reconnect_min) {
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
  std::vector<std::function<void(const status_event&)>> copy;
  {
    std::lock_guard lock(status_mu_);
    copy = listeners_;
  }
  status_cv_.notify_all();
  for (const auto& l : copy) {
    try {
      l(e);
    } catch (...) {  // NOLINT(bugprone-empty-catch): a listener cannot break the link
    }
  }
}

bool link::wait_until_available(std::chrono::milliseconds limit) const {
  std::unique_lock lock(status_mu_);
  return status_cv_.wait_for(lock, limit, [this] { return available(); });
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
  // swamped) is not up: ask it something first.
  const auto pong = command(c, {"PING"});
  if (!pong || pong->type == reply::kind::error) {
    why = pong ? pong->text : "no answer to PING";
    redisFree(c);
    return false;
  }
  ctx_ = c;
  return true;
}

std::optional<status_event> link::mark_down_locked(const std::string& why) {
  if (ctx_ != nullptr) {
    redisFree(ctx_);
    ctx_ = nullptr;
  }
  const bool was_up = up_.exchange(false, std::memory_order_acq_rel);
  next_connect_ = steady::now() + backoff_;
  const auto wait = backoff_;
  backoff_ = std::min(backoff_ * 2, options_.reconnect_max);
  if (!was_up) return std::nullopt;
  return status_event{status_event::kind::unavailable,
                      "redis " + where_ + " unavailable (" + why +
                          "); deciding locally (fallback " +
                          std::string(to_string(options_.fallback)) + "), reconnecting in " +
                          format_duration(wait)};
}

std::optional<reply> link::call(const std::vector<std::string>& argv) {
  if (!available()) return std::nullopt;
  const auto start = steady::now();
  const auto deadline = start + options_.command_timeout;
  std::unique_lock lock(mu_, std::defer_lock);
  if (!lock.try_lock_until(deadline)) return std::nullopt;  // busy for the whole timeout
  if (ctx_ == nullptr || !available()) return std::nullopt;
  const auto left = deadline - steady::now();
  if (left < std::chrono::microseconds(200)) return std::nullopt;
  redisSetTimeout(ctx_, to_timeval(std::chrono::duration_cast<duration>(left)));
  commands_.fetch_add(1, std::memory_order_relaxed);
  auto r = command(ctx_, argv);
  if (!r) {
    const std::string why = ctx_->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)
                                ? "no answer within " + format_duration(options_.command_timeout)
                                : std::string(ctx_->errstr);
    const auto event = mark_down_locked(why);
    lock.unlock();
    if (event) emit(*event);  // outside the link's lock: a listener may log, or call us
    poke();                   // the link's thread schedules the reconnection
    return std::nullopt;
  }
  return r;
}

std::optional<reply> link::eval(script& s, const std::vector<std::string>& keys,
                                const std::vector<std::string>& args) {
  const auto with = [&](const char* verb, const std::string& body) {
    std::vector<std::string> argv{verb, body, std::to_string(keys.size())};
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  };
  if (!s.sha1.empty()) {
    auto r = call(with("EVALSHA", s.sha1));
    if (!r || r->type != reply::kind::error || !r->text.starts_with("NOSCRIPT")) return r;
  }
  // Unknown to the server (first use, or it restarted): load it, then run it.
  auto loaded = call({"SCRIPT", "LOAD", s.source});
  if (!loaded) return std::nullopt;
  if (loaded->type == reply::kind::string) s.sha1 = loaded->text;
  return call(with("EVAL", s.source));
}

std::uint64_t link::every(duration interval, std::function<void()> fn) {
  std::uint64_t id = 0;
  {
    std::lock_guard lock(tasks_mu_);
    id = next_task_++;
    tasks_.push_back({id, interval, steady::now() + interval, std::move(fn)});
  }
  tasks_cv_.notify_all();
  return id;
}

void link::cancel(std::uint64_t id) {
  {
    std::lock_guard lock(tasks_mu_);
    std::erase_if(tasks_, [id](const task& t) { return t.id == id; });
  }
  std::lock_guard wait_for_running(run_mu_);
}

void link::poke() {
  {
    std::lock_guard lock(tasks_mu_);
    poked_ = true;
  }
  tasks_cv_.notify_all();
}

void link::run() {
  for (;;) {
    // Reconnect when due.
    if (!available()) {
      std::unique_lock lock(mu_);
      if (steady::now() >= next_connect_) {
        std::string why;
        if (connect_locked(why)) {
          up_.store(true, std::memory_order_release);
          backoff_ = options_.reconnect_min;
          const bool again = ever_up_;
          ever_up_ = true;
          lock.unlock();
          emit({again ? status_event::kind::restored : status_event::kind::connected,
                "redis " + where_ + (again ? " is back; sharing again" : " connected")});
        } else {
          next_connect_ = steady::now() + backoff_;
          backoff_ = std::min(backoff_ * 2, options_.reconnect_max);
        }
      }
    }
    // Run the tasks that are due (a poke makes every task due: flush now).
    std::vector<std::function<void()>> due;
    std::unique_lock running(run_mu_, std::defer_lock);
    {
      std::unique_lock lock(tasks_mu_);
      auto next = steady::now() + std::chrono::seconds(1);
      if (!available()) {
        std::lock_guard l(mu_);
        next = std::min(next, next_connect_);
      }
      for (const auto& t : tasks_) next = std::min(next, t.due);
      tasks_cv_.wait_until(lock, next, [&] { return stopping_ || poked_; });
      if (stopping_) return;
      const auto now = steady::now();
      for (auto& t : tasks_) {
        if (poked_ || now >= t.due) {
          due.push_back(t.fn);
          t.due = now + t.interval;
        }
      }
      poked_ = false;
      running.lock();  // before the tasks lock is released: cancel() sees it
    }
    for (const auto& fn : due) fn();
  }
}

}  // namespace rebound::redis
