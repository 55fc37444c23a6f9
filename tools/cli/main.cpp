// The rebound command-line tool. See docs/cli.md.
//
// One top-level error path: whatever escapes a command (it should not: each
// maps its errors to its documented exit status) becomes a message and exit
// status 125, never std::terminate.
#include <cstdio>
#include <exception>
#include <new>

#include "commands.hpp"
#include "common.hpp"

int main(int argc, char** argv) {
  try {
    return rebound::cli::cli_main(argc, argv);
  } catch (const std::bad_alloc&) {
    std::fputs("rebound: out of memory\n", stderr);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rebound: internal error: %s\n", e.what());
  } catch (...) {
    std::fputs("rebound: internal error\n", stderr);
  }
  return rebound::cli::exit_code::internal;
}
