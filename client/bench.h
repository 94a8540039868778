// The closed-loop benchmark behind `kvctl bench`.
//
// RunBench keeps exactly `concurrency` calls in flight with gRPC's callback
// API: each of `concurrency` slots starts its next call from the completion
// callback of the previous one, so no thread blocks per call. Slots are spread
// round-robin over `channels` channels, each with its own TCP connection.
//
// Keys are "key%010d" with the number uniform in [0, keys). put and mixed
// write values of `value_size` pseudo-random printable bytes; mixed is 50% get
// and 50% put. With `preload`, get and mixed first write every key with
// BatchWrite (same concurrency), not measured.
//
// Latency is measured per call with a steady clock, from just before the call
// is started to the start of its completion callback, for successful calls
// only. ops/s counts successful calls over the time from the start until the
// last call in flight at the end of `duration` has finished.
//
// Thread safety: RunBench may be called from one thread at a time; it
// writes the progress line to stderr.
#ifndef KV_CLIENT_BENCH_H_
#define KV_CLIENT_BENCH_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/client.h"

namespace kv::client {

enum class Workload { kPing, kGet, kPut, kMixed };

// "ping", "get", "put", "mixed". INVALID_ARGUMENT otherwise.
absl::StatusOr<Workload> ParseWorkload(absl::string_view name);
const char* WorkloadName(Workload w);

struct BenchOptions {
  Workload workload = Workload::kPing;
  absl::Duration duration = absl::Seconds(10);
  int concurrency = 32;    // Calls in flight. REQUIRES: > 0.
  int channels = 1;        // REQUIRES: > 0.
  uint64_t keys = 100000;  // REQUIRES: > 0 for get, put and mixed.
  int value_size = 100;    // Bytes. REQUIRES: >= 0.
  bool preload = false;    // Used by get and mixed only.
  uint64_t seed = 1;
  bool progress = false;  // Write a live "\r" progress line to stderr.
  // Of the get and put calls (not of the preload).
  Consistency consistency = Consistency::kOne;
};

struct BenchResult {
  Workload workload = Workload::kPing;
  int concurrency = 0;
  int channels = 0;
  uint64_t seed = 0;
  double elapsed_s = 0;
  uint64_t ops = 0;     // Successful calls.
  uint64_t errors = 0;  // Failed calls.
  double ops_per_sec = 0;
  // Latency of successful calls, microseconds.
  double p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, max_us = 0,
         mean_us = 0;
  std::string first_error;  // "CODE: message" of the first failure, or "".
};

// Runs the benchmark against `endpoint`. Returns a result also when calls
// failed (see errors/first_error). Errors: INVALID_ARGUMENT for bad options;
// UNAVAILABLE when the endpoint cannot be reached within options.timeout
// before the run starts; the first error of a failed preload.
absl::StatusOr<BenchResult> RunBench(const std::string& endpoint,
                                     const ClientOptions& client_options,
                                     const BenchOptions& options);

// One line: "<workload>: <N> ops/s ... latency p50 ..us ... errors".
std::string FormatBenchText(const BenchResult& r);
// The same as one JSON object (no trailing newline).
std::string FormatBenchJson(const BenchResult& r);

}  // namespace kv::client

#endif  // KV_CLIENT_BENCH_H_
