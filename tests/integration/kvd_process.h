// Starts and stops real kvd processes for integration tests and benchmarks.
//
// KvdProcess runs one kvd: a binary of the caller's choice (default
// KvdPath()), optionally pinned to one CPU. Readiness is polled every 2 ms (so
// that benchmarks can time restarts), every wait is bounded, and the log can
// be read whole, from an offset or by its tail.
//
// The child gets PR_SET_PDEATHSIG = SIGKILL: it is killed when the thread that
// started it exits, so the kvd processes of a test or benchmark that dies do
// not outlive it.
//
// Thread safety: not thread-safe; one thread uses a KvdProcess at a time (and
// it should be the thread that outlives the process, see above). The free
// functions are thread-safe.
#ifndef KV_TESTS_INTEGRATION_KVD_PROCESS_H_
#define KV_TESTS_INTEGRATION_KVD_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kv::testing {

// Paths of the binaries under test (set by CMake).
std::string KvdPath();
std::string KvctlPath();

// A fresh directory under the system temp dir, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct KvdProcessOptions {
  std::string binary = KvdPath();  // Path of kvd.
  std::string data_dir;  // --data-dir; DIR.log and DIR.ready beside it.
  // --listen; the default is a free port chosen by the kernel. Fix the port
  // to restart in place or to tell peers the address before the start.
  std::string listen = "127.0.0.1:0";
  std::vector<std::string> args;  // Further kvd flags.
  int cpu = -1;                   // >= 0: pin the process to this CPU.
};

class KvdProcess {
 public:
  explicit KvdProcess(KvdProcessOptions options);
  // The default binary on a free port: `data_dir` holds the node's data,
  // `extra_args` are added to the flags.
  explicit KvdProcess(std::string data_dir,
                      std::vector<std::string> extra_args = {});
  ~KvdProcess();  // SIGKILLs the process if it still runs.

  KvdProcess(const KvdProcess&) = delete;
  KvdProcess& operator=(const KvdProcess&) = delete;

  // Forks and execs kvd, then waits (polling every 2 ms) until it has written
  // its ready file, i.e. it serves gRPC.
  // Errors: FAILED_PRECONDITION when it is already running; INTERNAL when
  // fork fails or the process exits during start; DEADLINE_EXCEEDED when it
  // is not ready within `timeout` (it is then killed). The messages carry the
  // tail of its log.
  absl::Status Start(absl::Duration timeout = absl::Seconds(20));

  // SIGTERM, then waits up to `timeout` for the exit; on timeout SIGKILL.
  // Returns the wait status (as waitpid's). Errors: FAILED_PRECONDITION when
  // not running; DEADLINE_EXCEEDED when it had to be killed.
  absl::StatusOr<int> Terminate(absl::Duration timeout = absl::Seconds(30));

  // SIGKILL and reap, no cleanup: the crash case. A no-op when not running.
  void Kill();

  // The address to listen on from the next Start.
  void set_listen(std::string address) { options_.listen = std::move(address); }

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // host:port it serves on (valid after a successful Start).
  const std::string& address() const { return address_; }
  const std::string& log_path() const { return log_path_; }

  // Everything it wrote to stdout and stderr, over all its starts.
  std::string Log() const { return LogFrom(0); }
  // Current size of the log file in bytes (0 when missing).
  int64_t LogSize() const;
  // The log from byte `offset` on ("" when missing).
  std::string LogFrom(int64_t offset) const;
  // The last `bytes` bytes of the log.
  std::string LogTail(int64_t bytes = 4096) const;

 private:
  KvdProcessOptions options_;
  const std::string log_path_;
  const std::string ready_path_;
  std::string address_;
  pid_t pid_ = -1;
};

// A loopback port that was free a moment ago (for nodes that must know each
// other's addresses before they start).
int FreePort();

// Runs a command with optional stdin; captures stdout and stderr.
struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
CommandResult RunCommand(const std::vector<std::string>& argv,
                         const std::string& stdin_data = "");

// Polls `pred` every `poll` until it holds or `timeout` has passed; returns
// its last value. The one bounded wait of the integration tests.
bool WaitFor(const std::function<bool()>& pred, absl::Duration timeout,
             absl::Duration poll = absl::Milliseconds(50));

}  // namespace kv::testing

#endif  // KV_TESTS_INTEGRATION_KVD_PROCESS_H_
