// rebound/log_observer.hpp: an observer that logs retries through spdlog.
// Link rebound::log (built when spdlog is found).
//
//   auto p = policy.observer(std::make_shared<rebound::log_observer>("get_run"));
//   // [warning] get_run: attempt 2/5 failed (transient: not found); retrying in 1.3s
//
// Levels: a retry is a warning, a give-up an error, a success after retries
// info, attempts starting and first-try successes trace.
#pragma once

#include <memory>
#include <string>

#include "rebound/events.hpp"

namespace spdlog {
class logger;
}

namespace rebound {

class log_observer final : public observer {
 public:
  /// Logs to `logger` (spdlog's default logger when null), naming the call `name`.
  explicit log_observer(std::string name, std::shared_ptr<spdlog::logger> logger = nullptr);
  void on_event(const event& e) noexcept override;

 private:
  std::string name_;
  std::shared_ptr<spdlog::logger> logger_;
};

}  // namespace rebound
