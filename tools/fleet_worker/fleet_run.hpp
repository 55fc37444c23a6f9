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
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
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
  [[nodiscard]] double amplification() const {
    return requests > 0 ? static_cast<double>(attempts) / static_cast<double>(requests) : 0;
  }
};

/// Starts `n` workers at once, waits for them (each bounded by `limit_s`
/// seconds, then killed), and sums their reports.
inline fleet_result run_fleet(const std::string& worker, const std::string& mode,
                              const std::string& url, double rate, double seconds, int n,
                              int redis_port, int limit_s = 60) {
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
