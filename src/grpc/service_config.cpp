// gRPC service configs (gRFC A6) as rebound values: rebound/grpc/service_config.hpp.
#include "rebound/grpc/service_config.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <sstream>

#include "../config/schema.hpp"
#include "rebound/config.hpp"
#include "rebound/duration.hpp"

namespace rebound::grpc {

namespace {

using ::rebound::detail::json;

constexpr std::array<std::string_view, 17> code_names{
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

[[noreturn]] void fail(const std::string& field, const std::string& problem) {
  throw config_error(field, problem);
}

const json* member(const json& obj, const char* key) {
  const auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

duration positive_duration(const json& obj, const char* key, const std::string& at, bool required) {
  const json* v = member(obj, key);
  const std::string field = at + "." + key;
  if (v == nullptr) {
    if (required) fail(field, "required (gRFC A6)");
    return duration::zero();
  }
  if (!v->is_string()) fail(field, "expected a duration such as \"0.1s\", got " + v->dump());
  const auto d = parse_proto_duration(v->get<std::string>());
  if (!d) fail(field, "\"" + v->get<std::string>() + "\" is not a duration such as \"0.1s\"");
  if (*d <= duration::zero()) fail(field, "must be above 0 (gRFC A6)");
  return *d;
}

int max_attempts(const json& obj, const std::string& at, bool& clamped) {
  const json* v = member(obj, "maxAttempts");
  const std::string field = at + ".maxAttempts";
  if (v == nullptr) fail(field, "required (gRFC A6)");
  if (!v->is_number_integer()) fail(field, "expected an integer, got " + v->dump());
  const auto n = v->get<long long>();
  if (n <= 1) fail(field, std::to_string(n) + " must be above 1 (gRFC A6)");
  if (n > 5) clamped = true;
  return static_cast<int>(std::min<long long>(n, 5));  // gRPC clamps to 5
}

std::vector<code> codes(const json& obj, const char* key, const std::string& at, bool required) {
  const json* v = member(obj, key);
  const std::string field = at + "." + key;
  if (v == nullptr) {
    if (required) fail(field, "required (gRFC A6)");
    return {};
  }
  if (!v->is_array()) fail(field, "expected a list of status codes, got " + v->dump());
  if (v->empty() && required) fail(field, "must not be empty (gRFC A6)");
  std::vector<code> out;
  for (std::size_t i = 0; i < v->size(); ++i) {
    const json& c = (*v)[i];
    std::optional<code> parsed;
    if (c.is_string()) {
      parsed = code_from_string(c.get<std::string>());
    } else if (c.is_number_integer()) {
      parsed = code_from_string(std::to_string(c.get<long long>()));
    }
    if (!parsed) {
      fail(field + "[" + std::to_string(i) + "]",
           c.dump() + " is not a gRPC status code; allowed: names such as UNAVAILABLE, or 0..16");
    }
    if (*parsed == code::ok) {
      fail(field + "[" + std::to_string(i) + "]", "OK is not a failure");
    }
    out.push_back(*parsed);
  }
  return out;
}

// The method config for `method`: exact name, then the service, then the default.
std::pair<const json*, std::string> find_method(const json& doc, std::string_view method,
                                                std::string& name_out) {
  const json* list = member(doc, "methodConfig");
  if (list == nullptr) return {nullptr, ""};
  if (!list->is_array()) fail("methodConfig", "expected a list, got " + list->dump());
  const auto slash = method.find('/');
  const std::string service(method.substr(0, slash));
  const std::string name(slash == std::string_view::npos ? "" : method.substr(slash + 1));
  const json* exact = nullptr;
  const json* whole_service = nullptr;
  const json* fallback = nullptr;
  std::string exact_at, service_at, fallback_at;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const json& mc = (*list)[i];
    const std::string at = "methodConfig[" + std::to_string(i) + "]";
    if (!mc.is_object()) fail(at, "expected an object, got " + mc.dump());
    const json* names = member(mc, "name");
    if (names == nullptr) continue;
    if (!names->is_array()) fail(at + ".name", "expected a list, got " + names->dump());
    for (std::size_t j = 0; j < names->size(); ++j) {
      const json& n = (*names)[j];
      const std::string nat = at + ".name[" + std::to_string(j) + "]";
      if (!n.is_object()) fail(nat, "expected an object, got " + n.dump());
      const json* s = member(n, "service");
      const json* m = member(n, "method");
      if ((s != nullptr && !s->is_string()) || (m != nullptr && !m->is_string())) {
        fail(nat, "service and method must be strings");
      }
      const std::string sv = s != nullptr ? s->get<std::string>() : "";
      const std::string mv = m != nullptr ? m->get<std::string>() : "";
      if (sv.empty() && !mv.empty()) fail(nat + ".method", "a method needs its service");
      if (!sv.empty() && sv == service && !mv.empty() && mv == name) {
        exact = &mc;
        exact_at = at;
      } else if (!sv.empty() && sv == service && mv.empty()) {
        whole_service = &mc;
        service_at = at;
      } else if (sv.empty() && mv.empty()) {
        fallback = &mc;
        fallback_at = at;
      }
    }
  }
  if (exact != nullptr) {
    name_out = service + "/" + name;
    return {exact, exact_at};
  }
  if (whole_service != nullptr) {
    name_out = service + "/";
    return {whole_service, service_at};
  }
  if (fallback != nullptr) {
    name_out = "";
    return {fallback, fallback_at};
  }
  return {nullptr, ""};
}

}  // namespace

std::string_view to_string(code c) noexcept {
  const auto i = static_cast<std::size_t>(c);
  return i < code_names.size() ? code_names[i] : std::string_view("UNKNOWN");
}

std::optional<code> code_from_string(std::string_view s) noexcept {
  if (!s.empty() &&
      std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
    if (s.size() > 2) return std::nullopt;
    int n = 0;
    for (const char ch : s) n = n * 10 + (ch - '0');
    if (n > 16) return std::nullopt;
    return static_cast<code>(n);
  }
  for (std::size_t i = 0; i < code_names.size(); ++i) {
    const std::string_view name = code_names[i];
    if (name.size() == s.size() &&
        std::equal(name.begin(), name.end(), s.begin(), [](char a, char b) {
          return a == std::toupper(static_cast<unsigned char>(b));
        })) {
      return static_cast<code>(i);
    }
  }
  return std::nullopt;
}

std::optional<duration> parse_proto_duration(std::string_view s) noexcept {
  // [-]digits[.1-9 digits]s
  if (s.size() < 2 || s.back() != 's') return std::nullopt;
  s.remove_suffix(1);
  bool negative = false;
  if (s.front() == '-') {
    negative = true;
    s.remove_prefix(1);
  }
  const auto dot = s.find('.');
  const std::string_view whole = s.substr(0, dot);
  const std::string_view frac = dot == std::string_view::npos ? "" : s.substr(dot + 1);
  if (whole.empty() || whole.size() > 12)
    return std::nullopt;  // 315,576,000,000 s is the proto limit
  if (dot != std::string_view::npos && (frac.empty() || frac.size() > 9)) return std::nullopt;
  long long seconds = 0, nanos = 0;
  for (const char c : whole) {
    if (c < '0' || c > '9') return std::nullopt;
    seconds = seconds * 10 + (c - '0');
  }
  if (seconds > 315'576'000'000LL) return std::nullopt;
  for (std::size_t i = 0; i < 9; ++i) {
    const char c = i < frac.size() ? frac[i] : '0';
    if (c < '0' || c > '9') return std::nullopt;
    nanos = nanos * 10 + (c - '0');
  }
  // rebound's durations are 64-bit nanoseconds: about 292 years.
  if (seconds > 9'000'000'000LL) return std::nullopt;
  const duration d = std::chrono::seconds(seconds) + std::chrono::nanoseconds(nanos);
  return negative ? -d : d;
}

method_config policy_from_service_config(std::string_view text, std::string_view method) {
  const json doc = ::rebound::detail::parse_document(text);
  if (!doc.is_object()) fail("(document)", "expected a service config object");
  if (method.empty() || method.find('/') == std::string_view::npos || method.front() == '/' ||
      method.back() == '/') {
    fail("method",
         "\"" + std::string(method) + "\" is not a method name such as pkg.Service/Method");
  }
  method_config out;
  std::ostringstream summary;
  summary << "gRPC service config for " << method << ": ";
  // One attempt unless the config says otherwise (what gRPC does).
  retry_policy p = retry_policy{}.stop(stop::after_attempts(1));
  std::string matched;
  const auto [mc, at] = find_method(doc, method, matched);
  if (mc != nullptr) {
    out.matched = matched;
    const json* retry = member(*mc, "retryPolicy");
    const json* hedging = member(*mc, "hedgingPolicy");
    if (retry != nullptr && hedging != nullptr) {
      fail(at, "has both retryPolicy and hedgingPolicy; gRFC A6 allows one");
    }
    if (retry != nullptr) {
      const std::string rat = at + ".retryPolicy";
      if (!retry->is_object()) fail(rat, "expected an object, got " + retry->dump());
      const int attempts = max_attempts(*retry, rat, out.clamped);
      const duration initial = positive_duration(*retry, "initialBackoff", rat, true);
      const duration max = positive_duration(*retry, "maxBackoff", rat, true);
      const json* mult = member(*retry, "backoffMultiplier");
      if (mult == nullptr) fail(rat + ".backoffMultiplier", "required (gRFC A6)");
      if (!mult->is_number()) {
        fail(rat + ".backoffMultiplier", "expected a number, got " + mult->dump());
      }
      const double m = mult->get<double>();
      if (!(m > 0) || !std::isfinite(m)) {
        fail(rat + ".backoffMultiplier", mult->dump() + " must be above 0 (gRFC A6)");
      }
      out.retryable_codes = codes(*retry, "retryableStatusCodes", rat, true);
      // gRPC waits random(0, min(initialBackoff * multiplier^(n-1), maxBackoff)).
      p = p.stop(stop::after_attempts(attempts))
              .backoff(backoff::exponential(initial, m, std::max(initial, max)))
              .jitter(jitter::full());
      summary << "retryPolicy: " << attempts << " attempts"
              << (out.clamped ? " (maxAttempts clamped to 5)" : "") << ", backoff "
              << format_duration(initial) << " x" << m << " up to "
              << format_duration(std::max(initial, max)) << ", full jitter";
      if (member(*retry, "perAttemptRecvTimeout") != nullptr) {
        const duration per = positive_duration(*retry, "perAttemptRecvTimeout", rat, false);
        p = p.attempt_timeout(per);
        summary << ", " << format_duration(per) << " per attempt";
      }
    }
    if (hedging != nullptr) {
      const std::string hat = at + ".hedgingPolicy";
      if (!hedging->is_object()) fail(hat, "expected an object, got " + hedging->dump());
      const int attempts = max_attempts(*hedging, hat, out.clamped);
      duration delay = duration::zero();
      if (const json* d = member(*hedging, "hedgingDelay")) {
        if (!d->is_string()) fail(hat + ".hedgingDelay", "expected a duration, got " + d->dump());
        const auto parsed = parse_proto_duration(d->get<std::string>());
        if (!parsed || *parsed < duration::zero()) {
          fail(hat + ".hedgingDelay", d->dump() + " is not a duration of 0s or more");
        }
        delay = *parsed;
      }
      out.retryable_codes = codes(*hedging, "nonFatalStatusCodes", hat, false);
      // Every attempt is a hedge: no back-off, at most maxAttempts in all.
      p = p.stop(stop::after_attempts(attempts))
              .backoff(backoff::constant(duration::zero()))
              .hedge({.delay = delay, .max_hedges = attempts - 1});
      summary << "hedgingPolicy: " << attempts << " attempts"
              << (out.clamped ? " (maxAttempts clamped to 5)" : "") << ", a hedge every "
              << format_duration(delay) << " while none has answered";
    }
    if (retry == nullptr && hedging == nullptr) summary << "no retryPolicy: 1 attempt";
    summary << "; codes:";
    if (out.retryable_codes.empty()) summary << " none";
    for (const code c : out.retryable_codes) summary << " " << to_string(c);
    if (const json* t = member(*mc, "timeout")) {
      if (!t->is_string()) fail(at + ".timeout", "expected a duration, got " + t->dump());
      const auto d = parse_proto_duration(t->get<std::string>());
      if (!d || *d <= duration::zero()) fail(at + ".timeout", t->dump() + " must be above 0");
      p = p.total_timeout(*d);
      summary << "; timeout " << format_duration(*d);
    }
    summary << " (matched \"" << matched << "\")";
  } else {
    summary << "no methodConfig matches: 1 attempt";
  }
  if (const json* th = member(doc, "retryThrottling")) {
    if (!th->is_object()) fail("retryThrottling", "expected an object, got " + th->dump());
    const json* max_tokens = member(*th, "maxTokens");
    const json* ratio = member(*th, "tokenRatio");
    if (max_tokens == nullptr) fail("retryThrottling.maxTokens", "required (gRFC A6)");
    if (ratio == nullptr) fail("retryThrottling.tokenRatio", "required (gRFC A6)");
    // gRFC A6: "required and must be greater than zero"; gRPC's
    // service_config.proto declares it a uint32, so 0.5 and 2.5 are not
    // values it can hold. grpc-go refuses more than 1000, and so do we.
    if (!max_tokens->is_number() || !(max_tokens->get<double>() >= 1) ||
        max_tokens->get<double>() > 1000 ||
        max_tokens->get<double>() != std::floor(max_tokens->get<double>())) {
      fail("retryThrottling.maxTokens", max_tokens->dump() +
                                            " is not allowed; allowed: a whole number 1..1000 "
                                            "(gRFC A6: a uint32 above 0; grpc-go's cap of 1000)");
    }
    if (!ratio->is_number() || !(ratio->get<double>() > 0)) {
      fail("retryThrottling.tokenRatio", ratio->dump() + " must be above 0");
    }
    // gRFC A6 keeps 3 decimals: below 0.001 nothing is left (gRPC refuses it too).
    // No upper bound in A6: a tokenRatio above maxTokens refills the count
    // to maxTokens on every success (the count never exceeds maxTokens).
    if (ratio->get<double>() < 0.001) {
      fail("retryThrottling.tokenRatio",
           ratio->dump() + " is 0 once truncated to 3 decimals (gRFC A6); allowed: 0.001 or more");
    }
    out.throttle = std::make_shared<throttle_budget>(throttle_budget::options{
        .max_tokens = max_tokens->get<double>(), .token_ratio = ratio->get<double>()});
    p = p.budget(out.throttle);
    summary << "; retryThrottling: maxTokens " << out.throttle->settings().max_tokens
            << ", tokenRatio " << out.throttle->settings().token_ratio;
  }
  out.policy = std::move(p);
  out.summary = summary.str();
  return out;
}

method_config policy_from_service_config_file(const std::filesystem::path& file,
                                              std::string_view method) {
  return policy_from_service_config(::rebound::detail::read_config_file(file), method);
}

}  // namespace rebound::grpc
