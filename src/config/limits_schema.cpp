// The settings of the bulkhead, concurrency limiter, rate limiter and
// admission control: their schemas (JSON and environment through one table,
// as every other option set) and their checks.
#include <cmath>

#include "rebound/duration.hpp"
#include "rebound/limits.hpp"
#include "schema.hpp"

namespace rebound {

namespace {

using detail::config_fail;
using detail::duration_in;
using detail::fmt_number;
using detail::number_in;
using detail::setting;
using detail::string_in;
using detail::value_ref;

constexpr duration max_wait_limit = std::chrono::hours(1);

/// A whole number; its range is checked by validate(), which names it.
int whole_in(const value_ref& v, const std::string& f) {
  return static_cast<int>(number_in(v, f, -1e9, 1e9, true));
}

void check_range(double x, const std::string& field, double lo, double hi, bool lo_open = false) {
  if (!std::isfinite(x) || (lo_open ? x <= lo : x < lo) || x > hi) {
    config_fail(field, fmt_number(x) + " is out of range; allowed: " + (lo_open ? "(" : "") +
                           fmt_number(lo) + ".." + fmt_number(hi) + (lo_open ? "]" : ""));
  }
}

void check_wait(duration d, const std::string& field) {
  if (d < duration::zero() || d > max_wait_limit) {
    config_fail(field, format_duration(d) + " is out of range; allowed: 0s..1h");
  }
}

// ---- bulkhead -----------------------------------------------------------------

using BH = bulkhead_options;
const auto bulkhead_table = std::to_array<setting<BH>>({
    {"max_concurrent", "",
     [](BH& b, const value_ref& v, const std::string& f) { b.max_concurrent = whole_in(v, f); },
     nullptr, false, "Calls in flight at once (1..1000000)", "N"},
    {"max_queue", "",
     [](BH& b, const value_ref& v, const std::string& f) { b.max_queue = whole_in(v, f); }, nullptr,
     false, "Callers that may wait for a slot (0..1000000)", "N"},
    {"max_wait", "",
     [](BH& b, const value_ref& v, const std::string& f) {
       b.max_wait = duration_in(v, f, duration::zero(), max_wait_limit);
     },
     nullptr, false, "How long a queued caller waits (0s..1h)", "DURATION"},
});

// ---- concurrency limiter -------------------------------------------------------

using L = limiter_options;

std::string not_for(const L& o, std::initializer_list<limit_algorithm> used) {
  for (const auto a : used) {
    if (o.algorithm == a) return "";
  }
  std::string names;
  for (const auto a : used) names += (names.empty() ? "" : " or ") + std::string(to_string(a));
  return "used only by the " + names + " algorithm; this limiter is " +
         std::string(to_string(o.algorithm));
}

L defaults_of(limit_algorithm a, int initial) {
  switch (a) {
    case limit_algorithm::fixed:
      return L::fixed(initial > 0 ? initial : 20);
    case limit_algorithm::aimd:
      return L::aimd();
    case limit_algorithm::gradient2:
      return L::gradient2();
    case limit_algorithm::vegas:
      return L::vegas();
  }
  return L::aimd();
}

/// "live:0.9,batch:0.1" (text) or [{"name": "live", "share": 0.9}, ...] (JSON).
std::vector<limiter_partition> partitions_in(const value_ref& v, const std::string& f) {
  std::vector<limiter_partition> out;
  const auto add = [&](std::string name, double share, const std::string& where) {
    if (name.empty()) config_fail(where, "a partition needs a name");
    for (const auto& p : out) {
      if (p.name == name) config_fail(where, "partition \"" + name + "\" is named twice");
    }
    check_range(share, where, 0, 1, true);
    out.push_back({std::move(name), share});
  };
  if (v.j != nullptr) {
    if (!v.j->is_array()) {
      config_fail(f,
                  "expected an array of {\"name\", \"share\"} objects, got " + detail::got(*v.j));
    }
    for (std::size_t i = 0; i < v.j->size(); ++i) {
      const auto& e = (*v.j)[i];
      const std::string at = f + "[" + std::to_string(i) + "]";
      if (!e.is_object() || !e.contains("name") || !e.contains("share") || e.size() != 2) {
        config_fail(at, "expected {\"name\": \"...\", \"share\": 0.1}, got " + detail::got(e));
      }
      const std::string name = string_in({&e["name"], {}}, at + ".name");
      add(name, number_in({&e["share"], {}}, at + ".share", 1e-9, 1, false), at);
    }
  } else {
    std::string_view rest = v.text;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      const std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      const auto colon = item.find(':');
      if (colon == std::string_view::npos) {
        config_fail(f, "\"" + std::string(item) + "\" is not NAME:SHARE (e.g. live:0.9,batch:0.1)");
      }
      add(std::string(item.substr(0, colon)),
          number_in({nullptr, item.substr(colon + 1)}, f, 1e-9, 1, false), f);
    }
  }
  return out;
}

const auto limiter_table = std::to_array<setting<L>>({
    {"algorithm", "",
     [](L& o, const value_ref& v, const std::string& f) {
       const auto a = detail::pick<limit_algorithm>(string_in(v, f), f, "a limit algorithm",
                                                    {{"fixed", limit_algorithm::fixed},
                                                     {"aimd", limit_algorithm::aimd},
                                                     {"gradient2", limit_algorithm::gradient2},
                                                     {"vegas", limit_algorithm::vegas}});
       // Limits and smoothing still at the old algorithm's defaults take the new one's.
       const L before = defaults_of(o.algorithm, o.initial_limit);
       const L after = defaults_of(a, o.initial_limit);
       if (o.min_limit == before.min_limit) o.min_limit = after.min_limit;
       if (o.max_limit == before.max_limit) o.max_limit = after.max_limit;
       if (o.smoothing == before.smoothing) o.smoothing = after.smoothing;
       o.algorithm = a;
     },
     nullptr, false, "fixed, aimd, gradient2 or vegas", "NAME"},
    {"initial_limit", "",
     [](L& o, const value_ref& v, const std::string& f) { o.initial_limit = whole_in(v, f); },
     nullptr, false, "The limit to start from (1..1000000)", "N"},
    {"min_limit", "",
     [](L& o, const value_ref& v, const std::string& f) { o.min_limit = whole_in(v, f); }, nullptr,
     false, "The lowest limit (1..1000000)", "N"},
    {"max_limit", "",
     [](L& o, const value_ref& v, const std::string& f) { o.max_limit = whole_in(v, f); }, nullptr,
     false, "The highest limit (1..1000000)", "N"},
    {"backoff_ratio", "",
     [](L& o, const value_ref& v, const std::string& f) {
       o.backoff_ratio = number_in(v, f, 0.5, 0.999, false);
     },
     [](const L& o) { return not_for(o, {limit_algorithm::aimd}); }, false,
     "aimd: the limit is multiplied by this on a drop (0.5..0.999)", "X"},
    {"timeout", "",
     [](L& o, const value_ref& v, const std::string& f) {
       o.timeout = duration_in(v, f, std::chrono::milliseconds(1), std::chrono::hours(1));
     },
     [](const L& o) { return not_for(o, {limit_algorithm::aimd}); }, false,
     "aimd: a call slower than this counts as a drop", "DURATION"},
    {"smoothing", "",
     [](L& o, const value_ref& v, const std::string& f) {
       o.smoothing = number_in(v, f, 0.001, 1, false);
     },
     [](const L& o) {
       return not_for(o, {limit_algorithm::gradient2, limit_algorithm::vegas});
     },
     false, "How far each sample moves the limit (0.001..1)", "X"},
    {"queue_size", "",
     [](L& o, const value_ref& v, const std::string& f) { o.queue_size = whole_in(v, f); },
     [](const L& o) { return not_for(o, {limit_algorithm::gradient2}); }, false,
     "gradient2: headroom added to the estimate (0..1000)", "N"},
    {"long_window", "",
     [](L& o, const value_ref& v, const std::string& f) { o.long_window = whole_in(v, f); },
     [](const L& o) { return not_for(o, {limit_algorithm::gradient2}); }, false,
     "gradient2: samples in the long-term latency average (10..100000)", "N"},
    {"rtt_tolerance", "",
     [](L& o, const value_ref& v, const std::string& f) {
       o.rtt_tolerance = number_in(v, f, 1, 100, false);
     },
     [](const L& o) { return not_for(o, {limit_algorithm::gradient2}); }, false,
     "gradient2: latency growth tolerated before the limit falls (1..100)", "X"},
    {"probe_multiplier", "",
     [](L& o, const value_ref& v, const std::string& f) { o.probe_multiplier = whole_in(v, f); },
     [](const L& o) { return not_for(o, {limit_algorithm::vegas}); }, false,
     "vegas: re-measure the no-load latency every N x limit samples", "N"},
    {"partitions", "",
     [](L& o, const value_ref& v, const std::string& f) { o.partitions = partitions_in(v, f); },
     nullptr, false, "Shares of the limit by kind of work (live:0.9,batch:0.1)", "LIST"},
});

// ---- rate limiter -------------------------------------------------------------

using R = rate_limiter_options;
const auto rate_table = std::to_array<setting<R>>({
    {"rate", "",
     [](R& o, const value_ref& v, const std::string& f) {
       o.rate = number_in(v, f, 1e-6, 1e9, false);
     },
     nullptr, false, "Calls per second (0.000001..1000000000)", "X"},
    {"burst", "", [](R& o, const value_ref& v, const std::string& f) { o.burst = whole_in(v, f); },
     nullptr, false, "Calls that may go at once (1..1000000)", "N"},
    {"max_wait", "",
     [](R& o, const value_ref& v, const std::string& f) {
       o.max_wait = duration_in(v, f, duration::zero(), max_wait_limit);
     },
     nullptr, false, "How long a call may wait for its turn (0s..1h)", "DURATION"},
});

// ---- admission control --------------------------------------------------------

using A = admission_options;
const auto admission_table = std::to_array<setting<A>>({
    {"window", "",
     [](A& o, const value_ref& v, const std::string& f) { o.window = duration_in(v, f); }, nullptr,
     false, "Sampling window (1s..600s, whole seconds)", "DURATION"},
    {"success_rate_threshold", "",
     [](A& o, const value_ref& v, const std::string& f) {
       o.success_rate_threshold = number_in(v, f, 0.001, 1, false);
     },
     nullptr, false, "Below this success rate, shed load (0.001..1)", "X"},
    {"aggression", "",
     [](A& o, const value_ref& v, const std::string& f) {
       o.aggression = number_in(v, f, 0.01, 100, false);
     },
     nullptr, false, "Higher sheds sooner (0.01..100)", "X"},
    {"max_rejection", "",
     [](A& o, const value_ref& v, const std::string& f) {
       o.max_rejection = number_in(v, f, 0, 1, false);
     },
     nullptr, false, "The rejection probability's cap (0..1)", "X"},
    {"rps_threshold", "",
     [](A& o, const value_ref& v, const std::string& f) {
       o.rps_threshold = number_in(v, f, 0, 1e9, false);
     },
     nullptr, false, "Below this many requests per second, never shed", "X"},
});

template <class T, std::size_t N, class V>
T read_json(const std::array<setting<T>, N>& table, std::string_view text, T base, V validate_fn) {
  detail::settings_reader<T> r(table, std::move(base));
  r.json_object(detail::parse_document(text));
  return r.finish(validate_fn);
}

template <class T, std::size_t N, class V>
T read_env(const std::array<setting<T>, N>& table, T base, std::string_view prefix,
           const std::map<std::string, std::string>& vars, V validate_fn) {
  detail::settings_reader<T> r(table, std::move(base));
  r.environment(std::string(prefix) + "_", vars);
  return r.finish(validate_fn);
}

std::map<std::string, std::string> env_of(std::string_view prefix) {
  return detail::environment_under(std::string(prefix) + "_");
}

// ---- checks -------------------------------------------------------------------

void check_whole(int v, const char* field, int lo, int hi) {
  if (v < lo || v > hi) {
    config_fail(field, std::to_string(v) + " is out of range; allowed: " + std::to_string(lo) +
                           ".." + std::to_string(hi));
  }
}

}  // namespace

void validate(const bulkhead_options& o) {
  check_whole(o.max_concurrent, "max_concurrent", 1, 1000000);
  check_whole(o.max_queue, "max_queue", 0, 1000000);
  check_wait(o.max_wait, "max_wait");
}

void validate(const limiter_options& o) {
  const auto whole = [](int v, const char* f, int lo, int hi) {
    if (v < lo || v > hi) {
      config_fail(f, std::to_string(v) + " is out of range; allowed: " + std::to_string(lo) + ".." +
                         std::to_string(hi));
    }
  };
  // 0: the algorithm's default (limiter_options says which).
  whole(o.initial_limit, "initial_limit", 0, 1000000);
  whole(o.min_limit, "min_limit", 0, 1000000);
  whole(o.max_limit, "max_limit", 0, 1000000);
  // A fixed limit is initial_limit; min and max do not apply.
  const bool fixed = o.algorithm == limit_algorithm::fixed;
  if (!fixed && o.min_limit > 0 && o.max_limit > 0 && o.min_limit > o.max_limit) {
    config_fail("min_limit", std::to_string(o.min_limit) + " is above max_limit (" +
                                 std::to_string(o.max_limit) + ")");
  }
  if (!fixed && o.initial_limit > 0 && o.max_limit > 0 && o.initial_limit > o.max_limit) {
    config_fail("initial_limit", std::to_string(o.initial_limit) + " is above max_limit (" +
                                     std::to_string(o.max_limit) + ")");
  }
  check_range(o.backoff_ratio, "backoff_ratio", 0.5, 0.999);
  if (o.timeout < std::chrono::milliseconds(1) || o.timeout > std::chrono::hours(1)) {
    config_fail("timeout", format_duration(o.timeout) + " is out of range; allowed: 1ms..1h");
  }
  check_range(o.smoothing, "smoothing", 0, 1, true);
  whole(o.queue_size, "queue_size", 0, 1000);
  whole(o.long_window, "long_window", 10, 100000);
  check_range(o.rtt_tolerance, "rtt_tolerance", 1, 100);
  whole(o.probe_multiplier, "probe_multiplier", 1, 100000);
  double total = 0;
  for (std::size_t i = 0; i < o.partitions.size(); ++i) {
    const std::string at = "partitions[" + std::to_string(i) + "]";
    if (o.partitions[i].name.empty()) config_fail(at, "a partition needs a name");
    check_range(o.partitions[i].share, at, 0, 1, true);
    total += o.partitions[i].share;
  }
  if (total > 1 + 1e-9) {
    config_fail("partitions", "the shares sum to " + fmt_number(total) + "; allowed: at most 1");
  }
}

void validate(const rate_limiter_options& o) {
  check_range(o.rate, "rate", 1e-6, 1e9);
  check_whole(o.burst, "burst", 1, 1000000);
  check_wait(o.max_wait, "max_wait");
}

void validate(const admission_options& o) {
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(o.window);
  if (s != o.window || s.count() < 1 || s.count() > 600) {
    config_fail("window",
                format_duration(o.window) + " is not allowed; allowed: whole seconds, 1s..600s");
  }
  check_range(o.success_rate_threshold, "success_rate_threshold", 0, 1, true);
  check_range(o.aggression, "aggression", 0, 100, true);
  check_range(o.max_rejection, "max_rejection", 0, 1);
  check_range(o.rps_threshold, "rps_threshold", 0, 1e9);
}

// ---- readers ------------------------------------------------------------------

#define REBOUND_LIMIT_READERS(T, table, json_name, env_name)                                 \
  T json_name(std::string_view json, T base) {                                               \
    return read_json(table, json, std::move(base), [](const T& o) { validate(o); });         \
  }                                                                                          \
  T env_name(T base, std::string_view prefix, const std::map<std::string, std::string>& v) { \
    return read_env(table, std::move(base), prefix, v, [](const T& o) { validate(o); });     \
  }                                                                                          \
  T env_name(T base, std::string_view prefix) {                                              \
    return env_name(std::move(base), prefix, env_of(prefix));                                \
  }

REBOUND_LIMIT_READERS(bulkhead_options, bulkhead_table, bulkhead_from_json, apply_bulkhead_env)
REBOUND_LIMIT_READERS(limiter_options, limiter_table, limiter_from_json, apply_limiter_env)
REBOUND_LIMIT_READERS(rate_limiter_options, rate_table, rate_limiter_from_json,
                      apply_rate_limiter_env)
REBOUND_LIMIT_READERS(admission_options, admission_table, admission_from_json, apply_admission_env)

#undef REBOUND_LIMIT_READERS

}  // namespace rebound
