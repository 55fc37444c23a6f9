// redis::options from JSON and environment variables, through the settings
// schema (src/config/schema.hpp): the link's keys in one table, its
// reconnect rule as a policy document of the core schema.
#include <algorithm>
#include <array>

#include "../config/schema.hpp"
#include "rebound/duration.hpp"
#include "rebound/redis/client.hpp"

namespace rebound::redis {
namespace {

using namespace std::chrono_literals;
using ::rebound::detail::config_fail;
using ::rebound::detail::value_ref;

// The options, and the reconnect shorthands and the budget's kind and
// settings, applied once every input is in.
struct input {
  options o;
  std::optional<duration> reconnect_min, reconnect_max;
  bool bucket = false;  // the budget's kind: a token bucket (else a ratio)
  ratio_budget::options ratio{};
  token_bucket_budget::options bucket_settings{};
};

std::string ratio_only(const input& t) {
  return t.bucket ? "applies to a ratio budget; budget.kind is token_bucket" : "";
}
std::string bucket_only(const input& t) {
  return t.bucket ? "" : "applies to a token_bucket budget; budget.kind is ratio";
}

void check_range(duration d, const std::string& field, duration lo, duration hi) {
  if (d < lo || d > hi) {
    config_fail(field, format_duration(d) + " is out of range; allowed: " + format_duration(lo) +
                           ".." + format_duration(hi));
  }
}

duration dur(const value_ref& v, const std::string& f) {
  return ::rebound::detail::duration_in(v, f);
}

// Strings; a secret's value is never shown, not even its JSON type's contents.
std::string text_of(const value_ref& v, const std::string& f, bool secret) {
  if (v.j != nullptr && !v.j->is_string()) {
    config_fail(f, secret ? "expected a string" : "expected a string, got " + v.j->dump());
  }
  return v.j != nullptr ? v.j->get<std::string>() : std::string(v.text);
}

int integer(const value_ref& v, const std::string& f, long long lo, long long hi) {
  const std::string range = std::to_string(lo) + ".." + std::to_string(hi);
  if (v.j != nullptr) {
    if (!v.j->is_number_integer()) config_fail(f, "expected an integer, got " + v.j->dump());
    const auto n = v.j->get<long long>();
    if (n < lo || n > hi) config_fail(f, v.j->dump() + " is not an integer in " + range);
    return static_cast<int>(n);
  }
  return static_cast<int>(
      ::rebound::detail::number_in(v, f, static_cast<double>(lo), static_cast<double>(hi), true));
}

input make_input(auto o) {
  input in;
  in.o = std::move(o);
  if (const auto* r = std::get_if<ratio_budget::options>(&in.o.budget)) {
    in.ratio = *r;
  } else {
    in.bucket = true;
    in.bucket_settings = std::get<token_bucket_budget::options>(in.o.budget);
  }
  return in;
}

using I = input;
const auto link_table = std::to_array<::rebound::detail::setting<I>>({
    {"host", "",
     [](I& t, const value_ref& v, const std::string& f) { t.o.host = text_of(v, f, false); }},
    {"port", "",
     [](I& t, const value_ref& v, const std::string& f) { t.o.port = integer(v, f, 1, 65535); }},
    {"username", "",
     [](I& t, const value_ref& v, const std::string& f) { t.o.username = text_of(v, f, false); }},
    {"password", "",
     [](I& t, const value_ref& v, const std::string& f) { t.o.password = text_of(v, f, true); },
     nullptr, true},
    {"key_prefix", "",
     [](I& t, const value_ref& v, const std::string& f) { t.o.key_prefix = text_of(v, f, false); }},
    {"connect_timeout", "",
     [](I& t, const value_ref& v, const std::string& f) { t.o.connect_timeout = dur(v, f); }},
    {"command_timeout", "",
     [](I& t, const value_ref& v, const std::string& f) { t.o.command_timeout = dur(v, f); }},
    {"reconnect", "",
     [](I& t, const value_ref& v, const std::string& f) {
       if (v.j == nullptr || !v.j->is_object()) {
         config_fail(f, "expected a policy object such as {\"backoff\": {\"max\": \"5s\"}}");
       }
       ::rebound::detail::settings_reader<policy_settings> r(::rebound::detail::policy_schema(),
                                                             t.o.reconnect);
       r.json_object(*v.j, "", f + ".");
       t.o.reconnect = r.finish([](const policy_settings& s) { s.validate(); });
     }},
    {"reconnect_min", "",
     [](I& t, const value_ref& v, const std::string& f) { t.reconnect_min = dur(v, f); }},
    {"reconnect_max", "",
     [](I& t, const value_ref& v, const std::string& f) { t.reconnect_max = dur(v, f); }},
    {"flush_interval", "",
     [](I& t, const value_ref& v, const std::string& f) { t.o.flush_interval = dur(v, f); }},
    {"max_batch", "",
     [](I& t, const value_ref& v, const std::string& f) {
       t.o.max_batch = integer(v, f, 1, 1000000);
     }},
    {"lease_size", "",
     [](I& t, const value_ref& v, const std::string& f) {
       t.o.lease_size = integer(v, f, 1, 10000);
     }},
    {"lease_ttl", "",
     [](I& t, const value_ref& v, const std::string& f) { t.o.lease_ttl = dur(v, f); }},
    {"refusal_hold", "",
     [](I& t, const value_ref& v, const std::string& f) { t.o.refusal_hold = dur(v, f); }},
    {"poll_interval", "",
     [](I& t, const value_ref& v, const std::string& f) { t.o.poll_interval = dur(v, f); }},
    {"fallback", "",
     [](I& t, const value_ref& v, const std::string& f) {
       if (v.j != nullptr && !v.j->is_string()) {
         config_fail(f, "expected local, open or closed, got " + v.j->dump());
       }
       t.o.fallback = ::rebound::detail::pick<fallback_mode>(text_of(v, f, false), f, "a fallback",
                                                             {{"local", fallback_mode::local},
                                                              {"open", fallback_mode::open},
                                                              {"closed", fallback_mode::closed}});
     }},
    {"fleet_probes", "",
     [](I& t, const value_ref& v, const std::string& f) {
       t.o.fleet_probes = integer(v, f, 1, 1000);
     }},
    {"budget.kind", "",
     [](I& t, const value_ref& v, const std::string& f) {
       if (v.j != nullptr && !v.j->is_string()) {
         config_fail(f, "expected ratio or token_bucket, got " + v.j->dump());
       }
       t.bucket = ::rebound::detail::pick<bool>(text_of(v, f, false), f, "a budget kind",
                                                {{"ratio", false}, {"token_bucket", true}});
     }},
    {"budget.ratio", "",
     [](I& t, const value_ref& v, const std::string& f) {
       t.ratio.ratio = ::rebound::detail::number_in(v, f, 0, 1, false);
     },
     ratio_only},
    {"budget.min_per_second", "",
     [](I& t, const value_ref& v, const std::string& f) {
       t.ratio.min_per_second = integer(v, f, 0, 1000000);
     },
     ratio_only},
    {"budget.window", "",
     [](I& t, const value_ref& v, const std::string& f) { t.ratio.window = dur(v, f); },
     ratio_only},
    {"budget.capacity", "",
     [](I& t, const value_ref& v, const std::string& f) {
       t.bucket_settings.capacity = integer(v, f, 1, 1000000000);
     },
     bucket_only},
    {"budget.retry_cost", "",
     [](I& t, const value_ref& v, const std::string& f) {
       t.bucket_settings.retry_cost = integer(v, f, 1, 1000000000);
     },
     bucket_only},
    {"budget.timeout_retry_cost", "",
     [](I& t, const value_ref& v, const std::string& f) {
       t.bucket_settings.timeout_retry_cost = integer(v, f, 1, 1000000000);
     },
     bucket_only},
    {"budget.success_refund", "",
     [](I& t, const value_ref& v, const std::string& f) {
       t.bucket_settings.success_refund = integer(v, f, 0, 1000000000);
     },
     bucket_only},
    {"share", "",
     [](I& t, const value_ref& v, const std::string& f) {
       t.o.share = ::rebound::detail::bool_in(v, f);
     }},
    {"expected_fleet_size", "",
     [](I& t, const value_ref& v, const std::string& f) {
       t.o.expected_fleet_size = integer(v, f, 1, 1000000);
     }},
    {"member_ttl", "",
     [](I& t, const value_ref& v, const std::string& f) { t.o.member_ttl = dur(v, f); }},
    {"sentinels", "",
     [](I& t, const value_ref& v, const std::string& f) {
       std::vector<std::string> out;
       if (v.j != nullptr) {
         if (!v.j->is_array()) config_fail(f, "expected an array of \"host:port\", got " + v.j->dump());
         for (std::size_t i = 0; i < v.j->size(); ++i) {
           const auto& e = (*v.j)[i];
           const std::string at = f + "[" + std::to_string(i) + "]";
           if (!e.is_string()) config_fail(at, "expected \"host:port\", got " + e.dump());
           out.push_back(e.get<std::string>());
         }
       } else {
         std::string_view rest = v.text;
         while (!rest.empty()) {
           const auto comma = rest.find(',');
           out.emplace_back(rest.substr(0, comma));
           rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
         }
       }
       t.o.sentinels = std::move(out);
     }},
    {"master_name", "",
     [](I& t, const value_ref& v, const std::string& f) { t.o.master_name = text_of(v, f, false); }},
});

void finish_input(input& t) {
  if (t.bucket) {
    t.o.budget = t.bucket_settings;
  } else {
    t.o.budget = t.ratio;
  }
  if (t.reconnect_min || t.reconnect_max) {
    const duration lo = t.reconnect_min.value_or(t.o.reconnect.initial);
    const duration hi = t.reconnect_max.value_or(t.o.reconnect.max_delay.value_or(5s));
    check_range(lo, "reconnect_min", 1ms, 1h);
    check_range(hi, "reconnect_max", lo, 1h);
    t.o.reconnect = reconnect_backoff(lo, hi);
  }
  t.o.validate();
}

}  // namespace

void options::validate() const {
  if (host.empty()) config_fail("host", "empty; a host name or address is required");
  if (port < 1 || port > 65535) {
    config_fail("port", std::to_string(port) + " is out of range; allowed: 1..65535");
  }
  if (key_prefix.empty()) config_fail("key_prefix", "empty; keys need a prefix of their own");
  check_range(connect_timeout, "connect_timeout", 1ms, 60s);
  check_range(command_timeout, "command_timeout", 1ms, 60s);
  try {
    reconnect.validate();
  } catch (const config_error& e) {
    const std::string what = e.what();
    throw config_error("reconnect." + e.field(), what.substr(e.field().size() + 2));
  }
  check_range(flush_interval, "flush_interval", 1ms, 60s);
  if (max_batch < 1 || max_batch > 1000000) {
    config_fail("max_batch", std::to_string(max_batch) + " is out of range; allowed: 1..1000000");
  }
  if (lease_size < 1 || lease_size > 10000) {
    config_fail("lease_size", std::to_string(lease_size) + " is out of range; allowed: 1..10000");
  }
  check_range(lease_ttl, "lease_ttl", 1ms, 1h);
  check_range(refusal_hold, "refusal_hold", 0ms, 60s);
  check_range(poll_interval, "poll_interval", 1ms, 60s);
  if (fleet_probes < 1 || fleet_probes > 1000) {
    config_fail("fleet_probes",
                std::to_string(fleet_probes) + " is out of range; allowed: 1..1000");
  }
  try {
    fleet_budget::validate(budget);
  } catch (const config_error& e) {
    const std::string what = e.what();
    throw config_error("budget." + e.field(), what.substr(e.field().size() + 2));
  }
  if (expected_fleet_size < 1 || expected_fleet_size > 1000000) {
    config_fail("expected_fleet_size",
                std::to_string(expected_fleet_size) + " is out of range; allowed: 1..1000000");
  }
  check_range(member_ttl, "member_ttl", 1s, 1h);
  if (sentinels.size() > 64) {
    config_fail("sentinels", std::to_string(sentinels.size()) + " Sentinels; allowed: at most 64");
  }
  for (std::size_t i = 0; i < sentinels.size(); ++i) {
    const std::string at = "sentinels[" + std::to_string(i) + "]";
    const std::string& e = sentinels[i];
    const auto colon = e.rfind(':');
    int p = 0;
    const bool digits = colon != std::string::npos && colon + 1 < e.size() &&
                        e.size() - colon <= 6 &&
                        std::all_of(e.begin() + static_cast<std::ptrdiff_t>(colon) + 1, e.end(),
                                    [](char c) { return c >= '0' && c <= '9'; });
    if (digits) p = std::stoi(e.substr(colon + 1));
    if (colon == 0 || !digits || p < 1 || p > 65535) {
      config_fail(at, "\"" + e + "\" is not host:port (port 1..65535)");
    }
  }
  if (!sentinels.empty() && master_name.empty()) {
    config_fail("master_name", "empty; Sentinels need the name of the master they monitor");
  }
  if (sentinels.empty() && !master_name.empty()) {
    config_fail("master_name", "set without sentinels; give the Sentinels' addresses too");
  }
}

options options_from_json(std::string_view text, options o) {
  // parse_document(quote = false): the parser's message quotes the
  // document, which may hold the password.
  ::rebound::detail::settings_reader<input> r(link_table, make_input(std::move(o)));
  r.json_object(::rebound::detail::parse_document(text, false));
  return r.finish(finish_input).o;
}

options apply_env(options o, std::string_view prefix,
                  const std::map<std::string, std::string>& vars) {
  const std::string head = std::string(prefix) + "_";
  const std::string nested_head = head + "RECONNECT_";
  std::map<std::string, std::string> reconnect_vars;
  ::rebound::detail::settings_reader<input> r(link_table, make_input(std::move(o)));
  for (const auto& [name, value] : vars) {
    if (!name.starts_with(head)) continue;
    if (name.starts_with(nested_head) && name != head + "RECONNECT_MIN" &&
        name != head + "RECONNECT_MAX") {
      reconnect_vars.emplace(name, value);
      continue;
    }
    const std::string suffix = name.substr(head.size());
    bool known = false;
    for (const auto& s : link_table) {
      if (::rebound::detail::env_suffix(s.path) == suffix && s.path != "reconnect") {
        r.text(s.path, value, name);
        known = true;
      }
    }
    if (!known) {
      std::string allowed;
      for (const auto& s : link_table) {
        allowed += (allowed.empty() ? "" : ", ") + head + ::rebound::detail::env_suffix(s.path) +
                   (s.path == "reconnect" ? "_*" : "");
      }
      config_fail(name, "names no Redis option; allowed: " + allowed);
    }
  }
  if (!reconnect_vars.empty()) {
    r.value().o.reconnect =
        settings_builder(r.value().o.reconnect).env(head + "RECONNECT", reconnect_vars).build();
  }
  try {
    return r.finish(finish_input).o;
  } catch (const config_error& e) {
    if (e.field().starts_with(head)) throw;
    const std::string what = e.what();
    throw config_error(head + ::rebound::detail::env_suffix(e.field()),
                       what.substr(std::min(what.size(), e.field().size() + 2)));
  }
}

options apply_env(options base, std::string_view prefix) {
  return apply_env(std::move(base), prefix,
                   ::rebound::detail::environment_under(std::string(prefix) + "_"));
}

}  // namespace rebound::redis
