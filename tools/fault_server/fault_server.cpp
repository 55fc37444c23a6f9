#include "fault_server.hpp"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

namespace rebound::fault {

namespace {

using steady = std::chrono::steady_clock;

int int_param(const httplib::Request& req, const char* name, int fallback, int lo, int hi) {
  if (!req.has_param(name)) return fallback;
  try {
    return std::clamp(std::stoi(req.get_param_value(name)), lo, hi);
  } catch (const std::exception&) {
    return fallback;
  }
}

std::string http_date(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

}  // namespace

struct server::impl {
  httplib::Server http;
  std::thread thread;
  int port = 0;
  mutable std::mutex mu;
  std::condition_variable stopped_cv;
  bool stopped = false;
  counts seen;
  std::map<std::string, steady::time_point> first_seen;  // by route + key
  std::map<std::string, int> hits;                       // by route + key

  // Counts the request; returns how many times this route + key was hit before.
  int count(const httplib::Request& req, const std::string& route_key) {
    std::lock_guard lock(mu);
    ++seen.total;
    ++seen.by_method[req.method];
    ++seen.by_path[req.path];
    bool repeat = false;
    if (req.has_header("Idempotency-Key")) {
      repeat = seen.by_key[req.get_header_value("Idempotency-Key")]++ > 0;
    }
    if (!repeat) {
      ++seen.executions;
      ++seen.executions_by_method[req.method];
    }
    first_seen.emplace(route_key, steady::now());
    return hits[route_key]++;
  }
  steady::time_point first(const std::string& route_key) {
    std::lock_guard lock(mu);
    return first_seen[route_key];
  }

  void routes() {
    const auto on_all = [this](const std::string& pattern, httplib::Server::Handler h) {
      http.Get(pattern, h);
      http.Post(pattern, h);
      http.Put(pattern, h);
      http.Patch(pattern, h);
      http.Delete(pattern, h);
      http.Options(pattern, h);
    };
    on_all(R"(/resume/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      const std::string key = "resume/" + req.matches[1].str();
      count(req, key);
      const int ms = int_param(req, "ms", 1500, 0, 600000);
      const int status = int_param(req, "status", 503, 100, 599);
      if (steady::now() - first(key) < std::chrono::milliseconds(ms)) {
        res.status = status;
        res.set_content("resuming\n", "text/plain");
      } else {
        res.set_content("ok " + req.matches[1].str() + "\n", "text/plain");
      }
    });
    on_all(R"(/retry-after/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      const std::string key = "retry-after/" + req.matches[1].str();
      const int before = count(req, key);
      if (before < int_param(req, "times", 1, 0, 1000)) {
        res.status = int_param(req, "status", 429, 100, 599);
        const int seconds = int_param(req, "seconds", 2, 0, 1000000);
        if (req.has_param("form") && req.get_param_value("form") == "date") {
          res.set_header("Retry-After", http_date(std::chrono::system_clock::now() +
                                                  std::chrono::seconds(seconds)));
        } else {
          res.set_header("Retry-After", std::to_string(seconds));
        }
        res.set_content("slow down\n", "text/plain");
      } else {
        res.set_content("ok\n", "text/plain");
      }
    });
    on_all(R"(/bad-retry-after/([^/]+))",
           [this](const httplib::Request& req, httplib::Response& res) {
             if (count(req, "bad-retry-after/" + req.matches[1].str()) == 0) {
               res.status = 503;
               res.set_header("Retry-After", "soon");
               res.set_content("later\n", "text/plain");
             } else {
               res.set_content("ok\n", "text/plain");
             }
           });
    on_all(R"(/reset/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      const int before = count(req, "reset/" + req.matches[1].str());
      if (before < int_param(req, "times", 1, 0, 1000)) {
        const int bytes = int_param(req, "bytes", 100, 0, 999);
        res.set_content_provider(1000, "text/plain",
                                 [bytes](std::size_t, std::size_t, httplib::DataSink& sink) {
                                   const std::string part(static_cast<std::size_t>(bytes), 'x');
                                   sink.write(part.data(), part.size());
                                   return false;  // drop the connection mid-body
                                 });
      } else {
        res.set_content(std::string(1000, 'y'), "text/plain");
      }
    });
    on_all(R"(/hang/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      count(req, "hang/" + req.matches[1].str());
      // A real wait: this server stands for a slow dependency (bounded at 10 s).
      std::this_thread::sleep_for(std::chrono::milliseconds(int_param(req, "ms", 1000, 0, 10000)));
      res.set_content("late\n", "text/plain");
    });
    on_all(R"(/slow/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      count(req, "slow/" + req.matches[1].str());
      const auto bytes = static_cast<std::size_t>(int_param(req, "bytes", 1000, 1, 1000000));
      const int ms = int_param(req, "ms", 1000, 0, 10000);
      res.set_content_provider(
          bytes, "text/plain",
          [bytes, ms](std::size_t offset, std::size_t, httplib::DataSink& sink) {
            const std::size_t step = std::max<std::size_t>(1, bytes / 10);
            const std::size_t n = std::min(step, bytes - offset);
            std::this_thread::sleep_for(std::chrono::milliseconds(ms / 10));
            const std::string part(n, 'z');
            sink.write(part.data(), part.size());
            return true;
          });
    });
    on_all(R"(/status/(\d+))", [this](const httplib::Request& req, httplib::Response& res) {
      count(req, "status/" + req.matches[1].str());
      res.status = std::clamp(std::stoi(req.matches[1].str()), 100, 599);
      res.set_content("status " + req.matches[1].str() + "\n", "text/plain");
    });
    http.Get("/_stats", [this](const httplib::Request&, httplib::Response& res) {
      std::lock_guard lock(mu);
      nlohmann::json j{
          {"total", seen.total},           {"by_method", seen.by_method},
          {"by_key", seen.by_key},         {"by_path", seen.by_path},
          {"executions", seen.executions}, {"executions_by_method", seen.executions_by_method}};
      res.set_content(j.dump(), "application/json");
    });
    http.Get("/_reset", [this](const httplib::Request&, httplib::Response& res) {
      std::lock_guard lock(mu);
      seen = {};
      first_seen.clear();
      hits.clear();
      res.set_content("reset\n", "text/plain");
    });
  }
};

server::server(std::uint16_t port) : impl_(std::make_unique<impl>()) {
  impl_->routes();
  impl_->http.set_keep_alive_max_count(1000);
  impl_->http.set_tcp_nodelay(true);
  // Keep-alive connections hold a worker each: enough for many concurrent clients.
  impl_->http.new_task_queue = [] {
    return new httplib::ThreadPool(64);
  };  // else Nagle and delayed ACKs add 40 ms per response
  if (port == 0) {
    impl_->port = impl_->http.bind_to_any_port("127.0.0.1");
  } else {
    impl_->port = impl_->http.bind_to_port("127.0.0.1", port) ? port : -1;
  }
  if (impl_->port <= 0) throw std::runtime_error("fault server: cannot listen on 127.0.0.1");
  impl_->thread = std::thread([this] { impl_->http.listen_after_bind(); });
  // The socket is bound already (connections queue); wait until it is served.
  for (int i = 0; i < 5000 && !impl_->http.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

server::~server() {
  stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::uint16_t server::port() const noexcept { return static_cast<std::uint16_t>(impl_->port); }

std::string server::url(std::string_view path) const {
  return "http://127.0.0.1:" + std::to_string(impl_->port) + std::string(path);
}

counts server::executed() const {
  std::lock_guard lock(impl_->mu);
  return impl_->seen;
}

void server::reset() {
  std::lock_guard lock(impl_->mu);
  impl_->seen = {};
  impl_->first_seen.clear();
  impl_->hits.clear();
}

void server::stop() {
  impl_->http.stop();
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopped = true;
  }
  impl_->stopped_cv.notify_all();
}

void server::wait() {
  std::unique_lock lock(impl_->mu);
  impl_->stopped_cv.wait(lock, [&] { return impl_->stopped; });
}

}  // namespace rebound::fault
