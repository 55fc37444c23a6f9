// rebound run: retry a command under a policy.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "child.hpp"
#include "commands.hpp"
#include "common.hpp"
#include "rebound/duration.hpp"
#include "rebound/metrics.hpp"
#include "rebound/retry.hpp"
#include "slots.hpp"

namespace rebound::cli {

namespace {

struct child_failure {
  child_result result;
  std::string what;
  [[nodiscard]] const std::string& message() const { return what; }
};

// The attempt's outcome in the expected-like shape the retry loop understands.
struct attempt_outcome {
  bool ok = false;
  child_failure failure;
  [[nodiscard]] bool has_value() const { return ok; }
  [[nodiscard]] const child_failure& error() const { return failure; }
};

std::string describe_failure(const child_result& r, const std::string& command,
                             std::optional<duration> timeout) {
  switch (r.how) {
    case child_result::kind::exited:
      return "exit " + std::to_string(r.code);
    case child_result::kind::signalled: {
      const char* name = ::sigabbrev_np(r.code);
      return "killed by signal " + std::to_string(r.code) +
             (name != nullptr ? std::string(" (SIG") + name + ")" : std::string());
    }
    case child_result::kind::timed_out:
      return "timed out after " + (timeout ? format_duration(*timeout) : std::string("its limit"));
    case child_result::kind::cancelled:
      return "cancelled";
    case child_result::kind::not_found:
      return "command not found: " + command;
    case child_result::kind::cannot_execute:
      return "cannot execute " + command + ": " + r.detail;
    case child_result::kind::spawn_failed:
      return "cannot start the command: " + r.detail;
  }
  return "failed";
}

std::set<int> parse_exit_list(const std::string& text, const std::string& flag) {
  std::set<int> out;
  std::size_t start = 0;
  while (true) {
    const auto comma = text.find(',', start);
    const std::string item =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    int v = -1;
    const auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || p != item.data() + item.size() || v < 0 || v > 255) {
      throw config_error(flag, "\"" + item +
                                   "\" is not an exit status; allowed: a comma "
                                   "separated list of integers 0..255, e.g. 1,75");
    }
    out.insert(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// Progress lines and JSON events.
class run_observer final : public observer {
 public:
  run_observer(bool human, std::ostream* json, const interrupts* irq)
      : human_(human), json_(json), irq_(irq) {}

  void on_event(const event& e) noexcept override {
    try {
      std::lock_guard lock(mu_);
      if (json_ != nullptr) write_json(e);
      if (human_) write_human(e);
    } catch (...) {
      // Reporting must never change the outcome.
    }
  }

 private:
  static std::string of(int attempt, const std::optional<int>& max) {
    return std::to_string(attempt) + (max ? "/" + std::to_string(*max) : std::string());
  }

  void write_human(const event& e) {
    switch (e.kind) {
      case event_kind::retry_scheduled:
        std::cerr << "attempt " << of(e.attempt - 1, e.max_attempts) << " failed: " << e.cause
                  << "; retrying in " << format_duration(e.delay) << "\n";
        break;
      case event_kind::gave_up:
        if (const int sig = irq_->signal(); sig != 0) {
          const char* name = ::sigabbrev_np(sig);
          std::cerr << "interrupted by "
                    << (name != nullptr ? std::string("SIG") + name : "a signal") << " after "
                    << e.attempt << (e.attempt == 1 ? " attempt" : " attempts")
                    << "; not retrying\n";
        } else if (e.reason == stop_reason::cancelled) {
          std::cerr << "cancelled after " << e.attempt
                    << (e.attempt == 1 ? " attempt" : " attempts") << "\n";
        } else if (e.attempt > 0) {
          std::cerr << "attempt " << of(e.attempt, e.max_attempts) << " failed: " << e.cause
                    << "; giving up (" << to_string(e.reason) << ")\n";
        }
        break;
      case event_kind::succeeded:
        if (e.attempt > 1) {
          std::cerr << "attempt " << of(e.attempt, e.max_attempts) << " succeeded\n";
        }
        break;
      default:
        break;
    }
    std::cerr.flush();
  }

  void write_json(const event& e) {
    nlohmann::json j;
    j["event"] = std::string(to_string(e.kind));
    j["attempt"] = e.attempt;
    if (e.max_attempts) j["max_attempts"] = *e.max_attempts;
    j["elapsed_ms"] = std::chrono::duration<double, std::milli>(e.elapsed).count();
    switch (e.kind) {
      case event_kind::attempt_failed:
        j["verdict"] = std::string(to_string(e.verdict.kind));
        j["cause"] = std::string(e.cause);
        break;
      case event_kind::retry_scheduled:
        j["delay_ms"] = std::chrono::duration<double, std::milli>(e.delay).count();
        j["cause"] = std::string(e.cause);
        break;
      case event_kind::gave_up:
        j["reason"] = std::string(to_string(e.reason));
        j["cause"] = std::string(e.cause);
        break;
      case event_kind::succeeded:
        j["reason"] = "succeeded";
        break;
      case event_kind::attempt_started:
      case event_kind::budget_rejected:
      case event_kind::deferred:
      case event_kind::hedged:
      case event_kind::server_delay_ignored:
      case event_kind::hedge_won:
      case event_kind::attempt_cancelled:
        break;
    }
    *json_ << j.dump() << "\n";
    json_->flush();
  }

  std::mutex mu_;
  bool human_;
  std::ostream* json_;
  const interrupts* irq_;
};

}  // namespace

CLI::App* add_run(CLI::App& app, run_options& o) {
  auto* run = app.add_subcommand("run", "Run a command, retrying it when it fails");
  add_policy_flags(*run, o.policy);
  run->add_option("--timeout", o.timeout,
                  "Per-attempt limit: the command's process group gets "
                  "SIGTERM, then SIGKILL after --kill-after")
      ->type_name("DUR");
  run->add_option("--kill-after", o.kill_after, "Grace between SIGTERM and SIGKILL (default 2s)")
      ->type_name("DUR");
  run->add_option("--retry-on-exit", o.retry_on_exit,
                  "Retry only these exit statuses (default: any non-zero)")
      ->type_name("LIST");
  run->add_option("--no-retry-on-exit", o.no_retry_on_exit, "Never retry these exit statuses")
      ->type_name("LIST");
  run->add_option("--events", o.events, "Write one JSON object per event (json)")
      ->type_name("FORMAT");
  run->add_option("--events-file", o.events_file,
                  "Append the JSON events to FILE (implies --events json; progress lines stay)")
      ->type_name("FILE");
  run->add_option("--metrics-file", o.metrics_file,
                  "Write the call's metrics to FILE at exit (Prometheus text format; for "
                  "node_exporter's textfile collector)")
      ->type_name("FILE");
  run->add_option("--max-concurrency", o.max_concurrency,
                  "At most N attempts of this command run at once on this machine, across "
                  "processes (xargs -P, parallel, cron): the others wait for a slot")
      ->type_name("N");
  run->add_option("--concurrency-key", o.concurrency_key,
                  "Which processes share the --max-concurrency slots (default: the program's "
                  "name)")
      ->type_name("KEY");
  run->add_option("--concurrency-dir", o.concurrency_dir,
                  "Where the slot lock files live (default: $XDG_RUNTIME_DIR, else /tmp)")
      ->type_name("DIR");
  run->add_flag("-q,--quiet", o.quiet, "No progress lines");
  run->add_option("command", o.command, "The command and its arguments, after --")
      ->type_name("CMD [ARGS...]");
  return run;
}

int run_main(const run_options& o) {
  policy_settings settings;
  std::optional<duration> timeout;
  duration kill_after = std::chrono::seconds(2);
  std::set<int> retry_on, no_retry_on;
  try {
    settings = settings_from_flags(o.policy);
    auto flag_duration = [](const std::string& v, const std::string& flag) {
      try {
        return parse_duration(v);
      } catch (const std::invalid_argument& e) {
        throw config_error(flag, e.what());
      }
    };
    if (o.timeout) {
      timeout = flag_duration(*o.timeout, "--timeout");
      if (*timeout <= duration::zero()) throw config_error("--timeout", "must be more than 0");
    }
    if (o.kill_after) kill_after = flag_duration(*o.kill_after, "--kill-after");
    if (settings.before_elapsed && *settings.before_elapsed <= duration::zero()) {
      throw config_error("--max-time", "must be more than 0");
    }
    if (o.retry_on_exit) retry_on = parse_exit_list(*o.retry_on_exit, "--retry-on-exit");
    if (o.no_retry_on_exit)
      no_retry_on = parse_exit_list(*o.no_retry_on_exit, "--no-retry-on-exit");
    if (o.max_concurrency && (*o.max_concurrency < 1 || *o.max_concurrency > 10000)) {
      throw config_error("--max-concurrency", std::to_string(*o.max_concurrency) +
                                                  " is out of range; allowed: 1..10000");
    }
    if ((o.concurrency_key || o.concurrency_dir) && !o.max_concurrency) {
      throw config_error(o.concurrency_key ? "--concurrency-key" : "--concurrency-dir",
                         "has no effect without --max-concurrency");
    }
    if (o.concurrency_key) {
      const std::string& k = *o.concurrency_key;
      const bool ok = !k.empty() && k.size() <= 100 && std::all_of(k.begin(), k.end(), [](char ch) {
        return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '-' || ch == '_' ||
               ch == '.';
      });
      if (!ok) {
        throw config_error("--concurrency-key",
                           "\"" + k + "\" is not allowed; allowed: 1 to 100 of A-Z a-z 0-9 - _ .");
      }
    }
    if (o.events && *o.events != "json") {
      throw config_error("--events", "\"" + *o.events + "\" is not supported; allowed: json");
    }
  } catch (const config_error& e) {
    return usage_error(e.what());
  }
  if (o.command.empty()) return usage_error("run: no command given; write it after --");
  if (o.command.front().empty()) return usage_error("run: the command is an empty string");
  std::optional<process_slots> slots;
  if (o.max_concurrency) {
    std::string key =
        o.concurrency_key.value_or(std::filesystem::path(o.command.front()).filename().string());
    for (char& ch : key) {
      if (std::isalnum(static_cast<unsigned char>(ch)) == 0 && ch != '-' && ch != '_' && ch != '.')
        ch = '_';
    }
    // The user's own directory: $XDG_RUNTIME_DIR, else /tmp/rebound-UID
    // (made 0700), so users never share, or block on, each other's slots.
    std::string dir;
    if (o.concurrency_dir) {
      dir = *o.concurrency_dir;
    } else if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x != nullptr && *x != '\0') {
      dir = x;
    } else {
      dir = "/tmp/rebound-" + std::to_string(::getuid());
      if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        return usage_error("cannot make \"" + dir +
                           "\" for the --max-concurrency slots: " + std::strerror(errno));
      }
      struct stat st {};
      if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::getuid()) {
        return usage_error("\"" + dir +
                           "\" is not a directory of this user's; give --concurrency-dir");
      }
    }
    try {
      slots.emplace(dir, key, *o.max_concurrency);
    } catch (const std::runtime_error& e) {
      return usage_error(std::string(o.concurrency_dir ? "--concurrency-dir: " : "") + e.what());
    }
  }
  if (dry_run()) return exit_code::ok;

  std::ofstream events_file;
  std::ostream* json = nullptr;
  if (o.events_file) {
    events_file.open(*o.events_file, std::ios::app);
    if (!events_file) {
      return usage_error("--events-file: cannot open \"" + *o.events_file +
                         "\": " + std::strerror(errno));
    }
    json = &events_file;
  } else if (o.events) {
    json = &std::cerr;
  }
  const bool human = !o.quiet && !(o.events && !o.events_file);

  // Signals: main() blocked them before anything else, and threads inherit
  // that; one thread takes them with sigwait, ends the back-off at once, and
  // forwards them to the child's process group.
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, s);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // Static: the detached signal thread may outlive this function.
  static interrupts irq;
  static std::stop_source stop;
  std::thread([set] {
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      irq.raise(sig);
      stop.request_stop();
      irq.forward_pending(irq.child_group.load());
    }
  }).detach();

  metrics::registry registry;
  std::shared_ptr<observer> obs = std::make_shared<run_observer>(human, json, &irq);
  if (o.metrics_file) {
    obs = std::make_shared<fanout_observer>(std::vector<std::shared_ptr<observer>>{
        obs, std::make_shared<metrics::call_metrics>(registry, "run")});
  }
  const auto policy =
      settings.to_policy().observer(obs).retry_if_error([&](const child_failure& f) -> verdict {
        const child_result& r = f.result;
        switch (r.how) {
          case child_result::kind::timed_out:
            return verdict::transient();
          case child_result::kind::exited:
          case child_result::kind::signalled: {
            const int status = r.shell_status;
            if (no_retry_on.count(status) != 0) return verdict::permanent();
            if (!retry_on.empty() && retry_on.count(status) == 0) return verdict::permanent();
            return verdict::transient();
          }
          default:
            return verdict::permanent();  // not found, cancelled, cannot start
        }
      });

  const std::string& program = o.command.front();
  child_result last;
  call_report report;
  const auto outcome = retry(
      policy,
      [&](const attempt& a) {
        // Each attempt gets --timeout, cut to what is left of --max-time.
        std::optional<duration> limit = timeout;
        bool cut_by_max_time = false;
        if (const auto left = a.remaining()) {
          const duration floor = std::chrono::milliseconds(1);
          const duration cap = std::max(*left, floor);
          cut_by_max_time = !limit || cap < *limit;
          limit = limit ? std::min(*limit, cap) : cap;
        }
        // --max-concurrency: a slot for this attempt, held while the child runs.
        process_slots::held slot;
        if (slots) {
          slot = slots->try_take();
          if (!slot) {
            if (human) {
              std::cerr << "waiting for one of " << *o.max_concurrency
                        << " --max-concurrency slots\n";
            }
            clock& c = system_clock();
            const auto left = a.remaining();
            const time_point until = left ? c.now() + *left : time_point::max();
            slot = slots->take(c, until, a.stop_token());
            if (!slot) {
              last = {};
              last.how = a.stop_token().stop_requested() ? child_result::kind::cancelled
                                                         : child_result::kind::timed_out;
              last.shell_status = last.how == child_result::kind::cancelled ? 130 : 124;
              attempt_outcome out;
              out.failure = {last, "no --max-concurrency slot before --max-time"};
              return out;
            }
          }
          // The wait for the slot counted against --max-time.
          if (const auto left = a.remaining()) {
            const duration cap = std::max(*left, duration(std::chrono::milliseconds(1)));
            if (!limit || cap < *limit) {
              cut_by_max_time = true;
              limit = cap;
            }
          }
        }
        std::optional<std::chrono::milliseconds> ms;
        if (limit) ms = std::chrono::ceil<std::chrono::milliseconds>(*limit);
        last = run_child(o.command, ms, std::chrono::ceil<std::chrono::milliseconds>(kill_after),
                         irq, slot.fd());
        attempt_outcome out;
        out.ok = last.how == child_result::kind::exited && last.code == 0;
        out.failure = {last, cut_by_max_time && last.how == child_result::kind::timed_out
                                 ? std::string("stopped at --max-time")
                                 : describe_failure(last, program, limit)};
        return out;
      },
      {.stop = stop.get_token(), .report = &report});

  if (o.metrics_file) {
    try {
      metrics::write_file(registry, *o.metrics_file);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rebound: --metrics-file: %s\n", e.what());  // the outcome stands
    }
  }
  if (irq.signal() != 0 || report.reason == stop_reason::cancelled) return exit_code::cancelled;
  if (outcome.has_value()) return exit_code::ok;
  if (report.reason == stop_reason::time_exhausted) return exit_code::time_exhausted;
  return last.shell_status;
}

}  // namespace rebound::cli
