// rebound/grpc/client.hpp: retries, hedging, budgets and deadlines for gRPC unary calls.
//
// The same policy values as everything else, on a generated stub:
//
//   auto channel = rebound::grpc::make_channel("127.0.0.1:50051");   // gRPC's own retries off
//   auto stub = helloworld::Greeter::NewStub(channel);
//   rebound::grpc::options o{.policy = policy};
//   HelloReply reply;
//   grpc::Status s = rebound::grpc::call(o, *stub, &Greeter::Stub::SayHello, request, &reply,
//                                        {.timeout = 2s, .idempotent = true});
//
//   // Callback API (and hedging): the stub's async() interface.
//   rebound::grpc::async_call(o, stub->async(), &Greeter::Stub::async_interface::SayHello,
//                             request, &reply, {.timeout = 2s}, [](grpc::Status s) { ... });
//
// Every loop is the call engine (rebound/call.hpp): the blocking form is its
// blocking driver, the callback form its concurrent driver (hedges included).
// A hedging policy needs the callback interface: call() on stub.async()
// runs the callback form and waits; call() on a blocking stub method refuses
// it. Hedging sends the request more than once at a time, so it is refused
// for a method that is not idempotent.
//
// The error table (classify()), from gRPC's own data, never the message:
//   OK ................................ success
//   UNAVAILABLE, and any code in options::retryable_codes ... transient
//   RESOURCE_EXHAUSTED ................ overloaded (the call ends, the
//                                       throttle counts it); with server
//                                       pushback, transient after the delay
//   DEADLINE_EXCEEDED when our deadline ended it (gRPC's monotonic clock
//                     was within 10 ms of the deadline we set, or past it:
//                     gRPC keeps time in whole milliseconds, its current
//                     time can be rounded up, and its timers then fire a
//                     little early) ... transient, timed out
//                     (the engine retries only while the call's deadline
//                     leaves room: else time_exhausted)
//   anything else ..................... permanent
// Server pushback (gRFC A6): the `grpc-retry-pushback-ms` trailer, a
// non-negative integer: the next attempt waits that long; negative or not a
// number: do not retry (overloaded). A `google.rpc.RetryInfo` detail in
// `grpc-status-details-bin` gives the delay the same way.
//
// Deadlines: `timeout` (or call_options::deadline) bounds the whole call.
// Each attempt's gRPC deadline is min(attempt timeout, what remains); a
// back-off that cannot end before the deadline is not slept (the call ends
// with time_exhausted). Retries carry `grpc-previous-rpc-attempts`.
//
// Idempotency: a call that may have reached the server is retried only when
// `idempotent` (per call) or options::idempotent(method) says so. An attempt
// that was never sent is retried in any case. gRPC's C++ API reports no
// "sent" flag, so it is read from the channel's connectivity state (typed
// data; options::channel): the attempt ended UNAVAILABLE, the channel was
// not READY when it started and is in TRANSIENT_FAILURE when it ended. Then
// no connection existed: with pick_first (gRPC's default), an RPC that got a
// connection which was then lost leaves the channel IDLE, and only a failed
// connection attempt leaves it in TRANSIENT_FAILURE. Without
// options::channel, every failed attempt counts as sent.
//
// No hidden second layer: make_channel() turns gRPC's own retries off
// (grpc.enable_retries = 0), and check_channel() refuses a channel whose
// service config has a retryPolicy or hedgingPolicy (import it with
// policy_from_service_config instead). docs/grpc.md compares the two.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <grpcpp/support/status.h>

#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rebound/call.hpp"
#include "rebound/grpc/service_config.hpp"
#include "rebound/policy.hpp"

namespace rebound::grpc {

/// Settings shared by calls (one per dependency, like http::client_options).
struct options {
  /// Attempts, back-off, jitter, budget, throttle, hedge, observer, clock.
  retry_policy policy{};
  /// Codes worth another attempt (gRPC's retryableStatusCodes). UNAVAILABLE
  /// by default. RESOURCE_EXHAUSTED listed here is transient, not overloaded.
  std::vector<code> retryable_codes{code::unavailable};
  /// Methods ("pkg.Service/Method") that are safe to repeat, for calls that
  /// name their method. Default: none.
  std::function<bool(std::string_view method)> idempotent{};
  /// The channel the stubs use: its connectivity state tells an attempt
  /// that was never sent (see the header comment). Without it every failed
  /// attempt may have reached the server.
  std::shared_ptr<::grpc::ChannelInterface> channel{};
};

/// One call's own settings.
struct call_spec {
  /// "pkg.Service/Method": for options::idempotent and for events.
  std::string_view method{};
  /// The request is safe to repeat even if the server may have received it.
  bool idempotent = false;
  /// The whole call's deadline, from now (also call.deadline).
  std::optional<duration> timeout{};
  /// Metadata sent with every attempt.
  std::vector<std::pair<std::string, std::string>> metadata{};
  /// gRPC's wait-for-ready (an attempt waits for a connection instead of
  /// failing at once while the channel is down).
  bool wait_for_ready = false;
  /// Stop token, report, seed, deadline.
  call_options call{};
};

/// What an attempt's failure told us, besides its status.
struct attempt_facts {
  /// The server's pushback: none; wait this long; or "do not retry".
  enum class pushback_kind : std::uint8_t { none, delay, stop };
  pushback_kind pushback = pushback_kind::none;
  duration delay{};
  /// Our deadline (the attempt's timeout or the call's) ended it.
  bool own_deadline = false;
  /// The attempt may have reached the server.
  bool sent = true;
};

/// The error table (see the header comment).
[[nodiscard]] verdict classify(code c, const attempt_facts& f, const options& o) noexcept;

/// gRFC A6's `grpc-retry-pushback-ms` value: a delay, or stop (negative or
/// not a number); `none` when the value is absent (nullopt).
[[nodiscard]] attempt_facts::pushback_kind parse_pushback(std::optional<std::string_view> value,
                                                          duration& delay) noexcept;
/// The retry delay of a google.rpc.RetryInfo detail inside the serialized
/// google.rpc.Status of `grpc-status-details-bin`; nothing when absent or
/// malformed.
[[nodiscard]] std::optional<duration> retry_info_delay(std::string_view status_details) noexcept;

/// A channel with gRPC's own retries off. Default credentials: insecure.
[[nodiscard]] std::shared_ptr<::grpc::Channel> make_channel(
    const std::string& target,
    std::shared_ptr<::grpc::ChannelCredentials> creds = ::grpc::InsecureChannelCredentials(),
    ::grpc::ChannelArguments args = {});
/// Throws std::invalid_argument when `channel`'s service config carries a
/// retryPolicy or hedgingPolicy: two retry layers would multiply attempts.
void check_channel(const ::grpc::Channel& channel);

namespace detail {

/// One attempt's ClientContext, set up: its deadline (min of the attempt
/// timeout and the call's deadline, on the call's clock), metadata,
/// grpc-previous-rpc-attempts, wait-for-ready.
void prepare(::grpc::ClientContext& ctx, const retry_call& call, const call_spec& spec,
             int attempt);
/// What the finished attempt says: pushback, RetryInfo, whether our deadline
/// ended it, whether it was sent (from the channel's states around it).
[[nodiscard]] attempt_facts facts(const ::grpc::ClientContext& ctx, const ::grpc::Status& s,
                                  const retry_call& call, bool had_deadline,
                                  std::optional<grpc_connectivity_state> channel_before,
                                  std::optional<grpc_connectivity_state> channel_after);
/// True when an attempt starting now gets a deadline from us.
[[nodiscard]] bool has_deadline(const retry_call& call) noexcept;
/// How early gRPC's deadline may fire and still be ours (see facts()).
inline constexpr std::int64_t deadline_slack_nanos = 10'000'000;  // 10 ms
/// Has `now` reached `deadline`, give or take deadline_slack_nanos? Both on
/// gRPC's monotonic clock.
[[nodiscard]] bool deadline_reached(gpr_timespec now, gpr_timespec deadline) noexcept;
/// The channel's state now (nothing without options::channel).
[[nodiscard]] std::optional<grpc_connectivity_state> channel_state(const options& o);
/// May a failed attempt be repeated (idempotency)?
[[nodiscard]] bool may_repeat(const options& o, const call_spec& spec,
                              const attempt_facts& f) noexcept;
/// The call is safe to repeat: call_spec::idempotent or options::idempotent(method).
[[nodiscard]] bool is_idempotent(const options& o, const call_spec& spec) noexcept;
/// The status a call reports when it ended before or between attempts
/// without one from the server (cancelled, throttled, out of time).
[[nodiscard]] ::grpc::Status synthesized(stop_reason r);
/// "UNAVAILABLE: connection refused" for events.
[[nodiscard]] std::string describe(const ::grpc::Status& s);
/// call_options with the spec's timeout folded into the deadline.
[[nodiscard]] call_options call_options_of(const options& o, const call_spec& spec);

/// The callback driver: attempts (and hedges) on the stub's async interface,
/// back-offs and hedge delays on the policy's clock.
class async_driver : public std::enable_shared_from_this<async_driver> {
 public:
  /// Starts one attempt on a context; `done` must be called exactly once.
  using start_fn = std::function<void(::grpc::ClientContext& ctx, int slot,
                                      std::function<void(::grpc::Status)> done)>;
  /// The winner's slot is handed to `finish` before the final status.
  async_driver(const options& o, call_spec spec, start_fn start,
               std::function<void(int winner_slot, ::grpc::Status)> finish);
  ~async_driver();
  async_driver(const async_driver&) = delete;
  async_driver& operator=(const async_driver&) = delete;
  void run();

 private:
  struct attempt_slot;
  void on_done(int slot, ::grpc::Status s);
  void on_timer();
  void on_stop();
  void step(std::unique_lock<std::mutex>& lock);
  void arm(std::unique_lock<std::mutex>& lock, time_point at);

  options options_;
  call_spec spec_;
  call_options call_options_;
  std::optional<retry_call> call_;
  start_fn start_;
  std::function<void(int, ::grpc::Status)> finish_;
  std::mutex mu_;
  std::vector<std::unique_ptr<attempt_slot>> slots_;
  int running_ = 0;
  int hedges_ = 0;
  bool first_pending_ = false;
  bool backing_off_ = false;
  time_point backoff_until_ = time_point::max();
  time_point next_hedge_ = time_point::max();
  std::optional<stop_reason> ending_;
  bool deadline_cut_ = false;
  std::string method_;
  bool idempotent_ = false;
  int winner_ = -1;
  ::grpc::Status last_;
  bool finished_ = false;
  std::uint64_t timer_ = 0;
  time_point timer_at_ = time_point::max();
  std::optional<std::stop_callback<std::function<void()>>> on_stop_;
};

}  // namespace detail

/// A unary call on a blocking stub method (`&Stub::Method`). Returns the
/// final status, as the stub does; `response` holds the successful answer.
/// A hedging policy is refused here (std::invalid_argument): pass the
/// stub's async() interface instead.
template <class Stub, class Req, class Resp>
::grpc::Status call(const options& o, Stub& stub,
                    ::grpc::Status (Stub::*method)(::grpc::ClientContext*, const Req&, Resp*),
                    const Req& request, Resp* response, const call_spec& spec = {}) {
  if (o.policy.hedge()) {
    throw std::invalid_argument(
        "rebound::grpc::call: a hedging policy needs the stub's async() interface "
        "(concurrent attempts); pass stub.async() and &Stub::async_interface::Method");
  }
  retry_call rc(o.policy, detail::call_options_of(o, spec), {.eager_start = true});
  if (const call_step first = rc.start(); first.done()) return detail::synthesized(first.reason);
  // "Sent" matters only when the call is not safe to repeat.
  const bool idempotent = detail::is_idempotent(o, spec);
  for (;;) {
    ::grpc::ClientContext ctx;
    detail::prepare(ctx, rc, spec, rc.attempt());
    const bool own = detail::has_deadline(rc);
    const auto before = idempotent ? std::nullopt : detail::channel_state(o);
    std::optional<std::stop_callback<std::function<void()>>> cancel;
    if (rc.stop_token().stop_possible()) {
      cancel.emplace(rc.stop_token(), std::function<void()>([&ctx] { ctx.TryCancel(); }));
    }
    ::grpc::Status s = (stub.*method)(&ctx, request, response);
    cancel.reset();
    if (s.ok()) {
      rc.succeeded();
      return s;
    }
    if (rc.stop_token().stop_requested()) {
      rc.end(stop_reason::cancelled);
      return s;
    }
    const attempt_facts f = detail::facts(ctx, s, rc, own, before,
                                          idempotent ? std::nullopt : detail::channel_state(o));
    const std::string cause = rc.observed() ? detail::describe(s) : std::string();
    const call_step step =
        sleep_then_resume(rc, rc.failed(classify(static_cast<code>(s.error_code()), f, o),
                                        {.cause = cause,
                                         .timed_out = f.own_deadline,
                                         .unsafe_to_repeat = !detail::may_repeat(o, spec, f)}));
    if (!step.attempt()) return s;  // the last status; the reason is in the report
  }
}

/// A unary call on the stub's callback interface (`stub.async()`,
/// `&Stub::async_interface::Method`), with hedging. `done` gets the final
/// status once, and `response` is written before. `done` runs on a gRPC
/// thread, a timer thread, the thread that requests stop, or (when the call
/// ends before its first attempt: throttled, cancelled) this one, before
/// async_call returns. `response`, and a call_report in the spec, must
/// outlive the call; the options, the spec and the request are copied.
/// A hedging policy for a method that is not idempotent is refused
/// (std::invalid_argument): hedges are the same request sent again.
template <class Iface, class Req, class Resp>
void async_call(const options& o, Iface* iface,
                void (Iface::*method)(::grpc::ClientContext*, const Req*, Resp*,
                                      std::function<void(::grpc::Status)>),
                const Req& request, Resp* response, const call_spec& spec,
                std::function<void(::grpc::Status)> done) {
  if (o.policy.hedge() && !detail::is_idempotent(o, spec)) {
    throw std::invalid_argument(
        "rebound::grpc::async_call: a hedging policy sends the request more than once; mark the "
        "method idempotent (call_spec::idempotent or options::idempotent)");
  }
  // Each attempt has its own response (a hedge must not write over the winner's).
  struct shared {
    Req request;
    std::vector<std::unique_ptr<Resp>> responses;
    std::mutex mu;
  };
  auto sh = std::make_shared<shared>();
  sh->request = request;
  auto start = [iface, method, sh](::grpc::ClientContext& ctx, int slot,
                                   std::function<void(::grpc::Status)> cb) {
    Resp* r = nullptr;
    {
      std::lock_guard lock(sh->mu);
      if (sh->responses.size() <= static_cast<std::size_t>(slot)) {
        sh->responses.resize(static_cast<std::size_t>(slot) + 1);
      }
      sh->responses[static_cast<std::size_t>(slot)] = std::make_unique<Resp>();
      r = sh->responses[static_cast<std::size_t>(slot)].get();
    }
    (iface->*method)(&ctx, &sh->request, r, std::move(cb));
  };
  auto finish = [sh, response, done = std::move(done)](int winner, ::grpc::Status s) {
    if (winner >= 0) {
      std::lock_guard lock(sh->mu);
      *response = std::move(*sh->responses[static_cast<std::size_t>(winner)]);
    }
    done(std::move(s));
  };
  std::make_shared<detail::async_driver>(o, spec, std::move(start), std::move(finish))->run();
}

/// The blocking form of async_call: for hedging policies on a blocking caller.
template <class Iface, class Req, class Resp>
::grpc::Status call(const options& o, Iface* iface,
                    void (Iface::*method)(::grpc::ClientContext*, const Req*, Resp*,
                                          std::function<void(::grpc::Status)>),
                    const Req& request, Resp* response, const call_spec& spec = {}) {
  std::promise<::grpc::Status> p;
  auto f = p.get_future();
  async_call(o, iface, method, request, response, spec,
             [&p](::grpc::Status s) { p.set_value(std::move(s)); });
  return f.get();
}

}  // namespace rebound::grpc
