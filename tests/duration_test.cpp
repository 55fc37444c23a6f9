#include "rebound/duration.hpp"

#include <gtest/gtest.h>

namespace {

using namespace std::chrono_literals;
using rebound::format_duration;
using rebound::parse_duration;

TEST(DurationTest, ParsesEveryUnit) {
  EXPECT_EQ(parse_duration("250ms"), 250ms);
  EXPECT_EQ(parse_duration("2s"), 2s);
  EXPECT_EQ(parse_duration("1.5m"), 90s);
  EXPECT_EQ(parse_duration("1h"), 1h);
  EXPECT_EQ(parse_duration("10us"), 10us);
  EXPECT_EQ(parse_duration("7ns"), 7ns);
  EXPECT_EQ(parse_duration("0.25s"), 250ms);
  EXPECT_EQ(parse_duration("0"), 0s);
  EXPECT_EQ(parse_duration("0ms"), 0s);
  EXPECT_EQ(parse_duration("87600h"), 87600h);
}

void expect_error(std::string_view text, std::string_view fragment) {
  try {
    (void)parse_duration(text);
    ADD_FAILURE() << "accepted " << text;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)
        << text << " -> " << e.what();
  }
}

TEST(DurationTest, RejectsBadInputWithAReason) {
  expect_error("", "empty");
  expect_error("-1s", "negative");
  expect_error("5", "no unit");
  expect_error("5 s", "unknown unit");
  expect_error("5sec", "unknown unit \"sec\"");
  expect_error("abc", "not a duration");
  expect_error("nan", "not a duration");
  expect_error("infs", "not a duration");
  expect_error("1e3s", "unknown unit");
  expect_error("87601h", "too large");
  expect_error("99999999999999999999999h", "too large");
  expect_error(".s", "not a duration");
}

TEST(DurationTest, FormatsShortly) {
  EXPECT_EQ(format_duration(0s), "0s");
  EXPECT_EQ(format_duration(500ns), "500ns");
  EXPECT_EQ(format_duration(850us), "850us");
  EXPECT_EQ(format_duration(250ms), "250ms");
  EXPECT_EQ(format_duration(1300ms), "1.3s");
  EXPECT_EQ(format_duration(2s), "2s");
  EXPECT_EQ(format_duration(125s), "2m5s");
  EXPECT_EQ(format_duration(62min), "1h2m");
  EXPECT_EQ(format_duration(999999us), "1s");
  EXPECT_EQ(format_duration(960ms), "960ms");
  EXPECT_EQ(format_duration(1250us), "1.3ms");  // half away from zero
}

}  // namespace
