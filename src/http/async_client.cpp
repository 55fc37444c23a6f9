// The async HTTP client: libcurl's multi-socket interface driven by Asio.
// curl says which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to
// call it back (CURLMOPT_TIMERFUNCTION); Asio waits on those sockets and on
// one timer, and hands the events back to curl_multi_socket_action. All of
// it runs on one strand.
#include "rebound/http/async_client.hpp"

#include <asio/bind_executor.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>
#include <functional>
#include <map>
#include <vector>

#include "internal.hpp"

namespace rebound::http {

struct async_client::impl : std::enable_shared_from_this<impl> {
  client_options options;
  retry_policy policy;
  asio::strand<asio::any_io_executor> strand;
  CURLM* multi = nullptr;
  asio::steady_timer curl_timer;
  struct watched {
    std::unique_ptr<asio::posix::stream_descriptor> sd;
    int what = 0;
    bool reading = false, writing = false;
    std::uint64_t generation = 0;
  };
  std::map<curl_socket_t, watched> sockets;
  std::uint64_t generations = 0;
  std::map<CURL*, std::function<void(CURLcode)>> pending;  // completions, by easy handle
  std::vector<CURL*> idle;                                 // easy handles to reuse

  impl(asio::any_io_executor ex, client_options o)
      : options(std::move(o)), strand(asio::make_strand(ex)), curl_timer(strand) {
    detail::init_curl();
    policy = options.policy.max_server_delay(options.max_retry_after, server_delay_mode::give_up);
    multi = curl_multi_init();
    if (multi == nullptr) throw std::runtime_error("rebound::http: curl_multi_init failed");
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &impl::on_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &impl::on_timer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, this);
  }
  ~impl() {
    for (auto& [easy, done] : pending) curl_multi_remove_handle(multi, easy);
    for (auto& [s, w] : sockets) w.sd->release();  // curl owns its sockets
    for (CURL* e : idle) curl_easy_cleanup(e);
    for (auto& [easy, done] : pending) curl_easy_cleanup(easy);
    curl_multi_cleanup(multi);
  }

  CURL* acquire() {
    if (!idle.empty()) {
      CURL* e = idle.back();
      idle.pop_back();
      return e;
    }
    CURL* e = curl_easy_init();
    if (e == nullptr) throw std::runtime_error("rebound::http: curl_easy_init failed");
    detail::prepare_handle(e);
    return e;
  }

  // ---- curl -> Asio (called on the strand, inside curl_multi_* calls) ----
  static int on_socket(CURL*, curl_socket_t s, int what, void* self, void*) {
    auto* me = static_cast<impl*>(self);
    if (what == CURL_POLL_REMOVE) {
      if (auto it = me->sockets.find(s); it != me->sockets.end()) {
        it->second.sd->release();  // cancels its waits; curl closes the socket
        me->sockets.erase(it);
      }
      return 0;
    }
    watched& w = me->sockets[s];
    if (!w.sd) {
      w.sd = std::make_unique<asio::posix::stream_descriptor>(me->strand, s);
      w.generation = ++me->generations;
    }
    w.what = what;
    me->arm(s);
    return 0;
  }
  static int on_timer(CURLM*, long ms, void* self) {
    auto* me = static_cast<impl*>(self);
    me->curl_timer.cancel();
    if (ms < 0) return 0;
    me->curl_timer.expires_after(std::chrono::milliseconds(ms));
    me->curl_timer.async_wait([weak = me->weak_from_this()](std::error_code ec) {
      auto me2 = weak.lock();
      if (ec || !me2) return;
      int running = 0;
      curl_multi_socket_action(me2->multi, CURL_SOCKET_TIMEOUT, 0, &running);
      me2->check_done();
    });
    return 0;
  }
  void arm(curl_socket_t s) {
    watched& w = sockets[s];
    const auto gen = w.generation;
    if ((w.what & CURL_POLL_IN) && !w.reading) {
      w.reading = true;
      w.sd->async_wait(asio::posix::stream_descriptor::wait_read,
                       [weak = weak_from_this(), s, gen](std::error_code ec) {
                         if (auto me = weak.lock()) me->ready(s, gen, CURL_CSELECT_IN, ec);
                       });
    }
    if ((w.what & CURL_POLL_OUT) && !w.writing) {
      w.writing = true;
      w.sd->async_wait(asio::posix::stream_descriptor::wait_write,
                       [weak = weak_from_this(), s, gen](std::error_code ec) {
                         if (auto me = weak.lock()) me->ready(s, gen, CURL_CSELECT_OUT, ec);
                       });
    }
  }
  void ready(curl_socket_t s, std::uint64_t gen, int event, std::error_code ec) {
    auto it = sockets.find(s);
    if (it == sockets.end() || it->second.generation != gen) return;  // removed, or reused
    (event == CURL_CSELECT_IN ? it->second.reading : it->second.writing) = false;
    if (ec) return;
    int running = 0;
    curl_multi_socket_action(multi, s, event, &running);
    check_done();
    it = sockets.find(s);
    if (it != sockets.end() && it->second.generation == gen) arm(s);
  }
  void check_done() {
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      finish(m->easy_handle, m->data.result);
    }
  }
  void finish(CURL* easy, CURLcode rc) {
    auto node = pending.extract(easy);
    if (node.empty()) return;
    curl_multi_remove_handle(multi, easy);
    node.mapped()(rc);
  }

  // ---- one transfer, awaited -------------------------------------------
  // `active` is cleared when the transfer's awaiter resumes: a late cancel
  // must not reach a later transfer on the same (reused) easy handle.
  template <class Token>
  auto async_run(CURL* easy, std::shared_ptr<std::atomic<bool>> active, Token&& token) {
    return asio::async_initiate<Token, void(CURLcode)>(
        [self = shared_from_this(), easy, active](auto handler) {
          auto slot = asio::get_associated_cancellation_slot(handler);
          auto h = std::make_shared<decltype(handler)>(std::move(handler));
          auto target = asio::get_associated_executor(*h, self->strand);
          if (slot.is_connected()) {
            slot.assign([weak = std::weak_ptr<impl>(self), easy, active](asio::cancellation_type) {
              if (auto me = weak.lock()) {
                asio::post(me->strand, [me, easy, active] {
                  if (*active) me->finish(easy, CURLE_ABORTED_BY_CALLBACK);
                });
              }
            });
          }
          asio::post(self->strand, [self, easy, h, target]() mutable {
            self->pending[easy] = [h, target](CURLcode rc) {
              asio::post(target, [h, rc]() mutable { (*h)(rc); });
            };
            if (curl_multi_add_handle(self->multi, easy) != CURLM_OK) {
              self->finish(easy, CURLE_FAILED_INIT);
            }
          });
        },
        token);
  }

  asio::awaitable<response> perform(const request& r, const header_list& extra,
                                    std::optional<duration> limit, const std::stop_token& stop) {
    CURL* easy = acquire();
    detail::transfer t;  // no progress-callback stop: the stop callback below aborts it
    curl_slist* list =
        detail::setup_transfer(easy, r, extra, limit, options.connect_timeout, t, false);
    auto active = std::make_shared<std::atomic<bool>>(true);
    std::optional<std::stop_callback<std::function<void()>>> on_stop;
    if (stop.stop_possible()) {
      on_stop.emplace(stop, std::function<void()>([weak = weak_from_this(), easy, active] {
                        if (auto me = weak.lock()) {
                          asio::post(me->strand, [me, easy, active] {
                            if (*active) me->finish(easy, CURLE_ABORTED_BY_CALLBACK);
                          });
                        }
                      }));
    }
    const CURLcode rc = co_await async_run(easy, active, asio::use_awaitable);
    *active = false;
    on_stop.reset();
    curl_slist_free_all(list);
    try {
      response out = detail::finish_transfer(easy, rc, t);
      idle.push_back(easy);
      co_return out;
    } catch (...) {
      curl_easy_cleanup(easy);  // a failed handle is not reused
      throw;
    }
  }

  // Sleeps until `at` on the policy's clock; false when cut short.
  asio::awaitable<bool> sleep_until(time_point at, const std::stop_token& stop) {
    clock* custom = policy.custom_clock();
    auto ex = co_await asio::this_coro::executor;
    auto timer = std::make_shared<asio::steady_timer>(
        ex, custom != nullptr ? asio::steady_timer::time_point::max()
                              : asio::steady_timer::time_point(at.time_since_epoch()));
    const auto wake = [timer, ex] { asio::post(ex, [timer] { timer->cancel(); }); };
    const std::uint64_t id = custom != nullptr ? custom->call_at(at, wake) : 0;
    std::optional<std::stop_callback<std::function<void()>>> on_stop;
    if (stop.stop_possible()) on_stop.emplace(stop, std::function<void()>(wake));
    asio::error_code ec;
    bool aborted = false;
    try {
      co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    } catch (const std::system_error&) {
      aborted = true;  // the coroutine was cancelled before the wait began
    }
    if (id != 0) custom->cancel_call(id);
    auto cs = co_await asio::this_coro::cancellation_state;
    if (aborted || stop.stop_requested() || cs.cancelled() != asio::cancellation_type::none) {
      co_return false;
    }
    co_return custom != nullptr ? custom->now() >= at : !ec;
  }
};

async_client::async_client(asio::any_io_executor ex, client_options options)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(options))) {}

async_client::~async_client() = default;

const client_options& async_client::options() const noexcept { return impl_->options; }

asio::awaitable<response> async_client::get(std::string url, call_options options) {
  // A named request: GCC 12 mishandles some temporaries inside co_await expressions.
  request r;
  r.url = std::move(url);
  response out = co_await send(std::move(r), std::move(options));
  co_return out;
}

asio::awaitable<response> async_client::send(request r, call_options call) {
  auto keep = impl_;  // the client's state lives as long as this call
  // Nested-retry detection by thread does not hold for coroutines: an async
  // request is an outermost call.
  detail::call_run run(keep->options, keep->policy, r, call, 0);
  run.start();
  for (;;) {
    const detail::call_run::attempt_plan plan = run.begin_attempt();
    std::optional<response> got;
    std::exception_ptr error;
    try {
      got.emplace(co_await keep->perform(run.req(), plan.headers, plan.limit, call.stop));
    } catch (const transport_error&) {
      error = std::current_exception();
    }
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cs.cancelled() != asio::cancellation_type::none && error) {
      // Cancelled through the awaiting coroutine: report it as such.
      try {
        std::rethrow_exception(error);
      } catch (const transport_error& e) {
        error = std::make_exception_ptr(
            transport_error(transport_kind::cancelled, e.curl_code(), e.request_sent(), e.what()));
      }
    }
    detail::call_run::step s = run.on_outcome(std::move(got), std::move(error));
    if (s.kind == detail::call_run::step::kind_t::retry) {
      const bool slept = co_await keep->sleep_until(s.wake, call.stop);
      s = run.after_sleep(slept);
    }
    if (s.kind == detail::call_run::step::kind_t::done) {
      if (s.error) std::rethrow_exception(s.error);
      co_return std::move(*s.result);
    }
  }
}

}  // namespace rebound::http
