// rebound-fault-server: the fault-injecting HTTP server, as a program.
//   rebound-fault-server [--port N] [--max-time SECONDS]
// Listens on 127.0.0.1 only; prints its URL; stops on SIGINT/SIGTERM or after
// --max-time (default 600 s), so a forgotten server does not linger.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "fault_server.hpp"

int main(int argc, char** argv) {
  int port = 0;
  int max_time = 600;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--port" || a == "--max-time") && i + 1 < argc) {
      char* end = nullptr;
      const long v = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || v < 0 || v > 65535 * (a == "--port" ? 1 : 1000)) {
        std::fprintf(stderr, "rebound-fault-server: %s: \"%s\" is not allowed\n", a.c_str(),
                     argv[i]);
        return 2;
      }
      (a == "--port" ? port : max_time) = static_cast<int>(v);
    } else {
      std::fprintf(stderr, "usage: rebound-fault-server [--port N] [--max-time SECONDS]\n");
      return 2;
    }
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // the server's threads inherit the mask
  try {
    rebound::fault::server s(static_cast<std::uint16_t>(port));
    std::printf("listening on %s\n", s.url("").c_str());
    std::fflush(stdout);
    std::thread limit([&s, &set, max_time] {
      timespec ts{max_time, 0};
      siginfo_t info;
      sigtimedwait(&set, &info, &ts);  // a signal, or the time limit
      s.stop();
    });
    s.wait();
    limit.join();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rebound-fault-server: %s\n", e.what());
    return 1;
  }
  return 0;
}
