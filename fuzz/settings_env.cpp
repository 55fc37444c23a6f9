// Settings from environment variables, for every schema: the input is lines
// of NAME=VALUE under the prefix APP; any of them gives settings or a
// config_error naming a variable.
#include "input.hpp"
#include "rebound/config.hpp"
#include "rebound/limits.hpp"
#include "rebound/pg/options.hpp"
#include "rebound/redis/client.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::map<std::string, std::string> vars;
  for (const auto& line : rebound::fuzz::split(rebound::fuzz::text(data, size), '\n')) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    vars["APP_" + line.substr(0, eq)] = line.substr(eq + 1);
  }
  const auto named = [](const rebound::config_error& e) {
    if (e.field().empty()) __builtin_trap();
  };
  try {
    (void)rebound::apply_env({}, "APP", vars).to_policy();
  } catch (const rebound::config_error& e) {
    named(e);
  }
  try {
    (void)rebound::apply_breaker_env({}, "APP", vars);
  } catch (const rebound::config_error& e) {
    named(e);
  }
  try {
    (void)rebound::apply_limiter_env(rebound::limiter_options::aimd(), "APP", vars);
  } catch (const rebound::config_error& e) {
    named(e);
  }
  try {
    (void)rebound::apply_bulkhead_env({}, "APP", vars);
  } catch (const rebound::config_error& e) {
    named(e);
  }
  try {
    (void)rebound::apply_rate_limiter_env({}, "APP", vars);
  } catch (const rebound::config_error& e) {
    named(e);
  }
  try {
    (void)rebound::apply_admission_env({}, "APP", vars);
  } catch (const rebound::config_error& e) {
    named(e);
  }
  try {
    (void)rebound::pg::apply_router_env({}, "APP", vars);
  } catch (const rebound::config_error& e) {
    named(e);
  }
  try {
    (void)rebound::redis::apply_env({}, "APP", vars);
  } catch (const rebound::config_error& e) {
    named(e);
  }
  return 0;
}
