// Rumor mongering between real kvd processes on loopback: four nodes with
// --fanout 2 and anti-entropy once an hour. A ONE write on node 0 is pushed
// to 2 random peers of its 3; each of those forwards it (it is new to them)
// to 2 peers other than the sender, of which the third node is always one.
// So every write must reach all four nodes in milliseconds, and only the
// forwarding can bring it to the node the writer did not pick.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "tests/integration/kvd_process.h"

namespace kv::testing {
namespace {

constexpr int kNodes = 4;

TEST(RumorTest, ForwardedWritesReachTheNodesTheWriterDidNotPick) {
  TempDir tmp;
  std::vector<std::string> addresses;
  std::vector<std::unique_ptr<KvdProcess>> nodes;
  std::vector<std::unique_ptr<client::Client>> clients;
  for (int i = 0; i < kNodes; ++i) addresses.push_back(absl::StrCat("127.0.0.1:", FreePort()));
  for (int i = 0; i < kNodes; ++i) {
    nodes.push_back(std::make_unique<KvdProcess>(
        absl::StrCat(tmp.path(), "/n", i),
        std::vector<std::string>{"--name", absl::StrCat("n", i), "--seeds", addresses[0],
                                 "--gossip-interval-ms", "100", "--ae-interval-ms",
                                 "3600000", "--fanout", "2"}));
    nodes[i]->set_listen(addresses[i]);
    ASSERT_TRUE(nodes[i]->Start().ok()) << nodes[i]->LogTail();
    client::ClientOptions o;
    o.timeout = absl::Seconds(5);
    auto c = client::Client::Connect(addresses[i], o);
    ASSERT_TRUE(c.ok()) << c.status();
    clients.push_back(std::move(*c));
  }
  // Node 0 must see its 3 peers alive, and its fan-out follow (every
  // 100 ms), before it writes; the others must see theirs to forward.
  ASSERT_TRUE(WaitFor(
      [&] {
        for (int i = 0; i < kNodes; ++i) {
          auto r = clients[i]->Members();
          if (!r.ok()) return false;
          int alive = 0;
          for (const auto& m : r->members()) alive += m.status() == "alive";
          if (alive != kNodes) return false;
        }
        return true;
      },
      absl::Seconds(20)));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  for (int k = 0; k < 20; ++k) {
    const std::string key = absl::StrCat("rumor", k);
    ASSERT_TRUE(clients[0]->Put(key, "v").ok());
    for (int i = 1; i < kNodes; ++i) {
      EXPECT_TRUE(WaitFor(
          [&] {
            auto r = clients[i]->Get(key);
            return r.ok() && r->found && r->value == "v";
          },
          absl::Seconds(3), absl::Milliseconds(2)))
          << key << " did not reach node " << i << "\n"
          << nodes[i]->LogTail();
    }
  }
}

}  // namespace
}  // namespace kv::testing
