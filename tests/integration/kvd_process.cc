#include "tests/integration/kvd_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace kv::testing {
namespace fs = std::filesystem;

std::string KvdPath() {
  // KV_TEST_KVD runs the tests against another kvd (e.g. one built before a
  // fix, to see a test fail).
  const char* other = std::getenv("KV_TEST_KVD");
  return other != nullptr && *other != '\0' ? other : KV_KVD_PATH;
}
std::string KvctlPath() { return KV_KVCTL_PATH; }

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "kvtest_XXXXXX").string();
  path_ = mkdtemp(tmpl.data());
}
TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

KvdProcess::KvdProcess(KvdProcessOptions options)
    : options_(std::move(options)),
      log_path_(options_.data_dir + ".log"),
      ready_path_(options_.data_dir + ".ready") {}

KvdProcess::KvdProcess(std::string data_dir,
                       std::vector<std::string> extra_args)
    : KvdProcess(KvdProcessOptions{.data_dir = std::move(data_dir),
                                   .args = std::move(extra_args)}) {}

KvdProcess::~KvdProcess() { Kill(); }

absl::Status KvdProcess::Start(absl::Duration timeout) {
  if (pid_ > 0) return absl::FailedPreconditionError("kvd is already running");
  std::error_code ec;
  fs::remove(ready_path_, ec);
  std::vector<std::string> args = {
      options_.binary,   "--listen",     options_.listen, "--data-dir",
      options_.data_dir, "--ready-file", ready_path_};
  args.insert(args.end(), options_.args.begin(), options_.args.end());
  std::vector<char*> cargs;
  for (std::string& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  }
  if (pid == 0) {
    // Only async-signal-safe calls from here to exec.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);  // The parent died before prctl.
    if (options_.cpu >= 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(options_.cpu, &set);
      sched_setaffinity(0, sizeof(set), &set);
    }
    const int fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execv(cargs[0], cargs.data());
    _exit(127);
  }
  pid_ = pid;
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError(
          absl::StrCat(options_.binary, " exited at start (status ", status,
                       "); log tail:\n", LogTail()));
    }
    std::ifstream ready(ready_path_);
    std::string addr;
    if (ready && std::getline(ready, addr) && !addr.empty()) {
      address_ = addr;
      return absl::OkStatus();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  Kill();
  return absl::DeadlineExceededError(absl::StrCat("kvd was not ready within ",
                                                  absl::FormatDuration(timeout),
                                                  "; log tail:\n", LogTail()));
}

absl::StatusOr<int> KvdProcess::Terminate(absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("kvd is not running");
  kill(pid_, SIGTERM);
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  Kill();
  return absl::DeadlineExceededError(absl::StrCat("kvd did not exit within ",
                                                  absl::FormatDuration(timeout),
                                                  " of SIGTERM; killed"));
}

void KvdProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

int64_t KvdProcess::LogSize() const {
  std::error_code ec;
  const auto size = fs::file_size(log_path_, ec);
  return ec ? 0 : static_cast<int64_t>(size);
}

std::string KvdProcess::LogFrom(int64_t offset) const {
  std::ifstream in(log_path_, std::ios::binary);
  if (!in) return "";
  in.seekg(offset);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string KvdProcess::LogTail(int64_t bytes) const {
  return LogFrom(std::max<int64_t>(0, LogSize() - bytes));
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

CommandResult RunCommand(const std::vector<std::string>& argv,
                         const std::string& stdin_data) {
  TempDir tmp;
  const std::string in_path = tmp.path() + "/in", out_path = tmp.path() + "/out",
                    err_path = tmp.path() + "/err";
  std::ofstream(in_path) << stdin_data;
  // Everything the child needs is built before fork: after it, only
  // async-signal-safe calls (the test process has gRPC threads).
  std::vector<char*> cargs;
  for (auto& a : argv) cargs.push_back(const_cast<char*>(a.c_str()));
  cargs.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    int in = open(in_path.c_str(), O_RDONLY);
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    execv(cargs[0], cargs.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  auto slurp = [](const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

bool WaitFor(const std::function<bool()>& pred, absl::Duration timeout,
             absl::Duration poll) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (pred()) return true;
    absl::SleepFor(poll);
  }
  return pred();
}

}  // namespace kv::testing
