// The rebound executable, run for real against small shell scripts.
// Back-offs here are milliseconds of real time: the tool is a separate
// process, so this is the process boundary where real waiting is allowed.
// Every child process is bounded by a watchdog.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

struct outcome {
  int status = -1;  // exit status, or 128 + signal
  std::string out;
  std::string err;
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int count_lines(const fs::path& p) {
  std::ifstream in(p);
  int n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

// Waits for `pid` with a bound; kills it (and fails the test) past the bound.
int wait_bounded(pid_t pid, int limit_ms) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  pollfd p{pidfd, POLLIN, 0};
  if (::poll(&p, 1, limit_ms) == 0) {
    ADD_FAILURE() << "the rebound process did not end within " << limit_ms << " ms";
    ::kill(pid, SIGKILL);
  }
  ::close(pidfd);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("rebound_cli_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    state_ = dir_ / "runs";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string script(const char* name) const {
    return std::string(REBOUND_CLI_SCRIPTS) + "/" + name;
  }

  pid_t spawn(const std::vector<std::string>& args) {
    const auto out = dir_ / "stdout";
    const auto err = dir_ / "stderr";
    const pid_t pid = ::fork();
    if (pid == 0) {
      const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(o, 1);
      ::dup2(e, 2);
      std::vector<char*> argv;
      static std::string exe = REBOUND_EXE;
      argv.push_back(exe.data());
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(exe.c_str(), argv.data());
      ::_exit(99);
    }
    return pid;
  }

  outcome collect(pid_t pid, int limit_ms = 30'000) {
    outcome r;
    r.status = wait_bounded(pid, limit_ms);
    r.out = read_file(dir_ / "stdout");
    r.err = read_file(dir_ / "stderr");
    return r;
  }

  outcome run(const std::vector<std::string>& args, int limit_ms = 30'000) {
    return collect(spawn(args), limit_ms);
  }

  // Waits (bounded) until the tool's stderr contains `text`.
  bool wait_for_stderr(const std::string& text, int limit_ms = 10'000) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(limit_ms);
    while (std::chrono::steady_clock::now() < until) {
      if (read_file(dir_ / "stderr").find(text) != std::string::npos) return true;
      ::poll(nullptr, 0, 5);  // a real 5 ms pause between looks at another process's output
    }
    return false;
  }

  fs::path dir_;
  fs::path state_;
};

TEST_F(CliTest, FlakyCommandSucceedsOnTheThirdAttempt) {
  const auto r = run({"run", "--attempts", "5", "--initial", "10ms", "--jitter", "none", "--",
                      script("flaky.sh"), state_, "2"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(count_lines(state_), 3);
  EXPECT_NE(r.err.find("attempt 1/5 failed: exit 1; retrying in 10ms\n"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("attempt 2/5 failed: exit 1; retrying in 20ms\n"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("attempt 3/5 succeeded"), std::string::npos) << r.err;
}

TEST_F(CliTest, ExhaustionExitsWithTheLastStatus) {
  const auto r =
      run({"run", "--attempts", "3", "--initial", "1ms", "--", script("fail.sh"), state_, "3"});
  EXPECT_EQ(r.status, 3);
  EXPECT_EQ(count_lines(state_), 3);
  EXPECT_NE(r.err.find("attempt 3/3 failed: exit 3; giving up (attempts_exhausted)"),
            std::string::npos)
      << r.err;
}

TEST_F(CliTest, NoRetryOnExitStopsAtOnce) {
  const auto r = run({"run", "--attempts", "5", "--initial", "1ms", "--no-retry-on-exit", "3,4",
                      "--", script("fail.sh"), state_, "3"});
  EXPECT_EQ(r.status, 3);
  EXPECT_EQ(count_lines(state_), 1);
  EXPECT_NE(r.err.find("giving up (permanent_error)"), std::string::npos) << r.err;
}

TEST_F(CliTest, RetryOnExitRetriesOnlyTheListed) {
  auto r = run({"run", "--attempts", "5", "--initial", "1ms", "--retry-on-exit", "1,75", "--",
                script("fail.sh"), state_, "3"});
  EXPECT_EQ(r.status, 3);
  EXPECT_EQ(count_lines(state_), 1);
  fs::remove(state_);
  r = run({"run", "--attempts", "2", "--initial", "1ms", "--retry-on-exit", "1,75", "--",
           script("fail.sh"), state_, "75"});
  EXPECT_EQ(r.status, 75);
  EXPECT_EQ(count_lines(state_), 2);
}

TEST_F(CliTest, PerAttemptTimeoutKillsAndRetries) {
  const auto r = run({"run", "--attempts", "2", "--initial", "1ms", "--timeout", "200ms", "--",
                      script("hang.sh"), state_});
  EXPECT_EQ(r.status, 124);
  EXPECT_EQ(count_lines(state_), 2);
  EXPECT_NE(r.err.find("attempt 1/2 failed: timed out after 200ms; retrying in"), std::string::npos)
      << r.err;
}

TEST_F(CliTest, AChildIgnoringSigtermIsKilled) {
  const auto r = run({"run", "--attempts", "1", "--timeout", "100ms", "--kill-after", "100ms", "--",
                      script("ignore_term.sh"), state_},
                     10'000);
  EXPECT_EQ(r.status, 124);
  EXPECT_EQ(count_lines(state_), 1);
}

// True when `pid` is gone or a zombie waiting for a parent that is not us.
bool process_ended(const std::string& pid) {
  const std::string stat = read_file("/proc/" + pid + "/stat");
  if (stat.empty()) return true;
  const auto close = stat.rfind(')');
  return close != std::string::npos && stat.size() > close + 2 && stat[close + 2] == 'Z';
}

TEST_F(CliTest, TheWholeProcessGroupIsKilledAfterATimeout) {
  const auto r = run({"run", "--attempts", "1", "--timeout", "200ms", "--kill-after", "200ms", "--",
                      script("leftover.sh"), state_},
                     10'000);
  EXPECT_EQ(r.status, 124);
  std::string pid = read_file(state_);
  pid.erase(pid.find_last_not_of('\n') + 1);
  ASSERT_FALSE(pid.empty());
  // SIGKILL lands asynchronously; allow it a bounded moment.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (!process_ended(pid) && std::chrono::steady_clock::now() < until) {
    ::poll(nullptr, 0, 10);  // a real pause while the kernel finishes the kill
  }
  EXPECT_TRUE(process_ended(pid)) << "background child " << pid << " outlived the attempt";
}

TEST_F(CliTest, MaxTimeGivesUpWithItsOwnStatus) {
  const auto r =
      run({"run", "--attempts", "1000", "--backoff", "constant", "--initial", "50ms", "--jitter",
           "none", "--max-time", "300ms", "--", script("fail.sh"), state_, "1"});
  EXPECT_EQ(r.status, 123) << r.err;
  EXPECT_GE(count_lines(state_), 3);
  EXPECT_LE(count_lines(state_), 8);
  EXPECT_NE(r.err.find("giving up (time_exhausted)"), std::string::npos) << r.err;
}

TEST_F(CliTest, MaxTimeAlsoCutsARunningAttempt) {
  const auto r = run({"run", "--attempts", "5", "--max-time", "300ms", "--kill-after", "100ms",
                      "--", script("hang.sh"), state_},
                     10'000);
  EXPECT_EQ(r.status, 123) << r.err;
  EXPECT_EQ(count_lines(state_), 1);
}

TEST_F(CliTest, CommandNotFoundIsNotRetried) {
  const auto r = run(
      {"run", "--attempts", "5", "--initial", "1ms", "--", (dir_ / "no-such-command").string()});
  EXPECT_EQ(r.status, 127);
  EXPECT_NE(r.err.find("command not found"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("permanent_error"), std::string::npos) << r.err;
}

TEST_F(CliTest, EventsAsJsonLines) {
  const auto r = run({"run", "--attempts", "3", "--initial", "5ms", "--jitter", "none", "--events",
                      "json", "--", script("flaky.sh"), state_, "1"});
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<std::string> kinds;
  std::istringstream lines(r.err);
  for (std::string line; std::getline(lines, line);) {
    const auto j = nlohmann::json::parse(line);  // every line is one JSON object
    kinds.push_back(j.at("event").get<std::string>());
    if (kinds.back() == "retry_scheduled") {
      EXPECT_EQ(j.at("delay_ms").get<double>(), 5.0);
      EXPECT_EQ(j.at("attempt").get<int>(), 2);
      EXPECT_EQ(j.at("max_attempts").get<int>(), 3);
      EXPECT_EQ(j.at("cause").get<std::string>(), "exit 1");
    }
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"attempt_started", "attempt_failed", "retry_scheduled",
                                             "attempt_started", "succeeded"}));
}

TEST_F(CliTest, EventsFileKeepsProgressLinesOnStderr) {
  const auto events = dir_ / "events.jsonl";
  const auto r = run({"run", "--attempts", "2", "--initial", "1ms", "--events-file",
                      events.string(), "--", script("fail.sh"), state_, "1"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("giving up"), std::string::npos);
  const std::string text = read_file(events);
  EXPECT_NE(text.find("\"event\":\"gave_up\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"reason\":\"attempts_exhausted\""), std::string::npos) << text;
}

TEST_F(CliTest, SigtermEndsTheBackoffAtOnce) {
  const pid_t pid = spawn({"run", "--attempts", "5", "--backoff", "constant", "--initial", "30s",
                           "--jitter", "none", "--", script("fail.sh"), state_, "1"});
  ASSERT_TRUE(wait_for_stderr("retrying in 30s")) << read_file(dir_ / "stderr");
  ::kill(pid, SIGTERM);
  const auto r = collect(pid, 5'000);  // far less than the 30 s back-off
  EXPECT_EQ(r.status, 130);
  EXPECT_EQ(count_lines(state_), 1);
  EXPECT_NE(r.err.find("interrupted by SIGTERM after 1 attempt"), std::string::npos) << r.err;
}

TEST_F(CliTest, SigintIsForwardedToTheRunningChild) {
  const pid_t pid =
      spawn({"run", "--attempts", "5", "--initial", "1ms", "--", script("trap_int.sh"), state_});
  // Wait until the child has started (it records its run first).
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (count_lines(state_) < 1 && std::chrono::steady_clock::now() < until) {
    ::poll(nullptr, 0, 5);  // a real pause while another process starts
  }
  ::poll(nullptr, 0, 50);  // let the shell install its trap before the signal
  ::kill(pid, SIGINT);
  const auto r = collect(pid, 10'000);
  EXPECT_EQ(r.status, 130);
  const std::string runs = read_file(state_);
  EXPECT_NE(runs.find("INT"), std::string::npos) << runs;  // the child got the SIGINT
  EXPECT_EQ(count_lines(state_), 2);                       // one run + "INT": no second attempt
}

// Bad input: exit 2 and a message naming the flag or field.
struct bad_flags {
  std::vector<std::string> args;
  std::string fragment;
};

void PrintTo(const bad_flags& b, std::ostream* os) {
  for (const auto& a : b.args) *os << a << ' ';
}

class CliBadInputTest : public CliTest, public ::testing::WithParamInterface<bad_flags> {};

TEST_P(CliBadInputTest, ExitsTwoAndNamesTheProblem) {
  auto args = GetParam().args;
  for (auto& a : args) {
    if (a == "DIR") a = dir_.string();
  }
  const auto r = run(args);
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find(GetParam().fragment), std::string::npos) << r.err;
}

INSTANTIATE_TEST_SUITE_P(
    AllCases, CliBadInputTest,
    ::testing::Values(
        bad_flags{{"run", "--attempts", "0", "--", "true"}, "--attempts: \"0\" is out of range"},
        bad_flags{{"run", "--attempts", "many", "--", "true"},
                  "--attempts: \"many\" is not an integer"},
        bad_flags{{"run", "--initial", "5s", "--max-delay", "1s", "--", "true"},
                  "--max-delay: 1s is less than backoff.initial 5s"},
        bad_flags{{"run", "--jitter", "wobbly", "--", "true"},
                  "--jitter: \"wobbly\" is not a jitter"},
        bad_flags{{"run", "--multiplier", "0.5", "--", "true"}, "--multiplier"},
        bad_flags{{"run", "--timeout", "abc", "--", "true"},
                  "--timeout: \"abc\" is not a duration"},
        bad_flags{{"run", "--timeout", "0", "--", "true"}, "--timeout: must be more than 0"},
        bad_flags{{"run", "--max-time", "-1s", "--", "true"}, "--max-time: \"-1s\" is negative"},
        bad_flags{{"run", "--retry-on-exit", "1,x", "--", "true"}, "--retry-on-exit: \"x\""},
        bad_flags{{"run", "--retry-on-exit", "256", "--", "true"}, "0..255"},
        bad_flags{{"run", "--events", "xml", "--", "true"}, "--events: \"xml\" is not supported"},
        bad_flags{{"run", "--delays", "1s,,2s", "--backoff", "list", "--", "true"}, "--delays[1]"},
        bad_flags{{"run", "--config", "DIR/missing.json", "--", "true"},
                  "cannot open the configuration file"},
        bad_flags{{"run", "--atempts", "3", "--", "true"}, "--atempts"},
        bad_flags{{"run"}, "no command given; write it after --"},
        bad_flags{{"run", "--timeout", "--", "true"}, "--timeout: missing value"},
        bad_flags{{"run", "--attempts", "2", "ls", "-la"},
                  "write the command and its arguments after --"},
        bad_flags{{"run", "--", ""}, "the command is an empty string"},
        bad_flags{{"run", "--max-time", "0", "--", "true"}, "--max-time: must be more than 0"},
        bad_flags{{"--bogus"}, "unknown flag \"--bogus\""},
        bad_flags{{"policy", "bogus"}, "unknown policy command \"bogus\"; allowed: show"},
        bad_flags{{"policy", "show", "--attemps", "3"}, "policy show: unknown flag --attemps"},
        bad_flags{{"policy", "show", "--backoff", "constant", "--multiplier", "3"},
                  "--multiplier: not used by a constant backoff"},
        bad_flags{{"policy", "show", "--config", "DIR"}, "is a directory"},
        bad_flags{{"policy", "show", "--samples", "0"}, "--samples: \"0\" is not allowed"},
        bad_flags{{"simulate", "hedging", "--slow-tiers", "0.5:2s,0.6:1s"},
                  "--slow-tiers: the shares add up to 1.1"},
        bad_flags{{"simulate", "hedging", "--slow-tiers", "2s"},
                  "--slow-tiers: \"2s\" is not P:DURATION"},
        bad_flags{{"simulate", "hedging", "--requests", "10", "--length", "5s"},
                  "--requests: give --requests or --length, not both"},
        bad_flags{{"run", "--max-concurrency", "0", "--", "true"},
                  "--max-concurrency: 0 is out of range; allowed: 1..10000"},
        bad_flags{{"run", "--concurrency-key", "k", "--", "true"},
                  "--concurrency-key: has no effect without --max-concurrency"},
        bad_flags{{"run", "--max-concurrency", "2", "--concurrency-key", "../etc", "--", "true"},
                  "--concurrency-key: \"../etc\" is not allowed"},
        bad_flags{{"run", "--max-concurrency", "2", "--concurrency-dir", "DIR/none", "--", "true"},
                  "--concurrency-dir: cannot use"},
        bad_flags{{"frobnicate"}, "unknown command \"frobnicate\""},
        bad_flags{{"run", "--timeout=abc", "--", "true"}, "--timeout"},
        bad_flags{{"http", "http://"}, "url: \"http://\" is not a valid URL"},
        bad_flags{{"http", "-H", "X: a\r\nEvil: b", "http://127.0.0.1:1/"},
                  "-H: the value of X holds a carriage return (CR)"},
        bad_flags{{"http", "--idempotency-key", "k\nEvil: 1", "-d", "x", "http://127.0.0.1:1/"},
                  "--idempotency-key: the value of Idempotency-Key holds a line feed (LF)"}),
    [](const ::testing::TestParamInfo<bad_flags>& param) {
      return "case" + std::to_string(param.index);
    });

TEST_F(CliTest, BadConfigFileNamesTheFileAndKey) {
  const auto cfg = dir_ / "policy.json";
  std::ofstream(cfg) << R"({"backoff": {"initial": "fast"}})";
  const auto r = run({"policy", "show", "--config", cfg.string()});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find(cfg.string() + ": backoff.initial: \"fast\""), std::string::npos) << r.err;
}

// `policy show --grpc-service-config` previews what rebound::grpc runs for a
// method: gRFC A6's retryPolicy with maxAttempts clamped to 5 and gRPC's
// full jitter, random(0, min(initialBackoff * multiplier^(n-1), maxBackoff)).
TEST_F(CliTest, PolicyShowPreviewsAGrpcServiceConfig) {
  const auto cfg = dir_ / "service_config.json";
  std::ofstream(cfg) << R"({"methodConfig": [{
      "name": [{"service": "helloworld.Greeter"}],
      "timeout": "2s",
      "retryPolicy": {"maxAttempts": 7, "initialBackoff": "0.1s", "maxBackoff": "0.3s",
                      "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}],
    "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1}})";
  const auto r = run({"policy", "show", "--grpc-service-config", cfg.string(), "--method",
                      "helloworld.Greeter/SayHello", "--samples", "200", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const auto policy = j.at("policy").get<std::string>();
  EXPECT_NE(policy.find("5 attempts (maxAttempts clamped to 5)"), std::string::npos) << policy;
  EXPECT_NE(policy.find("UNAVAILABLE"), std::string::npos) << policy;
  EXPECT_NE(policy.find("matched \"helloworld.Greeter/\""), std::string::npos) << policy;
  const auto& a = j.at("attempts");
  ASSERT_EQ(a.size(), 4u);  // attempts 2..5
  const double cap[] = {100, 200, 300, 300};
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_GE(a[i].at("delay_min_ms").get<double>(), 0);
    EXPECT_LE(a[i].at("delay_max_ms").get<double>(), cap[i]);
    EXPECT_GT(a[i].at("delay_max_ms").get<double>(), cap[i] * 0.8);  // full jitter spans it
    EXPECT_LT(a[i].at("delay_min_ms").get<double>(), cap[i] * 0.2);
  }
  // The throttle (fresh per sample) allows every retry of one call.
  EXPECT_EQ(j.at("give_up").at("attempts_exhausted").get<int>(), 200) << r.out;

  // A hedging policy: when each attempt starts.
  std::ofstream(cfg) << R"({"methodConfig": [{"name": [{"service": "a.B"}],
      "hedgingPolicy": {"maxAttempts": 3, "hedgingDelay": "0.5s"}}]})";
  const auto h =
      run({"policy", "show", "--grpc-service-config", cfg.string(), "--method", "a.B/C", "--json"});
  ASSERT_EQ(h.status, 0) << h.err;
  const auto hj = nlohmann::json::parse(h.out);
  ASSERT_EQ(hj.at("hedges").size(), 3u);
  EXPECT_EQ(hj.at("hedges")[2].at("start_ms").get<double>(), 1000);

  // Errors name the field as the document spells it, and the flag.
  std::ofstream(cfg) << R"({"methodConfig": [{"name": [{"service": "a.B"}],
      "retryPolicy": {"maxAttempts": 1, "initialBackoff": "1s", "maxBackoff": "1s",
                      "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]})";
  auto bad = run({"policy", "show", "--grpc-service-config", cfg.string(), "--method", "a.B/C"});
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("methodConfig[0].retryPolicy.maxAttempts"), std::string::npos) << bad.err;
  bad = run({"policy", "show", "--method", "a.B/C"});
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("--method: needs --grpc-service-config"), std::string::npos) << bad.err;
  bad = run({"policy", "show", "--grpc-service-config", cfg.string(), "--method", "a.B/C",
             "--attempts", "3"});
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("cannot be combined"), std::string::npos) << bad.err;
  bad = run({"policy", "show", "--grpc-service-config", (dir_ / "missing.json").string(),
             "--method", "a.B/C"});
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("missing.json"), std::string::npos) << bad.err;
}

// --metrics-file writes the call's metrics at exit, in the Prometheus text
// format (the textfile collector reads it), whichever way the call ended.
TEST_F(CliTest, RunWritesItsMetricsFile) {
  const auto file = dir_ / "run.prom";
  const auto r = run({"run", "--attempts", "3", "--initial", "1ms", "--jitter", "none", "-q",
                      "--metrics-file", file.string(), "--", "sh", "-c", "exit 3"});
  EXPECT_EQ(r.status, 3) << r.err;
  const std::string text = read_file(file);
  EXPECT_NE(text.find("# TYPE rebound_attempts_total counter\n"
                      "rebound_attempts_total{component=\"run\"} 3\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("rebound_calls_total{component=\"run\",reason=\"attempts_exhausted\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("rebound_retry_delay_seconds_count{component=\"run\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_FALSE(fs::exists(file.string() + ".tmp." + std::to_string(r.status)));
  // An unwritable path is reported and does not change the outcome.
  const auto bad = run(
      {"run", "-q", "--metrics-file", (dir_ / "no" / "such" / "dir.prom").string(), "--", "true"});
  EXPECT_EQ(bad.status, 0);
  EXPECT_NE(bad.err.find("--metrics-file"), std::string::npos) << bad.err;
}

// `run --max-concurrency`: real processes started at once share N slots
// through lock files; the children log when they start and end.
TEST_F(CliTest, MaxConcurrencyHoldsAcrossProcesses) {
  const auto log = dir_ / "log";
  const std::string body = "echo s >> " + log.string() + "; sleep 0.2; echo e >> " + log.string();
  std::vector<pid_t> pids;
  for (int i = 0; i < 6; ++i) {
    pids.push_back(spawn({"run", "-q", "--max-concurrency", "2", "--concurrency-key", "cli-test",
                          "--concurrency-dir", dir_.string(), "--", "sh", "-c", body}));
  }
  for (const pid_t p : pids) EXPECT_EQ(wait_bounded(p, 30'000), 0);
  int running = 0;
  int peak = 0;
  int started = 0;
  std::ifstream in(log);
  for (std::string line; std::getline(in, line);) {
    if (line == "s") {
      ++started;
      peak = std::max(peak, ++running);
    } else {
      --running;
    }
  }
  EXPECT_EQ(started, 6);
  EXPECT_EQ(peak, 2);  // six at once would have overlapped: the slots held them to two
}

TEST_F(CliTest, ASlotFileThatIsALinkIsRefused) {
  // A predictable name in a shared directory: never followed.
  fs::create_symlink(dir_ / "elsewhere", dir_ / "rebound-k.0.lock");
  const auto r = run({"run", "--max-concurrency", "1", "--concurrency-key", "k",
                      "--concurrency-dir", dir_.string(), "--", "true"});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("cannot open the slot file"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "elsewhere"));
}

TEST_F(CliTest, MaxConcurrencyWaitsNoLongerThanMaxTime) {
  const pid_t holder = spawn({"run", "-q", "--max-concurrency", "1", "--concurrency-key", "held",
                              "--concurrency-dir", dir_.string(), "--", "sleep", "3"});
  // Wait (bounded) for the holder's slot file to be locked by it.
  const auto lock = dir_ / "rebound-held.0.lock";
  for (int i = 0; i < 1000 && !fs::exists(lock); ++i) ::poll(nullptr, 0, 5);
  ::poll(nullptr, 0, 50);  // a real pause: the holder takes its flock after creating the file
  const auto r = run({"run", "--max-concurrency", "1", "--concurrency-key", "held",
                      "--concurrency-dir", dir_.string(), "--max-time", "300ms", "--", "true"});
  EXPECT_EQ(r.status, 123) << r.err;  // time_exhausted
  EXPECT_NE(r.err.find("waiting for one of 1 --max-concurrency slots"), std::string::npos) << r.err;
  ::kill(holder, SIGTERM);
  wait_bounded(holder, 10'000);
}

// Issue 25, item 6: `kill -9` on a `rebound run` freed its slot while its
// command ran on as an orphan: 3 ran at once under --max-concurrency 2. The
// command now runs under a guard that holds the slot and, when rebound dies,
// kills the command's group: the slot frees only once the attempt is gone.
TEST_F(CliTest, AKilledReboundTakesItsAttemptWithItBeforeItsSlotFrees) {
  const auto started = dir_ / "started";
  const auto ended = dir_ / "ended";
  const pid_t holder =
      spawn({"run", "-q", "--max-concurrency", "1", "--concurrency-key", "k9", "--concurrency-dir",
             dir_.string(), "--", "sh", "-c",
             "touch " + started.string() + "; sleep 1.5; touch " + ended.string()});
  for (int i = 0; i < 2000 && !fs::exists(started); ++i) ::poll(nullptr, 0, 5);
  ASSERT_TRUE(fs::exists(started));
  ::kill(holder, SIGKILL);  // rebound dies at once; its guard kills the attempt
  wait_bounded(holder, 10'000);
  const auto next = run({"run", "--max-concurrency", "1", "--concurrency-key", "k9",
                         "--concurrency-dir", dir_.string(), "--max-time", "1s", "--", "true"});
  EXPECT_EQ(next.status, 0) << next.err;  // the slot is free once the attempt is dead
  ::poll(nullptr, 0, 2000);               // a real pause past the killed command's 1.5 s
  EXPECT_FALSE(fs::exists(ended));        // it never finished: no two ran at once
}

// A process a command leaves running in the background after it ended
// holds no slot (review of issue 25: an inherited lock kept it for the
// background process's whole life).
TEST_F(CliTest, ABackgroundLeftoverHoldsNoSlot) {
  const auto first =
      run({"run", "-q", "--max-concurrency", "1", "--concurrency-key", "bg", "--concurrency-dir",
           dir_.string(), "--", "sh", "-c", "sleep 3 >/dev/null 2>&1 & exit 0"});
  EXPECT_EQ(first.status, 0) << first.err;
  const auto second =
      run({"run", "--max-concurrency", "1", "--concurrency-key", "bg", "--concurrency-dir",
           dir_.string(), "--max-time", "500ms", "--", "true"});
  EXPECT_EQ(second.status, 0) << second.err;
}

// Under the guard, the command's own ending is rebound's to report: an exit
// code, a signal, a timeout.
TEST_F(CliTest, UnderASlotTheCommandsEndingIsReportedAsItWas) {
  const std::vector<std::string> slot = {
      "--max-concurrency", "1", "--concurrency-key", "end", "--concurrency-dir", dir_.string()};
  const auto with = [&](std::vector<std::string> args) {
    args.insert(args.begin() + 1, slot.begin(), slot.end());
    return run(args);
  };
  EXPECT_EQ(with({"run", "-q", "--attempts", "1", "--", "sh", "-c", "exit 7"}).status, 7);
  EXPECT_EQ(with({"run", "-q", "--attempts", "1", "--", "sh", "-c", "kill -TERM $$"}).status,
            128 + SIGTERM);
  EXPECT_EQ(with({"run", "-q", "--attempts", "1", "--timeout", "200ms", "--", "sleep", "5"}).status,
            124);
  EXPECT_EQ(with({"run", "-q", "--attempts", "1", "--", "no-such-program-here"}).status, 127);
}

// `simulate --metrics-file`: each strategy's engine metrics, the same table
// with or without them (observing changes nothing the engine decides).
TEST_F(CliTest, SimulateWritesEachStrategysMetrics) {
  const auto on = dir_ / "on.json";
  const auto off = dir_ / "off.json";
  std::ofstream(on) << R"({"max_attempts": 3, "backoff": {"type": "constant", "initial": "0s"},
                          "hedge": {"delay": "1s", "max_hedges": 2}})";
  std::ofstream(off) << R"({"max_attempts": 1})";
  const std::vector<std::string> args = {"simulate", "hedging",   "--requests",   "500",
                                         "--rate",   "100",       "--slow-tiers", "0.05:2s",
                                         "--policy", on.string(), "--policy",     off.string()};
  const auto plain = run(args);
  ASSERT_EQ(plain.status, 0) << plain.err;
  auto with = args;
  const auto file = dir_ / "sim.prom";
  with.push_back("--metrics-file");
  with.push_back(file.string());
  const auto measured = run(with);
  ASSERT_EQ(measured.status, 0) << measured.err;
  EXPECT_EQ(plain.out, measured.out);
  const std::string text = read_file(file);
  EXPECT_NE(text.find("rebound_calls_total{component=\"off\",reason=\"succeeded\"} 500\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("rebound_calls_total{component=\"on\",reason=\"succeeded\"} 500\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("rebound_hedges_total{component=\"on\"} 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("rebound_hedges_total{component=\"on\"} "), std::string::npos) << text;
  const auto layers = run({"simulate", "layers", "--metrics-file", file.string()});
  EXPECT_EQ(layers.status, 2);
  EXPECT_NE(layers.err.find("--metrics-file: not used by the layers scenario"), std::string::npos)
      << layers.err;
}

TEST_F(CliTest, PolicyShowJsonFollowsTheDefinition) {
  const auto r = run({"policy", "show", "--attempts", "5", "--initial", "500ms", "--max-delay",
                      "3s", "--jitter", "none", "--samples", "10", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const auto& a = j.at("attempts");
  ASSERT_EQ(a.size(), 4u);
  const double want[] = {500, 1000, 2000, 3000};
  double cumulative = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    cumulative += want[i];
    EXPECT_EQ(a[i].at("attempt").get<int>(), static_cast<int>(i) + 2);
    EXPECT_EQ(a[i].at("delay_min_ms").get<double>(), want[i]);
    EXPECT_EQ(a[i].at("delay_median_ms").get<double>(), want[i]);
    EXPECT_EQ(a[i].at("delay_max_ms").get<double>(), want[i]);
    EXPECT_EQ(a[i].at("cumulative_max_ms").get<double>(), cumulative);
  }
}

TEST_F(CliTest, PolicyShowSpreadsFullJitter) {
  const auto r = run({"policy", "show", "--attempts", "3", "--initial", "1s", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const auto& first = j.at("attempts").at(0);
  EXPECT_EQ(j.at("samples").get<int>(), 1000);
  EXPECT_GE(first.at("delay_min_ms").get<double>(), 0);
  EXPECT_LT(first.at("delay_min_ms").get<double>(), 20);
  EXPECT_LE(first.at("delay_max_ms").get<double>(), 1000);
  EXPECT_GT(first.at("delay_max_ms").get<double>(), 980);
  EXPECT_NEAR(first.at("delay_median_ms").get<double>(), 500, 60);
}

TEST_F(CliTest, SimulateLayersShowsTheGuard) {
  const auto json_file = dir_ / "layers.json";
  const auto r = run({"simulate", "layers", "--requests", "50", "--json", json_file.string()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("guarded"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(read_file(json_file));
  EXPECT_EQ(j.at("rows").at(0).at("mean_bottom_attempts").get<double>(), 27.0);
  EXPECT_EQ(j.at("rows").at(1).at("max_bottom_attempts").get<double>(), 3.0);
}

TEST_F(CliTest, SimulateOutageWritesJsonAndSvg) {
  const auto json_file = dir_ / "outage.json";
  const auto svg_file = dir_ / "outage.svg";
  const auto r = run({"simulate", "outage", "--length", "20s", "--trigger-at", "5s",
                      "--trigger-for", "5s", "--rate", "200", "--capacity", "300", "--json",
                      json_file.string(), "--svg", svg_file.string()});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(read_file(json_file));
  EXPECT_EQ(j.at("series").size(), 7u);
  EXPECT_EQ(j.at("series").at(0).at("goodput_per_bucket").size(), 20u);
  const std::string svg = read_file(svg_file);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("polyline"), std::string::npos);
  EXPECT_NE(svg.find("3 retries + ratio budget"), std::string::npos);
}

TEST_F(CliTest, SimulateContentionWithAUserPolicy) {
  const auto policy = dir_ / "mine.json";
  std::ofstream(policy) << R"({"max_attempts": 1000, "backoff": {"type": "exponential",
      "initial": "5ms", "multiplier": 2, "max": "2s"}, "jitter": "full"})";
  const auto r = run({"simulate", "contention", "--clients-from", "20", "--clients-to", "20",
                      "--trials", "3", "--policy", policy.string()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("20       mine"), std::string::npos) << r.out;
}

TEST_F(CliTest, SimulateReplicaLag) {
  const auto json_file = dir_ / "replica.json";
  const auto r = run({"simulate", "replica-lag", "--length", "10s", "--json", json_file.string()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("retry, then primary"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(read_file(json_file));
  EXPECT_GT(j.at("rows").at(0).at("error_rate").get<double>(), 0.1);  // naive
  EXPECT_EQ(j.at("rows").at(1).at("error_rate").get<double>(), 0.0);  // retry, then primary
}

TEST_F(CliTest, SimulateHedgingWithAUserPolicyFile) {
  const auto json_file = dir_ / "hedging.json";
  const auto pol = dir_ / "hedge-30ms.json";
  std::ofstream(pol) << R"({"max_attempts": 2, "hedge": {"delay": "30ms", "max_hedges": 1}})";
  const auto r = run({"simulate", "hedging", "--length", "10s", "--policy", pol.string(), "--json",
                      json_file.string()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("hedge-30ms"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(read_file(json_file));
  const auto& row = j.at("rows").at(0);
  EXPECT_GT(row.at("hedges").get<int>(), 0);
  EXPECT_LT(row.at("latency_p99_ms").get<double>(), 100.0);  // the slow tail is hedged away
  const auto bad = run({"simulate", "hedging", "--depth", "2"});
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("--depth: not used by the hedging scenario"), std::string::npos)
      << bad.err;
}

TEST_F(CliTest, SimulateFleetComparesPerProcessAndSharedState) {
  const auto json_file = dir_ / "fleet.json";
  const auto r = run(
      {"simulate", "fleet", "--processes", "200", "--length", "40s", "--json", json_file.string()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("shared budget + shared breaker"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(read_file(json_file));
  const auto& rows = j.at("rows");
  ASSERT_EQ(rows.size(), 6U);
  // One budget for the fleet bounds its retries; 200 per-process floors do not.
  EXPECT_LT(rows.at(1).at("retries_per_s_during").get<double>(),
            rows.at(0).at("retries_per_s_during").get<double>() / 5);
  // With Redis down too, shares of the budget still bound them.
  EXPECT_LT(rows.at(3).at("retries_per_s_during").get<double>(),
            rows.at(2).at("retries_per_s_during").get<double>() / 5);
  EXPECT_LT(rows.at(5).at("detect_all_s").get<double>(),
            rows.at(4).at("detect_all_s").get<double>());
  auto bad = run({"simulate", "fleet", "--processes", "0"});
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("--processes: \"0\" is out of range"), std::string::npos) << bad.err;
  bad = run({"simulate", "fleet", "--trigger-at", "50s", "--trigger-for", "20s"});
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("must end within --length"), std::string::npos) << bad.err;
  bad = run({"simulate", "outage", "--poll-interval", "1s"});
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("--poll-interval: not used by the outage scenario"), std::string::npos)
      << bad.err;
}

TEST_F(CliTest, SimulateRefusesWhatItWouldIgnore) {
  const auto pol = dir_ / "hedge.json";
  std::ofstream(pol) << R"({"hedge": {"delay": "10ms"}})";
  auto r = run({"simulate", "outage", "--policy", pol.string()});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("only the hedging scenario simulates"), std::string::npos) << r.err;
  r = run({"simulate", "outage", "--length", "5s"});  // the trigger would start at 10 s
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--length: the trigger starts at 10s"), std::string::npos) << r.err;
}

TEST_F(CliTest, SimulateRejectsFlagsOfOtherScenarios) {
  auto r = run({"simulate", "outage", "--depth", "3"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--depth: not used by the outage scenario"), std::string::npos) << r.err;
  r = run({"simulate", "weather"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("unknown scenario \"weather\""), std::string::npos) << r.err;
  r = run({"simulate", "outage", "--trigger-capacity", "2"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--trigger-capacity: \"2\" is out of range"), std::string::npos) << r.err;
}

// A number past a double's range once aborted `policy show` (an uncaught
// parser exception); a key given twice was silently taken as the last.
TEST_F(CliTest, HostileConfigFilesAreUsageErrorsNeverCrashes) {
  const auto huge = dir_ / "huge.json";
  std::ofstream(huge) << R"({"stop": {"attempts": 1e400}})";
  auto r = run({"policy", "show", "--config", huge.string()});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("out of range"), std::string::npos) << r.err;
  const auto twice = dir_ / "twice.json";
  std::ofstream(twice) << R"({"backoff": {"initial": "1s", "initial": "2s"}})";
  r = run({"policy", "show", "--config", twice.string()});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find(twice.string() + ": backoff.initial: given twice"), std::string::npos)
      << r.err;
  // A file that never ends is read bounded, not into memory whole.
  r = run({"policy", "show", "--config", "/dev/zero"});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("larger than 1 MiB"), std::string::npos) << r.err;
}

TEST_F(CliTest, PolicyShowTableForScenario000) {
  const auto cfg = dir_ / "scenario000.json";
  std::ofstream(cfg) << R"({"max_elapsed": "5s", "backoff": {"type": "exponential",
      "initial": "500ms", "multiplier": 2, "max": "3s"}, "jitter": "full"})";
  const auto r = run({"policy", "show", "--config", cfg.string()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("stop: 5s elapsed; backoff: exponential 500ms x2 up to 3s; jitter: full"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("wait median"), std::string::npos);
  EXPECT_NE(r.out.find("gives up: time_exhausted 1000"), std::string::npos) << r.out;
}

}  // namespace

#ifdef REBOUND_CLI_HTTP_TESTS
#include "fault_server.hpp"

namespace {

// rebound http against the fault server, started in this process on loopback.
class HttpCliTest : public CliTest {
 protected:
  rebound::fault::server server_;
};

TEST_F(HttpCliTest, GetRidesThroughAResumeWindow) {
  const auto r = run({"http", "--attempts", "30", "--initial", "50ms", "--max-delay", "200ms",
                      server_.url("/resume/cli?ms=500")});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "ok cli\n");
  EXPECT_NE(r.err.find("attempt 1/30 failed: status 503; retrying in"), std::string::npos) << r.err;
}

TEST_F(HttpCliTest, ExitStatusesAndSafety) {
  auto r = run({"http", server_.url("/status/404")});
  EXPECT_EQ(r.status, 22);
  EXPECT_EQ(r.out, "status 404\n");
  r = run({"http", "-d", "x=1", server_.url("/resume/post?ms=5000")});
  EXPECT_EQ(r.status, 22);
  EXPECT_NE(r.err.find("not_idempotent"), std::string::npos) << r.err;
  EXPECT_EQ(server_.executed().executions_by_method.at("POST"), 1);
  r = run({"http", "--attempts", "2", "--initial", "1ms", "http://127.0.0.1:1/"});
  EXPECT_EQ(r.status, 7);
  EXPECT_NE(r.err.find("connect_refused"), std::string::npos) << r.err;
  r = run({"http", "--max-retry-after", "5s", server_.url("/retry-after/cap?seconds=600")});
  EXPECT_EQ(r.status, 22);
  EXPECT_NE(r.err.find("server_delay_too_long"), std::string::npos) << r.err;
}

TEST_F(HttpCliTest, MaxTimeCutsTheRequestInFlight) {
  const auto start = std::chrono::steady_clock::now();
  const auto r = run({"http", "--max-time", "300ms", server_.url("/hang/cli?ms=2000")});
  EXPECT_EQ(r.status, 123) << r.err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1500));
}

TEST_F(HttpCliTest, BadInputIsRefusedWithTheFlagNamed) {
  auto r = run({"http", "--retry-status", "503,700", server_.url("/status/200")});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--retry-status: \"700\" is not an error status"), std::string::npos)
      << r.err;
  r = run({"http", "-H", "NoColon", server_.url("/status/200")});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("-H: \"NoColon\" is not a header"), std::string::npos) << r.err;
  r = run({"http", "-H", "Bad Name: x", server_.url("/status/200")});
  EXPECT_EQ(r.status, 2);
  r = run({"http", "--retry-status", "200", server_.url("/status/200")});
  EXPECT_EQ(r.status, 2);
  r = run({"http", "ftp://127.0.0.1/x"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("allowed: http:// or https://"), std::string::npos) << r.err;
  r = run({"http", "--max-retry-after", "0s", server_.url("/status/200")});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(server_.executed().total, 0);  // nothing was sent
}

}  // namespace
#endif
