// router_options from JSON and environment variables, strictly validated.
#include <nlohmann/json.hpp>

#include <cctype>
#include <charconv>
#include <cstdlib>
#include <string>

#include "../detail/config_text.hpp"
#include "rebound/config.hpp"
#include "rebound/duration.hpp"
#include "rebound/pg/router.hpp"

namespace rebound::pg {
namespace {

using json = nlohmann::json;

using ::rebound::detail::config_fail;
[[noreturn]] void fail(const std::string& field, const std::string& problem) {
  config_fail(field, problem);
}

constexpr auto max_wait = std::chrono::hours(1);

void check_duration(duration d, const std::string& field, bool allow_zero) {
  if (d < duration::zero() || (!allow_zero && d == duration::zero()) || d > max_wait) {
    fail(field,
         format_duration(d) + " is out of range; allowed: " + (allow_zero ? "0" : "1ns") + "..1h");
  }
}

duration text_duration(std::string_view text, const std::string& field) {
  return ::rebound::detail::config_duration(text, field);
}

duration json_duration(const json& v, const std::string& field) {
  if (!v.is_string()) {
    fail(field, "expected a duration string such as \"50ms\" or \"1s\", got " + v.dump());
  }
  return text_duration(v.get<std::string>(), field);
}

std::uint64_t text_unsigned(std::string_view text, const std::string& field, std::uint64_t max,
                            std::uint64_t min = 0) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || v > max || v < min) {
    fail(field, "\"" + std::string(text) + "\" is not an integer in " + std::to_string(min) + ".." +
                    std::to_string(max));
  }
  return v;
}

bool text_bool(std::string_view text, const std::string& field) {
  if (text == "true" || text == "1" || text == "on" || text == "yes") return true;
  if (text == "false" || text == "0" || text == "off" || text == "no") return false;
  fail(field,
       "\"" + std::string(text) + "\" is not a boolean; allowed: true, false, 1, 0, on, off");
}

// The same problem, under another field name.
config_error renamed(const config_error& e, const std::string& field) {
  const std::string what = e.what();
  const std::string head = e.field() + ": ";
  return config_error(field, what.starts_with(head) ? what.substr(head.size()) : what);
}

// "replica_breaker.open_duration" -> "PREFIX_REPLICA_BREAKER_OPEN_DURATION"
std::string env_name(const std::string& prefix, std::string field) {
  for (auto& ch : field) {
    ch = ch == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  }
  return prefix + field;
}

}  // namespace

void router_options::validate() const {
  check_duration(replica_retry_min, "replica_retry_min", true);
  check_duration(replica_retry_max, "replica_retry_max", true);
  if (replica_retry_max != duration::zero() && replica_retry_min > replica_retry_max) {
    fail("replica_retry_min", format_duration(replica_retry_min) + " is above replica_retry_max " +
                                  format_duration(replica_retry_max) +
                                  "; allowed: min <= max (a max of 0 skips the retry)");
  }
  check_duration(lsn_wait_max, "lsn_wait_max", true);
  check_duration(lsn_poll_min, "lsn_poll_min", false);
  check_duration(lsn_poll_max, "lsn_poll_max", false);
  if (lsn_poll_min > lsn_poll_max) {
    fail("lsn_poll_min", format_duration(lsn_poll_min) + " is above lsn_poll_max " +
                             format_duration(lsn_poll_max) + "; allowed: min <= max");
  }
  if (pool_size < 1 || pool_size > 1000) {
    fail("pool_size", std::to_string(pool_size) + " is out of range; allowed: 1..1000");
  }
  check_duration(pool_wait, "pool_wait", true);
  if (connect_timeout < std::chrono::seconds(1) || connect_timeout > max_wait) {
    fail("connect_timeout", format_duration(connect_timeout) +
                                " is out of range; allowed: 1s..1h (libpq counts whole seconds)");
  }
  check_duration(replica_query_timeout, "replica_query_timeout", true);
  check_duration(warning_interval, "warning_interval", true);
  try {
    rebound::validate(replica_breaker);
  } catch (const config_error& e) {
    throw renamed(e, "replica_breaker." + e.field());
  }
}

router_options router_options_from_json(std::string_view text, router_options o) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    fail("(document)", std::string("not valid JSON: ") + e.what());
  }
  if (!doc.is_object()) fail("(document)", "expected a JSON object, got " + doc.dump());
  for (const auto& [key, v] : doc.items()) {
    if (key == "enabled") {
      if (!v.is_boolean()) fail(key, "expected true or false, got " + v.dump());
      o.enabled = v.get<bool>();
    } else if (key == "replica_retry_min") {
      o.replica_retry_min = json_duration(v, key);
    } else if (key == "replica_retry_max") {
      o.replica_retry_max = json_duration(v, key);
    } else if (key == "lsn_wait_max") {
      o.lsn_wait_max = json_duration(v, key);
    } else if (key == "lsn_poll_min") {
      o.lsn_poll_min = json_duration(v, key);
    } else if (key == "lsn_poll_max") {
      o.lsn_poll_max = json_duration(v, key);
    } else if (key == "pool_wait") {
      o.pool_wait = json_duration(v, key);
    } else if (key == "connect_timeout") {
      o.connect_timeout = json_duration(v, key);
    } else if (key == "replica_query_timeout") {
      o.replica_query_timeout = json_duration(v, key);
    } else if (key == "warning_interval") {
      o.warning_interval = json_duration(v, key);
    } else if (key == "pool_size") {
      if (!v.is_number_integer()) fail(key, "expected an integer in 1..1000, got " + v.dump());
      const auto n = v.get<std::int64_t>();
      if (n < 1 || n > 1000) fail(key, v.dump() + " is out of range; allowed: 1..1000");
      o.pool_size = static_cast<int>(n);
    } else if (key == "seed") {
      if (!v.is_number_unsigned()) fail(key, "expected an integer in 0..2^64-1, got " + v.dump());
      o.seed = v.get<std::uint64_t>();
    } else if (key == "replica_breaker") {
      try {
        o.replica_breaker = breaker_from_json(v.dump(), o.replica_breaker);
      } catch (const config_error& e) {
        throw renamed(e, "replica_breaker." + e.field());
      }
    } else {
      fail(key,
           "unknown key; allowed: enabled, replica_retry_min, replica_retry_max, lsn_wait_max, "
           "lsn_poll_min, lsn_poll_max, pool_size, pool_wait, connect_timeout, "
           "replica_query_timeout, warning_interval, seed, replica_breaker");
    }
  }
  o.validate();
  return o;
}

router_options apply_router_env(router_options o, std::string_view prefix,
                                const std::map<std::string, std::string>& vars) {
  const std::string p = std::string(prefix) + "_";
  const std::string breaker_prefix = p + "REPLICA_BREAKER";
  // name suffix -> the field it sets (a duration, or milliseconds with _MS)
  const std::pair<const char*, duration router_options::*> durations[] = {
      {"REPLICA_RETRY_MIN", &router_options::replica_retry_min},
      {"REPLICA_RETRY_MAX", &router_options::replica_retry_max},
      {"LSN_WAIT_MAX", &router_options::lsn_wait_max},
      {"LSN_POLL_MIN", &router_options::lsn_poll_min},
      {"LSN_POLL_MAX", &router_options::lsn_poll_max},
      {"POOL_WAIT", &router_options::pool_wait},
      {"CONNECT_TIMEOUT", &router_options::connect_timeout},
      {"REPLICA_QUERY_TIMEOUT", &router_options::replica_query_timeout},
      {"WARNING_INTERVAL", &router_options::warning_interval},
  };
  for (const auto& [name, value] : vars) {
    if (!name.starts_with(p)) continue;
    const std::string_view rest = std::string_view(name).substr(p.size());
    if (name.starts_with(breaker_prefix + "_")) continue;  // below
    bool known = false;
    for (const auto& [suffix, field] : durations) {
      if (rest == suffix) {
        o.*field = text_duration(value, name);
        known = true;
      } else if (rest == std::string(suffix) + "_MS") {
        if (vars.contains(p + suffix)) {
          fail(name, "both " + name + " and " + p + suffix + " are set; set one");
        }
        o.*field = std::chrono::milliseconds(
            text_unsigned(value, name, std::chrono::milliseconds(max_wait).count()));
        known = true;
      }
    }
    if (known) continue;
    if (rest == "ENABLED") {
      o.enabled = text_bool(value, name);
    } else if (rest == "POOL_SIZE") {
      o.pool_size = static_cast<int>(text_unsigned(value, name, 1000, 1));
    } else if (rest == "SEED") {
      o.seed = text_unsigned(value, name, ~std::uint64_t{0});
    } else {
      fail(name, "names no router option; allowed: " + p + "ENABLED, " + p +
                     "REPLICA_RETRY_MIN[_MS], " + p + "REPLICA_RETRY_MAX[_MS], " + p +
                     "LSN_WAIT_MAX[_MS], " + p + "LSN_POLL_MIN[_MS], " + p + "LSN_POLL_MAX[_MS], " +
                     p + "POOL_SIZE, " + p + "POOL_WAIT[_MS], " + p + "CONNECT_TIMEOUT[_MS], " + p +
                     "REPLICA_QUERY_TIMEOUT[_MS], " + p + "WARNING_INTERVAL[_MS], " + p + "SEED, " +
                     breaker_prefix + "_*");
    }
  }
  o.replica_breaker = apply_breaker_env(o.replica_breaker, breaker_prefix, vars);
  try {
    o.validate();
  } catch (const config_error& e) {
    // Name the variable family, not the JSON field, when the environment set it.
    throw renamed(e, env_name(p, e.field()));
  }
  return o;
}

router_options apply_router_env(router_options base, std::string_view prefix) {
  return apply_router_env(std::move(base), prefix,
                          ::rebound::detail::environment_under(std::string(prefix) + "_"));
}

}  // namespace rebound::pg
