// The soak: mixed traffic through rebound for a fixed time against the fault
// server on loopback, sampling what would show a leak.
//
//   rebound_soak SECONDS [--json FILE]
//
// Four kinds of traffic run at once, each on its own thread, until the time
// is up:
//   - a blocking HTTP client through a policy with a shared token bucket and
//     attempt timeouts, on routes that fail in every way the fault server
//     can (503 for a while, 429 with Retry-After, connections reset
//     mid-body, hangs past the attempt timeout, 503 forever);
//   - an async HTTP client (Asio, coroutines) on the same routes;
//   - rebound::pipeline (total timeout, retry, circuit breaker) around a call
//     that fails a third of the time and takes its attempt context, so every
//     attempt arms a timer on the process-wide timer thread;
//   - async_retry on its own io_context, with attempt timeouts on Asio timers.
// Every second it samples the resident set (/proc/self/statm), the threads
// (/proc/self/task) and the calls waiting on the timer thread. At the end it
// checks (exit status 1 when not):
//   - memory is flat: the last quarter's peak RSS is within 5% + 4 MiB of the
//     second quarter's (the first quarter warms up: pools, arenas, caches);
//     skipped under AddressSanitizer, whose quarantine grows by design (its
//     leak checker runs instead);
//   - no thread leaks: with the traffic stopped and its clients gone, the
//     process has exactly the threads it had before the traffic began;
//   - no timer leaks: no call waits on the timer thread once the traffic
//     has stopped;
//   - nothing unexpected reached a caller: every call ended in a response,
//     a transport error, retry_error or circuit_open_error.
// Real time: this is a run against a real server over real sockets; it has
// no other way to show memory over time.
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fault_server.hpp"
#include "rebound/async.hpp"
#include "rebound/http/async_client.hpp"
#include "rebound/http/client.hpp"
#include "rebound/pipeline.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define REBOUND_SOAK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REBOUND_SOAK_ASAN 1
#endif
#endif

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;  // the soak measures real time: see above

long rss_kib() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

int threads() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/task")) {
    while (const dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    closedir(d);
  }
  return n;
}

struct sample {
  double t;
  long rss;
  int threads;
  std::size_t timers;
  long calls;
};

struct tally {
  std::atomic<long> calls{0}, ok{0}, gave_up{0}, transport{0}, circuit_open{0}, unexpected{0};
};

rebound::retry_policy http_policy(const std::shared_ptr<rebound::retry_budget>& budget) {
  return rebound::retry_policy{}
      .stop(rebound::stop::after_attempts(4))
      .backoff(rebound::backoff::exponential(5ms, 2.0, 40ms))
      .jitter(rebound::jitter::full())
      .attempt_timeout(150ms)
      .budget(budget);
}

// The route for call n: every fault the fault server has, and plain success.
std::string route(const rebound::fault::server& s, long n, const char* who) {
  const std::string key = std::string(who) + std::to_string(n);
  switch (n % 8) {
    case 0:
      return s.url("/resume/" + key + "?ms=20");
    case 1:
      return s.url("/retry-after/" + key + "?seconds=0");
    case 2:
      return s.url("/reset/" + key + "?times=1&bytes=100");
    case 3:
      return s.url("/hang/" + key + "?ms=300");  // past the attempt timeout
    case 4:
      return s.url("/status/503");  // never clears: the budget and stop rule end it
    case 5:
      return s.url("/slow/" + key + "?bytes=2000&ms=20");
    default:
      return s.url("/status/200");
  }
}

void blocking_http(const rebound::fault::server& s, const std::atomic<bool>& stop, tally& t,
                   const std::shared_ptr<rebound::retry_budget>& budget) {
  rebound::http::client c({.policy = http_policy(budget)});
  for (long n = 0; !stop; ++n) {
    ++t.calls;
    try {
      const auto r = c.get(route(s, n, "b"));
      ++(r.status == 200 ? t.ok : t.gave_up);
    } catch (const rebound::http::transport_error&) {
      ++t.transport;
    } catch (const rebound::retry_error&) {
      ++t.gave_up;
    } catch (...) {
      ++t.unexpected;
    }
  }
}

void async_http(const rebound::fault::server& s, const std::atomic<bool>& stop, tally& t,
                const std::shared_ptr<rebound::retry_budget>& budget) {
  asio::io_context io;
  rebound::http::async_client c(io.get_executor(), {.policy = http_policy(budget)});
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (long n = 0; !stop; ++n) {
          ++t.calls;
          try {
            const auto r = co_await c.get(route(s, n, "a"));
            ++(r.status == 200 ? t.ok : t.gave_up);
          } catch (const rebound::http::transport_error&) {
            ++t.transport;
          } catch (const rebound::retry_error&) {
            ++t.gave_up;
          } catch (...) {
            ++t.unexpected;
          }
        }
      },
      [&](const std::exception_ptr& e) {
        if (e) ++t.unexpected;
      });
  io.run();
}

void through_pipeline(const std::atomic<bool>& stop, tally& t) {
  auto breaker = std::make_shared<rebound::circuit_breaker>(
      rebound::breaker_options{.failure_threshold = 8, .open_duration = 5ms});
  const rebound::pipeline p(rebound::retry_policy{}
                                .stop(rebound::stop::after_attempts(3))
                                .backoff(rebound::backoff::constant(0ms))
                                .attempt_timeout(50ms),
                            breaker, 1s);
  std::uint64_t x = 88172645463325252ULL;  // xorshift: which calls fail
  for (long n = 0; !stop; ++n) {
    ++t.calls;
    try {
      const int v = p.execute([&](const rebound::attempt&) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (x % 3 == 0) throw std::runtime_error("transient");
        return 1;
      });
      t.ok += v;
    } catch (const rebound::circuit_open_error&) {
      ++t.circuit_open;
    } catch (const std::runtime_error&) {
      ++t.gave_up;  // the last attempt's own error (or retry_error)
    } catch (...) {
      ++t.unexpected;
    }
  }
}

void async_timers(const std::atomic<bool>& stop, tally& t) {
  asio::io_context io;
  const auto policy = rebound::retry_policy{}
                          .stop(rebound::stop::after_attempts(3))
                          .backoff(rebound::backoff::constant(1ms))
                          .attempt_timeout(2ms);
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (long n = 0; !stop; ++n) {
          ++t.calls;
          try {
            const int v = co_await rebound::async_retry(
                policy, [&, n](const rebound::async_attempt& a) -> asio::awaitable<int> {
                  // Every other first attempt outlives its timeout.
                  if (n % 2 == 0 && a.number() == 1) {
                    asio::steady_timer timer(co_await asio::this_coro::executor, 10ms);
                    co_await timer.async_wait(asio::use_awaitable);
                  }
                  co_return 1;
                });
            t.ok += v;
          } catch (const rebound::retry_error&) {
            ++t.gave_up;
          } catch (...) {
            ++t.unexpected;
          }
        }
      },
      [&](const std::exception_ptr& e) {
        if (e) ++t.unexpected;
      });
  io.run();
}

long peak(const std::vector<sample>& s, std::size_t from, std::size_t to) {
  long p = 0;
  for (std::size_t i = from; i < to && i < s.size(); ++i) p = std::max(p, s[i].rss);
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: rebound_soak SECONDS [--json FILE]\n");
    return 2;
  }
  const int seconds = std::atoi(argv[1]);
  if (seconds < 4 || seconds > 3600) {
    std::fprintf(stderr, "rebound_soak: SECONDS must be 4..3600\n");
    return 2;
  }
  const char* json = argc >= 4 && std::string(argv[2]) == "--json" ? argv[3] : nullptr;

  rebound::fault::server server;
  // The timer thread and the server's pool (started by its first request,
  // once it listens) exist before the baseline.
  (void)rebound::retry(rebound::retry_policy{}.attempt_timeout(1s),
                       [](const rebound::attempt&) { return 0; });
  {
    rebound::http::client warm;
    (void)warm.get(server.url("/status/200"));
  }
  const int baseline_threads = threads();

  std::atomic<bool> stop{false};
  tally http_sync, http_async, pipe, timers;
  auto budget = std::make_shared<rebound::token_bucket_budget>();
  std::vector<std::thread> traffic;
  traffic.emplace_back([&] { blocking_http(server, stop, http_sync, budget); });
  traffic.emplace_back([&] { async_http(server, stop, http_async, budget); });
  traffic.emplace_back([&] { through_pipeline(stop, pipe); });
  traffic.emplace_back([&] { async_timers(stop, timers); });

  std::vector<sample> samples;
  const auto start = steady::now();
  const auto total = [&] { return http_sync.calls + http_async.calls + pipe.calls + timers.calls; };
  for (int i = 1; i <= seconds; ++i) {
    std::this_thread::sleep_until(start + std::chrono::seconds(i));  // the sampling period
    // The fault server remembers every key and path it saw (each call uses
    // a fresh key): forgotten each second, so that its bookkeeping, which
    // shares this process, is not mistaken for rebound's.
    server.reset();
    samples.push_back({static_cast<double>(i), rss_kib(), threads(),
                       rebound::detail::pending_timer_calls(), total()});
  }
  stop = true;
  for (auto& t : traffic) t.join();
  budget.reset();
  // Calls in flight when the traffic stopped may leave a timer due within
  // their attempt timeout (150 ms at most): each is cancelled or runs then.
  std::size_t timers_left = rebound::detail::pending_timer_calls();
  for (int i = 0; i < 50 && timers_left > 0; ++i) {
    std::this_thread::sleep_for(10ms);  // bounded: 500 ms
    timers_left = rebound::detail::pending_timer_calls();
  }
  const int threads_after = threads();

  const std::size_t n = samples.size();
  const long warm = peak(samples, n / 4, n / 2);
  const long last = peak(samples, 3 * n / 4, n);
  bool ok = true;
  std::printf("%8s %10s %8s %7s %10s\n", "t (s)", "RSS (KiB)", "threads", "timers", "calls");
  for (std::size_t i = 0; i < n; i += std::max<std::size_t>(1, n / 10)) {
    std::printf("%8.0f %10ld %8d %7zu %10ld\n", samples[i].t, samples[i].rss, samples[i].threads,
                samples[i].timers, samples[i].calls);
  }
  std::printf("%8.0f %10ld %8d %7zu %10ld\n", samples.back().t, samples.back().rss,
              samples.back().threads, samples.back().timers, samples.back().calls);
  const auto show = [](const char* name, const tally& t) {
    std::printf(
        "%-14s calls %8ld  ok %8ld  gave up %7ld  transport %6ld  open %6ld  unexpected %ld\n",
        name, t.calls.load(), t.ok.load(), t.gave_up.load(), t.transport.load(),
        t.circuit_open.load(), t.unexpected.load());
  };
  show("http (sync)", http_sync);
  show("http (async)", http_async);
  show("pipeline", pipe);
  show("async timers", timers);
#ifdef REBOUND_SOAK_ASAN
  std::printf(
      "RSS: second quarter peak %ld KiB, last quarter peak %ld KiB (not checked under "
      "AddressSanitizer)\n",
      warm, last);
#else
  const long growth_allowed = warm / 20 + 4096;
  std::printf("RSS: second quarter peak %ld KiB, last quarter peak %ld KiB (allowed: +%ld)\n", warm,
              last, growth_allowed);
  if (last > warm + growth_allowed) {
    std::printf("FAIL: memory grew\n");
    ok = false;
  }
#endif
  std::printf("threads: %d before the traffic, %d after it\n", baseline_threads, threads_after);
  if (threads_after != baseline_threads) {
    std::printf("FAIL: threads leaked\n");
    ok = false;
  }
  std::printf("timer calls waiting after the traffic: %zu\n", timers_left);
  if (timers_left != 0) {
    std::printf("FAIL: timers leaked\n");
    ok = false;
  }
  const long unexpected =
      http_sync.unexpected + http_async.unexpected + pipe.unexpected + timers.unexpected;
  if (unexpected != 0) {
    std::printf("FAIL: %ld unexpected errors reached callers\n", unexpected);
    ok = false;
  }
  for (const tally* t : {&http_sync, &http_async, &pipe, &timers}) {
    if (t->calls < 10 || t->ok == 0) {
      std::printf("FAIL: a kind of traffic made no progress\n");
      ok = false;
    }
  }
  if (json != nullptr) {
    std::ofstream out(json);
    out << "{\"seconds\": " << seconds << ", \"rss_kib\": [";
    for (std::size_t i = 0; i < n; ++i) out << (i ? ", " : "") << samples[i].rss;
    out << "], \"threads\": [";
    for (std::size_t i = 0; i < n; ++i) out << (i ? ", " : "") << samples[i].threads;
    out << "], \"timers\": [";
    for (std::size_t i = 0; i < n; ++i) out << (i ? ", " : "") << samples[i].timers;
    out << "], \"calls\": " << total() << ", \"ok\": " << (ok ? "true" : "false") << "}\n";
  }
  std::printf("%s\n", ok ? "soak: OK" : "soak: FAILED");
  return ok ? 0 : 1;
}
