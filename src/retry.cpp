// The blocking loop's attempt timer (rebound/retry.hpp).
#include "rebound/retry.hpp"

namespace rebound::detail {

attempt_timer::attempt_timer(const retry_call& call) : clock_(call.time_source()) {
  if (call.stop_token().stop_possible()) link_.emplace(call.stop_token(), forward{&source_});
  token_ = source_.get_token();
  const time_point until = call.attempt_deadline();
  if (until == time_point::max()) return;
  if (until <= call.now()) {
    fired_.store(true, std::memory_order_release);
    source_.request_stop();
    return;
  }
  id_ = clock_.call_at(until, [this] {
    fired_.store(true, std::memory_order_release);
    source_.request_stop();
  });
}

void attempt_timer::disarm() noexcept {
  if (id_ != 0) {
    clock_.cancel_call(id_);  // waits for a callback already running
    id_ = 0;
  }
}

}  // namespace rebound::detail
