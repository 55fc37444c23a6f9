// The gRPC test server and the resetting proxy (echo_server.hpp). A test
// tool: it measures real time, because it stands in for a real server.
#include "echo_server.hpp"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <stdexcept>
#include <thread>

#include "echo.grpc.pb.h"

namespace rebound::testing {

namespace {

using steady = std::chrono::steady_clock;  // a test server's own time

int listen_on_loopback(int& port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("tcp_proxy: socket failed");
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 64) != 0) {
    ::close(fd);
    throw std::runtime_error("tcp_proxy: bind/listen failed");
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

int connect_loopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void reset(int fd) {
  linger l{1, 0};  // close with RST, not FIN
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::shutdown(fd, SHUT_RDWR);
}

// Protobuf wire format, for google.rpc.Status: varint, key, length-delimited.
void varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void field_bytes(std::string& out, int field, const std::string& bytes) {
  varint(out, static_cast<std::uint64_t>(field) << 3 | 2);
  varint(out, bytes.size());
  out += bytes;
}
void field_varint(std::string& out, int field, std::uint64_t v) {
  varint(out, static_cast<std::uint64_t>(field) << 3);
  varint(out, v);
}

}  // namespace

std::string status_with_retry_info(int code, const std::string& message,
                                   std::chrono::milliseconds delay) {
  std::string duration;  // google.protobuf.Duration
  field_varint(duration, 1, static_cast<std::uint64_t>(delay.count() / 1000));
  field_varint(duration, 2, static_cast<std::uint64_t>(delay.count() % 1000 * 1'000'000));
  std::string retry_info;  // google.rpc.RetryInfo
  field_bytes(retry_info, 1, duration);
  std::string any;  // google.protobuf.Any
  field_bytes(any, 1, "type.googleapis.com/google.rpc.RetryInfo");
  field_bytes(any, 2, retry_info);
  std::string status;  // google.rpc.Status
  field_varint(status, 1, static_cast<std::uint64_t>(code));
  field_bytes(status, 2, message);
  field_bytes(status, 3, any);
  return status;
}

// ---- tcp_proxy ----------------------------------------------------------------

struct tcp_proxy::pair {
  int client = -1;
  int server = -1;
  std::atomic<bool> done{false};
  std::thread pump;
};

tcp_proxy::tcp_proxy(int upstream) : upstream_(upstream) {
  listen_fd_ = listen_on_loopback(port_);
  acceptor_ = std::thread([this] { accept_loop(); });
}

tcp_proxy::~tcp_proxy() {
  stop_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);
  acceptor_.join();
  ::close(listen_fd_);
  std::vector<std::shared_ptr<pair>> all;
  {
    std::lock_guard lock(mu_);
    all.swap(pairs_);
  }
  for (auto& p : all) {
    p->done = true;
    ::shutdown(p->client, SHUT_RDWR);
    ::shutdown(p->server, SHUT_RDWR);
    p->pump.join();
    ::close(p->client);
    ::close(p->server);
  }
}

void tcp_proxy::cut_all() {
  std::lock_guard lock(mu_);
  for (auto& p : pairs_) {
    if (p->done.exchange(true)) continue;
    reset(p->client);
    reset(p->server);
  }
}

void tcp_proxy::accept_loop() {
  while (!stop_) {
    pollfd pl{listen_fd_, POLLIN, 0};
    if (::poll(&pl, 1, 50) <= 0) continue;  // a 50 ms tick to see stop_
    const int c = ::accept(listen_fd_, nullptr, nullptr);
    if (c < 0) continue;
    const int s = connect_loopback(upstream_);
    if (s < 0) {
      reset(c);
      ::close(c);
      continue;
    }
    auto p = std::make_shared<pair>();
    p->client = c;
    p->server = s;
    p->pump = std::thread([p] {
      char buf[16384];
      pollfd fds[2] = {{p->client, POLLIN, 0}, {p->server, POLLIN, 0}};
      while (!p->done) {
        if (::poll(fds, 2, 50) <= 0) continue;
        for (int i = 0; i < 2; ++i) {
          if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
          const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
          if (n <= 0) {
            p->done = true;
            ::shutdown(fds[1 - i].fd, SHUT_WR);
            break;
          }
          for (ssize_t sent = 0; sent < n;) {
            const ssize_t w = ::send(fds[1 - i].fd, buf + sent, static_cast<std::size_t>(n - sent),
                                     MSG_NOSIGNAL);  // a reset peer: an error, not SIGPIPE
            if (w <= 0) {
              p->done = true;
              break;
            }
            sent += w;
          }
        }
      }
    });
    std::lock_guard lock(mu_);
    pairs_.push_back(std::move(p));
  }
}

// ---- grpc_echo_server ---------------------------------------------------------

// The callback API: a slow or dropped answer is finished from a thread of
// its own, so no gRPC thread ever sleeps, and the destructor ends and joins
// those threads before it shuts the server down. (The sync API's thread
// manager in gRPC 1.51 could abort in Shutdown: "assertion failed: prior > 0".)
struct grpc_echo_server::impl final : public rebound::test::Echo::CallbackService {
  struct key_state {
    steady::time_point first{};
    int received = 0;
    int cancelled = 0;
    std::vector<std::chrono::milliseconds> deadlines;
    std::vector<int> previous;
  };
  mutable std::mutex mu;
  std::map<std::string, key_state> keys;
  std::function<void()> drop;
  std::unique_ptr<::grpc::Server> server;
  int port = 0;
  std::atomic<bool> stopping{false};
  std::vector<std::thread> later;  // answers finished after a wait (under mu)

  ::grpc::ServerUnaryReactor* Say(::grpc::CallbackServerContext* ctx,
                                  const rebound::test::SayRequest* req,
                                  rebound::test::SayReply* reply) override {
    return handle(ctx, req, reply);
  }
  ::grpc::ServerUnaryReactor* Charge(::grpc::CallbackServerContext* ctx,
                                     const rebound::test::SayRequest* req,
                                     rebound::test::SayReply* reply) override {
    return handle(ctx, req, reply);
  }

  // Finishes `r` from a thread after `wait` returns the status.
  void finish_later(::grpc::ServerUnaryReactor* r, std::function<::grpc::Status()> wait) {
    std::lock_guard lock(mu);
    if (stopping) {
      r->Finish(::grpc::Status(::grpc::StatusCode::UNAVAILABLE, "shutting down"));
      return;
    }
    later.emplace_back([r, wait = std::move(wait)] { r->Finish(wait()); });
  }

  ::grpc::ServerUnaryReactor* handle(::grpc::CallbackServerContext* ctx,
                                     const rebound::test::SayRequest* req,
                                     rebound::test::SayReply* reply) {
    auto* r = ctx->DefaultReactor();
    const auto now = steady::now();
    int n = 0;
    std::chrono::milliseconds since_first{};
    int previous = -1;
    const auto& md = ctx->client_metadata();
    if (const auto it = md.find("grpc-previous-rpc-attempts"); it != md.end()) {
      previous = std::stoi(std::string(it->second.data(), it->second.size()));
    }
    std::function<void()> drop_now;
    {
      std::lock_guard lock(mu);
      auto& k = keys[req->key()];
      if (k.received == 0) k.first = now;
      n = ++k.received;
      since_first = std::chrono::duration_cast<std::chrono::milliseconds>(now - k.first);
      const auto deadline = ctx->deadline();
      k.deadlines.push_back(deadline == std::chrono::system_clock::time_point::max()
                                ? std::chrono::milliseconds(-1)
                                : std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - std::chrono::system_clock::now()));
      k.previous.push_back(previous);
      if (n <= req->drop_times()) drop_now = drop;
    }
    reply->set_text(req->text());
    reply->set_attempt(previous >= 0 ? previous + 1 : 1);
    reply->set_received(n);
    if (req->status() != 0) {
      r->Finish({static_cast<::grpc::StatusCode>(req->status()), "as asked"});
      return r;
    }
    if (req->unavailable_ms() > 0 && since_first.count() < req->unavailable_ms()) {
      r->Finish({::grpc::StatusCode::UNAVAILABLE, "resuming"});
      return r;
    }
    if (n <= req->exhausted_times()) {
      if (!req->pushback().empty())
        ctx->AddTrailingMetadata("grpc-retry-pushback-ms", req->pushback());
      if (req->retry_info_ms() > 0) {
        r->Finish({::grpc::StatusCode::RESOURCE_EXHAUSTED, "exhausted",
                   status_with_retry_info(8, "exhausted",
                                          std::chrono::milliseconds(req->retry_info_ms()))});
      } else {
        r->Finish({::grpc::StatusCode::RESOURCE_EXHAUSTED, "exhausted"});
      }
      return r;
    }
    if (drop_now) {
      drop_now();  // the proxy resets every connection: no answer gets back
      finish_later(r, [this] {
        for (int i = 0; i < 100 && !stopping; ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(2));  // answer into the void
        }
        return ::grpc::Status::OK;
      });
      return r;
    }
    if (req->delay_ms() > 0 && (req->slow_first() == 0 || n <= req->slow_first())) {
      const auto until = now + std::chrono::milliseconds(req->delay_ms());
      finish_later(r, [this, ctx, until, key = req->key()] {
        while (steady::now() < until && !stopping) {
          if (ctx->IsCancelled()) {
            std::lock_guard lock(mu);
            ++keys[key].cancelled;
            return ::grpc::Status::CANCELLED;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(2));  // a slow server, cancellable
        }
        return ::grpc::Status::OK;
      });
      return r;
    }
    r->Finish(::grpc::Status::OK);
    return r;
  }
};

grpc_echo_server::grpc_echo_server() : impl_(std::make_unique<impl>()) {
  ::grpc::ServerBuilder b;
  b.AddListeningPort("127.0.0.1:0", ::grpc::InsecureServerCredentials(), &impl_->port);
  b.RegisterService(impl_.get());
  impl_->server = b.BuildAndStart();
  if (!impl_->server || impl_->port == 0) throw std::runtime_error("grpc_echo_server: no port");
}

grpc_echo_server::~grpc_echo_server() {
  std::vector<std::thread> waiting;
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;  // every wait ends within 2 ms
    waiting.swap(impl_->later);
  }
  for (auto& t : waiting) t.join();
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  impl_->server->Wait();
}

int grpc_echo_server::port() const noexcept { return impl_->port; }
std::string grpc_echo_server::target() const { return "127.0.0.1:" + std::to_string(impl_->port); }

int grpc_echo_server::received(const std::string& key) const {
  std::lock_guard lock(impl_->mu);
  const auto it = impl_->keys.find(key);
  return it == impl_->keys.end() ? 0 : it->second.received;
}
int grpc_echo_server::cancelled(const std::string& key) const {
  std::lock_guard lock(impl_->mu);
  const auto it = impl_->keys.find(key);
  return it == impl_->keys.end() ? 0 : it->second.cancelled;
}
std::vector<std::chrono::milliseconds> grpc_echo_server::deadlines(const std::string& key) const {
  std::lock_guard lock(impl_->mu);
  const auto it = impl_->keys.find(key);
  return it == impl_->keys.end() ? std::vector<std::chrono::milliseconds>{} : it->second.deadlines;
}
std::vector<int> grpc_echo_server::previous_attempts(const std::string& key) const {
  std::lock_guard lock(impl_->mu);
  const auto it = impl_->keys.find(key);
  return it == impl_->keys.end() ? std::vector<int>{} : it->second.previous;
}
void grpc_echo_server::on_drop(std::function<void()> f) {
  std::lock_guard lock(impl_->mu);
  impl_->drop = std::move(f);
}

}  // namespace rebound::testing
