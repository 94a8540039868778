// Starts, stops and restarts one kvd process for benchmarks.
//
// Unlike kv::testing::KvdProcess (tests/integration), the binary is chosen by
// the caller (a benchmark's --kvd flag), the process can be pinned to one CPU,
// readiness is polled every 2 ms (restart times are measured), stopping is
// bounded in time, and the log can be read from an offset (to show what one
// benchmark case logged).
//
// The child gets PR_SET_PDEATHSIG = SIGKILL: if the benchmark dies, its kvd
// processes do not outlive it.
//
// Thread safety: not thread-safe; one thread uses a KvdServer at a time.
#ifndef KV_TESTS_BENCH_BENCH_PROCESS_H_
#define KV_TESTS_BENCH_BENCH_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kv::bench {

struct KvdServerOptions {
  std::string binary;    // Path of kvd.
  std::string data_dir;  // --data-dir; DIR.log and DIR.ready beside it.
  std::string listen =
      "127.0.0.1:0";              // --listen; fix the port to restart in place.
  std::vector<std::string> args;  // Further kvd flags.
  int cpu = -1;                   // >= 0: pin the process to this CPU.
};

class KvdServer {
 public:
  explicit KvdServer(KvdServerOptions options);
  ~KvdServer();  // SIGKILLs the process if it still runs.

  KvdServer(const KvdServer&) = delete;
  KvdServer& operator=(const KvdServer&) = delete;

  // Forks and execs kvd, then waits (polling every 2 ms) until it has written
  // its ready file, i.e. it serves gRPC.
  // Errors: FAILED_PRECONDITION when it is already running; INTERNAL when
  // fork fails or the process exits during start; DEADLINE_EXCEEDED when it
  // is not ready within `timeout` (it is then killed). The messages carry the
  // tail of its log.
  absl::Status Start(absl::Duration timeout);

  // SIGTERM, then waits up to `timeout` for the exit; on timeout SIGKILL.
  // Returns the wait status (as waitpid's). Errors: FAILED_PRECONDITION when
  // not running; DEADLINE_EXCEEDED when it had to be killed.
  absl::StatusOr<int> Terminate(absl::Duration timeout);

  // SIGKILL and reap: the crash case. A no-op when not running.
  void Kill();

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // host:port it serves on (valid after a successful Start).
  const std::string& address() const { return address_; }
  const std::string& log_path() const { return log_path_; }

  // Current size of the log file in bytes (0 when missing).
  int64_t LogSize() const;
  // The log from byte `offset` on.
  std::string LogFrom(int64_t offset) const;
  // The last `bytes` bytes of the log.
  std::string LogTail(int64_t bytes = 4096) const;

 private:
  const KvdServerOptions options_;
  const std::string log_path_;
  const std::string ready_path_;
  std::string address_;
  pid_t pid_ = -1;
};

}  // namespace kv::bench

#endif  // KV_TESTS_BENCH_BENCH_PROCESS_H_
