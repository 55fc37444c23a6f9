#include "rebound/log_observer.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>

#include "rebound/retry.hpp"
#include "rebound/testing/simulated_clock.hpp"

namespace {

using namespace std::chrono_literals;

TEST(LogObserverTest, LogsRetriesAndTheGiveUp) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  auto logger = std::make_shared<spdlog::logger>("test", sink);
  logger->set_pattern("%l %v");
  logger->set_level(spdlog::level::info);
  rebound::testing::simulated_clock clock;
  const auto p = rebound::retry_policy{}
                     .stop(rebound::stop::after_attempts(2))
                     .backoff(rebound::backoff::constant(1300ms))
                     .jitter(rebound::jitter::none())
                     .clock(clock)
                     .observer(std::make_shared<rebound::log_observer>("get_run", logger));
  EXPECT_THROW(rebound::retry(p, [] { throw std::runtime_error("not found"); }),
               std::runtime_error);
  const std::string text = out.str();
  EXPECT_NE(text.find("warning get_run: attempt 1/2 failed (not found); retrying in 1.3s"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("error get_run: gave up after 2 attempt(s) in 1.3s (attempts_exhausted): "
                      "not found"),
            std::string::npos)
      << text;
}

}  // namespace
