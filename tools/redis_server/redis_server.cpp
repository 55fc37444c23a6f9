#include "redis_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

namespace rebound::testing {
namespace {

using namespace std::chrono_literals;

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("redis_server: no free port: " + std::string(strerror(errno)));
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// True when a Redis on 127.0.0.1:port answers PING (NOAUTH counts: it is up).
bool accepting(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  timeval tv{0, 200000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  if (ok) {
    const char ping[] = "PING\r\n";
    char buf[64] = {};
    ok = ::send(fd, ping, sizeof ping - 1, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof ping - 1) &&
         ::recv(fd, buf, sizeof buf - 1, 0) > 0 && (buf[0] == '+' || buf[0] == '-');
  }
  ::close(fd);
  return ok;
}

}  // namespace

redis_server::redis_server() : redis_server(options{}) {}

redis_server::redis_server(options o) : options_(std::move(o)), port_(free_port()) { start(); }

redis_server::~redis_server() {
  if (pid_ > 0) {
    ::kill(pid_, SIGCONT);
    stop();
  }
  if (!config_file_.empty()) ::unlink(config_file_.c_str());
}

void redis_server::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void redis_server::start() {
  if (pid_ > 0) return;
  std::vector<std::string> argv{"redis-server",
                                "--port",
                                std::to_string(port_),
                                "--bind",
                                "127.0.0.1",
                                "--save",
                                "",
                                "--appendonly",
                                "no",
                                "--daemonize",
                                "no",
                                "--loglevel",
                                "warning",
                                "--logfile",
                                ""};
  if (!options_.password.empty()) {
    argv.emplace_back("--requirepass");
    argv.push_back(options_.password);
  }
  if (options_.replica_of > 0) {
    argv.insert(argv.end(), {"--replicaof", "127.0.0.1", std::to_string(options_.replica_of)});
  }
  if (options_.sentinel_for > 0) {
    // A Sentinel rewrites its config file: a fresh one of its own.
    if (config_file_.empty()) {
      config_file_ = "/tmp/rebound-sentinel-" + std::to_string(::getpid()) + "-" +
                     std::to_string(port_) + ".conf";
      std::FILE* f = std::fopen(config_file_.c_str(), "w");
      if (f == nullptr) {
        throw std::runtime_error("redis_server: cannot write " + config_file_ + ": " +
                                 strerror(errno));
      }
      const std::string& m = options_.master_name;
      std::fprintf(f,
                   "port %d\nbind 127.0.0.1\ndaemonize no\nlogfile \"\"\ndir /tmp\n"
                   "sentinel monitor %s 127.0.0.1 %d 2\n"
                   "sentinel down-after-milliseconds %s 400\n"
                   "sentinel failover-timeout %s 3000\n"
                   "sentinel parallel-syncs %s 1\n",
                   port_, m.c_str(), options_.sentinel_for, m.c_str(), m.c_str(), m.c_str());
      std::fclose(f);
    }
    argv = {"redis-server", config_file_, "--sentinel", "--loglevel", "warning"};
  }
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("redis_server: fork: " + std::string(strerror(errno)));
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // dies with the test process
    if (::getppid() != parent) ::_exit(1);
    const int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      ::dup2(null, 0);
      ::dup2(null, 1);
    }
    ::execvp("redis-server", args.data());
    ::_exit(127);
  }
  pid_ = pid;
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (!accepting(port_)) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error(
          "redis_server: redis-server exited at start (is it installed? scripts/test installs "
          "redis-server)");
    }
    if (std::chrono::steady_clock::now() > until) {
      stop();
      throw std::runtime_error("redis_server: no answer on port " + std::to_string(port_) +
                               " within 10s");
    }
    std::this_thread::sleep_for(5ms);  // waiting on another process
  }
}

void redis_server::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGCONT);
  ::kill(pid_, SIGTERM);
  for (int i = 0; i < 250; ++i) {  // bounded: 5 s
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(20ms);  // waiting on another process
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void redis_server::pause() {
  if (pid_ > 0) ::kill(pid_, SIGSTOP);
}

void redis_server::resume() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

}  // namespace rebound::testing
