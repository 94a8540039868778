// Starts and stops real kvd processes for integration tests.
//
// Thread safety: one test thread uses a KvdProcess at a time.
#ifndef KV_TESTS_INTEGRATION_KVD_PROCESS_H_
#define KV_TESTS_INTEGRATION_KVD_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"

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

class KvdProcess {
 public:
  // `data_dir` holds the node's data; `extra_args` are added to the flags.
  KvdProcess(std::string data_dir, std::vector<std::string> extra_args = {});
  ~KvdProcess();  // Kills the process (SIGKILL) if it still runs.

  // Starts kvd on a free loopback port and waits until it serves (the ready
  // file appears). Errors: INTERNAL when it exits or does not come up in 20 s
  // (the message has the tail of its log).
  absl::Status Start();
  // The address to listen on from the next Start (default 127.0.0.1:0, a
  // free port chosen by the kernel).
  void set_listen(std::string address) { listen_ = std::move(address); }
  // SIGKILL, no cleanup: the crash case.
  void Kill();
  // SIGTERM and wait; returns the exit status (as waitpid's) or -1.
  int Terminate();
  bool running() const { return pid_ > 0; }

  // host:port it serves on (valid after Start).
  const std::string& address() const { return address_; }
  std::string Log() const;  // Everything it wrote to stderr/stdout.

 private:
  std::string data_dir_;
  std::vector<std::string> extra_args_;
  std::string log_path_;
  std::string ready_path_;
  std::string listen_ = "127.0.0.1:0";
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

}  // namespace kv::testing

#endif  // KV_TESTS_INTEGRATION_KVD_PROCESS_H_
