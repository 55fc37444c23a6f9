// What the pg router reads from text: WAL positions and session tokens
// (which a service hands to its clients and gets back), and connection
// strings (redacted for every message and log).
#include <stdexcept>

#include "input.hpp"
#include "rebound/pg/router.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string s(rebound::fuzz::text(data, size));
  try {
    const auto l = rebound::pg::lsn::parse(s);
    if (rebound::pg::lsn::parse(l.to_string()) != l) __builtin_trap();  // round trip
  } catch (const std::invalid_argument&) {  // NOLINT(bugprone-empty-catch): refused, named
  }
  try {
    const auto t = rebound::pg::session_token::parse(s);
    const auto back = rebound::pg::session_token::parse(t.to_string());
    if (back.position() != t.position() || back.unknown() != t.unknown()) __builtin_trap();
  } catch (const std::invalid_argument&) {  // NOLINT(bugprone-empty-catch)
  }
  // A password set in the input never shows in the redacted forms, nor in
  // the error a string that does not parse raises (pg::error 42601). (Only
  // for key=value strings: appended to a URI it would be part of another
  // field, which is shown as written. First, so that no value of the input
  // can run on into it.)
  if (s.find("hunter2secret") != std::string::npos) return 0;  // the input's own text
  const bool uri = s.starts_with("postgres");
  const std::string conninfo = uri ? s : "password=hunter2secret " + s;
  if (rebound::pg::redact_conninfo(conninfo).find("hunter2secret") != std::string::npos) {
    __builtin_trap();
  }
  try {
    if (rebound::pg::describe_target(conninfo).find("hunter2secret") != std::string::npos) {
      __builtin_trap();
    }
    (void)rebound::pg::same_server(s, "host=127.0.0.1 port=5432 dbname=app");
  } catch (const rebound::pg::error& e) {
    if (e.sqlstate() != "42601") __builtin_trap();
    if (std::string_view(e.what()).find("hunter2secret") != std::string_view::npos)
      __builtin_trap();
  }
  return 0;
}
