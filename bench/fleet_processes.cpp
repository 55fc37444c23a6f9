// The fleet budget with many real processes: 16 and 32 rebound-fleet-worker
// processes share one ratio budget in a real redis-server, in front of the
// fault server during an outage. Prints a table (docs/redis.md records it):
// amplification (attempts / requests) per mode, the retry decision's
// latency, and Redis commands per second per process.
//   build/bench/rebound_fleet_bench [SECONDS] [PROCESSES...]
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "fault_server.hpp"
#include "fleet_run.hpp"
#include "redis_server.hpp"

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 5;
  std::vector<int> sizes;
  for (int i = 2; i < argc; ++i) sizes.push_back(std::atoi(argv[i]));
  if (sizes.empty()) sizes = {16, 32};
  constexpr double rate = 40;
  rebound::fault::server server;
  rebound::testing::redis_server redis;
  std::printf(
      "| processes | mode | requests | attempts | amplification | decision p50 (us) | "
      "decision p99 (us) | Redis commands/s per process |\n|---|---|---|---|---|---|---|---|\n");
  for (const int n : sizes) {
    for (const std::string mode : {"local", "shared", "down-share", "down-whole"}) {
      const std::string path = "/resume/" + mode + "-" + std::to_string(n);
      const auto r = rebound::fleet::run_fleet(REBOUND_FLEET_WORKER, mode,
                                               server.url(path + "?ms=600000&status=503"), rate,
                                               seconds, n, redis.port(), 120);
      std::printf("| %d | %s | %lld | %lld | %.3f | %.1f | %.1f | %.1f |%s\n", n, mode.c_str(),
                  r.requests, r.attempts, r.amplification(), r.p50_us, r.p99_us,
                  r.redis_commands_per_s, r.failed_processes > 0 ? " (some processes failed)" : "");
      std::fflush(stdout);
    }
  }
  return 0;
}
