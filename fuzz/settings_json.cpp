// Settings documents from JSON, for every schema (core policy, breaker,
// concurrency limits, pg router, Redis link): any bytes give settings or a
// config_error naming a field; settings that were accepted build their
// policy, or their limiter and take a few permits.
#include "input.hpp"
#include "rebound/config.hpp"
#include "rebound/limits.hpp"
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
  const auto named = [](const rebound::config_error& e) {
    if (e.field().empty()) __builtin_trap();
  };
  try {
    rebound::sim::engine clock(1);
    rebound::concurrency_limiter l(rebound::limiter_from_json(s), clock);
    for (int i = 0; i < 4; ++i) {
      const auto p = l.try_acquire(i % 3 - 1);
      clock.run_until(clock.now() + std::chrono::milliseconds(1 + i));
      if (i % 2 == 0) {
        l.on_success(p);
      } else {
        l.on_dropped(p);
      }
    }
    if (l.limit() < 1) __builtin_trap();
  } catch (const rebound::config_error& e) {
    named(e);
  }
  try {
    rebound::sim::engine clock(1);
    rebound::bulkhead b(rebound::bulkhead_from_json(s), clock);
    rebound::rate_limiter r(rebound::rate_limiter_from_json(s), clock);
    rebound::admission_control a(rebound::admission_from_json(s), clock);
    (void)b.try_acquire();
    (void)r.reserve(std::chrono::seconds(1));
    a.record(false);
    (void)a.admit(0.5);
  } catch (const rebound::config_error& e) {
    named(e);
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
