// Real components for the chaos tests: child processes (nginx, haproxy, load
// generators) on loopback, each bounded in time and stopped afterwards, even
// when the test process dies (PR_SET_PDEATHSIG).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace rebound::chaos {

using namespace std::chrono_literals;

inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("no free port");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

inline bool accepting(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

/// Waits (for real, bounded: another process is starting) until 127.0.0.1:port accepts.
inline void wait_for_port(int port, std::chrono::milliseconds limit = 10s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!accepting(port)) {
    if (std::chrono::steady_clock::now() > until) {
      throw std::runtime_error("nothing accepts on port " + std::to_string(port));
    }
    std::this_thread::sleep_for(10ms);  // polling another process
  }
}

/// A child process with its output in `log`; stopped (SIGTERM, then SIGKILL
/// after a bounded wait) by stop() or the destructor, and by the kernel when
/// this thread's process dies.
class child {
 public:
  child(const std::vector<std::string>& argv, const std::filesystem::path& log) : log_(log) {
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
  }
  child(const child&) = delete;
  child& operator=(const child&) = delete;
  ~child() { stop(); }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 300; ++i) {  // 3 s at most, then SIGKILL
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(10ms);  // waiting on another process
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  /// The exit status, waiting at most `limit` (-1: still running; then killed).
  int wait(std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    int status = 0;
    while (std::chrono::steady_clock::now() < until) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(10ms);  // waiting on another process
    }
    stop();
    return -1;
  }
  [[nodiscard]] std::string output() const {
    std::ifstream in(log_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  [[nodiscard]] int pid() const noexcept { return pid_; }

 private:
  std::filesystem::path log_;
  pid_t pid_ = -1;
};

/// A temporary directory, removed afterwards.
class temp_dir {
 public:
  explicit temp_dir(const std::string& name)
      : path_(std::filesystem::temp_directory_path() /
              (name + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++))) {
    std::filesystem::create_directories(path_ / "tmp");
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::filesystem::path path_;
};

/// Real nginx (Debian's nginx-light) proxying 127.0.0.1:port() to a backend;
/// its access log records the method, path, status and Idempotency-Key of
/// every request it received.
class nginx {
 public:
  explicit nginx(int backend_port) : dir_("rebound-nginx"), port_(free_port()) {
    const auto d = dir_.path().string();
    std::ofstream(dir_.path() / "nginx.conf")
        << "daemon off;\nmaster_process off;\nworker_processes 1;\npid " << d
        << "/nginx.pid;\nerror_log " << d << "/error.log warn;\n"
        << "events { worker_connections 512; }\n"
        << "http {\n"
        << "  log_format rebound '$request_method $request_uri $status $http_idempotency_key';\n"
        << "  access_log " << d << "/access.log rebound;\n"
        << "  client_body_temp_path " << d << "/tmp;\n  proxy_temp_path " << d << "/tmp;\n"
        << "  fastcgi_temp_path " << d << "/tmp;\n  uwsgi_temp_path " << d << "/tmp;\n"
        << "  scgi_temp_path " << d << "/tmp;\n"
        << "  upstream backend { server 127.0.0.1:" << backend_port << "; }\n"
        << "  server {\n    listen 127.0.0.1:" << port_ << ";\n"
        << "    location / { proxy_pass http://backend; proxy_next_upstream off; }\n  }\n}\n";
    proc_ =
        std::make_unique<child>(std::vector<std::string>{"nginx", "-p", d, "-c", d + "/nginx.conf"},
                                dir_.path() / "out.log");
    wait_for_port(port_);
  }
  [[nodiscard]] int port() const noexcept { return port_; }
  [[nodiscard]] std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  /// Lines of the access log ("POST /status/200 502 key").
  [[nodiscard]] std::vector<std::string> access_log() const {
    std::ifstream in(dir_.path() / "access.log");
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  }

 private:
  temp_dir dir_;
  int port_;
  std::unique_ptr<child> proc_;
};

/// Real haproxy proxying 127.0.0.1:port() to a backend it health-checks
/// every 100 ms (a down backend gets 503 at once); it logs every request
/// (HTTP log format) to its stdout, kept in a file.
class haproxy {
 public:
  explicit haproxy(int backend_port) : dir_("rebound-haproxy"), port_(free_port()) {
    std::ofstream(dir_.path() / "haproxy.cfg")
        << "global\n  log stdout format raw local0\n"
        << "defaults\n  mode http\n  log global\n  option httplog\n  retries 0\n"
        << "  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n"
        << "frontend f\n  bind 127.0.0.1:" << port_ << "\n  default_backend b\n"
        << "backend b\n  server s1 127.0.0.1:" << backend_port
        << " check inter 100ms fall 1 rise 1\n";
    proc_ = std::make_unique<child>(
        std::vector<std::string>{"haproxy", "-db", "-f", (dir_.path() / "haproxy.cfg").string()},
        dir_.path() / "out.log");
    wait_for_port(port_);
  }
  [[nodiscard]] int port() const noexcept { return port_; }
  [[nodiscard]] std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  /// Its log lines.
  [[nodiscard]] std::vector<std::string> log() const {
    std::ifstream in(dir_.path() / "out.log");
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  }

 private:
  temp_dir dir_;
  int port_;
  std::unique_ptr<child> proc_;
};

}  // namespace rebound::chaos
