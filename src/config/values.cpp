// Values as users write them (JSON, environment variables, flags), parsed and
// range-checked, with errors that name the field, the value and what is allowed.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "rebound/duration.hpp"
#include "schema.hpp"

namespace rebound {

config_error::config_error(std::string field, const std::string& problem)
    : std::invalid_argument(field + ": " + problem), field_(std::move(field)) {}

namespace detail {

std::map<std::string, std::string> environment_under(const std::string& head) {
  std::map<std::string, std::string> vars;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const auto eq = entry.find('=');
    if (eq == std::string_view::npos || !entry.starts_with(head)) continue;
    vars.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return vars;
}

json parse_document(std::string_view text, bool quote, const std::string& where) {
  const std::string doc_field = where.empty() ? "(document)" : where;
  // Keys seen in each open object, to refuse one given twice.
  std::vector<std::set<std::string>> open;
  std::vector<std::string> path;
  std::string duplicate;
  const json::parser_callback_t check = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        open.resize(static_cast<std::size_t>(depth) + 1);
        open[static_cast<std::size_t>(depth)].clear();
        break;
      case json::parse_event_t::key: {
        const auto d = static_cast<std::size_t>(depth) - 1;
        if (open.size() <= d) open.resize(d + 1);
        path.resize(d);
        const std::string key = parsed.get<std::string>();
        path.push_back(key);
        if (!open[d].insert(key).second && duplicate.empty()) {
          for (const auto& p : path) duplicate += (duplicate.empty() ? "" : ".") + p;
        }
        break;
      }
      default:
        break;
    }
    return true;
  };
  json doc;
  try {
    doc = json::parse(text, check);
  } catch (const json::out_of_range&) {
    // 406: a number past what a double holds (1e400).
    config_fail(doc_field, "a number is out of range (larger than any setting allows)");
  } catch (const json::exception& e) {
    config_fail(doc_field,
                quote ? std::string("not valid JSON: ") + e.what() : std::string("not valid JSON"));
  }
  if (!duplicate.empty()) {
    const std::string field = where.empty() ? duplicate : where + ": " + duplicate;
    config_fail(field, "given twice; each key may appear once (which one was meant?)");
  }
  if (!doc.is_object()) {
    config_fail(doc_field, "expected a JSON object, got " + (quote ? got(doc) : type_name(doc)));
  }
  return doc;
}

std::string read_config_file(const std::filesystem::path& file) {
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) {
    config_fail(file.string(),
                "is a directory; --config and settings_from_json_file take a JSON file");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) config_fail(file.string(), "cannot open the configuration file");
  // Bounded: a configuration is small, and a device or a pipe that never
  // ends (/dev/zero) must not take the process's memory.
  constexpr std::size_t limit = 1 << 20;
  std::string text(limit + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > limit) {
    config_fail(file.string(), "is larger than 1 MiB; a configuration file is a small JSON object");
  }
  return text;
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

std::string got(const json& v) { return v.is_null() ? "null" : type_name(v) + " " + v.dump(); }

std::string show(const value_ref& v) {
  return v.j != nullptr ? v.j->dump() : "\"" + std::string(v.text) + "\"";
}

std::string fmt_number(double x) {
  std::ostringstream o;
  o << x;
  return o.str();
}

duration duration_in(const value_ref& v, const std::string& field) {
  std::string_view text = v.text;
  if (v.j != nullptr) {
    if (!v.j->is_string()) {
      config_fail(field, "expected a duration string such as \"250ms\", \"2s\" or \"1.5m\", got " +
                             got(*v.j));
    }
    text = v.j->get_ref<const std::string&>();
  }
  try {
    return parse_duration(text);
  } catch (const std::invalid_argument& e) {
    config_fail(field, e.what());
  }
}

duration duration_in(const value_ref& v, const std::string& field, duration lo, duration hi) {
  const duration d = duration_in(v, field);
  if (d < lo || d > hi) {
    config_fail(field, format_duration(d) + " is out of range; allowed: " + format_duration(lo) +
                           ".." + format_duration(hi));
  }
  return d;
}

double number_in(const value_ref& v, const std::string& field, double lo, double hi, bool integer) {
  const std::string range = fmt_number(lo) + ".." + fmt_number(hi);
  double x = 0;
  if (v.j != nullptr) {
    if (!v.j->is_number() || (integer && v.j->is_number_float())) {
      config_fail(field, std::string("expected ") + (integer ? "an integer" : "a number") + " in " +
                             range + ", got " + got(*v.j));
    }
    x = v.j->get<double>();
  } else {
    const std::string_view t = v.text;
    const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), x);
    const bool whole = p == t.data() + t.size() && !t.empty();
    const bool all_digits =
        !t.empty() && std::all_of(t.begin() + (t.front() == '-' ? 1 : 0), t.end(),
                                  [](char c) { return c >= '0' && c <= '9'; });
    if (ec == std::errc::result_out_of_range && whole) {
      config_fail(field, show(v) + " is out of range; allowed: " + range);
    }
    if (ec != std::errc() || !whole ||
        (integer && (!all_digits || t.find_first_of(".eEnN") != std::string_view::npos))) {
      config_fail(field, show(v) + " is not " + (integer ? "an integer" : "a number") +
                             "; allowed: " + range);
    }
  }
  if (!std::isfinite(x)) config_fail(field, show(v) + " is not a finite number; allowed: " + range);
  if (x < lo || x > hi) config_fail(field, show(v) + " is out of range; allowed: " + range);
  return x;
}

std::string string_in(const value_ref& v, const std::string& field) {
  if (v.j == nullptr) return std::string(v.text);
  if (!v.j->is_string()) config_fail(field, "expected a string, got " + got(*v.j));
  return v.j->get<std::string>();
}

bool bool_in(const value_ref& v, const std::string& field) {
  if (v.j != nullptr) {
    if (!v.j->is_boolean()) config_fail(field, "expected true or false, got " + got(*v.j));
    return v.j->get<bool>();
  }
  const std::string_view t = v.text;
  if (t == "true" || t == "1" || t == "on" || t == "yes") return true;
  if (t == "false" || t == "0" || t == "off" || t == "no") return false;
  config_fail(field, show(v) + " is not a boolean; allowed: true, false, 1, 0, on, off, yes, no");
}

std::uint64_t unsigned_in(const value_ref& v, const std::string& field) {
  if (v.j != nullptr) {
    if (v.j->is_number_unsigned()) return v.j->get<std::uint64_t>();
    if (v.j->is_number_integer())
      config_fail(field, v.j->dump() + " is negative; allowed: 0..2^64-1");
    config_fail(field, "expected an integer in 0..2^64-1, got " + got(*v.j));
  }
  std::uint64_t n = 0;
  const std::string_view t = v.text;
  const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
  if (t.empty() || ec != std::errc() || p != t.data() + t.size()) {
    config_fail(field, show(v) + " is not an integer in 0..2^64-1");
  }
  return n;
}

std::string env_suffix(std::string_view path) {
  std::string s(path);
  for (char& c : s) {
    c = c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return s;
}

}  // namespace detail

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
    case jitter::kind::proportional:
      return "proportional:" + detail::fmt_number(j.factor());
    case jitter::kind::additive:
      return "additive:" + format_duration(j.amount());
  }
  return "unknown";
}

backoff::kind parse_backoff_kind(std::string_view text, const std::string& field) {
  return detail::pick<backoff::kind>(text, field, "a backoff type",
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
    if (colon != text.npos) {
      detail::config_fail(field, "\"" + std::string(text) + "\" takes no parameter" + allowed);
    }
    return j;
  };
  if (name == "none") return no_arg(jitter::none());
  if (name == "full") return no_arg(jitter::full());
  if (name == "equal") return no_arg(jitter::equal());
  if (name == "decorrelated") return no_arg(jitter::decorrelated());
  if (name == "proportional") {
    if (colon == text.npos) {
      detail::config_fail(field, "proportional needs a factor, e.g. proportional:0.2");
    }
    double f = 0;
    const auto [p, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), f);
    if (arg.empty() || ec != std::errc() || p != arg.data() + arg.size()) {
      detail::config_fail(field, "\"" + std::string(arg) + "\" is not a number");
    }
    if (!(f >= 0.0 && f <= 1.0)) {
      detail::config_fail(field,
                          "factor \"" + std::string(arg) + "\" is out of range; allowed: 0..1");
    }
    return jitter::proportional(f);
  }
  if (name == "additive") {
    if (colon == text.npos)
      detail::config_fail(field, "additive needs an amount, e.g. additive:100ms");
    return jitter::additive(detail::duration_in({nullptr, arg}, field));
  }
  detail::config_fail(field, "\"" + std::string(text) + "\" is not a jitter" + allowed);
}

}  // namespace rebound
