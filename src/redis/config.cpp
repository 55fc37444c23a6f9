// redis::options from JSON and environment variables, strictly validated.
#include <nlohmann/json.hpp>

#include <charconv>
#include <string>

#include "../detail/config_text.hpp"
#include "rebound/config.hpp"
#include "rebound/duration.hpp"
#include "rebound/redis/client.hpp"

namespace rebound::redis {
namespace {

using json = nlohmann::json;

using ::rebound::detail::config_fail;
[[noreturn]] void fail(const std::string& field, const std::string& problem) {
  config_fail(field, problem);
}

void check_range(duration d, const std::string& field, duration lo, duration hi) {
  if (d < lo || d > hi) {
    fail(field, format_duration(d) + " is out of range; allowed: " + format_duration(lo) + ".." +
                    format_duration(hi));
  }
}

duration text_duration(std::string_view text, const std::string& field) {
  return ::rebound::detail::config_duration(text, field);
}

long long text_integer(std::string_view text, const std::string& field, long long lo,
                       long long hi) {
  long long v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || v < lo || v > hi) {
    fail(field, "\"" + std::string(text) + "\" is not an integer in " + std::to_string(lo) + ".." +
                    std::to_string(hi));
  }
  return v;
}

fallback_mode text_fallback(std::string_view text, const std::string& field) {
  if (text == "local") return fallback_mode::local;
  if (text == "open") return fallback_mode::open;
  if (text == "closed") return fallback_mode::closed;
  fail(field, "\"" + std::string(text) + "\" is not a fallback; allowed: local, open, closed");
}

using namespace std::chrono_literals;

// name (JSON key; upper case for the environment) -> setter
struct field {
  const char* name;
  enum class type { text, secret, integer, dur, fallback } kind;
  std::string options::*text = nullptr;
  int options::*integer = nullptr;
  duration options::*dur = nullptr;
  long long lo = 0;
  long long hi = 0;
};

const field fields[] = {
    {"host", field::type::text, &options::host},
    {"port", field::type::integer, nullptr, &options::port, nullptr, 1, 65535},
    {"username", field::type::text, &options::username},
    {"password", field::type::secret, &options::password},
    {"key_prefix", field::type::text, &options::key_prefix},
    {"connect_timeout", field::type::dur, nullptr, nullptr, &options::connect_timeout},
    {"command_timeout", field::type::dur, nullptr, nullptr, &options::command_timeout},
    {"reconnect_min", field::type::dur, nullptr, nullptr, &options::reconnect_min},
    {"reconnect_max", field::type::dur, nullptr, nullptr, &options::reconnect_max},
    {"flush_interval", field::type::dur, nullptr, nullptr, &options::flush_interval},
    {"max_batch", field::type::integer, nullptr, &options::max_batch, nullptr, 1, 1000000},
    {"lease_size", field::type::integer, nullptr, &options::lease_size, nullptr, 1, 10000},
    {"lease_ttl", field::type::dur, nullptr, nullptr, &options::lease_ttl},
    {"poll_interval", field::type::dur, nullptr, nullptr, &options::poll_interval},
    {"fallback", field::type::fallback},
};

std::string allowed_keys(const std::string& head, bool upper) {
  std::string out;
  for (const auto& f : fields) {
    std::string n = f.name;
    if (upper) {
      for (auto& ch : n) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    }
    out += (out.empty() ? "" : ", ") + head + n;
  }
  return out;
}

// Sets one field from text (the environment) or JSON.
void set(options& o, const field& f, const json* j, std::string_view text,
         const std::string& name) {
  switch (f.kind) {
    case field::type::text:
    case field::type::secret:
      if (j != nullptr && !j->is_string()) {
        fail(name, f.kind == field::type::secret ? "expected a string"
                                                 : "expected a string, got " + j->dump());
      }
      o.*f.text = j != nullptr ? j->get<std::string>() : std::string(text);
      break;
    case field::type::integer:
      if (j != nullptr) {
        if (!j->is_number_integer()) fail(name, "expected an integer, got " + j->dump());
        o.*f.integer =
            static_cast<int>(text_integer(std::to_string(j->get<long long>()), name, f.lo, f.hi));
      } else {
        o.*f.integer = static_cast<int>(text_integer(text, name, f.lo, f.hi));
      }
      break;
    case field::type::dur:
      if (j != nullptr && !j->is_string()) {
        fail(name, "expected a duration string such as \"20ms\", got " + j->dump());
      }
      o.*f.dur = text_duration(j != nullptr ? j->get<std::string>() : std::string(text), name);
      break;
    case field::type::fallback:
      if (j != nullptr && !j->is_string())
        fail(name, "expected local, open or closed, got " + j->dump());
      o.fallback = text_fallback(j != nullptr ? j->get<std::string>() : std::string(text), name);
      break;
  }
}

}  // namespace

void options::validate() const {
  if (host.empty()) fail("host", "empty; a host name or address is required");
  if (port < 1 || port > 65535)
    fail("port", std::to_string(port) + " is out of range; allowed: 1..65535");
  if (key_prefix.empty()) fail("key_prefix", "empty; keys need a prefix of their own");
  check_range(connect_timeout, "connect_timeout", 1ms, 60s);
  check_range(command_timeout, "command_timeout", 1ms, 60s);
  check_range(reconnect_min, "reconnect_min", 1ms, 1h);
  check_range(reconnect_max, "reconnect_max", reconnect_min, 1h);
  check_range(flush_interval, "flush_interval", 1ms, 60s);
  if (max_batch < 1 || max_batch > 1000000) {
    fail("max_batch", std::to_string(max_batch) + " is out of range; allowed: 1..1000000");
  }
  if (lease_size < 1 || lease_size > 10000) {
    fail("lease_size", std::to_string(lease_size) + " is out of range; allowed: 1..10000");
  }
  check_range(lease_ttl, "lease_ttl", 1ms, 1h);
  check_range(poll_interval, "poll_interval", 1ms, 60s);
}

options options_from_json(std::string_view text, options o) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error&) {
    // nlohmann's message quotes the document, which may hold the password.
    fail("(document)", "not valid JSON");
  }
  if (!doc.is_object()) fail("(document)", "expected a JSON object");
  for (const auto& [key, v] : doc.items()) {
    const field* f = nullptr;
    for (const auto& candidate : fields) {
      if (key == candidate.name) f = &candidate;
    }
    if (f == nullptr) fail(key, "unknown key; allowed: " + allowed_keys("", false));
    set(o, *f, &v, {}, key);
  }
  o.validate();
  return o;
}

options apply_env(options o, std::string_view prefix,
                  const std::map<std::string, std::string>& vars) {
  const std::string head = std::string(prefix) + "_";
  for (const auto& [name, value] : vars) {
    if (!name.starts_with(head)) continue;
    const field* f = nullptr;
    for (const auto& candidate : fields) {
      std::string upper = candidate.name;
      for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      if (name == head + upper) f = &candidate;
    }
    if (f == nullptr) fail(name, "names no Redis option; allowed: " + allowed_keys(head, true));
    set(o, *f, nullptr, value, name);
  }
  try {
    o.validate();
  } catch (const config_error& e) {
    std::string upper = e.field();
    for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    const std::string what = e.what();
    throw config_error(head + upper, what.substr(std::min(what.size(), e.field().size() + 2)));
  }
  return o;
}

options apply_env(options base, std::string_view prefix) {
  return apply_env(std::move(base), prefix,
                   ::rebound::detail::environment_under(std::string(prefix) + "_"));
}

}  // namespace rebound::redis
