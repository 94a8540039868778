// kill -9 right after acknowledged writes: after a restart every acknowledged
// write is there, with the acknowledged version.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "client/client.h"
#include "tests/integration/kvd_process.h"

namespace kv::testing {
namespace {

struct Acked {
  std::string key;
  std::string value;
  client::Version version;
};

void CrashAndCheck(std::vector<std::string> args) {
  TempDir dir;
  KvdProcess kvd(dir.path() + "/node", args);
  ASSERT_TRUE(kvd.Start().ok());
  auto client = std::move(*client::Client::Connect(kvd.address()));

  constexpr int kThreads = 8, kPerThread = 250;
  std::vector<std::vector<Acked>> acked(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Acked a{"t" + std::to_string(t) + "/" + std::to_string(i),
                std::string(100, 'a' + (i % 26)), {}};
        // Every fifth write overwrites an earlier key: the newest must win.
        if (i % 5 == 4) a.key = "t" + std::to_string(t) + "/" + std::to_string(i - 4);
        auto v = i % 7 == 6 ? client->Delete(a.key) : client->Put(a.key, a.value);
        ASSERT_TRUE(v.ok()) << v.status();
        if (i % 7 == 6) a.value.clear();
        a.version = *v;
        acked[t].push_back(a);
      }
    });
  }
  for (auto& th : threads) th.join();
  kvd.Kill();  // Right after the last acknowledgement.

  ASSERT_TRUE(kvd.Start().ok());
  client = std::move(*client::Client::Connect(kvd.address()));
  int checked = 0;
  for (const auto& per_thread : acked) {
    std::map<std::string, Acked> newest;
    for (const Acked& a : per_thread) newest[a.key] = a;
    for (const auto& [key, a] : newest) {
      auto got = client->Get(key);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(got->version, a.version) << key;
      EXPECT_EQ(got->found, !a.value.empty()) << key;
      EXPECT_EQ(got->value, a.value) << key;
      ++checked;
    }
  }
  EXPECT_GT(checked, 1000);
  // The Merkle tree came back consistent with the data.
  auto verify = client->VerifyTree();
  ASSERT_TRUE(verify.ok());
  EXPECT_TRUE(verify->matched());
}

TEST(CrashTest, AcknowledgedWritesSurviveKill9) { CrashAndCheck({}); }

TEST(CrashTest, AcknowledgedWritesSurviveKill9WithSync) { CrashAndCheck({"--sync"}); }

}  // namespace
}  // namespace kv::testing
