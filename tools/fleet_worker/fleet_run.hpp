// Runs a fleet of rebound-fleet-worker processes against one fault-server
// route and adds up what they did. Shared by tests/fleet/fleet_test.cpp and
// bench/fleet_processes.cpp. Not installed.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace rebound::fleet {

struct fleet_result {
  std::string mode;
  int processes = 0;
  long long requests = 0;
  long long attempts = 0;
  long long retries = 0;
  double p50_us = 0;                ///< the median of the processes' decision medians
  double p99_us = 0;                ///< the worst of the processes' decision p99s
  double redis_commands_per_s = 0;  ///< per process, mean
  double seconds = 0;
  int failed_processes = 0;
  /// Each granted retry's time, in ms after the fleet started (all processes).
  std::vector<long long> grants_ms;
  /// When each event ran, in ms after the fleet started.
  std::vector<long long> events_ms;
  /// Retries granted in [from_ms, to_ms).
  [[nodiscard]] long long grants_between(long long from_ms, long long to_ms) const {
    return std::count_if(grants_ms.begin(), grants_ms.end(),
                         [&](long long t) { return t >= from_ms && t < to_ms; });
  }
  [[nodiscard]] double amplification() const {
    return requests > 0 ? static_cast<double>(attempts) / static_cast<double>(requests) : 0;
  }
};

/// Something the harness does to the fleet's surroundings while it runs
/// (kill Redis, start it again), `at_s` seconds after the start.
struct fleet_event {
  double at_s;
  std::function<void()> run;
};

/// Starts `n` workers at once, runs `events` at their times (real time: the
/// workers are real processes), waits for them (each bounded by `limit_s`
/// seconds, then killed), and sums their reports.
inline fleet_result run_fleet(const std::string& worker, const std::string& mode,
                              const std::string& url, double rate, double seconds, int n,
                              int redis_port, int limit_s = 60,
                              const std::vector<fleet_event>& events = {}) {
  const auto started = std::chrono::steady_clock::now();
  struct child {
    pid_t pid;
    int out;
  };
  std::vector<child> kids;
  for (int i = 0; i < n; ++i) {
    int p[2];
    if (::pipe(p) != 0) throw std::runtime_error("pipe failed");
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(p[1], 1);
      ::close(p[0]);
      ::close(p[1]);
      const std::vector<std::string> args{worker,
                                          mode,
                                          url,
                                          std::to_string(rate),
                                          std::to_string(seconds),
                                          std::to_string(n),
                                          std::to_string(redis_port)};
      std::vector<char*> argv;
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(worker.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(p[1]);
    kids.push_back({pid, p[0]});
  }
  fleet_result r;
  r.mode = mode;
  r.processes = n;
  const auto ms_since_start = [&](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t - started).count();
  };
  for (const auto& e : events) {
    // A real sleep: the event happens to real processes at a real time.
    std::this_thread::sleep_until(started + std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::duration<double>(e.at_s)));
    r.events_ms.push_back(ms_since_start(std::chrono::steady_clock::now()));
    e.run();
  }
  std::vector<double> p50s;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(limit_s);
  for (const auto& k : kids) {
    std::string out;
    char buf[512];
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      pollfd pf{k.out, POLLIN, 0};
      // A bounded wait on another process's output.
      if (left.count() <= 0 || ::poll(&pf, 1, static_cast<int>(left.count())) <= 0) {
        ::kill(k.pid, SIGKILL);
        break;
      }
      const auto got = ::read(k.out, buf, sizeof buf);
      if (got <= 0) break;
      out.append(buf, static_cast<std::size_t>(got));
    }
    ::close(k.out);
    int status = 0;
    ::waitpid(k.pid, &status, 0);
    const auto j = nlohmann::json::parse(out, nullptr, false);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || j.is_discarded()) {
      ++r.failed_processes;
      continue;
    }
    r.requests += j["requests"].get<long long>();
    r.attempts += j["attempts"].get<long long>();
    r.retries += j["retries"].get<long long>();
    if (j.contains("grants_ms")) {
      // The workers' clock is the machine's monotonic clock, as steady_clock is here.
      const long long origin =
          std::chrono::duration_cast<std::chrono::milliseconds>(started.time_since_epoch()).count();
      for (const auto& t : j["grants_ms"]) r.grants_ms.push_back(t.get<long long>() - origin);
    }
    p50s.push_back(j["p50_us"].get<double>());
    r.p99_us = std::max(r.p99_us, j["p99_us"].get<double>());
    const double s = j["seconds"].get<double>();
    r.seconds = std::max(r.seconds, s);
    if (s > 0) r.redis_commands_per_s += j["redis_commands"].get<double>() / s / n;
  }
  if (!p50s.empty()) {
    std::nth_element(p50s.begin(), p50s.begin() + static_cast<std::ptrdiff_t>(p50s.size() / 2),
                     p50s.end());
    r.p50_us = p50s[p50s.size() / 2];
  }
  return r;
}

}  // namespace rebound::fleet
