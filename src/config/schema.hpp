// The settings schema machinery shared by every option parser (core policy,
// breaker, pg router, Redis link). Not API.
//
// A schema is one table of settings. Each names its path ("backoff.initial":
// {"backoff": {"initial": ...}} in JSON, PREFIX_BACKOFF_INITIAL in the
// environment), its CLI flag if it has one, its parser (which also checks the
// value's range), and when it does not apply. JSON documents, environment
// variables and flags are all read through the table, and every error names
// what the user wrote: the JSON path (with the file), the variable, or the
// flag.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rebound/config.hpp"

extern char** environ;  // POSIX

namespace rebound::detail {

using json = nlohmann::json;

[[noreturn]] inline void config_fail(const std::string& field, const std::string& problem) {
  throw config_error(field, problem);
}

/// The process environment's variables whose names start with `head`.
std::map<std::string, std::string> environment_under(const std::string& head);

/// A JSON document that must be an object. Refuses what JSON allows but a
/// configuration must not: a key given twice (the last would silently win)
/// and numbers past a double's range. `quote` false keeps the parser's
/// message (which quotes the document) out of errors, for documents that
/// may hold a secret. Errors name "(document)", or `where` when given.
json parse_document(std::string_view text, bool quote = true, const std::string& where = "");
/// The text of a file, or a config_error naming it.
std::string read_config_file(const std::filesystem::path& file);

// ---- values --------------------------------------------------------------

/// A value as the user wrote it: in a JSON document, or as text (an
/// environment variable, a flag).
struct value_ref {
  const json* j = nullptr;
  std::string_view text{};
};
/// How a value looks in a message: its JSON form, or the quoted text.
std::string show(const value_ref& v);
/// "a string \"5\"", "an array [1,2]", "null".
std::string got(const json& v);
std::string type_name(const json& v);
std::string fmt_number(double x);

duration duration_in(const value_ref& v, const std::string& field);
/// A duration in [lo, hi].
duration duration_in(const value_ref& v, const std::string& field, duration lo, duration hi);
double number_in(const value_ref& v, const std::string& field, double lo, double hi, bool integer);
std::string string_in(const value_ref& v, const std::string& field);
bool bool_in(const value_ref& v, const std::string& field);
std::uint64_t unsigned_in(const value_ref& v, const std::string& field);

/// One of a fixed set of names, or an error listing them.
template <class E>
E pick(std::string_view text, const std::string& field, const char* what,
       std::initializer_list<std::pair<const char*, E>> names) {
  std::string allowed;
  for (const auto& [name, value] : names) {
    if (text == name) return value;
    allowed += allowed.empty() ? name : std::string(", ") + name;
  }
  config_fail(field, "\"" + std::string(text) + "\" is not " + what + "; allowed: " + allowed);
}

// ---- schemas ---------------------------------------------------------------

/// One setting of a schema over T.
template <class T>
struct setting {
  std::string_view path;  ///< "backoff.initial"
  std::string_view flag;  ///< "--initial", or empty
  /// Parses `v` into `t`; errors name `field` (what the user wrote).
  void (*set)(T& t, const value_ref& v, const std::string& field);
  /// Why the setting does not apply to `t` ("not used by a constant
  /// backoff"), or empty when it does. Null: it always applies.
  std::string (*unused)(const T& t) = nullptr;
  /// The value is a secret: never shown, not even its JSON type's contents.
  bool secret = false;
  /// For --help and the documentation: what it sets, and the value's form.
  std::string_view help{};
  std::string_view value_name{};
};

/// "BACKOFF_INITIAL" for "backoff.initial".
std::string env_suffix(std::string_view path);

/// Reads settings of one schema from any number of inputs, in order, and
/// remembers which input set each one, so that errors found later (a value
/// that does not fit with another, a setting its type does not use) name
/// that input.
template <class T>
class settings_reader {
 public:
  settings_reader(std::span<const setting<T>> schema, T base)
      : schema_(schema), value_(std::move(base)) {}

  /// A JSON object. `source` prefixes every origin ("retry.json: "), and
  /// `path_prefix` the paths the document's keys stand for ("replica_retry.").
  void json_object(const json& doc, const std::string& source = "",
                   const std::string& path_prefix = "") {
    for (const auto& [key, v] : doc.items()) {
      // An empty key is named as written, "" (found by fuzzing: it named nothing).
      const std::string origin = source + path_prefix + (key.empty() ? "\"\"" : key);
      if (const auto* s = find(key)) {
        apply(*s, {&v, {}}, origin);
      } else if (is_group(key)) {
        if (!v.is_object()) {
          config_fail(origin, "expected an object with the keys " + keys_in(key + ".") + ", got " +
                                  type_name(v));
        }
        for (const auto& [sub, sv] : v.items()) {
          const std::string path = key + "." + sub;
          const auto* s2 = find(path);
          const std::string sub_origin = origin + "." + (sub.empty() ? "\"\"" : sub);
          if (s2 == nullptr) {
            config_fail(sub_origin, "unknown key; allowed: " + keys_in(key + "."));
          }
          apply(*s2, {&sv, {}}, sub_origin);
        }
      } else {
        config_fail(origin, "unknown key; allowed: " + keys_in(""));
      }
    }
  }

  /// Environment variables: `head` + env_suffix(path) for each setting
  /// ("APP_RETRY_" + "BACKOFF_INITIAL"). Names under `head` that name no
  /// setting are errors listing those that do.
  void environment(const std::string& head, const std::map<std::string, std::string>& vars) {
    for (const auto& [name, text] : vars) {
      if (!name.starts_with(head)) continue;
      const std::string suffix = name.substr(head.size());
      const setting<T>* found = nullptr;
      for (const auto& s : schema_) {
        if (env_suffix(s.path) == suffix) found = &s;
      }
      if (found == nullptr) {
        std::string allowed;
        for (const auto& s : schema_) allowed += (allowed.empty() ? "" : ", ") + env_suffix(s.path);
        config_fail(name, "unknown setting; allowed: " + head + "{" + allowed + "}");
      }
      apply(*found, {nullptr, text}, name);
    }
  }

  /// One setting as text, named by `origin` (a flag such as "--initial").
  void text(std::string_view path, std::string_view text, const std::string& origin) {
    const auto* s = find(path);
    if (s == nullptr) config_fail(origin, "no such setting");
    apply(*s, {nullptr, text}, origin);
  }

  /// Checks that every setting given applies, then `validate(value)`; an
  /// error a check raises about a path is renamed to the input that set it.
  template <class Validate>
  T finish(Validate validate) {
    for (const auto& [path, origin] : origins_) {
      const auto* s = find(path);
      if (s != nullptr && s->unused != nullptr) {
        if (const std::string why = s->unused(value_); !why.empty()) config_fail(origin, why);
      }
    }
    try {
      validate(value_);
    } catch (const config_error& e) {
      throw renamed(e);
    }
    return value_;
  }

  /// The input that set `path` ("--max-delay", "APP_BACKOFF_MAX",
  /// "retry.json: backoff.max"), or empty.
  [[nodiscard]] std::string origin_of(std::string_view path) const {
    const auto it = origins_.find(std::string(path));
    return it != origins_.end() ? it->second : std::string();
  }
  /// `e` with its field named as the user wrote it, when an input set it.
  [[nodiscard]] config_error renamed(const config_error& e) const {
    const std::string& field = e.field();
    const auto bracket = field.find('[');
    const std::string base = field.substr(0, bracket);
    const std::string origin = origin_of(base);
    if (origin.empty()) return e;
    const std::string what = e.what();
    const std::string problem =
        what.starts_with(field + ": ") ? what.substr(field.size() + 2) : what;
    return config_error(origin + (bracket == std::string::npos ? "" : field.substr(bracket)),
                        problem);
  }
  [[nodiscard]] T& value() noexcept { return value_; }

 private:
  const setting<T>* find(std::string_view path) const {
    for (const auto& s : schema_) {
      if (s.path == path) return &s;
    }
    return nullptr;
  }
  bool is_group(const std::string& key) const {
    for (const auto& s : schema_) {
      if (s.path.starts_with(key + ".")) return true;
    }
    return false;
  }
  // The keys of the settings under `group` ("" for the top level, "backoff."), groups once.
  std::string keys_in(const std::string& group) const {
    std::vector<std::string> keys;
    for (const auto& s : schema_) {
      if (!s.path.starts_with(group)) continue;
      std::string rest(s.path.substr(group.size()));
      rest = rest.substr(0, rest.find('.'));
      if (std::find(keys.begin(), keys.end(), rest) == keys.end()) keys.push_back(rest);
    }
    std::string out;
    for (const auto& k : keys) out += (out.empty() ? "" : ", ") + k;
    return out;
  }
  void apply(const setting<T>& s, const value_ref& v, const std::string& origin) {
    s.set(value_, v, origin);
    origins_[std::string(s.path)] = origin;
  }

  std::span<const setting<T>> schema_;
  T value_;
  std::map<std::string, std::string> origins_;
};

/// The core policy schema, and the breaker's.
std::span<const setting<policy_settings>> policy_schema();
std::span<const setting<breaker_options>> breaker_schema();

/// Reads a policy's settings from a JSON object into `r` (the policy
/// schema, plus the checks a policy document makes).
void read_policy_json(settings_reader<policy_settings>& r, const json& doc,
                      const std::string& source, const std::string& path_prefix);

}  // namespace rebound::detail
