// Backup and restore with real kvd processes: `kvctl snapshot save` under a
// write load, `kvd --restore-from` into a new node that joins and catches up
// through anti-entropy (every key written before the snapshot is there,
// deletes made after it stay deleted), the restored node's id differs; and
// what is refused (restoring into a non-empty data directory, serving from
// a snapshot directory, saving over an existing directory).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/client.h"
#include "tests/integration/kvd_process.h"

namespace kv::testing {
namespace {

using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::unique_ptr<client::Client> Connect(const KvdProcess& kvd) {
  auto c = client::Client::Connect(kvd.address());
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? std::move(*c) : nullptr;
}

absl::Status PutRange(client::Client& c, const std::string& prefix, int from, int to,
                      bool is_delete = false) {
  for (int start = from; start < to; start += 500) {
    std::vector<client::Mutation> batch;
    for (int i = start; i < std::min(to, start + 500); ++i) {
      batch.push_back({absl::StrCat(prefix, i), is_delete ? "" : "v", is_delete, {}});
    }
    auto r = c.BatchWrite(batch);
    if (!r.ok()) return r.status();
  }
  return absl::OkStatus();
}

CommandResult Kvctl(const KvdProcess& kvd, std::vector<std::string> args) {
  std::vector<std::string> argv = {KvctlPath(), "--endpoint", kvd.address()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv);
}

bool WaitConverged(client::Client& a, client::Client& b, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto sa = a.Stats();
    auto sb = b.Stats();
    if (sa.ok() && sb.ok() && sa->root_digest() == sb->root_digest()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

TEST(SnapshotTest, SaveUnderLoadRestoreAsNewNodeJoinAndConverge) {
  TempDir dir;
  KvdProcess a(dir.path() + "/a", {"--name", "a", "--ae-interval-ms", "100"});
  ASSERT_TRUE(a.Start().ok()) << a.LogTail();
  auto ca = Connect(a);
  ASSERT_NE(ca, nullptr);
  ASSERT_TRUE(PutRange(*ca, "pre", 0, 5000).ok());
  ASSERT_TRUE(PutRange(*ca, "pre", 0, 100, /*is_delete=*/true).ok());

  // A writer keeps going while the snapshot is taken; keys acknowledged
  // before the snapshot call started must all be in it.
  std::atomic<bool> stop{false};
  std::atomic<int> acked{0};
  std::thread writer([&] {
    auto c = client::Client::Connect(a.address());
    ASSERT_TRUE(c.ok());
    for (int i = 0; !stop.load(); ++i) {
      ASSERT_TRUE((*c)->Put(absl::StrCat("load", i), "x").ok());
      acked.store(i + 1);
    }
  });
  while (acked.load() < 200) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const int acked_before = acked.load();
  const std::string snap = dir.path() + "/snap";
  CommandResult saved = Kvctl(a, {"snapshot", "save", snap});
  const int acked_after_snapshot = acked.load();
  ASSERT_EQ(saved.exit_code, 0) << saved.err;
  EXPECT_THAT(saved.out, HasSubstr("snapshot of node a ("));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  stop = true;
  writer.join();
  EXPECT_GT(acked.load(), acked_after_snapshot) << "writes went on during the snapshot";

  // After the snapshot: deletes and writes it does not hold.
  ASSERT_TRUE(PutRange(*ca, "pre", 100, 200, /*is_delete=*/true).ok());
  ASSERT_TRUE(PutRange(*ca, "post", 0, 300).ok());

  auto stats_a = ca->Stats();
  ASSERT_TRUE(stats_a.ok());
  const std::string manifest = ReadFile(snap + "/KVSNAPSHOT.json");
  EXPECT_THAT(manifest, HasSubstr(absl::StrFormat("\"node_id_hex\": \"%016x\"",
                                                  stats_a->node_id())));
  EXPECT_THAT(manifest, HasSubstr("\"build_version\""));
  EXPECT_FALSE(std::filesystem::exists(snap + ".partial"));

  // The JSON output of a second snapshot, for its fields.
  CommandResult json = Kvctl(a, {"--output", "json", "snapshot", "save", snap + "2"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr("\"key_count\""));

  // Restore into a new node that joins A.
  KvdProcess b(dir.path() + "/b", {"--name", "b", "--ae-interval-ms", "100", "--seeds",
                                   a.address(), "--restore-from", snap});
  ASSERT_TRUE(b.Start().ok()) << b.LogTail();
  EXPECT_THAT(b.Log(), HasSubstr("with the NEW node id"));
  auto cb = Connect(b);
  ASSERT_NE(cb, nullptr);
  auto stats_b = cb->Stats();
  ASSERT_TRUE(stats_b.ok());
  EXPECT_NE(stats_b->node_id(), stats_a->node_id());
  ASSERT_TRUE(WaitConverged(*ca, *cb, std::chrono::seconds(30)));

  for (int i = 0; i < 5000; ++i) {
    auto g = cb->Get(absl::StrCat("pre", i));
    ASSERT_TRUE(g.ok()) << g.status();
    EXPECT_EQ(g->found, i >= 200) << "pre" << i;  // Deleted before or after.
  }
  for (int i = 0; i < acked_before; ++i) {
    auto g = cb->Get(absl::StrCat("load", i));
    ASSERT_TRUE(g.ok() && g->found) << "load" << i;
  }
  for (int i = 0; i < 300; ++i) {
    auto g = cb->Get(absl::StrCat("post", i));
    ASSERT_TRUE(g.ok() && g->found) << "post" << i;
  }
  // Both see each other as two members.
  auto members = ca->Members();
  ASSERT_TRUE(members.ok());
  EXPECT_EQ(members->members_size(), 2);

  // A restart with the same --restore-from serves the restored directory
  // as it is (same new id), instead of refusing or restoring again.
  ASSERT_TRUE(b.Terminate().ok());
  ASSERT_TRUE(b.Start().ok()) << b.LogTail();
  EXPECT_THAT(b.Log(), HasSubstr("was already restored from the snapshot"));
  cb = Connect(b);
  auto again = cb->Stats();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->node_id(), stats_b->node_id());
}

TEST(SnapshotTest, UnsafeRestoresAndSavesAreRefused) {
  TempDir dir;
  KvdProcess a(dir.path() + "/a", {"--name", "a"});
  ASSERT_TRUE(a.Start().ok()) << a.LogTail();
  auto ca = Connect(a);
  ASSERT_TRUE(ca->Put("k", "v").ok());
  const std::string snap = dir.path() + "/snap";
  ASSERT_EQ(Kvctl(a, {"snapshot", "save", snap}).exit_code, 0);

  // Over an existing directory, or under a missing parent.
  CommandResult again = Kvctl(a, {"snapshot", "save", snap});
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_THAT(again.err, HasSubstr("ALREADY_EXISTS"));
  CommandResult orphan = Kvctl(a, {"snapshot", "save", dir.path() + "/no/such/dir"});
  EXPECT_EQ(orphan.exit_code, 2);
  EXPECT_THAT(orphan.err, HasSubstr("FAILED_PRECONDITION"));

  // Into a data directory that holds data (here: A's own, stopped).
  ASSERT_TRUE(a.Terminate().ok());
  KvdProcess over(dir.path() + "/a", {"--restore-from", snap});
  absl::Status s = over.Start(absl::Seconds(10));
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(over.Log(), HasSubstr("refusing to restore into"));

  // Serving from the snapshot directory itself (it would run as node A).
  KvdProcess on_snapshot(snap);
  s = on_snapshot.Start(absl::Seconds(10));
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(on_snapshot.Log(), HasSubstr("is a snapshot, not a data directory"));

  // A directory without a manifest (an unfinished snapshot).
  std::filesystem::remove(snap + "/KVSNAPSHOT.json");
  KvdProcess from_partial(dir.path() + "/c", {"--restore-from", snap});
  s = from_partial.Start(absl::Seconds(10));
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(from_partial.Log(), HasSubstr("is not a complete snapshot"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/c/CURRENT"));
}

}  // namespace
}  // namespace kv::testing
