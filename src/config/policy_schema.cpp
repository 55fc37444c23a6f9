// The core settings schema: one table for every policy setting, from which
// JSON documents, environment variables and the CLI's flags are all read.
#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>

#include "rebound/duration.hpp"
#include "schema.hpp"

namespace rebound {

namespace detail {
namespace {

constexpr long long max_attempts_limit = 1'000'000;

// An integer in [lo, hi], with the range written out in full.
long long integer_in(const value_ref& v, const std::string& field, long long lo, long long hi) {
  const std::string range = std::to_string(lo) + ".." + std::to_string(hi);
  long double n = 0;
  if (v.j != nullptr) {
    if (v.j->is_number_unsigned()) {
      n = static_cast<long double>(std::min<std::uint64_t>(v.j->get<std::uint64_t>(), 1ULL << 62));
    } else if (v.j->is_number_integer()) {
      n = static_cast<long double>(v.j->get<std::int64_t>());
    } else {
      config_fail(field, "expected an integer in " + range + ", got " + got(*v.j));
    }
  } else {
    long long x = 0;
    const std::string_view t = v.text;
    const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), x);
    if (t.empty() || ec != std::errc() || p != t.data() + t.size()) {
      const bool all_digits =
          !t.empty() && std::all_of(t.begin() + (t.front() == '-' ? 1 : 0), t.end(),
                                    [](char c) { return c >= '0' && c <= '9'; });
      config_fail(field, show(v) + (all_digits ? " is out of range" : " is not an integer") +
                             "; allowed: " + range);
    }
    n = static_cast<long double>(x);
  }
  if (n < static_cast<long double>(lo) || n > static_cast<long double>(hi)) {
    config_fail(field, show(v) + " is out of range; allowed: " + range);
  }
  return static_cast<long long>(n);
}

double multiplier_in(const value_ref& v, const std::string& field) {
  double m = 0;
  if (v.j != nullptr) {
    if (!v.j->is_number()) config_fail(field, "expected a number, got " + got(*v.j));
    m = v.j->get<double>();
  } else {
    const std::string_view t = v.text;
    const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), m);
    if (ec == std::errc::result_out_of_range && p == t.data() + t.size()) {
      config_fail(field, show(v) + " is out of range; allowed: 1..1000");
    }
    if (t.empty() || ec != std::errc() || p != t.data() + t.size()) {
      config_fail(field, show(v) + " is not a number");
    }
  }
  if (!std::isfinite(m)) config_fail(field, show(v) + " is not a finite number; allowed: 1..1000");
  if (m < 1.0 || m > 1000.0) {
    config_fail(field, show(v) +
                           " is out of range; allowed: 1..1000 (a multiplier below 1 would "
                           "shrink the delays)");
  }
  return m;
}

std::vector<duration> delays_in(const value_ref& v, const std::string& field) {
  std::vector<duration> out;
  if (v.j != nullptr) {
    if (!v.j->is_array())
      config_fail(field, "expected an array of durations, got " + type_name(*v.j));
    for (std::size_t i = 0; i < v.j->size(); ++i) {
      out.push_back(duration_in({&(*v.j)[i], {}}, field + "[" + std::to_string(i) + "]"));
    }
    return out;
  }
  std::size_t start = 0;
  const std::string_view s = v.text;
  for (;;) {
    const auto comma = s.find(',', start);
    const auto item = s.substr(start, comma == std::string_view::npos ? s.npos : comma - start);
    out.push_back(duration_in({nullptr, item}, field + "[" + std::to_string(out.size()) + "]"));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

rebound::jitter jitter_in(const value_ref& v, const std::string& field) {
  if (v.j == nullptr) return parse_jitter(v.text, field);
  const json& j = *v.j;
  if (j.is_string()) return parse_jitter(j.get<std::string>(), field);
  if (!j.is_object()) {
    config_fail(field,
                "expected a string such as \"full\" or an object such as {\"type\": "
                "\"proportional\", \"factor\": 0.2}, got " +
                    type_name(j));
  }
  std::string type = "full";
  std::optional<double> factor;
  std::optional<duration> amount;
  for (const auto& [key, sub] : j.items()) {
    const std::string f = field + "." + key;
    if (key == "type") {
      type = string_in({&sub, {}}, f);
    } else if (key == "factor") {
      factor = number_in({&sub, {}}, f, 0, 1, false);
    } else if (key == "amount") {
      amount = duration_in({&sub, {}}, f);
    } else {
      config_fail(f, "unknown key; allowed: type, factor, amount");
    }
  }
  if (type == "proportional") {
    if (!factor) config_fail(field + ".factor", "required for type proportional (0..1)");
    if (amount) config_fail(field + ".amount", "not used by type proportional");
    return rebound::jitter::proportional(*factor);
  }
  if (type == "additive") {
    if (!amount) config_fail(field + ".amount", "required for type additive (a duration)");
    if (factor) config_fail(field + ".factor", "not used by type additive");
    return rebound::jitter::additive(*amount);
  }
  if (factor) config_fail(field + ".factor", "only used by type proportional");
  if (amount) config_fail(field + ".amount", "only used by type additive");
  return parse_jitter(type, field + ".type");
}

duration whole_seconds_in(const value_ref& v, const std::string& field, int lo, int hi) {
  const duration d = duration_in(v, field);
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(d);
  if (s != d || s.count() < lo || s.count() > hi) {
    config_fail(field, format_duration(d) + " is not allowed; allowed: whole seconds, " +
                           std::to_string(lo) + "s.." + std::to_string(hi) + "s");
  }
  return d;
}

std::string backoff_unused(const policy_settings& s, std::initializer_list<backoff::kind> uses,
                           bool is_max) {
  if (std::find(uses.begin(), uses.end(), s.backoff_type) != uses.end()) return {};
  return "not used by " + std::string(s.backoff_type == backoff::kind::exponential ? "an " : "a ") +
         std::string(to_string(s.backoff_type)) + " backoff" +
         (is_max ? " (constant and list delays are not capped; jitter adds to them)" : "");
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

budget_settings& budget_of(policy_settings& s) { return s.budget ? *s.budget : s.budget.emplace(); }
adaptive_throttle::options& throttle_of(policy_settings& s) {
  return s.throttle ? *s.throttle : s.throttle.emplace();
}
hedge_settings& hedge_of(policy_settings& s) { return s.hedge ? *s.hedge : s.hedge.emplace(); }

template <budget_kind K>
std::string budget_unused(const policy_settings& s) {
  const budget_kind k = s.budget ? s.budget->type : budget_kind::token_bucket;
  if (k == K) return {};
  return std::string("not used by a budget of type ") + budget_kind_name(k);
}

using P = policy_settings;
using backoff::kind::constant, backoff::kind::linear, backoff::kind::exponential,
    backoff::kind::list;

const auto policy_table = std::to_array<setting<P>>({
    {"max_attempts", "--attempts",
     [](P& s, const value_ref& v, const std::string& f) {
       s.max_attempts = static_cast<int>(integer_in(v, f, 1, max_attempts_limit));
     },
     nullptr, false,
     "Give up after N attempts (1..1000000; default 3 unless a time limit is given)", "N"},
    {"max_elapsed", "",
     [](P& s, const value_ref& v, const std::string& f) { s.max_elapsed = duration_in(v, f); },
     nullptr, false, "Start no retry once DUR has passed since the first attempt", "DUR"},
    {"before_elapsed", "--max-time",
     [](P& s, const value_ref& v, const std::string& f) { s.before_elapsed = duration_in(v, f); },
     nullptr, false,
     "Start no attempt later than DUR after the first, and cut the running one there", "DUR"},
    {"backoff.type", "--backoff",
     [](P& s, const value_ref& v, const std::string& f) {
       s.backoff_type = parse_backoff_kind(string_in(v, f), f);
     },
     nullptr, false, "constant|linear|exponential|list (default exponential)", "KIND"},
    {"backoff.initial", "--initial",
     [](P& s, const value_ref& v, const std::string& f) { s.initial = duration_in(v, f); },
     [](const P& s) {
       return backoff_unused(s, {constant, linear, exponential}, false);
     },
     false, "First delay, or the constant delay (default 100ms)", "DUR"},
    {"backoff.multiplier", "--multiplier",
     [](P& s, const value_ref& v, const std::string& f) { s.multiplier = multiplier_in(v, f); },
     [](const P& s) { return backoff_unused(s, {exponential}, false); }, false,
     "Exponential growth factor, 1..1000 (default 2)", "X"},
    {"backoff.step", "--step",
     [](P& s, const value_ref& v, const std::string& f) { s.step = duration_in(v, f); },
     [](const P& s) { return backoff_unused(s, {linear}, false); }, false,
     "Linear increment per retry (default 100ms)", "DUR"},
    {"backoff.max", "--max-delay",
     [](P& s, const value_ref& v, const std::string& f) { s.max_delay = duration_in(v, f); },
     [](const P& s) {
       return backoff_unused(s, {linear, exponential}, true);
     },
     false, "Largest delay, jitter included (default 5s, or --initial when larger)", "DUR"},
    {"backoff.delays", "--delays",
     [](P& s, const value_ref& v, const std::string& f) { s.delays = delays_in(v, f); },
     [](const P& s) { return backoff_unused(s, {list}, false); }, false,
     "Explicit delays for --backoff list, e.g. 1s,2s,5s", "LIST"},
    {"jitter", "--jitter",
     [](P& s, const value_ref& v, const std::string& f) { s.jitter = jitter_in(v, f); }, nullptr,
     false, "none|full|equal|decorrelated|proportional:F|additive:DUR (default full)", "KIND"},
    {"max_server_delay", "",
     [](P& s, const value_ref& v, const std::string& f) { s.max_server_delay = duration_in(v, f); },
     nullptr, false, "Cap on a server-given delay (Retry-After, pushback; default 60s)", "DUR"},
    {"server_delay_exceeded", "",
     [](P& s, const value_ref& v, const std::string& f) {
       s.server_delay = pick<server_delay_mode>(
           string_in(v, f), f, "allowed here",
           {{"clamp", server_delay_mode::clamp}, {"give_up", server_delay_mode::give_up}});
     },
     nullptr, false, "Past the cap: clamp (wait the cap) or give_up", "MODE"},
    {"seed", "--seed",
     [](P& s, const value_ref& v, const std::string& f) { s.seed = unsigned_in(v, f); }, nullptr,
     false, "Seed the jitter's random stream (reproducible delays)", "N"},
    {"budget.type", "",
     [](P& s, const value_ref& v, const std::string& f) {
       budget_of(s).type = pick<budget_kind>(string_in(v, f), f, "a budget type",
                                             {{"token_bucket", budget_kind::token_bucket},
                                              {"ratio", budget_kind::ratio},
                                              {"throttle", budget_kind::throttle}});
     },
     nullptr, false, "token_bucket|ratio|throttle", "KIND"},
    {"budget.capacity", "",
     [](P& s, const value_ref& v, const std::string& f) {
       budget_of(s).token_bucket.capacity = static_cast<int>(number_in(v, f, 1, 1e6, true));
     },
     budget_unused<budget_kind::token_bucket>, false, "Token bucket: tokens (default 500)", "N"},
    {"budget.retry_cost", "",
     [](P& s, const value_ref& v, const std::string& f) {
       budget_of(s).token_bucket.retry_cost = static_cast<int>(number_in(v, f, 1, 1e6, true));
     },
     budget_unused<budget_kind::token_bucket>, false, "Token bucket: tokens per retry (default 5)",
     "N"},
    {"budget.timeout_retry_cost", "",
     [](P& s, const value_ref& v, const std::string& f) {
       budget_of(s).token_bucket.timeout_retry_cost =
           static_cast<int>(number_in(v, f, 1, 1e6, true));
     },
     budget_unused<budget_kind::token_bucket>, false,
     "Token bucket: tokens per retry after a timeout (default 10)", "N"},
    {"budget.success_refund", "",
     [](P& s, const value_ref& v, const std::string& f) {
       budget_of(s).token_bucket.success_refund = static_cast<int>(number_in(v, f, 0, 1e6, true));
     },
     budget_unused<budget_kind::token_bucket>, false,
     "Token bucket: tokens a first-try success returns (default 1)", "N"},
    {"budget.ratio", "",
     [](P& s, const value_ref& v, const std::string& f) {
       budget_of(s).ratio.ratio = number_in(v, f, 0, 10, false);
     },
     budget_unused<budget_kind::ratio>, false, "Ratio budget: retries per call (0..10)", "X"},
    {"budget.min_per_second", "",
     [](P& s, const value_ref& v, const std::string& f) {
       budget_of(s).ratio.min_per_second = static_cast<int>(number_in(v, f, 0, 1e6, true));
     },
     budget_unused<budget_kind::ratio>, false, "Ratio budget: retries per second always allowed",
     "N"},
    {"budget.window", "",
     [](P& s, const value_ref& v, const std::string& f) {
       budget_of(s).ratio.window = duration_in(v, f);
     },
     budget_unused<budget_kind::ratio>, false, "Ratio budget: the window, whole seconds 1s..60s",
     "DUR"},
    {"budget.max_tokens", "",
     [](P& s, const value_ref& v, const std::string& f) {
       budget_of(s).throttle.max_tokens = number_in(v, f, 1, 1000, true);
     },
     budget_unused<budget_kind::throttle>, false, "gRPC throttle: maxTokens, whole (1..1000)", "N"},
    {"budget.token_ratio", "",
     [](P& s, const value_ref& v, const std::string& f) {
       budget_of(s).throttle.token_ratio = number_in(v, f, 0.001, 1000, false);
     },
     budget_unused<budget_kind::throttle>, false, "gRPC throttle: tokenRatio (0.001..1000, 3 decimals)",
     "X"},
    {"throttle.k", "",
     [](P& s, const value_ref& v, const std::string& f) {
       throttle_of(s).k = number_in(v, f, 1, 10, false);
     },
     nullptr, false, "Adaptive throttling: k (1..10; lower throttles sooner)", "X"},
    {"throttle.window", "",
     [](P& s, const value_ref& v, const std::string& f) {
       throttle_of(s).window = whole_seconds_in(v, f, 1, 600);
     },
     nullptr, false, "Adaptive throttling: the window, whole seconds 1s..600s", "DUR"},
    {"attempt_timeout", "",
     [](P& s, const value_ref& v, const std::string& f) { s.attempt_timeout = duration_in(v, f); },
     nullptr, false, "A time limit for each attempt", "DUR"},
    {"total_timeout", "",
     [](P& s, const value_ref& v, const std::string& f) { s.total_timeout = duration_in(v, f); },
     nullptr, false, "A time limit for the whole call", "DUR"},
    {"hedge.delay", "",
     [](P& s, const value_ref& v, const std::string& f) { hedge_of(s).delay = duration_in(v, f); },
     nullptr, false, "Start a hedge after this long", "DUR"},
    {"hedge.max_hedges", "",
     [](P& s, const value_ref& v, const std::string& f) {
       hedge_of(s).max_hedges = static_cast<int>(number_in(v, f, 1, 10, true));
     },
     nullptr, false, "Hedges per call (1..10)", "N"},
    {"hedge.percentile", "",
     [](P& s, const value_ref& v, const std::string& f) {
       hedge_of(s).percentile = number_in(v, f, 0.001, 0.999, false);
     },
     nullptr, false, "Hedge at this percentile of observed latency (0.001..0.999)", "X"},
    {"hedge.min_samples", "",
     [](P& s, const value_ref& v, const std::string& f) {
       hedge_of(s).min_samples = static_cast<int>(number_in(v, f, 1, 100000, true));
     },
     nullptr, false, "Latencies observed before the percentile is used", "N"},
});

using B = breaker_options;
const auto breaker_table = std::to_array<setting<B>>({
    {"mode", "",
     [](B& b, const value_ref& v, const std::string& f) {
       b.mode = pick<breaker_mode>(
           string_in(v, f), f, "a breaker mode",
           {{"consecutive", breaker_mode::consecutive}, {"sampling", breaker_mode::sampling}});
     }},
    {"failure_threshold", "",
     [](B& b, const value_ref& v, const std::string& f) {
       b.failure_threshold = static_cast<int>(number_in(v, f, 1, 1e6, true));
     }},
    {"failure_ratio", "",
     [](B& b, const value_ref& v, const std::string& f) {
       b.failure_ratio = number_in(v, f, 0.001, 1, false);
     }},
    {"minimum_calls", "",
     [](B& b, const value_ref& v, const std::string& f) {
       b.minimum_calls = static_cast<int>(number_in(v, f, 1, 1e6, true));
     }},
    {"window", "",
     [](B& b, const value_ref& v, const std::string& f) { b.window = duration_in(v, f); }},
    {"open_duration", "",
     [](B& b, const value_ref& v, const std::string& f) { b.open_duration = duration_in(v, f); }},
    {"half_open_probes", "",
     [](B& b, const value_ref& v, const std::string& f) {
       b.half_open_probes = static_cast<int>(number_in(v, f, 1, 1000, true));
     }},
});

}  // namespace

std::span<const setting<policy_settings>> policy_schema() { return policy_table; }
std::span<const setting<breaker_options>> breaker_schema() { return breaker_table; }

}  // namespace detail

// ---- the public readers ------------------------------------------------------

std::vector<setting_name> policy_setting_names() {
  std::vector<setting_name> out;
  for (const auto& s : detail::policy_schema()) {
    out.push_back({s.path, detail::env_suffix(s.path), s.flag, s.help, s.value_name});
  }
  return out;
}

struct settings_builder::impl {
  detail::settings_reader<policy_settings> reader;
  explicit impl(policy_settings base) : reader(detail::policy_schema(), std::move(base)) {}
};

settings_builder::settings_builder(policy_settings base)
    : impl_(std::make_unique<impl>(std::move(base))) {}
settings_builder::~settings_builder() = default;
settings_builder::settings_builder(settings_builder&&) noexcept = default;
settings_builder& settings_builder::operator=(settings_builder&&) noexcept = default;

settings_builder& settings_builder::json(std::string_view text) {
  impl_->reader.json_object(detail::parse_document(text));
  return *this;
}

settings_builder& settings_builder::json_file(const std::filesystem::path& file) {
  const std::string where = file.string();
  impl_->reader.json_object(detail::parse_document(detail::read_config_file(file), true, where),
                            where + ": ");
  return *this;
}

settings_builder& settings_builder::env(std::string_view prefix,
                                        const std::map<std::string, std::string>& vars) {
  impl_->reader.environment(std::string(prefix) + "_", vars);
  return *this;
}

settings_builder& settings_builder::env(std::string_view prefix) {
  return env(prefix, detail::environment_under(std::string(prefix) + "_"));
}

settings_builder& settings_builder::text(std::string_view path, std::string_view value,
                                         const std::string& origin) {
  impl_->reader.text(path, value, origin);
  return *this;
}

policy_settings settings_builder::build() const {
  return impl_->reader.finish([](const policy_settings& s) { s.validate(); });
}

policy_settings settings_from_json(std::string_view text, policy_settings base) {
  return settings_builder(std::move(base)).json(text).build();
}

policy_settings settings_from_json_file(const std::filesystem::path& file, policy_settings base) {
  return settings_builder(std::move(base)).json_file(file).build();
}

policy_settings apply_env(policy_settings base, std::string_view prefix,
                          const std::map<std::string, std::string>& vars) {
  return settings_builder(std::move(base)).env(prefix, vars).build();
}

policy_settings apply_env(policy_settings base, std::string_view prefix) {
  return settings_builder(std::move(base)).env(prefix).build();
}

retry_policy policy_from_json(std::string_view json_text) {
  return settings_from_json(json_text).to_policy();
}

breaker_options breaker_from_json(std::string_view text, breaker_options b) {
  detail::settings_reader<breaker_options> r(detail::breaker_schema(), b);
  r.json_object(detail::parse_document(text));
  return r.finish([](const breaker_options& o) { validate(o); });
}

breaker_options apply_breaker_env(breaker_options b, std::string_view prefix,
                                  const std::map<std::string, std::string>& vars) {
  detail::settings_reader<breaker_options> r(detail::breaker_schema(), b);
  r.environment(std::string(prefix) + "_", vars);
  return r.finish([](const breaker_options& o) { validate(o); });
}

breaker_options apply_breaker_env(breaker_options base, std::string_view prefix) {
  return apply_breaker_env(base, prefix, detail::environment_under(std::string(prefix) + "_"));
}

}  // namespace rebound
