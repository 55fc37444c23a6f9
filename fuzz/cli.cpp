// The rebound command line, in its parse-only mode: every argument vector
// parses and checks (flags, settings, files, URLs, headers) and ends with an
// exit status; nothing runs, no process starts, no request is sent, and
// nothing reaches std::terminate. The input is the arguments, NUL-separated.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "../tools/cli/commands.hpp"
#include "input.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // An empty directory to work in: relative paths name nothing.
  const auto dir =
      std::filesystem::temp_directory_path() / ("rebound-fuzz-cli-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::current_path(dir);
  rebound::cli::set_dry_run(true);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto args = rebound::fuzz::split(rebound::fuzz::text(data, size), '\0');
  if (args.size() > 64) return 0;
  for (const auto& a : args) {
    // Devices and pseudo-files that block or never end are not the parser's to read.
    if (a.find("dev/") != std::string::npos || a.find("proc/") != std::string::npos ||
        a.find("sys/") != std::string::npos || a.find("fd/") != std::string::npos) {
      return 0;
    }
  }
  std::vector<char*> argv;
  std::string name = "rebound";
  argv.push_back(name.data());
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int status = rebound::cli::cli_main(static_cast<int>(argv.size() - 1), argv.data());
  if (status < 0 || status > 255) __builtin_trap();
  return 0;
}
