// kvd with its data directory on a small tmpfs that fills up: a write is
// answered OK only if it is stored; the others fail with RESOURCE_EXHAUSTED
// (the disk is full). After space is freed and kvd restarted, every write
// answered OK is there. Needs the right to mount (root, CAP_SYS_ADMIN):
// skipped otherwise.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "tests/integration/kvd_process.h"

namespace kv::testing {
namespace {

std::string Describe(const std::map<absl::StatusCode, int64_t>& codes) {
  std::string s;
  for (const auto& [code, n] : codes) {
    absl::StrAppend(&s, s.empty() ? "" : ", ", absl::StatusCodeToString(code), " ", n);
  }
  return s;
}

TEST(DiskFullTest, NoWriteIsAnsweredOkWithoutBeingStored) {
  TempDir dir;
  const std::string mnt = dir.path() + "/mnt";
  ASSERT_EQ(mkdir(mnt.c_str(), 0755), 0);
  CommandResult mount =
      RunCommand({"/usr/bin/mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt});
  if (mount.exit_code != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): "
                 << mount.err;
  }
  // Unmounted whatever happens below; kvd (declared later) is killed first.
  absl::Cleanup unmount = [&mnt] {
    CommandResult r = RunCommand({"/usr/bin/umount", mnt});
    if (r.exit_code != 0) r = RunCommand({"/usr/bin/umount", "-l", mnt});
    EXPECT_EQ(r.exit_code, 0) << "umount " << mnt << ": " << r.err;
  };
  // The data on the tmpfs; kvd's log and ready file (beside the data dir's
  // path) stay on the real disk.
  ASSERT_EQ(mkdir((mnt + "/data").c_str(), 0755), 0);
  const std::string data_dir = dir.path() + "/node";
  ASSERT_EQ(symlink((mnt + "/data").c_str(), data_dir.c_str()), 0);
  KvdProcessOptions o;
  o.data_dir = data_dir;
  o.listen = "127.0.0.1:" + std::to_string(FreePort());
  KvdProcess kvd(o);
  ASSERT_TRUE(kvd.Start().ok()) << kvd.LogTail();

  // Writers until each has seen 20 failures in a row (the disk stays full).
  absl::Mutex mu;
  std::vector<std::pair<std::string, client::Version>> acked;
  std::map<absl::StatusCode, int64_t> codes;
  std::string first_error;
  std::vector<std::thread> writers;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      client::ClientOptions options;
      options.timeout = absl::Seconds(10);
      auto c = client::Client::Connect(kvd.address(), options);
      if (!c.ok()) return;
      int failures_in_a_row = 0;
      for (int i = 0; i < 100'000 && failures_in_a_row < 20 && absl::Now() < deadline;
           ++i) {
        const std::string key = absl::StrCat("w", t, "/", i);
        absl::StatusOr<client::Version> v = (*c)->Put(key, std::string(4096, 'a' + i % 26));
        failures_in_a_row = v.ok() ? 0 : failures_in_a_row + 1;
        absl::MutexLock lock(&mu);
        ++codes[v.status().code()];
        if (v.ok()) {
          acked.emplace_back(key, *v);
        } else if (first_error.empty()) {
          first_error = v.status().ToString();
        }
      }
    });
  }
  for (auto& w : writers) w.join();
  std::printf("8 MiB tmpfs: %s; first error: %s\n", Describe(codes).c_str(),
              first_error.c_str());
  ASSERT_GT(acked.size(), 100u) << Describe(codes);
  ASSERT_FALSE(first_error.empty()) << "the disk never filled up: " << Describe(codes);
  // Full disk: a clear error, nothing else.
  EXPECT_EQ(codes.size(), 2u) << Describe(codes);
  EXPECT_GT(codes[absl::StatusCode::kResourceExhausted], 0) << Describe(codes);
  EXPECT_NE(first_error.find("No space left"), std::string::npos) << first_error;
  // kvd is still up: it serves the acknowledged writes and refuses new ones.
  auto still = client::Client::Connect(kvd.address());
  ASSERT_TRUE(still.ok());
  auto read = (*still)->Get(acked.front().first);
  ASSERT_TRUE(read.ok()) << read.status() << "\n" << kvd.LogTail(3000);
  EXPECT_TRUE(read->found);
  EXPECT_EQ((*still)->Put("while-full", "x").status().code(),
            absl::StatusCode::kResourceExhausted);

  // Free space (the tmpfs grows), restart on the same data.
  (void)kvd.Terminate(absl::Seconds(20));
  CommandResult grow = RunCommand({"/usr/bin/mount", "-o", "remount,size=64m", mnt});
  ASSERT_EQ(grow.exit_code, 0) << grow.err;
  ASSERT_TRUE(kvd.Start().ok()) << kvd.LogTail();
  auto c = client::Client::Connect(kvd.address());
  ASSERT_TRUE(c.ok());
  int missing = 0;
  for (const auto& [key, v] : acked) {
    absl::StatusOr<client::GetResult> got = (*c)->Get(key);
    ASSERT_TRUE(got.ok()) << got.status();
    if (!got->found || !(got->version == v)) {
      if (++missing <= 3) ADD_FAILURE() << "write " << key << " was answered OK but is lost";
    }
  }
  EXPECT_EQ(missing, 0) << "of " << acked.size();
  // And it takes writes again.
  EXPECT_TRUE((*c)->Put("after", "space").ok());
  auto verify = (*c)->VerifyTree();
  ASSERT_TRUE(verify.ok()) << verify.status();
  EXPECT_TRUE(verify->matched());
  kvd.Kill();
}

}  // namespace
}  // namespace kv::testing
