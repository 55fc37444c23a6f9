// router_options from JSON and environment variables, through the settings
// schema (src/config/schema.hpp): the router's own keys in one table, and its
// retry rules (replica_retry, lsn_wait) as policy documents of the core schema.
#include <algorithm>
#include <array>

#include "../config/schema.hpp"
#include "rebound/duration.hpp"
#include "rebound/pg/options.hpp"

namespace rebound::pg {
namespace {

using namespace std::chrono_literals;
using ::rebound::detail::config_fail;
using ::rebound::detail::value_ref;

constexpr duration max_wait = 1h;

// What the inputs set: the options, and the shorthands of earlier versions,
// applied when every input is in (so their order does not matter).
struct input {
  router_options o;
  std::optional<duration> retry_min, retry_max, wait_max, poll_min, poll_max;
};

duration wait_in(const value_ref& v, const std::string& f) {
  const duration d = ::rebound::detail::duration_in(v, f);
  if (d > max_wait) config_fail(f, format_duration(d) + " is out of range; allowed: 0..1h");
  return d;
}

// A policy document (or, from the environment, handled apart) for a retry rule.
policy_settings nested_policy(const policy_settings& base, const value_ref& v,
                              const std::string& field) {
  if (v.j == nullptr || !v.j->is_object()) {
    config_fail(field, "expected a policy object such as {\"max_attempts\": 2}");
  }
  ::rebound::detail::settings_reader<policy_settings> r(::rebound::detail::policy_schema(), base);
  r.json_object(*v.j, "", field + ".");
  return r.finish([](const policy_settings& s) { s.validate(); });
}

input make_input(auto o) {
  input in;
  in.o = std::move(o);
  return in;
}

using I = input;
const auto router_table = std::to_array<::rebound::detail::setting<I>>({
    {"enabled", "",
     [](I& t, const value_ref& v, const std::string& f) {
       t.o.enabled = ::rebound::detail::bool_in(v, f);
     }},
    {"replica_retry", "",
     [](I& t, const value_ref& v, const std::string& f) {
       t.o.replica_retry = nested_policy(t.o.replica_retry, v, f);
     }},
    {"lsn_wait", "",
     [](I& t, const value_ref& v, const std::string& f) {
       t.o.lsn_wait = nested_policy(t.o.lsn_wait, v, f);
     }},
    {"replica_retry_min", "",
     [](I& t, const value_ref& v, const std::string& f) { t.retry_min = wait_in(v, f); }},
    {"replica_retry_max", "",
     [](I& t, const value_ref& v, const std::string& f) { t.retry_max = wait_in(v, f); }},
    {"lsn_wait_max", "",
     [](I& t, const value_ref& v, const std::string& f) { t.wait_max = wait_in(v, f); }},
    {"lsn_poll_min", "",
     [](I& t, const value_ref& v, const std::string& f) {
       t.poll_min = ::rebound::detail::duration_in(v, f, 1ns, max_wait);
     }},
    {"lsn_poll_max", "",
     [](I& t, const value_ref& v, const std::string& f) {
       t.poll_max = ::rebound::detail::duration_in(v, f, 1ns, max_wait);
     }},
    {"pool_size", "",
     [](I& t, const value_ref& v, const std::string& f) {
       t.o.pool_size = static_cast<int>(::rebound::detail::number_in(v, f, 1, 1000, true));
     }},
    {"pool_wait", "",
     [](I& t, const value_ref& v, const std::string& f) { t.o.pool_wait = wait_in(v, f); }},
    {"connect_timeout", "",
     [](I& t, const value_ref& v, const std::string& f) {
       t.o.connect_timeout = ::rebound::detail::duration_in(v, f, 1s, max_wait);
     }},
    {"replica_query_timeout", "",
     [](I& t, const value_ref& v, const std::string& f) {
       t.o.replica_query_timeout = wait_in(v, f);
     }},
    {"primary_query_timeout", "",
     [](I& t, const value_ref& v, const std::string& f) {
       t.o.primary_query_timeout = wait_in(v, f);
     }},
    {"warning_interval", "",
     [](I& t, const value_ref& v, const std::string& f) { t.o.warning_interval = wait_in(v, f); }},
    {"seed", "",
     [](I& t, const value_ref& v, const std::string& f) {
       t.o.seed = ::rebound::detail::unsigned_in(v, f);
     }},
    {"replica_breaker", "",
     [](I& t, const value_ref& v, const std::string& f) {
       if (v.j == nullptr || !v.j->is_object()) {
         config_fail(f, "expected an object such as {\"failure_threshold\": 3}");
       }
       ::rebound::detail::settings_reader<breaker_options> r(::rebound::detail::breaker_schema(),
                                                             t.o.replica_breaker);
       r.json_object(*v.j, "", f + ".");
       t.o.replica_breaker = r.finish([](const breaker_options& b) { rebound::validate(b); });
     }},
});

// The shorthands, into the policies they stand for; then every check.
void finish_input(input& t) {
  if (t.retry_min || t.retry_max) {
    // The current window, from the policy's shape (constant + additive jitter).
    const policy_settings& s = t.o.replica_retry;
    const duration cur_min = s.initial;
    const duration cur_max =
        s.max_attempts == 1
            ? duration::zero()
            : s.initial + (s.jitter.type() == jitter::kind::additive ? s.jitter.amount()
                                                                     : duration::zero());
    const duration lo = t.retry_min.value_or(cur_min);
    const duration hi = t.retry_max.value_or(cur_max);
    if (hi != duration::zero() && lo > hi) {
      config_fail("replica_retry_min", format_duration(lo) + " is above replica_retry_max " +
                                           format_duration(hi) +
                                           "; allowed: min <= max (a max of 0 skips the retry)");
    }
    t.o.replica_retry = one_replica_retry(lo, hi);
  }
  if (t.poll_min && t.poll_max && *t.poll_min > *t.poll_max) {
    config_fail("lsn_poll_min", format_duration(*t.poll_min) + " is above lsn_poll_max " +
                                    format_duration(*t.poll_max) + "; allowed: min <= max");
  }
  if (t.wait_max || t.poll_min || t.poll_max) {
    const policy_settings& s = t.o.lsn_wait;
    const duration limit = t.wait_max.value_or(s.before_elapsed.value_or(1s));
    const duration hi = t.poll_max.value_or(s.max_delay.value_or(20ms));
    const duration lo = t.poll_min.value_or(std::min(s.initial / 2, hi));
    t.o.lsn_wait = lsn_polling(limit, lo, std::max(lo, hi));
  }
  t.o.validate();
}

// Renames an error from a nested check ("backoff.max") to where it sits.
config_error nested(const config_error& e, const std::string& where) {
  const std::string what = e.what();
  const std::string head = e.field() + ": ";
  return config_error(where + e.field(), what.starts_with(head) ? what.substr(head.size()) : what);
}

}  // namespace

void router_options::validate() const {
  const auto check = [](duration d, const std::string& field, duration lo) {
    if (d < lo || d > max_wait) {
      config_fail(
          field, format_duration(d) + " is out of range; allowed: " + format_duration(lo) + "..1h");
    }
  };
  try {
    replica_retry.validate();
  } catch (const config_error& e) {
    throw nested(e, "replica_retry.");
  }
  try {
    lsn_wait.validate();
  } catch (const config_error& e) {
    throw nested(e, "lsn_wait.");
  }
  if (pool_size < 1 || pool_size > 1000) {
    config_fail("pool_size", std::to_string(pool_size) + " is out of range; allowed: 1..1000");
  }
  check(pool_wait, "pool_wait", duration::zero());
  if (connect_timeout < 1s || connect_timeout > max_wait) {
    config_fail("connect_timeout", format_duration(connect_timeout) +
                                       " is out of range; allowed: 1s..1h (libpq counts whole "
                                       "seconds)");
  }
  check(replica_query_timeout, "replica_query_timeout", duration::zero());
  check(primary_query_timeout, "primary_query_timeout", duration::zero());
  check(warning_interval, "warning_interval", duration::zero());
  try {
    rebound::validate(replica_breaker);
  } catch (const config_error& e) {
    throw nested(e, "replica_breaker.");
  }
}

router_options router_options_from_json(std::string_view text, router_options o) {
  ::rebound::detail::settings_reader<input> r(router_table, make_input(std::move(o)));
  r.json_object(::rebound::detail::parse_document(text));
  return r.finish(finish_input).o;
}

router_options apply_router_env(router_options o, std::string_view prefix,
                                const std::map<std::string, std::string>& vars) {
  const std::string p = std::string(prefix) + "_";
  // The retry rules and the breaker take whole documents of their own
  // schemas: their variables go to their own readers.
  struct nested_env {
    std::string head;
    std::vector<std::string> shorthands;  // names under head that are the router's own
    std::map<std::string, std::string> vars;
  };
  nested_env retry{p + "REPLICA_RETRY_", {"MIN", "MIN_MS", "MAX", "MAX_MS"}, {}};
  nested_env wait{p + "LSN_WAIT_", {"MAX", "MAX_MS"}, {}};
  nested_env breaker{p + "REPLICA_BREAKER_", {}, {}};
  std::map<std::string, std::string> own;
  std::map<std::string, std::string> origin_of;  // the name written, for X_MS
  for (const auto& [name, value] : vars) {
    if (!name.starts_with(p)) continue;
    bool taken = false;
    for (nested_env* n : {&retry, &wait, &breaker}) {
      if (!name.starts_with(n->head)) continue;
      const std::string rest = name.substr(n->head.size());
      if (std::find(n->shorthands.begin(), n->shorthands.end(), rest) != n->shorthands.end()) {
        continue;
      }
      n->vars.emplace(name, value);
      taken = true;
    }
    if (taken) continue;
    // X_MS: milliseconds, for a duration X (PREFIX_MS alone names nothing:
    // found by fuzzing, it once cut the prefix off a name too short to have it).
    if (name.ends_with("_MS") && name.size() > p.size() + 3) {
      const std::string base = name.substr(0, name.size() - 3);
      if (vars.contains(base))
        config_fail(name, "both " + name + " and " + base + " are set; set one");
      const auto ms = ::rebound::detail::unsigned_in({nullptr, value}, name);
      if (ms > static_cast<std::uint64_t>(
                   std::chrono::duration_cast<std::chrono::milliseconds>(max_wait).count())) {
        config_fail(name, "\"" + value + "\" is out of range; allowed: 0..3600000");
      }
      own.emplace(base, std::to_string(ms) + "ms");
      origin_of.emplace(base, name);
      continue;
    }
    own.emplace(name, value);
  }
  ::rebound::detail::settings_reader<input> r(router_table, make_input(std::move(o)));
  for (const auto& [name, value] : own) {
    const std::string suffix = name.substr(p.size());
    const std::string origin = origin_of.contains(name) ? origin_of[name] : name;
    bool known = false;
    for (const auto& s : router_table) {
      if (::rebound::detail::env_suffix(s.path) == suffix && s.path != "replica_retry" &&
          s.path != "lsn_wait" && s.path != "replica_breaker") {
        r.text(s.path, value, origin);
        known = true;
      }
    }
    if (!known) {
      config_fail(origin, "names no router option; allowed: " + p + "ENABLED, " + p +
                              "REPLICA_RETRY_* (a policy), " + p + "LSN_WAIT_* (a policy), " + p +
                              "REPLICA_RETRY_MIN[_MS], " + p + "REPLICA_RETRY_MAX[_MS], " + p +
                              "LSN_WAIT_MAX[_MS], " + p + "LSN_POLL_MIN[_MS], " + p +
                              "LSN_POLL_MAX[_MS], " + p + "POOL_SIZE, " + p + "POOL_WAIT[_MS], " +
                              p + "CONNECT_TIMEOUT[_MS], " + p + "REPLICA_QUERY_TIMEOUT[_MS], " +
                              p + "PRIMARY_QUERY_TIMEOUT[_MS], " + p + "WARNING_INTERVAL[_MS], " +
                              p + "SEED, " + p + "REPLICA_BREAKER_*");
    }
  }
  input& in = r.value();
  if (!retry.vars.empty()) {
    in.o.replica_retry = settings_builder(in.o.replica_retry)
                             .env(retry.head.substr(0, retry.head.size() - 1), retry.vars)
                             .build();
  }
  if (!wait.vars.empty()) {
    in.o.lsn_wait = settings_builder(in.o.lsn_wait)
                        .env(wait.head.substr(0, wait.head.size() - 1), wait.vars)
                        .build();
  }
  if (!breaker.vars.empty()) {
    in.o.replica_breaker = apply_breaker_env(
        in.o.replica_breaker, breaker.head.substr(0, breaker.head.size() - 1), breaker.vars);
  }
  try {
    return r.finish(finish_input).o;
  } catch (const config_error& e) {
    // A check on a field no variable set: name the variable family.
    if (e.field().starts_with(p)) throw;
    throw config_error(p + ::rebound::detail::env_suffix(e.field()),
                       std::string(e.what()).substr(e.field().size() + 2));
  }
}

router_options apply_router_env(router_options base, std::string_view prefix) {
  return apply_router_env(std::move(base), prefix,
                          ::rebound::detail::environment_under(std::string(prefix) + "_"));
}

}  // namespace rebound::pg
