// rebound/sim/scenarios.hpp: fleet scenarios that run the library's real policies.
//
// Every scenario drives rebound's own decision step (retry_state::decide),
// budgets, throttles and breakers on simulated time; nothing about a policy
// is re-implemented here. Same seed, same numbers.
//
//   auto r = rebound::sim::run_contention({.clients_from = 100, .clients_to = 100, .trials = 20});
//   auto o = rebound::sim::run_outage({});             // the default policy set
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "rebound/breaker.hpp"
#include "rebound/budget.hpp"
#include "rebound/clock.hpp"
#include "rebound/limits.hpp"
#include "rebound/policy.hpp"

namespace rebound::sim {

/// A named policy for a scenario. `make` builds it on the simulation's clock
/// (so budgets and throttles it carries count simulated time) and is called
/// once per run, so every run starts with fresh budgets.
struct strategy {
  std::string name;
  std::function<retry_policy(clock&)> make;
  /// A circuit breaker in front of the dependency, made fresh per run.
  std::optional<breaker_options> breaker;
  /// A concurrency limiter in front of the dependency (outage and overload
  /// scenarios), made fresh per run: a refused attempt is shed locally.
  std::optional<limiter_options> limiter{};
};

// ---- contention ----------------------------------------------------------

/// The AWS "Exponential Backoff And Jitter" experiment: N clients each read a
/// row and write it back if its version did not change, until their write
/// succeeds; a failed write backs off under the strategy's policy.
struct contention_options {
  int clients_from = 10;
  int clients_to = 190;
  int clients_step = 10;
  int trials = 100;
  duration network_mean = std::chrono::milliseconds(10);  ///< per message, |N(mean, sd)|
  duration network_sd = std::chrono::milliseconds(2);
  std::uint64_t seed = 1;
  /// Threads that run the sweep's points (each point's trials in order, on
  /// its own seeded streams, so the results do not depend on it). 0: one per
  /// core, at most 8.
  int threads = 0;
  std::vector<strategy> strategies{};  ///< empty: aws_strategies()
};

struct contention_point {
  int clients = 0;
  std::string strategy;
  double mean_completion_ms = 0;  ///< until the last client's write succeeded, mean over trials
  double mean_write_calls = 0;    ///< writes sent, all clients, mean over trials
  double max_write_calls = 0;
};

struct contention_result {
  std::vector<std::string> strategies;
  std::vector<contention_point> points;
  std::uint64_t events = 0;
};

/// No backoff, exponential without jitter, full, equal and decorrelated
/// jitter; base 5 ms, cap 2 s, as in the AWS study.
[[nodiscard]] std::vector<strategy> aws_strategies();
[[nodiscard]] contention_result run_contention(const contention_options& o);

// ---- outage --------------------------------------------------------------

/// Open-loop clients send `rate` requests per second to a server that
/// serves `capacity` per second from a FIFO queue of `queue` places; a
/// request not answered within `client_timeout` fails (the server still does
/// the work if it is queued: wasted work, the engine of metastable failures).
/// From `trigger_at` for `trigger_for`, the capacity is multiplied by
/// `trigger_capacity` (0: a full outage, where connections are refused at once).
struct outage_options {
  double rate = 1000;
  double capacity = 1500;
  int queue = 2000;
  duration client_timeout = std::chrono::seconds(1);
  duration length = std::chrono::seconds(60);
  duration trigger_at = std::chrono::seconds(10);
  duration trigger_for = std::chrono::seconds(10);
  double trigger_capacity = 0.3;
  duration bucket = std::chrono::seconds(1);
  std::uint64_t seed = 1;
  std::vector<strategy> strategies{};  ///< empty: default_outage_strategies()
};

struct outage_series {
  std::string strategy;
  // One value per bucket.
  std::vector<double> offered;         ///< logical requests started
  std::vector<double> attempts;        ///< attempts that reached the server (refusals included)
  std::vector<double> goodput;         ///< logical requests that succeeded
  std::vector<double> failed;          ///< logical requests that failed
  std::vector<double> latency_p50_ms;  ///< of the successes ending in the bucket
  std::vector<double> latency_p99_ms;
  double amplification_before = 0;  ///< server attempts / offered requests
  double amplification_during = 0;
  double amplification_after = 0;
  double goodput_ratio_end = 0;  ///< goodput / offered over the last quarter of the run
  bool recovered = false;        ///< goodput_ratio_end >= 0.9
  std::uint64_t started = 0, succeeded = 0, failures = 0, in_flight = 0;
  std::uint64_t wasted = 0;          ///< requests the server completed after their client gave up
  std::uint64_t shed = 0;            ///< attempts a concurrency limiter refused locally
  std::vector<double> limit;         ///< the limiter's limit at the end of each bucket (0: none)
  double goodput_ratio_during = 0;   ///< goodput / offered during the trigger
  double latency_p99_ms_during = 0;  ///< p99 of the successes that ended during the trigger
  /// Seconds from the trigger's end to the first bucket whose goodput is at
  /// least 90% of what was offered; -1 when that never happens.
  double recovery_s = -1;
};

struct outage_result {
  std::vector<outage_series> series;
  std::uint64_t events = 0;
};

/// No retry; 3 retries (exponential 100ms..1s, full jitter); 3 retries with
/// each budget (token bucket, ratio, gRPC throttle); with a breaker; with
/// adaptive throttling.
[[nodiscard]] std::vector<strategy> default_outage_strategies();
/// The overload comparison: 3 retries with a ratio budget alone, and with a
/// fixed concurrency limit (100), AIMD, Gradient2 and Vegas (Netflix's
/// defaults) in front of the server. Run them with run_outage.
[[nodiscard]] std::vector<strategy> default_overload_strategies();
[[nodiscard]] outage_result run_outage(const outage_options& o);

// ---- overload against a FIFO server, closed loop ------------------------------

/// `callers` clients each send a request, wait for its answer and send the
/// next (a closed loop, as worker pools and connection pools do) to a server
/// that runs `workers` requests at once, each for `service_time`, and queues
/// the rest in order (FIFO, unbounded): the latency a caller sees is the
/// queue's wait plus the service time, and nothing fails. A concurrency
/// limiter in front sheds what is over its limit (the call ends overloaded,
/// as pipeline's limit_exceeded_error does); a shed caller waits
/// `shed_pause` before its next request. This is the regime where latency is
/// the only overload signal.
struct fifo_options {
  int callers = 32;
  int workers = 8;
  duration service_time = std::chrono::milliseconds(20);
  duration shed_pause = std::chrono::milliseconds(10);
  duration length = std::chrono::seconds(30);
  duration bucket = std::chrono::seconds(1);
  std::uint64_t seed = 1;
  std::vector<strategy> strategies{};  ///< empty: default_fifo_strategies()
};

struct fifo_series {
  std::string strategy;
  std::uint64_t served = 0;  ///< requests answered
  std::uint64_t shed = 0;    ///< requests the limiter refused
  double served_per_s = 0;
  double latency_p50_ms = 0;  ///< of the answered requests, as their caller saw them
  double latency_p99_ms = 0;
  /// The limiter's limit over the run (0 without a limiter): its lowest and
  /// highest after the first second, and at the end.
  int limit_min = 0, limit_max = 0, limit_end = 0;
  std::vector<double> limit;  ///< at the end of each bucket
  std::vector<double> latency_p99_ms_per_bucket;
};

struct fifo_result {
  std::vector<fifo_series> series;
  std::uint64_t events = 0;
};

/// No limiter; a fixed limit of 8; AIMD, Gradient2 and Vegas with Netflix's
/// defaults; Gradient2 with its limits at 4..16.
[[nodiscard]] std::vector<strategy> default_fifo_strategies();
/// Throws std::invalid_argument for callers or workers below 1, a zero
/// service_time, shed_pause or bucket, or a length shorter than one bucket.
[[nodiscard]] fifo_result run_fifo_overload(const fifo_options& o);

// ---- replica-lag -----------------------------------------------------------

/// Read-after-write against a replica that lags behind the primary. Each
/// write's lag is exponential (mean `lag_mean`) except, with probability
/// `spike_probability`, uniform in [spike_min, spike_max] (a write spike).
/// The read follows the write after `read_after`.
struct replica_lag_options {
  double rate = 200;  ///< writes (each followed by a read) per second
  duration length = std::chrono::seconds(60);
  duration read_after = std::chrono::milliseconds(20);
  duration lag_mean = std::chrono::milliseconds(15);
  double spike_probability = 0.05;
  duration spike_min = std::chrono::milliseconds(500);
  duration spike_max = std::chrono::seconds(3);
  duration replica_latency = std::chrono::milliseconds(2);  ///< |N(x, x/4)| per query
  duration primary_latency = std::chrono::milliseconds(4);
  std::uint64_t seed = 1;
};

struct replica_lag_row {
  std::string strategy;
  std::uint64_t reads = 0;
  double error_rate = 0;       ///< reads answered "not found" although the row exists
  double primary_share = 0;    ///< reads the primary served
  double replica_queries = 0;  ///< replica queries per read (reads and LSN polls)
  double latency_p50_ms = 0, latency_p99_ms = 0, latency_max_ms = 0;
};

struct replica_lag_result {
  std::vector<replica_lag_row> rows;
  std::uint64_t events = 0;
};

/// Strategies: naive replica reads; the pg router's default retry-then-primary
/// (one retry after U(50ms, 200ms), then the primary: scenario 001); the pg
/// router's default LSN wait (poll the replica's replay position from 1 ms
/// doubling to 20 ms, none past 1 s, then the primary); primary only. The
/// policies are pg::router_options{}'s, run by the call engine as the router
/// runs them.
[[nodiscard]] replica_lag_result run_replica_lag(const replica_lag_options& o);

// ---- layers --------------------------------------------------------------

/// A call chain `depth` layers deep, each layer retrying with up to
/// `attempts` attempts; the bottom fails with probability `failure_rate`.
/// Runs the real blocking retry loop, nested, on a simulated clock.
struct layers_options {
  int depth = 3;
  int attempts = 3;
  int requests = 1000;
  double failure_rate = 1.0;
  std::uint64_t seed = 1;
};

struct layers_row {
  std::string mode;  ///< "independent" or "guarded"
  double mean_bottom_attempts = 0;
  double max_bottom_attempts = 0;
  double success_rate = 0;
};

struct layers_result {
  std::vector<layers_row> rows;
};

[[nodiscard]] layers_result run_layers(const layers_options& o);

// ---- hedging -------------------------------------------------------------

/// Open-loop requests at `rate` to a dependency whose answer time is
/// lognormal (median `latency_median`, shape `latency_sigma`) except, with
/// probability `slow_probability`, uniform in [slow_min, slow_max] (a slow
/// tail: GC pauses, cold caches, a bad host). Each attempt draws its own
/// time; a hedge is a second attempt racing the first, and the loser is
/// cancelled when the winner answers.
struct hedging_options {
  double rate = 200;
  duration length = std::chrono::seconds(60);
  duration latency_median = std::chrono::milliseconds(10);
  double latency_sigma = 0.3;
  double slow_probability = 0.05;
  duration slow_min = std::chrono::milliseconds(200);
  duration slow_max = std::chrono::seconds(1);
  /// Fixed extra delays, each with its own probability (a server that
  /// sleeps before it answers, as gRPC-Java's hedging example does: 1% 10 s,
  /// 4% 5 s, 5% 2 s). When set, they replace the uniform slow tail; the
  /// probabilities add up to at most 1.
  struct tier {
    double probability = 0;
    duration delay{};
  };
  std::vector<tier> tiers{};
  /// Stop after this many requests (0: arrivals for `length`).
  std::uint64_t requests = 0;
  std::uint64_t seed = 1;
  std::vector<strategy> strategies{};  ///< empty: default_hedging_strategies()
};

struct hedging_row {
  std::string strategy;
  std::uint64_t requests = 0;
  std::uint64_t completed = 0;  ///< requests answered (all of them: the run drains)
  double latency_p50_ms = 0, latency_p90_ms = 0, latency_p95_ms = 0, latency_p99_ms = 0,
         latency_p999_ms = 0, latency_max_ms = 0;
  double attempts_per_request = 0;   ///< 1 + hedges per request: the extra load
  double server_ms_per_request = 0;  ///< server time per request, losers until cancelled
  std::uint64_t hedges = 0;
  std::uint64_t hedges_refused = 0;  ///< by the retry budget
};

struct hedging_result {
  std::vector<hedging_row> rows;
  std::uint64_t events = 0;
};

/// No hedge; one hedge after 10, 25, 50 or 100 ms; one hedge at the observed
/// p90 or p95; one hedge after 10 ms limited by a 5% ratio budget.
[[nodiscard]] std::vector<strategy> default_hedging_strategies();
[[nodiscard]] hedging_result run_hedging(const hedging_options& o);

// ---- fleet ---------------------------------------------------------------

/// `processes` processes each send `rate_per_process` requests per second to
/// one dependency, which refuses every connection from `trigger_at` for
/// `trigger_for`. Each request is retried up to 3 times (exponential 100ms..1s,
/// full jitter) under a ratio budget (`ratio`), with per-process budgets and
/// breakers, or with one budget and one breaker view shared by the fleet (as
/// rebound::redis provides: a shared open state seen at each process's next
/// poll, `poll_interval`, and one fleet-wide half-open probe).
struct fleet_options {
  int processes = 1000;
  double rate_per_process = 1.0;
  duration length = std::chrono::seconds(60);
  duration trigger_at = std::chrono::seconds(10);
  duration trigger_for = std::chrono::seconds(20);
  duration latency = std::chrono::milliseconds(20);  ///< answer time when up
  ratio_budget::options ratio{.ratio = 0.1, .min_per_second = 10};
  breaker_options breaker{.failure_threshold = 5, .open_duration = std::chrono::seconds(5)};
  duration poll_interval = std::chrono::milliseconds(100);
  /// The shared budget's flush interval and lease size (redis::options').
  duration flush_interval = std::chrono::milliseconds(100);
  int lease_size = 10;
  /// The fleet size a process assumes before it ever reached Redis (the
  /// share's divisor when Redis is down from the start).
  int expected_fleet_size = 1;
  std::uint64_t seed = 1;
};

struct fleet_row {
  std::string strategy;
  double offered_per_s = 0;          ///< logical requests per second, fleet-wide, during the outage
  double attempts_per_s_during = 0;  ///< attempts reaching the dependency per second, during
  double retries_per_s_during = 0;   ///< of which retries
  double amplification_during = 0;   ///< attempts / offered, during
  /// From the outage's start until half the fleet knows of it (its own
  /// breaker opened, or it saw the shared open state at a poll), and until
  /// every process does (-1: no breakers, or some process never knew).
  double detect_p50_s = -1;
  double detect_all_s = -1;
  std::uint64_t probes_during = 0;  ///< half-open probes sent during the outage
  double goodput_after = 0;         ///< share of requests that succeeded after the outage
};

struct fleet_result {
  std::vector<fleet_row> rows;
  std::uint64_t events = 0;
};

/// Per-process budgets; one shared budget; per-process budgets and
/// breakers; a shared budget and a shared breaker.
[[nodiscard]] fleet_result run_fleet(const fleet_options& o);

}  // namespace rebound::sim
