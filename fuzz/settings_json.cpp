// Settings documents from JSON, for every schema (core policy, breaker, pg
// router, Redis link): any bytes give settings or a config_error naming a
// field; settings that were accepted build their policy.
#include "input.hpp"
#include "rebound/config.hpp"
#include "rebound/pg/options.hpp"
#include "rebound/redis/client.hpp"
#include "rebound/sim/engine.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto s = rebound::fuzz::text(data, size);
  try {
    const auto settings = rebound::settings_from_json(s);
    rebound::sim::engine clock(1);
    (void)settings.to_policy(clock);
  } catch (const rebound::config_error& e) {
    if (e.field().empty()) __builtin_trap();  // every error names a field
  }
  try {
    (void)rebound::breaker_from_json(s);
  } catch (const rebound::config_error&) {  // NOLINT(bugprone-empty-catch)
  }
  try {
    const auto o = rebound::pg::router_options_from_json(s);
    rebound::sim::engine clock(1);
    (void)o.replica_retry.to_policy(clock);
    (void)o.lsn_wait.to_policy(clock);
  } catch (const rebound::config_error&) {  // NOLINT(bugprone-empty-catch)
  }
  try {
    (void)rebound::redis::options_from_json(s);
  } catch (const rebound::config_error& e) {
    // A Redis document may hold a password: no error may quote the document.
    if (std::string_view(e.what()).find("\"password\"") != std::string_view::npos) __builtin_trap();
  }
  return 0;
}
