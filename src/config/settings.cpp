// Settings as values: checks across fields, and the policies they describe.
#include <cmath>
#include <sstream>

#include "rebound/duration.hpp"
#include "schema.hpp"

namespace rebound {

namespace {

using detail::config_fail;
using detail::fmt_number;

[[noreturn]] void fail(const std::string& field, const std::string& problem) {
  config_fail(field, problem);
}

constexpr int max_attempts_limit = 1'000'000;

double checked_multiplier(double m, const std::string& field, const std::string& shown) {
  if (!std::isfinite(m)) fail(field, shown + " is not a finite number; allowed: 1..1000");
  if (m < 1.0 || m > 1000.0) {
    fail(field, shown +
                    " is out of range; allowed: 1..1000 (a multiplier below 1 would shrink "
                    "the delays)");
  }
  return m;
}

void check_whole_seconds(duration d, const std::string& field, int lo, int hi) {
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(d);
  if (s != d || s.count() < lo || s.count() > hi) {
    fail(field, format_duration(d) + " is not allowed; allowed: whole seconds, " +
                    std::to_string(lo) + "s.." + std::to_string(hi) + "s");
  }
}

}  // namespace

duration policy_settings::effective_max_delay() const {
  switch (backoff_type) {
    case backoff::kind::constant:
    case backoff::kind::list:
      return duration::max();  // uncapped: jitter may spread them
    default:
      return max_delay ? *max_delay : std::max<duration>(std::chrono::seconds(5), initial);
  }
}

void policy_settings::validate() const {
  if (max_attempts && (*max_attempts < 1 || *max_attempts > max_attempts_limit)) {
    fail("max_attempts", std::to_string(*max_attempts) + " is out of range; allowed: 1.." +
                             std::to_string(max_attempts_limit));
  }
  auto check_duration = [](const std::optional<duration>& d, const std::string& field) {
    if (d && (*d < duration::zero() || *d > max_config_duration)) {
      fail(field, std::to_string(d->count()) + "ns is out of range; allowed: 0s..87600h");
    }
  };
  check_duration(max_elapsed, "max_elapsed");
  check_duration(before_elapsed, "before_elapsed");
  check_duration(initial, "backoff.initial");
  check_duration(step, "backoff.step");
  check_duration(max_delay, "backoff.max");
  check_duration(max_server_delay, "max_server_delay");
  check_duration(attempt_timeout, "attempt_timeout");
  check_duration(total_timeout, "total_timeout");
  if (attempt_timeout && *attempt_timeout == duration::zero()) {
    fail("attempt_timeout", "0s is out of range; allowed: > 0 (leave it out for no limit)");
  }
  if (total_timeout && *total_timeout == duration::zero()) {
    fail("total_timeout", "0s is out of range; allowed: > 0 (leave it out for no limit)");
  }
  if (hedge) check_duration(hedge->delay, "hedge.delay");
  for (std::size_t i = 0; i < delays.size(); ++i) {
    check_duration(delays[i], "backoff.delays[" + std::to_string(i) + "]");
  }
  if (backoff_type == backoff::kind::function) {
    fail("backoff.type", "function backoffs cannot come from configuration");
  }
  if (backoff_type == backoff::kind::exponential) {
    std::ostringstream shown;
    shown << multiplier;
    checked_multiplier(multiplier, "backoff.multiplier", shown.str());
  }
  if ((backoff_type == backoff::kind::exponential || backoff_type == backoff::kind::linear) &&
      max_delay && *max_delay < initial) {
    fail("backoff.max", format_duration(*max_delay) + " is less than backoff.initial " +
                            format_duration(initial) + "; allowed: max >= initial");
  }
  if (backoff_type == backoff::kind::list && delays.empty()) {
    fail("backoff.delays", "a list backoff needs at least one delay, e.g. [\"1s\", \"2s\"]");
  }
  if (budget) budget->validate();
  if (throttle) {
    if (!(throttle->k >= 1 && throttle->k <= 10)) {
      fail("throttle.k", fmt_number(throttle->k) + " is out of range; allowed: 1..10");
    }
    check_whole_seconds(throttle->window, "throttle.window", 1, 600);
  }
  if (jitter.type() == jitter::kind::proportional &&
      !(jitter.factor() >= 0.0 && jitter.factor() <= 1.0)) {
    fail("jitter", "factor out of range; allowed: 0..1");
  }
}

retry_policy policy_settings::to_policy() const { return build(nullptr); }

retry_policy policy_settings::to_policy(clock& c) const { return build(&c); }

// A custom clock is set only when given: a policy on the system clock keeps
// the blocking loop's fast, coarse start stamp.
retry_policy policy_settings::build(clock* c) const {
  validate();
  stop_condition stop;
  if (max_attempts) stop = stop | stop::after_attempts(*max_attempts);
  if (max_elapsed) stop = stop | stop::after_elapsed(*max_elapsed);
  if (before_elapsed) stop = stop | stop::before_elapsed(*before_elapsed);
  if (!max_attempts && !max_elapsed && !before_elapsed) stop = stop::after_attempts(3);

  const duration max = effective_max_delay();
  rebound::backoff b;
  switch (backoff_type) {
    case backoff::kind::constant:
      b = backoff::constant(initial);
      break;
    case backoff::kind::linear:
      b = backoff::linear(initial, step, max);
      break;
    case backoff::kind::exponential:
      b = backoff::exponential(initial, multiplier, max);
      break;
    case backoff::kind::list:
      b = backoff::list(delays);
      break;
    case backoff::kind::function:
      break;  // rejected by validate()
  }
  retry_policy p = retry_policy{}.stop(stop).backoff(b).jitter(jitter).max_server_delay(
      max_server_delay, server_delay);
  if (seed) p = p.seed(*seed);
  clock& time = c != nullptr ? *c : system_clock();
  if (c != nullptr) p = p.clock(*c);
  if (budget) p = p.budget(budget->make(time));
  if (throttle) p = p.throttle(std::make_shared<adaptive_throttle>(*throttle, time));
  if (attempt_timeout) p = p.attempt_timeout(*attempt_timeout);
  if (total_timeout) p = p.total_timeout(*total_timeout);
  if (hedge) {
    p = p.hedge({.delay = hedge->delay,
                 .max_hedges = hedge->max_hedges,
                 .percentile = hedge->percentile,
                 .min_samples = static_cast<std::size_t>(hedge->min_samples)});
  }
  return p;
}

void budget_settings::validate() const {
  switch (type) {
    case budget_kind::token_bucket: {
      const auto& o = token_bucket;
      if (o.capacity < 1 || o.capacity > 1'000'000) {
        fail("budget.capacity", std::to_string(o.capacity) + " is out of range; allowed: 1..1e+06");
      }
      if (o.retry_cost < 1 || o.timeout_retry_cost < 1 || o.success_refund < 0) {
        fail("budget.retry_cost", "costs must be >= 1 and the refund >= 0");
      }
      if (o.retry_cost > o.capacity || o.timeout_retry_cost > o.capacity) {
        fail("budget.retry_cost", "a retry cost above the capacity (" + std::to_string(o.capacity) +
                                      ") would never be granted");
      }
      break;
    }
    case budget_kind::ratio:
      if (!(ratio.ratio >= 0 && ratio.ratio <= 10)) {
        fail("budget.ratio", fmt_number(ratio.ratio) + " is out of range; allowed: 0..10");
      }
      if (ratio.min_per_second < 0) fail("budget.min_per_second", "must be >= 0");
      check_whole_seconds(ratio.window, "budget.window", 1, 60);
      break;
    case budget_kind::throttle:
      // gRFC A6: maxTokens is required and above 0, a uint32 in gRPC's
      // service_config.proto (so whole); grpc-go refuses more than 1000,
      // and so do we. tokenRatio is above 0 with up to 3 decimals; A6 sets no
      // upper bound (a ratio above maxTokens refills the count at once).
      if (!(throttle.max_tokens >= 1 && throttle.max_tokens <= 1000) ||
          throttle.max_tokens != std::floor(throttle.max_tokens)) {
        fail("budget.max_tokens", fmt_number(throttle.max_tokens) +
                                      " is not allowed; allowed: a whole number 1..1000 (gRFC A6)");
      }
      if (!(throttle.token_ratio >= 0.001 && throttle.token_ratio <= 1000)) {
        fail("budget.token_ratio",
             fmt_number(throttle.token_ratio) + " is out of range; allowed: 0.001..1000");
      }
      break;
  }
}

std::shared_ptr<retry_budget> budget_settings::make(clock& c) const {
  validate();
  switch (type) {
    case budget_kind::ratio:
      return std::make_shared<ratio_budget>(ratio, c);
    case budget_kind::throttle:
      return std::make_shared<throttle_budget>(throttle);
    case budget_kind::token_bucket:
      break;
  }
  return std::make_shared<token_bucket_budget>(token_bucket);
}

void validate(const breaker_options& o) {
  if (o.failure_threshold < 1) fail("failure_threshold", "must be >= 1");
  if (!(o.failure_ratio > 0 && o.failure_ratio <= 1)) {
    fail("failure_ratio", fmt_number(o.failure_ratio) + " is out of range; allowed: 0.001..1");
  }
  if (o.minimum_calls < 1) fail("minimum_calls", "must be >= 1");
  check_whole_seconds(o.window, "window", 1, 600);
  if (o.open_duration < std::chrono::milliseconds(1) || o.open_duration > max_config_duration) {
    fail("open_duration",
         format_duration(o.open_duration) + " is out of range; allowed: 1ms..87600h");
  }
  if (o.half_open_probes < 1 || o.half_open_probes > 1000) {
    fail("half_open_probes",
         std::to_string(o.half_open_probes) + " is out of range; allowed: 1..1000");
  }
}

}  // namespace rebound
