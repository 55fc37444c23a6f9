#include "rebound/run_supervisor.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <utility>

#include "rebound/call.hpp"
#include "rebound/duration.hpp"
#include "rebound/random.hpp"
#include "rebound/stop.hpp"

namespace rebound {

std::string_view to_string(run_failure f) noexcept {
  switch (f) {
    case run_failure::not_retryable:
      return "not_retryable";
    case run_failure::retries_exhausted:
      return "retries_exhausted";
    case run_failure::time_exhausted:
      return "time_exhausted";
    case run_failure::budget_exhausted:
      return "budget_exhausted";
    case run_failure::cleanup_failed:
      return "cleanup_failed";
    case run_failure::start_failed:
      return "start_failed";
  }
  return "unknown";
}

std::string_view to_string(run_phase p) noexcept {
  switch (p) {
    case run_phase::starting:
      return "starting";
    case run_phase::attempt:
      return "attempt";
    case run_phase::cleanup:
      return "cleanup";
    case run_phase::backoff:
      return "backoff";
  }
  return "unknown";
}

namespace {

template <class... F>
struct overloaded : F... {
  using F::operator()...;
};
template <class... F>
overloaded(F...) -> overloaded<F...>;

run_failure failure_for(stop_reason r) noexcept {
  switch (r) {
    case stop_reason::attempts_exhausted:
      return run_failure::retries_exhausted;
    case stop_reason::time_exhausted:
      return run_failure::time_exhausted;
    case stop_reason::budget_exhausted:
    case stop_reason::throttled:
      return run_failure::budget_exhausted;
    default:
      return run_failure::not_retryable;
  }
}

std::string default_run_id(const std::string& key, int attempt) {
  random_stream rng(random_stream::fresh_seed());
  std::array<char, 16> hex{};
  std::snprintf(hex.data(), hex.size(), "%08x", static_cast<unsigned>(rng.next() & 0xffffffffU));
  return key + "-" + std::to_string(attempt) + "-" + hex.data();
}

}  // namespace

std::string describe(const run_event& e) {
  return std::visit(overloaded{
                        [](const run_started& s) {
                          return "run " + s.key + ": attempt " + std::to_string(s.attempt) +
                                 " started (" + s.run_id + ")";
                        },
                        [](const run_retrying& r) {
                          return "run " + r.key + ": retry " + std::to_string(r.attempt) +
                                 (r.max > 0 ? " of " + std::to_string(r.max) : std::string()) +
                                 " in " + format_duration(r.delay) + " (" + r.error + ")";
                        },
                        [](const run_failed& f) {
                          return "run " + f.key + ": failed after " + std::to_string(f.attempts) +
                                 (f.attempts == 1 ? " attempt (" : " attempts (") +
                                 std::string(to_string(f.reason)) + "): " + f.error;
                        },
                        [](const run_succeeded& s) {
                          return "run " + s.key + ": succeeded on attempt " +
                                 std::to_string(s.attempts) + " (" + s.run_id + ")";
                        },
                        [](const run_cancelled& c) {
                          return "run " + c.key + ": cancelled during " +
                                 std::string(to_string(c.phase)) + " after " +
                                 std::to_string(c.attempts) +
                                 (c.attempts == 1 ? " attempt" : " attempts");
                        },
                    },
                    e);
}

run_busy_error::run_busy_error(std::string key, std::string active_run_id)
    : std::runtime_error("run " + key + " is already active (run id " +
                         (active_run_id.empty() ? std::string("not yet assigned") : active_run_id) +
                         "); cancel it or wait for it to end before starting another"),
      key_(std::move(key)),
      active_run_id_(std::move(active_run_id)) {}

// One active run: its own stop source (never shared with a later run under
// the same key) and the run ids it has issued. Guarded by run_supervisor::mu_.
struct run_supervisor::entry {
  std::stop_source stop;
  std::vector<std::string> run_ids;
};

struct run_handle::shared {
  std::mutex mu;
  bool done = false;
  run_result result;
  std::exception_ptr crashed;  // an exception that escaped the run (e.g. bad_alloc)
  std::stop_source stop;       // the run's own (a copy of its entry's)
};

run_handle& run_handle::operator=(run_handle&& o) noexcept {
  if (this != &o) {
    if (thread_.joinable()) thread_.join();
    key_ = std::move(o.key_);
    state_ = std::move(o.state_);
    thread_ = std::move(o.thread_);
  }
  return *this;
}

run_handle::~run_handle() {
  if (thread_.joinable()) thread_.join();
}

bool run_handle::cancel() {
  if (!state_) return false;
  std::lock_guard lock(state_->mu);
  if (state_->done) return false;
  return state_->stop.request_stop();
}

const run_result& run_handle::wait() {
  if (!state_) throw std::logic_error("run_handle::wait: an empty handle");
  if (thread_.joinable()) thread_.join();
  if (state_->crashed) std::rethrow_exception(state_->crashed);
  return state_->result;
}

retry_policy run_supervisor::default_policy() {
  using namespace std::chrono_literals;
  return retry_policy{}
      .stop(stop::after_attempts(6))
      .backoff(backoff::exponential(2s, 2.0, 32s))
      .jitter(jitter::none());
}

run_supervisor::run_supervisor(retry_policy policy) : policy_(std::move(policy)) {}

run_supervisor::~run_supervisor() {
  std::lock_guard lock(mu_);
  for (auto& [key, e] : active_) e->stop.request_stop();
}

std::uint64_t run_supervisor::subscribe(std::function<void(const run_event&)> subscriber) {
  std::lock_guard lock(subscribers_mu_);
  const auto id = next_subscriber_++;
  subscribers_.emplace_back(
      id, std::make_shared<std::function<void(const run_event&)>>(std::move(subscriber)));
  return id;
}

void run_supervisor::unsubscribe(std::uint64_t id) {
  std::lock_guard lock(subscribers_mu_);
  std::erase_if(subscribers_, [id](const auto& s) { return s.first == id; });
}

void run_supervisor::emit(const run_event& ev) {
  decltype(subscribers_) snapshot;
  {
    std::lock_guard lock(subscribers_mu_);
    snapshot = subscribers_;
  }
  for (const auto& [id, fn] : snapshot) {
    try {
      (*fn)(ev);
    } catch (...) {  // NOLINT(bugprone-empty-catch): a subscriber cannot break a run
    }
  }
}

std::shared_ptr<run_supervisor::entry> run_supervisor::claim(const std::string& key) {
  std::lock_guard lock(mu_);
  if (const auto it = active_.find(key); it != active_.end()) {
    throw run_busy_error(key, it->second->run_ids.empty() ? "" : it->second->run_ids.back());
  }
  auto e = std::make_shared<entry>();
  active_.emplace(key, e);
  return e;
}

void run_supervisor::release(const std::string& key, const std::shared_ptr<entry>& e) {
  std::lock_guard lock(mu_);
  if (const auto it = active_.find(key); it != active_.end() && it->second == e) active_.erase(it);
}

namespace {
void check_spec(const run_spec& spec) {
  if (spec.key.empty()) throw std::invalid_argument("run_spec.key: empty; a run needs a key");
  if (!spec.attempt) {
    throw std::invalid_argument("run_spec.attempt: empty; a run needs an attempt function");
  }
}
}  // namespace

run_result run_supervisor::run(run_spec spec) {
  check_spec(spec);
  const auto e = claim(spec.key);
  try {
    return execute(spec, e);
  } catch (...) {
    release(spec.key, e);
    throw;
  }
}

run_handle run_supervisor::start(run_spec spec) {
  check_spec(spec);
  run_handle h;
  h.key_ = spec.key;
  h.state_ = std::make_shared<run_handle::shared>();
  const auto e = claim(spec.key);
  h.state_->stop = e->stop;
  try {
    h.thread_ = std::thread([this, e, st = h.state_, spec = std::move(spec)]() mutable {
      run_result r;
      std::exception_ptr crashed;
      try {
        r = execute(spec, e);
      } catch (...) {
        release(spec.key, e);
        crashed = std::current_exception();
      }
      std::lock_guard lock(st->mu);
      st->result = std::move(r);
      st->crashed = crashed;
      st->done = true;
    });
  } catch (...) {
    release(h.key_, e);
    throw;
  }
  return h;
}

bool run_supervisor::cancel(std::string_view key) {
  std::lock_guard lock(mu_);
  const auto it = active_.find(key);
  if (it == active_.end()) return false;
  it->second->stop.request_stop();
  return true;
}

bool run_supervisor::cancel(std::string_view key, std::string_view run_id) {
  std::lock_guard lock(mu_);
  const auto it = active_.find(key);
  if (it == active_.end()) return false;
  const auto& ids = it->second->run_ids;
  if (std::find(ids.begin(), ids.end(), run_id) == ids.end()) return false;  // stale
  it->second->stop.request_stop();
  return true;
}

bool run_supervisor::active(std::string_view key) const {
  std::lock_guard lock(mu_);
  return active_.find(key) != active_.end();
}

std::optional<std::string> run_supervisor::current_run_id(std::string_view key) const {
  std::lock_guard lock(mu_);
  const auto it = active_.find(key);
  if (it == active_.end() || it->second->run_ids.empty()) return std::nullopt;
  return it->second->run_ids.back();
}

run_result run_supervisor::execute(run_spec& spec, const std::shared_ptr<entry>& e) {
  const std::stop_token stop = e->stop.get_token();
  const auto limit = policy_.stop().max_attempts();
  const int max_retries = limit ? *limit - 1 : 0;
  // The run is the retry layer (never nested: the calls inside a run are
  // other logical calls). The engine decides; this loop runs the phases.
  const call_options options{.stop = stop};
  retry_call call(policy_, options, {.eager_start = true, .nested = 0});
  run_result res;

  // Every way out releases the key first, so a subscriber reacting to the
  // last event can start the next run under it.
  const auto end = [&](run_event ev) {
    release(spec.key, e);
    emit(ev);
    return res;
  };
  const auto cancelled = [&](run_phase phase) {
    call.end(stop_reason::cancelled);
    res.state = run_result::status::cancelled;
    return end(run_cancelled{spec.key, res.run_id, res.attempts, phase});
  };
  const auto failed = [&](run_failure why, std::exception_ptr err) {
    call.end(
        stop_reason::permanent_error);  // a start or cleanup failure; no effect after a give-up
    res.state = run_result::status::failed;
    res.failure = why;
    res.error = err;
    return end(run_failed{spec.key, res.run_id, detail::describe(err), res.attempts, why});
  };

  call_step step = call.start();
  if (step.done()) {
    if (step.reason == stop_reason::cancelled) return cancelled(run_phase::starting);
    return failed(failure_for(step.reason), call.give_up_error(nullptr));  // throttled
  }
  for (;;) {
    const int attempt = call.attempt();
    if (stop.stop_requested()) return cancelled(run_phase::starting);
    std::string run_id;
    try {
      run_id = spec.start ? spec.start(spec.key, attempt) : default_run_id(spec.key, attempt);
    } catch (...) {
      return failed(run_failure::start_failed, std::current_exception());
    }
    {
      std::lock_guard lock(mu_);
      e->run_ids.push_back(run_id);
    }
    res.run_id = run_id;
    if (stop.stop_requested()) return cancelled(run_phase::starting);

    res.attempts = attempt;
    emit(run_started{spec.key, run_id, attempt});
    const run_context ctx{spec.key, run_id, attempt, stop};
    std::exception_ptr err;
    try {
      spec.attempt(ctx);
    } catch (...) {
      err = std::current_exception();
    }
    if (!err) {
      call.succeeded();
      res.state = run_result::status::succeeded;
      return end(run_succeeded{spec.key, run_id, attempt});
    }
    // Whatever an attempt that was asked to stop throws, the run was cancelled.
    if (stop.stop_requested()) return cancelled(run_phase::attempt);

    const std::string cause = call.observed() ? detail::describe(err) : std::string();
    step = call.failed(classify_exception(policy_, err), {.cause = cause});
    if (!step.wait()) return failed(failure_for(step.reason), err);

    if (spec.cleanup) {
      try {
        spec.cleanup(ctx, err);
      } catch (...) {
        return failed(run_failure::cleanup_failed, std::current_exception());
      }
    }
    if (stop.stop_requested()) return cancelled(run_phase::cleanup);

    emit(run_retrying{spec.key, run_id, attempt, max_retries, step.delay, detail::describe(err)});
    // The wait ends at once on a cancel; every wake checks again.
    step = sleep_then_resume(call, step);
    if (step.done()) {
      if (step.reason == stop_reason::cancelled) return cancelled(run_phase::backoff);
      return failed(failure_for(step.reason), err);  // the throttle refused the next attempt
    }
  }
}

}  // namespace rebound
