// A policy file as `rebound simulate --policy` reads it, run by the call
// engine on simulated time (as `policy show` and the simulator run it):
// whatever the document, the engine ends or keeps going with waits that are
// never negative.
#include "input.hpp"
#include "rebound/call.hpp"
#include "rebound/config.hpp"
#include "rebound/sim/engine.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  rebound::policy_settings s;
  try {
    s = rebound::settings_from_json(rebound::fuzz::text(data, size));
  } catch (const rebound::config_error&) {
    return 0;
  }
  rebound::sim::engine clock(7);
  const auto p = s.to_policy(clock);
  for (int sample = 0; sample < 3; ++sample) {
    rebound::retry_call call(p, {.seed = static_cast<std::uint64_t>(sample)},
                             {.nested = 0, .concurrent = true});
    auto step = call.start();
    for (int n = 0; n < 50 && step.attempt(); ++n) {
      const auto v = n % 7 == 3 ? rebound::verdict::transient_after(std::chrono::seconds(n))
                                : rebound::verdict::transient();
      step = call.failed(v, {.timed_out = n % 5 == 4});
      if (!step.wait()) break;
      if (step.delay < rebound::duration::zero() || step.until < clock.now()) __builtin_trap();
      clock.run_until(step.until);
      step = call.resume(true);
    }
    if (call.reason() != rebound::stop_reason::succeeded) (void)call.give_up_error(nullptr);
  }
  return 0;
}
