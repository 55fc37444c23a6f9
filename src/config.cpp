#include "rebound/config.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "detail/config_text.hpp"
#include "rebound/duration.hpp"

extern char** environ;

namespace rebound {

using json = nlohmann::json;

namespace {

constexpr int max_attempts_limit = 1'000'000;
constexpr double max_multiplier = 1000.0;

std::string join(std::initializer_list<std::string_view> names) {
  std::string s;
  for (auto n : names) {
    if (!s.empty()) s += ", ";
    s += n;
  }
  return s;
}

std::string type_name(const json& v) {
  if (v.is_number_integer() || v.is_number_unsigned()) return "an integer";
  if (v.is_number_float()) return "a number";
  if (v.is_null()) return "null";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  if (v.is_boolean()) return "a boolean";
  return "a string";
}

// "a string \"5\"", "an array [1,2]", "null": what a value was, for messages.
std::string got(const json& v) { return v.is_null() ? "null" : type_name(v) + " " + v.dump(); }

[[noreturn]] void fail(const std::string& field, const std::string& problem) {
  throw config_error(field, problem);
}

// One of a fixed set of names, or an error listing them: "\"x\" is not a <what>; allowed: a, b".
template <class E>
E pick(std::string_view text, const std::string& field, const char* what,
       std::initializer_list<std::pair<const char*, E>> names) {
  std::string allowed;
  for (const auto& [name, value] : names) {
    if (text == name) return value;
    allowed += allowed.empty() ? name : std::string(", ") + name;
  }
  fail(field, "\"" + std::string(text) + "\" is not " + what + "; allowed: " + allowed);
}

duration to_duration(std::string_view text, const std::string& field) {
  try {
    return parse_duration(text);
  } catch (const std::invalid_argument& e) {
    fail(field, e.what());
  }
}

duration json_duration(const json& v, const std::string& field) {
  if (!v.is_string()) {
    fail(field, "expected a duration string such as \"250ms\", \"2s\" or \"1.5m\", got " + got(v));
  }
  return to_duration(v.get<std::string>(), field);
}

int attempts_from(long double v, const std::string& field, const std::string& shown) {
  if (v < 1 || v > max_attempts_limit) {
    fail(field, shown + " is out of range; allowed: 1.." + std::to_string(max_attempts_limit));
  }
  return static_cast<int>(v);
}

int json_attempts(const json& v, const std::string& field) {
  if (v.is_number_unsigned()) {
    const auto n = v.get<std::uint64_t>();
    return attempts_from(static_cast<long double>(std::min<std::uint64_t>(n, 1ULL << 40)), field,
                         v.dump());
  }
  if (v.is_number_integer()) return attempts_from(v.get<std::int64_t>(), field, v.dump());
  fail(field,
       "expected an integer in 1.." + std::to_string(max_attempts_limit) + ", got " + got(v));
}

double checked_multiplier(double m, const std::string& field, const std::string& shown) {
  if (!std::isfinite(m)) fail(field, shown + " is not a finite number; allowed: 1..1000");
  if (m < 1.0 || m > max_multiplier) {
    fail(field, shown +
                    " is out of range; allowed: 1..1000 (a multiplier below 1 would shrink "
                    "the delays)");
  }
  return m;
}

double json_number(const json& v, const std::string& field) {
  if (!v.is_number()) fail(field, "expected a number, got " + got(v));
  return v.get<double>();
}

std::uint64_t json_seed(const json& v, const std::string& field) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  if (v.is_number_integer()) fail(field, v.dump() + " is negative; allowed: 0..2^64-1");
  fail(field, "expected an integer in 0..2^64-1, got " + got(v));
}

std::string json_string(const json& v, const std::string& field) {
  if (!v.is_string()) fail(field, "expected a string, got " + got(v));
  return v.get<std::string>();
}

server_delay_mode parse_server_delay_mode(std::string_view s, const std::string& field) {
  return pick<server_delay_mode>(
      s, field, "allowed here",
      {{"clamp", server_delay_mode::clamp}, {"give_up", server_delay_mode::give_up}});
}

template <class T>
bool parse_integer(std::string_view s, T& out) {
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

double parse_double(std::string_view s, const std::string& field) {
  double v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec == std::errc::result_out_of_range && p == s.data() + s.size()) {
    fail(field, "\"" + std::string(s) + "\" is out of range");
  }
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) {
    fail(field, "\"" + std::string(s) + "\" is not a number");
  }
  return v;
}

int text_attempts(std::string_view s, const std::string& field) {
  long long n = 0;
  const std::string shown = "\"" + std::string(s) + "\"";
  if (!parse_integer(s, n)) {
    // Distinguish an overflowing integer from text that is no integer at all.
    const bool all_digits =
        !s.empty() && std::all_of(s.begin() + (s.front() == '-' ? 1 : 0), s.end(),
                                  [](char c) { return c >= '0' && c <= '9'; });
    if (all_digits) {
      fail(field, shown + " is out of range; allowed: 1.." + std::to_string(max_attempts_limit));
    }
    fail(field, shown + " is not an integer; allowed: 1.." + std::to_string(max_attempts_limit));
  }
  return attempts_from(static_cast<long double>(n), field, shown);
}

std::uint64_t text_seed(std::string_view s, const std::string& field) {
  std::uint64_t n = 0;
  if (!parse_integer(s, n)) {
    fail(field, "\"" + std::string(s) + "\" is not an integer in 0..2^64-1");
  }
  return n;
}

std::vector<duration> text_delays(std::string_view s, const std::string& field) {
  std::vector<duration> out;
  std::size_t start = 0;
  while (true) {
    const auto comma = s.find(',', start);
    const auto item = s.substr(start, comma == std::string_view::npos ? s.npos : comma - start);
    out.push_back(to_duration(item, field + "[" + std::to_string(out.size()) + "]"));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

// Which backoff keys a backoff type uses ("max" means backoff.max, and so on).
bool backoff_key_applies(backoff::kind k, std::string_view key) {
  if (key == "type") return true;
  switch (k) {
    case backoff::kind::constant:
      return key == "initial";
    case backoff::kind::linear:
      return key == "initial" || key == "step" || key == "max";
    case backoff::kind::exponential:
      return key == "initial" || key == "multiplier" || key == "max";
    case backoff::kind::list:
      return key == "delays";
    case backoff::kind::function:
      return false;
  }
  return false;
}

// Keys given for a backoff, checked against its type once all are read.
void check_backoff_keys(backoff::kind k,
                        const std::vector<std::pair<std::string, std::string>>& given) {
  for (const auto& [key, field] : given) {
    if (!backoff_key_applies(k, key)) {
      fail(field, "not used by " + std::string(k == backoff::kind::exponential ? "an " : "a ") +
                      std::string(to_string(k)) + " backoff" +
                      (key == "max" ? " (constant and list delays are not capped; jitter adds "
                                      "to them)"
                                    : ""));
    }
  }
}

void read_backoff(const json& b, policy_settings& s) {
  if (!b.is_object()) {
    fail("backoff",
         "expected an object such as {\"type\": \"exponential\", \"initial\": "
         "\"500ms\"}, got " +
             type_name(b));
  }
  std::vector<std::pair<std::string, std::string>> given;
  for (const auto& [key, v] : b.items()) {
    const std::string field = "backoff." + key;
    given.emplace_back(key, field);
    if (key == "type") {
      s.backoff_type = parse_backoff_kind(json_string(v, field), field);
    } else if (key == "initial") {
      s.initial = json_duration(v, field);
    } else if (key == "multiplier") {
      s.multiplier = checked_multiplier(json_number(v, field), field, v.dump());
    } else if (key == "step") {
      s.step = json_duration(v, field);
    } else if (key == "max") {
      s.max_delay = json_duration(v, field);
    } else if (key == "delays") {
      if (!v.is_array()) fail(field, "expected an array of durations, got " + type_name(v));
      s.delays.clear();
      for (std::size_t i = 0; i < v.size(); ++i) {
        s.delays.push_back(json_duration(v[i], field + "[" + std::to_string(i) + "]"));
      }
    } else {
      fail(field, "unknown key; allowed: " +
                      join({"type", "initial", "multiplier", "step", "max", "delays"}));
    }
  }
  check_backoff_keys(s.backoff_type, given);
}

rebound::jitter read_jitter(const json& j) {
  if (j.is_string()) return parse_jitter(j.get<std::string>(), "jitter");
  if (!j.is_object()) {
    fail("jitter",
         "expected a string such as \"full\" or an object such as {\"type\": "
         "\"proportional\", \"factor\": 0.2}, got " +
             type_name(j));
  }
  std::string type = "full";
  std::optional<double> factor;
  std::optional<duration> amount;
  for (const auto& [key, v] : j.items()) {
    const std::string field = "jitter." + key;
    if (key == "type") {
      type = json_string(v, field);
    } else if (key == "factor") {
      factor = json_number(v, field);
      if (!(*factor >= 0.0 && *factor <= 1.0)) {
        fail(field, v.dump() + " is out of range; allowed: 0..1");
      }
    } else if (key == "amount") {
      amount = json_duration(v, field);
    } else {
      fail(field, "unknown key; allowed: type, factor, amount");
    }
  }
  if (type == "proportional") {
    if (!factor) fail("jitter.factor", "required for type proportional (0..1)");
    if (amount) fail("jitter.amount", "not used by type proportional");
    return rebound::jitter::proportional(*factor);
  }
  if (type == "additive") {
    if (!amount) fail("jitter.amount", "required for type additive (a duration)");
    if (factor) fail("jitter.factor", "not used by type additive");
    return rebound::jitter::additive(*amount);
  }
  if (factor) fail("jitter.factor", "only used by type proportional");
  if (amount) fail("jitter.amount", "only used by type additive");
  return parse_jitter(type, "jitter.type");
}

// A value from JSON or from the environment (text).
struct value_ref {
  const json* j = nullptr;
  std::string_view text;
};

std::string show(const value_ref& v) {
  return v.j != nullptr ? v.j->dump() : "\"" + std::string(v.text) + "\"";
}

std::string fmt_number(double x) {
  std::ostringstream o;
  o << x;
  return o.str();
}

double number_in(const value_ref& v, const std::string& field, double lo, double hi, bool integer) {
  const std::string range = fmt_number(lo) + ".." + fmt_number(hi);
  double x = 0;
  if (v.j != nullptr) {
    if (!v.j->is_number() || (integer && v.j->is_number_float())) {
      fail(field, std::string("expected ") + (integer ? "an integer" : "a number") + " in " +
                      range + ", got " + got(*v.j));
    }
    x = v.j->get<double>();
  } else {
    const std::string_view t = v.text;
    const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), x);
    const bool whole = p == t.data() + t.size() && !t.empty();
    if (ec == std::errc::result_out_of_range && whole) {
      fail(field, show(v) + " is out of range; allowed: " + range);
    }
    if (ec != std::errc() || !whole ||
        (integer && t.find_first_of(".eEnN") != std::string_view::npos)) {
      fail(field,
           show(v) + " is not " + (integer ? "an integer" : "a number") + "; allowed: " + range);
    }
  }
  if (!std::isfinite(x)) fail(field, show(v) + " is not a finite number; allowed: " + range);
  if (x < lo || x > hi) fail(field, show(v) + " is out of range; allowed: " + range);
  return x;
}

duration duration_in(const value_ref& v, const std::string& field) {
  return v.j != nullptr ? json_duration(*v.j, field) : to_duration(v.text, field);
}

std::string string_in(const value_ref& v, const std::string& field) {
  return v.j != nullptr ? json_string(*v.j, field) : std::string(v.text);
}

void check_whole_seconds(duration d, const std::string& field, int lo, int hi) {
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(d);
  if (s != d || s.count() < lo || s.count() > hi) {
    fail(field, format_duration(d) + " is not allowed; allowed: whole seconds, " +
                    std::to_string(lo) + "s.." + std::to_string(hi) + "s");
  }
}

const char* budget_kind_name(budget_kind k) {
  switch (k) {
    case budget_kind::token_bucket:
      return "token_bucket";
    case budget_kind::ratio:
      return "ratio";
    case budget_kind::throttle:
      return "throttle";
  }
  return "token_bucket";
}

// Which keys each budget type takes.
bool budget_key_applies(budget_kind k, std::string_view key) {
  if (key == "type") return true;
  switch (k) {
    case budget_kind::token_bucket:
      return key == "capacity" || key == "retry_cost" || key == "timeout_retry_cost" ||
             key == "success_refund";
    case budget_kind::ratio:
      return key == "ratio" || key == "min_per_second" || key == "window";
    case budget_kind::throttle:
      return key == "max_tokens" || key == "token_ratio";
  }
  return false;
}

// Sets one budget key; returns false when the key is unknown.
bool set_budget_key(budget_settings& b, std::string_view key, const value_ref& v,
                    const std::string& field) {
  auto int_in = [&](double lo, double hi) {
    return static_cast<int>(number_in(v, field, lo, hi, true));
  };
  if (key == "type") {
    b.type = pick<budget_kind>(string_in(v, field), field, "a budget type",
                               {{"token_bucket", budget_kind::token_bucket},
                                {"ratio", budget_kind::ratio},
                                {"throttle", budget_kind::throttle}});
  } else if (key == "capacity") {
    b.token_bucket.capacity = int_in(1, 1e6);
  } else if (key == "retry_cost") {
    b.token_bucket.retry_cost = int_in(1, 1e6);
  } else if (key == "timeout_retry_cost") {
    b.token_bucket.timeout_retry_cost = int_in(1, 1e6);
  } else if (key == "success_refund") {
    b.token_bucket.success_refund = int_in(0, 1e6);
  } else if (key == "ratio") {
    b.ratio.ratio = number_in(v, field, 0, 10, false);
  } else if (key == "min_per_second") {
    b.ratio.min_per_second = int_in(0, 1e6);
  } else if (key == "window") {
    b.ratio.window = duration_in(v, field);
  } else if (key == "max_tokens") {
    b.throttle.max_tokens = number_in(v, field, 1, 1000, false);
  } else if (key == "token_ratio") {
    b.throttle.token_ratio = number_in(v, field, 0.001, 1000, false);
  } else {
    return false;
  }
  return true;
}

const char* budget_keys =
    "type, capacity, retry_cost, timeout_retry_cost, success_refund (token_bucket); ratio, "
    "min_per_second, window (ratio); max_tokens, token_ratio (throttle)";

budget_settings read_budget(const json& j, budget_settings b) {
  if (!j.is_object()) {
    fail("budget", "expected an object such as {\"type\": \"token_bucket\"}, got " + type_name(j));
  }
  if (auto t = j.find("type"); t != j.end()) set_budget_key(b, "type", {&*t, {}}, "budget.type");
  for (const auto& [key, v] : j.items()) {
    const std::string field = "budget." + key;
    if (!set_budget_key(b, key, {&v, {}}, field)) {
      fail(field, std::string("unknown key; allowed: ") + budget_keys);
    }
    if (!budget_key_applies(b.type, key)) {
      fail(field, std::string("not used by a budget of type ") + budget_kind_name(b.type));
    }
  }
  b.validate();
  return b;
}

bool set_throttle_key(adaptive_throttle::options& t, std::string_view key, const value_ref& v,
                      const std::string& field) {
  if (key == "k") {
    t.k = number_in(v, field, 1, 10, false);
  } else if (key == "window") {
    t.window = duration_in(v, field);
    check_whole_seconds(t.window, field, 1, 600);
  } else {
    return false;
  }
  return true;
}

bool set_hedge_key(hedge_settings& h, std::string_view key, const value_ref& v,
                   const std::string& field) {
  if (key == "delay") {
    h.delay = duration_in(v, field);
  } else if (key == "max_hedges") {
    h.max_hedges = static_cast<int>(number_in(v, field, 1, 10, true));
  } else if (key == "percentile") {
    h.percentile = number_in(v, field, 0.001, 0.999, false);
  } else if (key == "min_samples") {
    h.min_samples = static_cast<int>(number_in(v, field, 1, 100000, true));
  } else {
    return false;
  }
  return true;
}
hedge_settings read_hedge(const json& j, hedge_settings h) {
  if (!j.is_object()) {
    fail("hedge", "expected an object such as {\"delay\": \"50ms\", \"max_hedges\": 2}, got " +
                      type_name(j));
  }
  for (const auto& [key, v] : j.items()) {
    if (!set_hedge_key(h, key, {&v, {}}, "hedge." + key)) {
      fail("hedge." + key, "unknown key; allowed: delay, max_hedges, percentile, min_samples");
    }
  }
  return h;
}

adaptive_throttle::options read_throttle(const json& j, adaptive_throttle::options t) {
  if (!j.is_object()) {
    fail("throttle",
         "expected an object such as {\"k\": 2, \"window\": \"2m\"}, got " + type_name(j));
  }
  for (const auto& [key, v] : j.items()) {
    if (!set_throttle_key(t, key, {&v, {}}, "throttle." + key)) {
      fail("throttle." + key, "unknown key; allowed: k, window");
    }
  }
  return t;
}

bool set_breaker_key(breaker_options& b, std::string_view key, const value_ref& v,
                     const std::string& field) {
  if (key == "mode") {
    b.mode = pick<breaker_mode>(
        string_in(v, field), field, "a breaker mode",
        {{"consecutive", breaker_mode::consecutive}, {"sampling", breaker_mode::sampling}});
  } else if (key == "failure_threshold") {
    b.failure_threshold = static_cast<int>(number_in(v, field, 1, 1e6, true));
  } else if (key == "failure_ratio") {
    b.failure_ratio = number_in(v, field, 0.001, 1, false);
  } else if (key == "minimum_calls") {
    b.minimum_calls = static_cast<int>(number_in(v, field, 1, 1e6, true));
  } else if (key == "window") {
    b.window = duration_in(v, field);
  } else if (key == "open_duration") {
    b.open_duration = duration_in(v, field);
  } else if (key == "half_open_probes") {
    b.half_open_probes = static_cast<int>(number_in(v, field, 1, 1000, true));
  } else {
    return false;
  }
  return true;
}

// A JSON document that must be an object.
json parse_object(std::string_view text) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    fail("(document)", std::string("not valid JSON: ") + e.what());
  }
  if (!doc.is_object()) fail("(document)", "expected a JSON object, got " + type_name(doc));
  return doc;
}

// A validation error renamed as the environment spells the setting:
// "backoff.max" under "APP_" becomes "APP_BACKOFF_MAX" (with the path when `keep_path`).
config_error renamed_for_env(const config_error& e, const std::string& head, bool keep_path) {
  std::string env_name = head;
  for (char c : e.field()) {
    env_name += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return config_error(keep_path ? env_name + " (" + e.field() + ")" : env_name,
                      std::string(e.what()).substr(e.field().size() + 2));
}

// PREFIX_SOME_KEY -> some_key
std::string env_key(std::string_view name, std::size_t head) {
  std::string k(name.substr(head));
  for (char& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return k;
}

using detail::environment_under;

}  // namespace

config_error::config_error(std::string field, const std::string& problem)
    : std::invalid_argument(field + ": " + problem), field_(std::move(field)) {}

std::string_view to_string(backoff::kind k) noexcept {
  switch (k) {
    case backoff::kind::constant:
      return "constant";
    case backoff::kind::linear:
      return "linear";
    case backoff::kind::exponential:
      return "exponential";
    case backoff::kind::list:
      return "list";
    case backoff::kind::function:
      return "function";
  }
  return "unknown";
}

std::string to_string(const rebound::jitter& j) {
  switch (j.type()) {
    case jitter::kind::none:
      return "none";
    case jitter::kind::full:
      return "full";
    case jitter::kind::equal:
      return "equal";
    case jitter::kind::decorrelated:
      return "decorrelated";
    case jitter::kind::proportional: {
      std::ostringstream o;
      o << "proportional:" << j.factor();
      return o.str();
    }
    case jitter::kind::additive:
      return "additive:" + format_duration(j.amount());
  }
  return "unknown";
}

backoff::kind parse_backoff_kind(std::string_view text, const std::string& field) {
  return pick<backoff::kind>(text, field, "a backoff type",
                             {{"constant", backoff::kind::constant},
                              {"linear", backoff::kind::linear},
                              {"exponential", backoff::kind::exponential},
                              {"list", backoff::kind::list}});
}

rebound::jitter parse_jitter(std::string_view text, const std::string& field) {
  const auto colon = text.find(':');
  const std::string_view name = text.substr(0, colon);
  const std::string_view arg = colon == text.npos ? std::string_view() : text.substr(colon + 1);
  const std::string allowed =
      "; allowed: none, full, equal, decorrelated, proportional:F (F in 0..1), additive:DUR";
  auto no_arg = [&](rebound::jitter j) {
    if (colon != text.npos)
      fail(field, "\"" + std::string(text) + "\" takes no parameter" + allowed);
    return j;
  };
  if (name == "none") return no_arg(jitter::none());
  if (name == "full") return no_arg(jitter::full());
  if (name == "equal") return no_arg(jitter::equal());
  if (name == "decorrelated") return no_arg(jitter::decorrelated());
  if (name == "proportional") {
    if (colon == text.npos) fail(field, "proportional needs a factor, e.g. proportional:0.2");
    const double f = parse_double(arg, field);
    if (!(f >= 0.0 && f <= 1.0)) {
      fail(field, "factor \"" + std::string(arg) + "\" is out of range; allowed: 0..1");
    }
    return jitter::proportional(f);
  }
  if (name == "additive") {
    if (colon == text.npos) fail(field, "additive needs an amount, e.g. additive:100ms");
    return jitter::additive(to_duration(arg, field));
  }
  fail(field, "\"" + std::string(text) + "\" is not a jitter" + allowed);
}

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

policy_settings settings_from_json(std::string_view text, policy_settings s) {
  const json doc = parse_object(text);
  for (const auto& [key, v] : doc.items()) {
    if (key == "max_attempts") {
      s.max_attempts = json_attempts(v, key);
    } else if (key == "max_elapsed") {
      s.max_elapsed = json_duration(v, key);
    } else if (key == "before_elapsed") {
      s.before_elapsed = json_duration(v, key);
    } else if (key == "backoff") {
      read_backoff(v, s);
    } else if (key == "jitter") {
      s.jitter = read_jitter(v);
    } else if (key == "max_server_delay") {
      s.max_server_delay = json_duration(v, key);
    } else if (key == "server_delay_exceeded") {
      s.server_delay = parse_server_delay_mode(json_string(v, key), key);
    } else if (key == "seed") {
      s.seed = json_seed(v, key);
    } else if (key == "budget") {
      s.budget = read_budget(v, s.budget.value_or(budget_settings{}));
    } else if (key == "throttle") {
      s.throttle = read_throttle(v, s.throttle.value_or(adaptive_throttle::options{}));
    } else if (key == "attempt_timeout") {
      s.attempt_timeout = json_duration(v, key);
    } else if (key == "total_timeout") {
      s.total_timeout = json_duration(v, key);
    } else if (key == "hedge") {
      s.hedge = read_hedge(v, s.hedge.value_or(hedge_settings{}));
    } else {
      fail(key, "unknown key; allowed: " +
                    join({"max_attempts", "max_elapsed", "before_elapsed", "backoff", "jitter",
                          "max_server_delay", "server_delay_exceeded", "seed", "budget", "throttle",
                          "attempt_timeout", "total_timeout", "hedge"}));
    }
  }
  s.validate();
  return s;
}

policy_settings settings_from_json_file(const std::filesystem::path& file, policy_settings base) {
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) {
    fail(file.string(), "is a directory; --config and settings_from_json_file take a JSON file");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) fail(file.string(), "cannot open the configuration file");
  std::ostringstream text;
  text << in.rdbuf();
  try {
    return settings_from_json(text.str(), std::move(base));
  } catch (const config_error& e) {
    throw config_error(file.string() + ": " + e.field(),
                       std::string(e.what()).substr(e.field().size() + 2));
  }
}

policy_settings apply_env(policy_settings s, std::string_view prefix,
                          const std::map<std::string, std::string>& vars) {
  const std::string head = std::string(prefix) + "_";
  std::vector<std::string> budget_vars;
  std::vector<std::pair<std::string, std::string>> backoff_given;
  for (const auto& [name, value] : vars) {
    if (name.rfind(head, 0) != 0) continue;
    const std::string key = name.substr(head.size());
    if (key.rfind("BACKOFF_", 0) == 0) backoff_given.emplace_back(env_key(key, 8), name);
    if (key == "MAX_ATTEMPTS") {
      s.max_attempts = text_attempts(value, name);
    } else if (key == "MAX_ELAPSED") {
      s.max_elapsed = to_duration(value, name);
    } else if (key == "BEFORE_ELAPSED") {
      s.before_elapsed = to_duration(value, name);
    } else if (key == "BACKOFF_TYPE") {
      s.backoff_type = parse_backoff_kind(value, name);
    } else if (key == "BACKOFF_INITIAL") {
      s.initial = to_duration(value, name);
    } else if (key == "BACKOFF_MULTIPLIER") {
      s.multiplier = checked_multiplier(parse_double(value, name), name, "\"" + value + "\"");
    } else if (key == "BACKOFF_STEP") {
      s.step = to_duration(value, name);
    } else if (key == "BACKOFF_MAX") {
      s.max_delay = to_duration(value, name);
    } else if (key == "BACKOFF_DELAYS") {
      s.delays = text_delays(value, name);
    } else if (key == "JITTER") {
      s.jitter = parse_jitter(value, name);
    } else if (key == "MAX_SERVER_DELAY") {
      s.max_server_delay = to_duration(value, name);
    } else if (key == "SERVER_DELAY_EXCEEDED") {
      s.server_delay = parse_server_delay_mode(value, name);
    } else if (key == "SEED") {
      s.seed = text_seed(value, name);
    } else if (key.rfind("BUDGET_", 0) == 0 &&
               set_budget_key(s.budget ? *s.budget : s.budget.emplace(), env_key(key, 7),
                              {nullptr, value}, name)) {
      budget_vars.push_back(name);
    } else if (key.rfind("THROTTLE_", 0) == 0 &&
               set_throttle_key(s.throttle ? *s.throttle : s.throttle.emplace(), env_key(key, 9),
                                {nullptr, value}, name)) {
    } else if (key == "ATTEMPT_TIMEOUT") {
      s.attempt_timeout = to_duration(value, name);
    } else if (key == "TOTAL_TIMEOUT") {
      s.total_timeout = to_duration(value, name);
    } else if (key.rfind("HEDGE_", 0) == 0 &&
               set_hedge_key(s.hedge ? *s.hedge : s.hedge.emplace(), env_key(key, 6),
                             {nullptr, value}, name)) {
    } else {
      fail(name, "unknown setting; allowed: " + head + "{" +
                     join({"MAX_ATTEMPTS",
                           "MAX_ELAPSED",
                           "BEFORE_ELAPSED",
                           "BACKOFF_TYPE",
                           "BACKOFF_INITIAL",
                           "BACKOFF_MULTIPLIER",
                           "BACKOFF_STEP",
                           "BACKOFF_MAX",
                           "BACKOFF_DELAYS",
                           "JITTER",
                           "MAX_SERVER_DELAY",
                           "SERVER_DELAY_EXCEEDED",
                           "SEED",
                           "BUDGET_TYPE",
                           "BUDGET_CAPACITY",
                           "BUDGET_RETRY_COST",
                           "BUDGET_TIMEOUT_RETRY_COST",
                           "BUDGET_SUCCESS_REFUND",
                           "BUDGET_RATIO",
                           "BUDGET_MIN_PER_SECOND",
                           "BUDGET_WINDOW",
                           "BUDGET_MAX_TOKENS",
                           "BUDGET_TOKEN_RATIO",
                           "THROTTLE_K",
                           "THROTTLE_WINDOW",
                           "ATTEMPT_TIMEOUT",
                           "TOTAL_TIMEOUT",
                           "HEDGE_DELAY",
                           "HEDGE_MAX_HEDGES",
                           "HEDGE_PERCENTILE",
                           "HEDGE_MIN_SAMPLES"}) +
                     "}");
    }
  }
  // Checked once all variables are in: a type may come after its keys.
  check_backoff_keys(s.backoff_type, backoff_given);
  for (const std::string& name : budget_vars) {
    const std::string key = env_key(name, head.size() + 7);
    if (!budget_key_applies(s.budget->type, key)) {
      fail(name, std::string("not used by a budget of type ") + budget_kind_name(s.budget->type));
    }
  }
  try {
    s.validate();
  } catch (const config_error& e) {
    throw renamed_for_env(e, head, true);
  }
  return s;
}

policy_settings apply_env(policy_settings base, std::string_view prefix) {
  return apply_env(std::move(base), prefix, environment_under(std::string(prefix) + "_"));
}

retry_policy policy_from_json(std::string_view json_text) {
  return settings_from_json(json_text).to_policy();
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
      if (!(throttle.max_tokens >= 1 && throttle.max_tokens <= 1000)) {
        fail("budget.max_tokens",
             fmt_number(throttle.max_tokens) + " is out of range; allowed: 1..1000");
      }
      if (!(throttle.token_ratio >= 0.001 && throttle.token_ratio <= throttle.max_tokens)) {
        fail("budget.token_ratio",
             fmt_number(throttle.token_ratio) + " is out of range; allowed: 0.001..max_tokens");
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

breaker_options breaker_from_json(std::string_view text, breaker_options b) {
  const json doc = parse_object(text);
  for (const auto& [key, v] : doc.items()) {
    if (!set_breaker_key(b, key, {&v, {}}, key)) {
      fail(key,
           "unknown key; allowed: mode, failure_threshold, failure_ratio, minimum_calls, "
           "window, open_duration, half_open_probes");
    }
  }
  validate(b);
  return b;
}

breaker_options apply_breaker_env(breaker_options b, std::string_view prefix,
                                  const std::map<std::string, std::string>& vars) {
  const std::string head = std::string(prefix) + "_";
  for (const auto& [name, value] : vars) {
    if (name.rfind(head, 0) != 0) continue;
    if (!set_breaker_key(b, env_key(name, head.size()), {nullptr, value}, name)) {
      fail(name, "unknown setting; allowed: " + head +
                     "{MODE, FAILURE_THRESHOLD, FAILURE_RATIO, "
                     "MINIMUM_CALLS, WINDOW, OPEN_DURATION, HALF_OPEN_PROBES}");
    }
  }
  try {
    validate(b);
  } catch (const config_error& e) {
    throw renamed_for_env(e, head, false);
  }
  return b;
}

breaker_options apply_breaker_env(breaker_options base, std::string_view prefix) {
  return apply_breaker_env(base, prefix, environment_under(std::string(prefix) + "_"));
}

}  // namespace rebound
