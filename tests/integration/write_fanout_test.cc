// Write fan-out and consistency levels between real kvd processes on
// loopback. Anti-entropy runs only once an hour here, so only the fast path
// (Replica.Push, Replica.Read) can explain a write reaching another node:
// a ONE write is readable on the other nodes within ~100 ms; with a node
// killed, QUORUM writes and reads succeed and ALL fails with UNAVAILABLE
// naming the counts; a QUORUM/ALL read repairs stale replicas; a frozen
// (SIGSTOP) peer does not slow ONE writes. The times measured are printed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "tests/integration/kvd_process.h"

namespace kv::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

constexpr int kNodes = 3;

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

class FanoutTest : public ::testing::Test {
 protected:
  void StartCluster(bool fanout_enabled, std::vector<std::string> extra_flags = {}) {
    for (int i = 0; i < kNodes; ++i) {
      addresses_.push_back(absl::StrCat("127.0.0.1:", FreePort()));
    }
    for (int i = 0; i < kNodes; ++i) {
      std::vector<std::string> flags = {
          "--name", absl::StrCat("n", i), "--seeds", addresses_[0],
          "--gossip-interval-ms", "100", "--ae-interval-ms", "3600000",
          "--fanout-enabled", fanout_enabled ? "true" : "false",
          "--fanout-ack-timeout-ms", "1000"};
      flags.insert(flags.end(), extra_flags.begin(), extra_flags.end());
      nodes_.push_back(
          std::make_unique<KvdProcess>(absl::StrCat(tmp_.path(), "/n", i), flags));
      nodes_[i]->set_listen(addresses_[i]);
    }
    for (int i = 0; i < kNodes; ++i) {
      ASSERT_TRUE(nodes_[i]->Start().ok()) << nodes_[i]->LogTail();
      for (auto level : {client::Consistency::kOne, client::Consistency::kQuorum,
                         client::Consistency::kAll}) {
        client::ClientOptions o;
        o.consistency = level;
        o.timeout = absl::Seconds(5);
        auto c = client::Client::Connect(addresses_[i], o);
        ASSERT_TRUE(c.ok()) << c.status();
        clients_[static_cast<int>(level)].push_back(std::move(*c));
      }
    }
    // Every node sees the others alive, and its fan-out follows (it reads
    // the live members every 100 ms).
    ASSERT_TRUE(WaitFor(
        [&] {
          for (int i = 0; i < kNodes; ++i) {
            auto r = one(i).Members();
            if (!r.ok()) return false;
            int alive = 0;
            for (const auto& m : r->members()) alive += m.status() == "alive";
            if (alive != kNodes) return false;
          }
          return true;
        },
        absl::Seconds(15)));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }

  void TearDown() override {
    for (auto& n : nodes_) {
      if (n->running()) kill(n->pid(), SIGCONT);
    }
  }

  client::Client& one(int i) { return *clients_[0][i]; }
  client::Client& quorum(int i) { return *clients_[1][i]; }
  client::Client& all(int i) { return *clients_[2][i]; }

  bool HasValue(int i, const std::string& key, const std::string& value) {
    auto r = one(i).Get(key);
    return r.ok() && r->found && r->value == value;
  }

  TempDir tmp_;
  std::vector<std::string> addresses_;
  std::vector<std::unique_ptr<KvdProcess>> nodes_;
  std::vector<std::unique_ptr<client::Client>> clients_[3];
};

TEST_F(FanoutTest, OneWriteIsReadableEverywhereWithinMilliseconds) {
  StartCluster(true);
  std::vector<double> ms;
  for (int k = 0; k < 20; ++k) {
    const std::string key = absl::StrCat("fast", k);
    ASSERT_TRUE(one(0).Put(key, "v").ok());
    const auto acked = Clock::now();
    for (int i = 1; i < kNodes; ++i) {
      ASSERT_TRUE(WaitFor([&] { return HasValue(i, key, "v"); },
                          absl::Milliseconds(1000), absl::Milliseconds(1)))
          << "key " << key << " not on node " << i;
    }
    ms.push_back(MsSince(acked));
  }
  std::sort(ms.begin(), ms.end());
  std::printf("ack -> readable on all %d nodes: p50 %.2f ms, max %.2f ms\n", kNodes,
              ms[ms.size() / 2], ms.back());
  EXPECT_LT(ms[ms.size() / 2], 100.0);
}

TEST_F(FanoutTest, QuorumSucceedsAndAllFailsWithOneNodeDown) {
  StartCluster(true);
  nodes_[2]->Kill();
  // Before gossip marks it down, ALL fails on the push that cannot reach it.
  auto early = all(0).Put("k-all-early", "v");
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.status().code(), absl::StatusCode::kUnavailable) << early.status();
  // It fails as soon as node 2's push fails: node 1 may not have answered yet.
  EXPECT_THAT(early.status().message(), HasSubstr("of 3 replicas needed"));

  ASSERT_TRUE(quorum(0).Put("k", "q1").ok());
  EXPECT_TRUE(HasValue(1, "k", "q1"));  // The other replica acknowledged it.
  auto got = quorum(1).Get("k");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->found);
  EXPECT_EQ(got->value, "q1");

  // Once node 0 sees node 2 down, ALL is refused before anything is written.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = one(0).Members();
        if (!r.ok()) return false;
        for (const auto& m : r->members()) {
          if (m.name() == "n2") return m.status() == "down";
        }
        return false;
      },
      absl::Seconds(10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto start = Clock::now();
  auto r = all(0).Put("k-all", "v");
  const double took = MsSince(start);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_THAT(r.status().message(),
              AllOf(HasSubstr("needs 3 replicas of 3 members"), HasSubstr("only 2 are live")));
  EXPECT_LT(took, 100.0);
  EXPECT_FALSE(one(0).Get("k-all")->found);  // Nothing was written.
  auto rr = all(0).Get("k");
  ASSERT_FALSE(rr.ok());
  EXPECT_EQ(rr.status().code(), absl::StatusCode::kUnavailable);
  std::printf("ALL refused in %.2f ms: %s\n", took, std::string(r.status().message()).c_str());

  // QUORUM still works both ways.
  ASSERT_TRUE(quorum(1).Put("k", "q2").ok());
  got = quorum(0).Get("k");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->value, "q2");
}

TEST_F(FanoutTest, ReplicaReadRepairsStaleReplicas) {
  // Without the fast path a ONE write stays where it was made.
  StartCluster(false);
  ASSERT_TRUE(one(0).Put("r", "newest").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_FALSE(one(1).Get("r")->found);
  ASSERT_FALSE(one(2).Get("r")->found);
  // Node 1 coordinates: it asks 0 and 2, answers with 0's record, and
  // repairs itself and node 2. (A QUORUM read would be answered by the first
  // two replicas, which may both be stale: a ONE write is not promised to
  // QUORUM readers.)
  auto got = all(1).Get("r");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->found);
  EXPECT_EQ(got->value, "newest");
  EXPECT_TRUE(WaitFor([&] { return HasValue(1, "r", "newest"); },
                      absl::Milliseconds(2000), absl::Milliseconds(5)));
  EXPECT_TRUE(WaitFor([&] { return HasValue(2, "r", "newest"); },
                      absl::Milliseconds(2000), absl::Milliseconds(5)));
  // A QUORUM write pushes even with the fast path off.
  ASSERT_TRUE(quorum(2).Put("w", "q").ok());
  EXPECT_TRUE(WaitFor([&] { return HasValue(0, "w", "q") || HasValue(1, "w", "q"); },
                      absl::Milliseconds(100), absl::Milliseconds(5)));
}

TEST_F(FanoutTest, FrozenPeerDoesNotSlowOneWrites) {
  StartCluster(true);
  auto measure = [&](const std::string& prefix) {
    std::vector<double> ms;
    for (int k = 0; k < 300; ++k) {
      const auto start = Clock::now();
      EXPECT_TRUE(one(0).Put(absl::StrCat(prefix, k), std::string(1000, 'x')).ok());
      ms.push_back(MsSince(start));
    }
    std::sort(ms.begin(), ms.end());
    return std::make_pair(ms[ms.size() / 2], ms[ms.size() * 99 / 100]);
  };
  const auto before = measure("before");
  ASSERT_EQ(kill(nodes_[2]->pid(), SIGSTOP), 0);
  const auto frozen = measure("frozen");
  ASSERT_EQ(kill(nodes_[2]->pid(), SIGCONT), 0);
  std::printf("ONE put latency: before p50 %.2f p99 %.2f ms; peer frozen p50 %.2f p99 %.2f ms\n",
              before.first, before.second, frozen.first, frozen.second);
  // A blocked write would wait for the 1 s push deadline.
  EXPECT_LT(frozen.second, 200.0);
  // The live peer still got every write at once.
  EXPECT_TRUE(WaitFor([&] { return HasValue(1, "frozen299", std::string(1000, 'x')); },
                      absl::Milliseconds(500), absl::Milliseconds(5)));
}

TEST_F(FanoutTest, FrozenPeerQueueStaysWithinItsBound) {
  // A frozen peer answers nothing: what the writer queues for it must stop
  // at --fanout-queue-records, the rest dropped (left to anti-entropy) and
  // counted, not held in memory.
  constexpr int kBound = 50, kWrites = 400;
  StartCluster(true, {"--fanout-queue-records", absl::StrCat(kBound)});
  auto dropped = [&] {
    auto stats = one(0).Stats();
    EXPECT_TRUE(stats.ok()) << stats.status();
    return stats.ok() ? stats->fanout().records_dropped() : -1;
  };
  const int64_t dropped_before = dropped();
  ASSERT_EQ(kill(nodes_[2]->pid(), SIGSTOP), 0);
  for (int k = 0; k < kWrites; ++k) {
    ASSERT_TRUE(one(0).Put(absl::StrCat("bounded", k), std::string(1000, 'x')).ok());
  }
  const int64_t dropped_frozen = dropped() - dropped_before;
  ASSERT_EQ(kill(nodes_[2]->pid(), SIGCONT), 0);
  std::printf("frozen peer: %d writes, %lld copies dropped for it (queue bound %d)\n",
              kWrites, static_cast<long long>(dropped_frozen), kBound);
  // At most kBound queued plus the few records of the pushes in flight to
  // it (sent before the queue filled); everything else was dropped.
  EXPECT_GE(dropped_frozen, kWrites - kBound - 20);
  EXPECT_LE(dropped_frozen, kWrites);
  // The live peer got every write.
  EXPECT_TRUE(WaitFor([&] { return HasValue(1, "bounded399", std::string(1000, 'x')); },
                      absl::Milliseconds(2000), absl::Milliseconds(5)));
}

}  // namespace
}  // namespace kv::testing
