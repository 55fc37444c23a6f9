// The AWS "Exponential Backoff And Jitter" contention experiment.
#include <algorithm>
#include <atomic>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>

#include "rebound/call.hpp"
#include "rebound/sim/engine.hpp"
#include "rebound/sim/scenarios.hpp"
#include "seed.hpp"

namespace rebound::sim {

namespace {

using namespace std::chrono_literals;
using detail::mix;

// One trial: N clients racing to write one row.
class contention_trial {
 public:
  contention_trial(const contention_options& o, const strategy& s, int clients, std::uint64_t seed)
      : options_(o), eng_(seed), policy_(s.make(eng_)) {
    clients_.reserve(static_cast<std::size_t>(clients));
    for (int i = 0; i < clients; ++i) {
      clients_.push_back(
          client{retry_call(policy_, {.seed = mix(seed, i)}, {.nested = 0}), 0, false});
      (void)clients_.back().call.start();
    }
  }

  void run() {
    for (std::size_t i = 0; i < clients_.size(); ++i) send_read(i);
    eng_.run();
  }

  std::uint64_t writes = 0;
  std::size_t done = 0;
  time_point last_done{};
  [[nodiscard]] std::uint64_t events() const { return eng_.events_run(); }
  [[nodiscard]] duration elapsed() const { return last_done - eng_.start(); }

 private:
  struct client {
    retry_call call;
    std::uint64_t read_version;
    bool finished;
  };

  duration net() { return eng_.abs_normal(options_.network_mean, options_.network_sd); }
  void send_read(std::uint64_t i) { eng_.after<&contention_trial::server_read>(net(), this, i); }
  void server_read(std::uint64_t i) {
    clients_[i].read_version = version_;
    eng_.after<&contention_trial::client_got_read>(net(), this, i);
  }
  void client_got_read(std::uint64_t i) {
    ++writes;
    eng_.after<&contention_trial::server_write>(net(), this, i);
  }
  void server_write(std::uint64_t i) {
    // Write-if-version-matches: the first writer since the read wins.
    const bool ok = clients_[i].read_version == version_;
    if (ok) ++version_;
    eng_.after<&contention_trial::client_got_write>(net(), this, (i << 1) | (ok ? 1 : 0));
  }
  void client_got_write(std::uint64_t arg) {
    const std::uint64_t i = arg >> 1;
    client& c = clients_[i];
    if ((arg & 1) != 0) {
      c.call.succeeded();
      c.finished = true;
      ++done;
      last_done = eng_.now();
      return;
    }
    const call_step step = c.call.failed(verdict::transient());
    if (!step.wait()) {
      c.finished = true;  // gave up (only with a policy that stops)
      last_done = eng_.now();
      return;
    }
    eng_.at<&contention_trial::send_read_now>(step.until, this, i);
  }
  void send_read_now(std::uint64_t i) {
    client& c = clients_[i];
    if (!c.call.resume(true).attempt()) {
      c.finished = true;  // refused (a throttle)
      last_done = eng_.now();
      return;
    }
    send_read(i);
  }

  const contention_options& options_;
  engine eng_;
  retry_policy policy_;
  std::vector<client> clients_;
  std::uint64_t version_ = 0;
};

}  // namespace

std::vector<strategy> aws_strategies() {
  const auto forever = stop::after_attempts(1'000'000);
  const auto exp = backoff::exponential(5ms, 2.0, 2s);
  auto make = [forever](backoff b, rebound::jitter j) {
    return [=](clock& c) { return retry_policy{}.stop(forever).backoff(b).jitter(j).clock(c); };
  };
  return {
      {"no backoff", make(backoff::constant(0s), jitter::none()), std::nullopt},
      {"exponential", make(exp, jitter::none()), std::nullopt},
      {"full jitter", make(exp, jitter::full()), std::nullopt},
      {"equal jitter", make(exp, jitter::equal()), std::nullopt},
      {"decorrelated jitter", make(exp, jitter::decorrelated()), std::nullopt},
  };
}

contention_result run_contention(const contention_options& o) {
  contention_result r;
  const auto strategies = o.strategies.empty() ? aws_strategies() : o.strategies;
  for (const auto& s : strategies) r.strategies.push_back(s.name);
  const int step = std::max(1, o.clients_step);
  std::vector<int> sizes;
  for (int n = std::max(1, o.clients_from); n <= o.clients_to; n += step) sizes.push_back(n);
  // Every (size, strategy) point is independent: its trials run in order on
  // their own seeded streams, so any number of threads gives the same numbers.
  const std::size_t count = sizes.size() * strategies.size();
  r.points.resize(count);
  std::vector<std::uint64_t> events(count, 0);
  const auto run_point = [&](std::size_t k) {
    const int n = sizes[k / strategies.size()];
    const std::size_t si = k % strategies.size();
    double completion_ms = 0;
    double writes = 0;
    double max_writes = 0;
    for (int t = 0; t < o.trials; ++t) {
      contention_trial trial(
          o, strategies[si], n,
          mix(mix(o.seed, static_cast<std::uint64_t>(n)), static_cast<std::uint64_t>(t)));
      trial.run();
      events[k] += trial.events();
      completion_ms += std::chrono::duration<double, std::milli>(trial.elapsed()).count();
      writes += static_cast<double>(trial.writes);
      max_writes = std::max(max_writes, static_cast<double>(trial.writes));
    }
    const double trials = std::max(1, o.trials);
    r.points[k] = {n, strategies[si].name, completion_ms / trials, writes / trials, max_writes};
  };
  int threads = o.threads;
  if (threads <= 0) {
    threads = static_cast<int>(std::min(8U, std::max(1U, std::thread::hardware_concurrency())));
  }
  threads = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(threads), count));
  // Largest sizes first (they take longest), handed out one at a time.
  std::atomic<std::size_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mu;
  const auto worker = [&] {
    for (std::size_t i = next++; i < count; i = next++) {
      try {
        run_point(count - 1 - i);
      } catch (...) {
        std::lock_guard lock(failure_mu);
        if (!failure) failure = std::current_exception();
      }
    }
  };
  if (threads <= 1) {
    worker();
  } else {
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
    worker();
    for (auto& t : pool) t.join();
  }
  if (failure) std::rethrow_exception(failure);
  for (const auto e : events) r.events += e;
  return r;
}

}  // namespace rebound::sim
