// rebound::grpc: the error table, pushback and RetryInfo, channels, and the
// callback driver of the call engine (rebound/grpc/client.hpp).
#include "rebound/grpc/client.hpp"

#include <grpc/support/time.h>

#include <algorithm>
#include <cstdint>

#include "rebound/hedge.hpp"

namespace rebound::grpc {

// ---- the error table ----------------------------------------------------------

verdict classify(code c, const attempt_facts& f, const options& o) noexcept {
  if (c == code::ok) return verdict::success();
  // gRFC A6: a pushback that is negative or not a number means "do not retry".
  if (f.pushback == attempt_facts::pushback_kind::stop) return verdict::overloaded();
  const bool listed =
      std::find(o.retryable_codes.begin(), o.retryable_codes.end(), c) != o.retryable_codes.end();
  const bool delayed = f.pushback == attempt_facts::pushback_kind::delay;
  if (listed) return delayed ? verdict::transient_after(f.delay) : verdict::transient();
  if (c == code::resource_exhausted) {
    // The server is out of something; it says when to come back, or we stop.
    return delayed ? verdict::transient_after(f.delay) : verdict::overloaded();
  }
  if (c == code::deadline_exceeded && f.own_deadline) return verdict::timed_out();
  return verdict::permanent();
}

attempt_facts::pushback_kind parse_pushback(std::optional<std::string_view> value,
                                            duration& delay) noexcept {
  if (!value) return attempt_facts::pushback_kind::none;
  // A6: an integer of milliseconds; a negative or unparseable value means
  // "don't retry". A non-negative value of any length is a delay: one past
  // what a duration holds saturates (max_server_delay caps it later).
  const std::string_view v = *value;
  if (v.empty()) return attempt_facts::pushback_kind::stop;
  constexpr long long most = 1'000'000'000'000LL;  // ms: about 31 years
  long long ms = 0;
  for (const char c : v) {
    if (c < '0' || c > '9') return attempt_facts::pushback_kind::stop;
    ms = ms >= most ? most : std::min(most, ms * 10 + (c - '0'));
  }
  delay = std::chrono::milliseconds(ms);
  return attempt_facts::pushback_kind::delay;
}

namespace {

// A protobuf wire-format reader, just enough for google.rpc.Status,
// google.protobuf.Any, google.rpc.RetryInfo and google.protobuf.Duration.
struct wire {
  std::string_view in;
  bool ok = true;

  bool done() const { return in.empty() || !ok; }
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (in.empty()) {
        ok = false;
        return 0;
      }
      const auto b = static_cast<unsigned char>(in.front());
      in.remove_prefix(1);
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    ok = false;
    return 0;
  }
  // The next field: its number and wire type; length-delimited payloads in `bytes`.
  bool next(std::uint32_t& field, std::uint32_t& type, std::uint64_t& number,
            std::string_view& bytes) {
    const std::uint64_t key = varint();
    if (!ok) return false;
    field = static_cast<std::uint32_t>(key >> 3);
    type = static_cast<std::uint32_t>(key & 7);
    switch (type) {
      case 0:
        number = varint();
        return ok;
      case 1:
        if (in.size() < 8) return ok = false;
        in.remove_prefix(8);
        return true;
      case 2: {
        const std::uint64_t n = varint();
        if (!ok || n > in.size()) return ok = false;
        bytes = in.substr(0, n);
        in.remove_prefix(n);
        return true;
      }
      case 5:
        if (in.size() < 4) return ok = false;
        in.remove_prefix(4);
        return true;
      default:
        return ok = false;
    }
  }
};

std::optional<duration> proto_duration(std::string_view bytes) {
  wire w{bytes};
  std::int64_t seconds = 0;
  std::int32_t nanos = 0;
  std::uint32_t f = 0, t = 0;
  std::uint64_t n = 0;
  std::string_view b;
  while (!w.done()) {
    if (!w.next(f, t, n, b)) return std::nullopt;
    if (f == 1 && t == 0) seconds = static_cast<std::int64_t>(n);
    if (f == 2 && t == 0) nanos = static_cast<std::int32_t>(n);
  }
  if (seconds < 0 || nanos < 0 || nanos > 999'999'999 || seconds > 9'000'000'000LL) {
    return std::nullopt;
  }
  return std::chrono::seconds(seconds) + std::chrono::nanoseconds(nanos);
}

constexpr std::string_view retry_info_type = "type.googleapis.com/google.rpc.RetryInfo";

}  // namespace

std::optional<duration> retry_info_delay(std::string_view status_details) noexcept {
  // google.rpc.Status { int32 code = 1; string message = 2; repeated Any details = 3; }
  wire status{status_details};
  std::uint32_t f = 0, t = 0;
  std::uint64_t n = 0;
  std::string_view any;
  while (!status.done()) {
    if (!status.next(f, t, n, any)) return std::nullopt;
    if (f != 3 || t != 2) continue;
    // google.protobuf.Any { string type_url = 1; bytes value = 2; }
    wire a{any};
    std::string_view type_url, value, b;
    while (!a.done()) {
      if (!a.next(f, t, n, b)) return std::nullopt;
      if (f == 1 && t == 2) type_url = b;
      if (f == 2 && t == 2) value = b;
    }
    if (type_url != retry_info_type) continue;
    // google.rpc.RetryInfo { google.protobuf.Duration retry_delay = 1; }
    wire r{value};
    while (!r.done()) {
      if (!r.next(f, t, n, b)) return std::nullopt;
      if (f == 1 && t == 2) return proto_duration(b);
    }
  }
  return std::nullopt;
}

// ---- channels -----------------------------------------------------------------

std::shared_ptr<::grpc::Channel> make_channel(const std::string& target,
                                              std::shared_ptr<::grpc::ChannelCredentials> creds,
                                              ::grpc::ChannelArguments args) {
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);  // one retry layer: rebound's
  auto channel = ::grpc::CreateCustomChannel(target, std::move(creds), args);
  return channel;
}

void check_channel(const ::grpc::Channel& channel) {
  const std::string config = const_cast<::grpc::Channel&>(channel).GetServiceConfigJSON();
  for (const char* key : {"\"retryPolicy\"", "\"hedgingPolicy\""}) {
    if (config.find(key) != std::string::npos) {
      throw std::invalid_argument(
          std::string("rebound::grpc: the channel's service config has a ") +
          std::string(key).substr(1, std::string(key).size() - 2) +
          "; gRPC would retry inside rebound's retries and multiply attempts. Import it with "
          "rebound::grpc::policy_from_service_config and make the channel with "
          "rebound::grpc::make_channel (gRPC's retries off)");
    }
  }
}

// ---- what the drivers share ---------------------------------------------------

namespace detail {

call_options call_options_of(const options& o, const call_spec& spec) {
  call_options c = spec.call;
  if (spec.timeout) {
    const time_point d = ::rebound::detail::saturating_add(o.policy.clock().now(), *spec.timeout);
    c.deadline = c.deadline ? std::min(*c.deadline, d) : d;
  }
  return c;
}

bool has_deadline(const retry_call& call) noexcept {
  return call.attempt_deadline() != time_point::max();
}

std::optional<grpc_connectivity_state> channel_state(const options& o) {
  if (!o.channel) return std::nullopt;
  return o.channel->GetState(false);
}

void prepare(::grpc::ClientContext& ctx, const retry_call& call, const call_spec& spec,
             int attempt) {
  const time_point d = call.attempt_deadline();
  if (d != time_point::max()) {
    const time_point now = call.now();
    const duration left = d > now ? d - now : duration::zero();
    // On gRPC's monotonic clock, so that facts() can tell whether it passed.
    ctx.set_deadline(gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                  gpr_time_from_nanos(left.count(), GPR_TIMESPAN)));
  }
  for (const auto& [k, v] : spec.metadata) ctx.AddMetadata(k, v);
  if (attempt > 1) ctx.AddMetadata("grpc-previous-rpc-attempts", std::to_string(attempt - 1));
  if (spec.wait_for_ready) ctx.set_wait_for_ready(true);
}

attempt_facts facts(const ::grpc::ClientContext& ctx, const ::grpc::Status& s,
                    const retry_call& call, bool had_deadline,
                    std::optional<grpc_connectivity_state> channel_before,
                    std::optional<grpc_connectivity_state> channel_after) {
  attempt_facts f;
  const auto& trailers = ctx.GetServerTrailingMetadata();
  const auto it = trailers.find("grpc-retry-pushback-ms");
  std::optional<std::string_view> pushback;
  if (it != trailers.end()) pushback = std::string_view(it->second.data(), it->second.size());
  f.pushback = parse_pushback(pushback, f.delay);
  if (f.pushback == attempt_facts::pushback_kind::none && !s.error_details().empty()) {
    if (const auto d = retry_info_delay(s.error_details())) {
      f.pushback = attempt_facts::pushback_kind::delay;
      f.delay = *d;
    }
  }
  // Our deadline (the attempt's timeout or the call's) ended it: a timeout,
  // retried while the call's deadline leaves room (the engine decides).
  // A DEADLINE_EXCEEDED the server sent before our deadline is its own
  // verdict (permanent); gRPC's monotonic clock says whether ours passed.
  (void)call;
  f.own_deadline = s.error_code() == ::grpc::StatusCode::DEADLINE_EXCEEDED && had_deadline &&
                   deadline_reached(gpr_now(GPR_CLOCK_MONOTONIC), ctx.raw_deadline());
  // Never sent: the channel had no connection when the attempt started, and
  // its last connection attempt failed when the attempt ended (see the
  // header: with pick_first, a connection that was made and then lost leaves
  // the channel IDLE, not TRANSIENT_FAILURE).
  f.sent = !(s.error_code() == ::grpc::StatusCode::UNAVAILABLE && channel_before &&
             *channel_before != GRPC_CHANNEL_READY && channel_after &&
             *channel_after == GRPC_CHANNEL_TRANSIENT_FAILURE);
  return f;
}

bool deadline_reached(gpr_timespec now, gpr_timespec deadline) noexcept {
  // gRPC keeps time in whole milliseconds, and its current time can be
  // rounded up, so its timer for our deadline can fire before gpr_now()
  // reaches it: up to 1.9 ms early under ASan on 2 loaded cores (CI once
  // read such a timed-out attempt as the server's verdict). A server's own
  // DEADLINE_EXCEEDED that close to ours is indistinguishable from it.
  return gpr_time_cmp(gpr_time_add(now, gpr_time_from_nanos(deadline_slack_nanos, GPR_TIMESPAN)),
                      deadline) >= 0;
}

bool is_idempotent(const options& o, const call_spec& spec) noexcept {
  if (spec.idempotent) return true;
  if (o.idempotent && !spec.method.empty()) {
    try {
      return o.idempotent(spec.method);
    } catch (...) {
      return false;
    }
  }
  return false;
}

bool may_repeat(const options& o, const call_spec& spec, const attempt_facts& f) noexcept {
  return !f.sent || is_idempotent(o, spec);
}

::grpc::Status synthesized(stop_reason r) {
  switch (r) {
    case stop_reason::cancelled:
      return {::grpc::StatusCode::CANCELLED, "rebound: the call was cancelled"};
    case stop_reason::throttled:
      return {::grpc::StatusCode::RESOURCE_EXHAUSTED,
              "rebound: refused by the client's adaptive throttle"};
    case stop_reason::time_exhausted:
      return {::grpc::StatusCode::DEADLINE_EXCEEDED, "rebound: the call's deadline passed"};
    default:
      return {::grpc::StatusCode::UNAVAILABLE,
              "rebound: the call ended (" + std::string(to_string(r)) + ")"};
  }
}

std::string describe(const ::grpc::Status& s) {
  std::string out(to_string(static_cast<code>(s.error_code())));
  if (!s.error_message().empty()) out += ": " + s.error_message();
  return out;
}

// ---- the callback driver ------------------------------------------------------

struct async_driver::attempt_slot {
  ::grpc::ClientContext ctx;
  int number = 1;
  bool hedged = false;
  bool own_deadline = false;
  std::optional<grpc_connectivity_state> channel_before;
  bool cancel_sent = false;
  bool finished = false;
  time_point started{};
};

async_driver::async_driver(const options& o, call_spec spec, start_fn start,
                           std::function<void(int, ::grpc::Status)> finish)
    : options_(o),
      spec_(std::move(spec)),
      call_options_(call_options_of(o, spec_)),
      start_(std::move(start)),
      finish_(std::move(finish)) {
  // The metadata is copied with the spec; the method name is a view: keep
  // its text, since the caller's may be gone before the last attempt ends.
  method_.assign(spec_.method);
  spec_.method = method_;
  idempotent_ = is_idempotent(o, spec_);
}

async_driver::~async_driver() = default;

void async_driver::run() {
  std::unique_lock lock(mu_);
  // Nested or not is known on the caller's thread; callbacks run on others.
  call_.emplace(options_.policy, call_options_,
                call_driver{.eager_start = true,
                            .nested = static_cast<std::int8_t>(::rebound::detail::loop_depth > 0),
                            .concurrent = true});
  if (const call_step first = call_->start(); first.done()) {
    finished_ = true;
    lock.unlock();
    finish_(-1, synthesized(first.reason));
    return;
  }
  if (call_->stop_token().stop_possible()) {
    std::weak_ptr<async_driver> w = weak_from_this();
    on_stop_.emplace(call_->stop_token(), std::function<void()>([w] {
                       if (auto self = w.lock()) self->on_stop();
                     }));
  }
  first_pending_ = true;
  step(lock);
}

void async_driver::on_done(int slot, ::grpc::Status s) {
  std::unique_lock lock(mu_);
  auto& a = *slots_[static_cast<std::size_t>(slot)];
  a.finished = true;
  --running_;
  if (s.ok()) {
    if (winner_ < 0 && !ending_) {
      winner_ = slot;
      ending_ = stop_reason::succeeded;
      for (const auto& other : slots_) {
        if (!other->finished) call_->cancelled_by_winner(other->number);
      }
      if (const auto& h = call_->policy().hedge(); h && h->tracker) {
        const time_point now = call_->now();
        h->tracker->record(now - a.started);
        for (const auto& other : slots_) {
          if (!other->finished) h->tracker->record(now - other->started);
        }
      }
      last_ = std::move(s);
    }
  } else if (!ending_) {
    const bool stopped = call_->stop_token().stop_requested();
    if (stopped) {
      ending_ = stop_reason::cancelled;
      last_ = std::move(s);
    } else {
      const attempt_facts f = facts(a.ctx, s, *call_, a.own_deadline, a.channel_before,
                                    idempotent_ ? std::nullopt : channel_state(options_));
      const verdict v = classify(static_cast<code>(s.error_code()), f, options_);
      const std::string cause = call_->observed() ? describe(s) : std::string();
      last_ = std::move(s);
      if (running_ > 0 && v.kind == verdict_kind::transient) {
        call_->failed_beside_others(v, a.number, cause);  // the others may yet succeed
      } else {
        const call_step st =
            call_->failed(v, {.cause = cause,
                              .timed_out = f.own_deadline,
                              .unsafe_to_repeat = !may_repeat(options_, spec_, f)});
        if (st.wait()) {
          backing_off_ = true;
          backoff_until_ = st.until;
          next_hedge_ = time_point::max();
        } else {
          ending_ = st.reason;
        }
      }
    }
  }
  step(lock);
}

void async_driver::on_timer() {
  std::unique_lock lock(mu_);
  timer_ = 0;
  timer_at_ = time_point::max();
  step(lock);
}

void async_driver::on_stop() {
  std::unique_lock lock(mu_);
  if (!ending_) ending_ = stop_reason::cancelled;
  step(lock);
}

void async_driver::arm(std::unique_lock<std::mutex>& lock, time_point at) {
  if (at == timer_at_) return;
  const std::uint64_t old = std::exchange(timer_, 0);
  timer_at_ = at;
  clock& c = call_->time_source();
  // The timer holds the driver: during a back-off nothing else does. It
  // lets go when it runs or is cancelled (at the latest when the call ends).
  auto self = shared_from_this();
  // Cancelling waits for a callback already running, which takes mu_: never
  // with mu_ held.
  lock.unlock();
  if (old != 0) c.cancel_call(old);
  std::uint64_t id = 0;
  if (at != time_point::max()) {
    id = c.call_at(at, [self] { self->on_timer(); });
  }
  lock.lock();
  if (timer_at_ == at && timer_ == 0) {
    timer_ = id;
  } else if (id != 0) {
    // Re-armed meanwhile: this one is stale (it finds nothing to do if it runs).
    lock.unlock();
    c.cancel_call(id);
    lock.lock();
  }
}

void async_driver::step(std::unique_lock<std::mutex>& lock) {
  if (finished_) return;
  std::vector<std::pair<int, attempt_slot*>> starts;
  std::vector<::grpc::ClientContext*> cancels;
  const auto cancel_all = [&] {
    for (auto& s : slots_) {
      if (!s->finished && !s->cancel_sent) {
        s->cancel_sent = true;
        cancels.push_back(&s->ctx);
      }
    }
  };
  const std::optional<hedge_policy>& hedge = call_->policy().hedge();
  const auto launch = [&](int number, bool hedged) {
    slots_.push_back(std::make_unique<attempt_slot>());
    auto& s = *slots_.back();
    s.number = number;
    s.hedged = hedged;
    s.started = call_->now();
    s.own_deadline = has_deadline(*call_);
    if (!idempotent_) s.channel_before = channel_state(options_);  // only "sent" needs it
    prepare(s.ctx, *call_, spec_, number);
    ++running_;
    starts.emplace_back(static_cast<int>(slots_.size()) - 1, &s);
    next_hedge_ = hedge ? ::rebound::detail::saturating_add(s.started, hedge->current_delay())
                        : time_point::max();
  };
  if (first_pending_) {
    first_pending_ = false;
    launch(1, false);
  }

  const time_point now = call_->now();
  if (!ending_ && now >= call_->deadline()) {
    ending_ = stop_reason::time_exhausted;
    deadline_cut_ = true;  // attempts still running are cut: no server status ends the call
  }
  if (!ending_ && backing_off_ && now >= backoff_until_) {
    backing_off_ = false;
    const call_step st = call_->resume(true);
    if (st.attempt()) {
      launch(call_->attempt(), false);
    } else {
      ending_ = st.reason;
    }
  }
  if (!ending_ && hedge && !backing_off_ && running_ > 0 && now >= next_hedge_) {
    next_hedge_ = time_point::max();
    if (hedges_ < hedge->max_hedges && !call_->hedge()) {
      ++hedges_;
      launch(call_->attempt(), true);
    }
  }
  if (ending_) cancel_all();

  // The end: at the first success at once (losers are cancelled and drain
  // on their own); otherwise once nothing runs.
  std::optional<std::pair<int, ::grpc::Status>> result;
  if (ending_ && (winner_ >= 0 || running_ == 0)) {
    finished_ = true;
    if (winner_ >= 0) {
      const auto& w = *slots_[static_cast<std::size_t>(winner_)];
      call_->succeeded(w.number, w.hedged);
      result.emplace(winner_, last_);
    } else {
      call_->end(*ending_);
      // The last server status, as the blocking form returns it; a made-up
      // one only when none came back, or the deadline cut attempts short.
      const bool from_server = !last_.ok() && !deadline_cut_;
      result.emplace(-1, from_server ? last_ : synthesized(*ending_));
    }
  }
  time_point wake = time_point::max();
  if (!finished_ && !ending_) {
    if (backing_off_) wake = backoff_until_;
    if (!backing_off_ && running_ > 0) wake = next_hedge_;
    if (call_->deadline() != time_point::max()) wake = std::min(wake, call_->deadline());
  }
  arm(lock, wake);
  lock.unlock();
  for (auto* ctx : cancels) ctx->TryCancel();
  for (const auto& [slot, a] : starts) {
    auto self = shared_from_this();
    start_(a->ctx, slot,
           [self, slot = slot](::grpc::Status s) { self->on_done(slot, std::move(s)); });
  }
  if (result) {
    on_stop_.reset();
    finish_(result->first, std::move(result->second));
  }
  lock.lock();
}

}  // namespace detail

}  // namespace rebound::grpc
