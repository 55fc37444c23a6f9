#include "rebound/log_observer.hpp"

#include <spdlog/spdlog.h>

#include "rebound/duration.hpp"

namespace rebound {

log_observer::log_observer(std::string name, std::shared_ptr<spdlog::logger> logger)
    : name_(std::move(name)), logger_(logger ? std::move(logger) : spdlog::default_logger()) {}

namespace {
std::string of_max(const event& e) {
  return e.max_attempts ? "/" + std::to_string(*e.max_attempts) : std::string();
}
}  // namespace

void log_observer::on_event(const event& e) noexcept {
  try {
    switch (e.kind) {
      case event_kind::attempt_started:
        logger_->trace("{}: attempt {}{} starting", name_, e.attempt, of_max(e));
        break;
      case event_kind::attempt_failed:
        logger_->debug("{}: attempt {}{} failed ({}: {})", name_, e.attempt, of_max(e),
                       to_string(e.verdict.kind), e.cause);
        break;
      case event_kind::retry_scheduled:
        logger_->warn("{}: attempt {}{} failed ({}); retrying in {}", name_, e.attempt - 1,
                      of_max(e), e.cause, format_duration(e.delay));
        break;
      case event_kind::gave_up:
        logger_->error("{}: gave up after {} attempt(s) in {} ({}): {}", name_, e.attempt,
                       format_duration(e.elapsed), to_string(e.reason), e.cause);
        break;
      case event_kind::succeeded:
        if (e.attempt > 1) {
          logger_->info("{}: succeeded on attempt {} after {}", name_, e.attempt,
                        format_duration(e.elapsed));
        } else {
          logger_->trace("{}: succeeded on the first attempt", name_);
        }
        break;
      case event_kind::budget_rejected:
        logger_->warn("{}: retry budget exhausted; not retrying attempt {}", name_, e.attempt);
        break;
      case event_kind::server_delay_ignored:
        logger_->warn("{}: ignored a malformed server delay \"{}\" on attempt {}", name_, e.cause,
                      e.attempt);
        break;
      case event_kind::hedged:
        logger_->debug("{}: attempt {} is slow; hedging with attempt {}", name_, e.attempt - 1,
                       e.attempt);
        break;
      case event_kind::deferred:
        logger_->debug("{}: nested retry loop handed attempt {} to the enclosing loop", name_,
                       e.attempt);
        break;
      case event_kind::hedge_won:
        logger_->debug("{}: hedged attempt {} won", name_, e.attempt);
        break;
      case event_kind::attempt_cancelled:
        logger_->debug("{}: attempt {} cancelled: another attempt won", name_, e.attempt);
        break;
    }
  } catch (...) {
    // Logging must never change the outcome of the call.
  }
}

}  // namespace rebound
