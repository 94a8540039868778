// Gossip membership between real kvd processes on loopback: five nodes that
// each know only node 0 find each other; a crashed (kill -9) or frozen
// (SIGSTOP) node is marked down by every other node and comes back alive; a
// restart has a higher generation and is caught up by anti-entropy; a
// graceful stop shows `left`; a copied data directory (same node id) is
// refused; a removed node cannot come back. Gossip runs every 100 ms here,
// so "down" comes after about 2 s of silence. The times measured are printed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "tests/integration/kvd_process.h"

namespace kv::testing {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

constexpr int kNodes = 5;
constexpr absl::Duration kJoinBound = absl::Seconds(10);
constexpr absl::Duration kDownBound = absl::Seconds(10);

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

class MembershipTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < kNodes; ++i) {
      addresses_.push_back(absl::StrCat("127.0.0.1:", FreePort()));
    }
    for (int i = 0; i < kNodes; ++i) {
      dirs_.push_back(absl::StrCat(tmp_.path(), "/n", i));
      nodes_.push_back(std::make_unique<KvdProcess>(dirs_[i], Args(i)));
      nodes_[i]->set_listen(addresses_[i]);
    }
    for (int i = 0; i < kNodes; ++i) StartNode(i);
  }

  void TearDown() override {
    for (auto& n : nodes_) {
      if (n->running()) kill(n->pid(), SIGCONT);
    }
  }

  static std::string Name(int i) { return absl::StrCat("n", i); }

  // Every node's only seed is node 0.
  std::vector<std::string> Args(int i) const {
    return {"--name", Name(i), "--seeds", addresses_[0], "--gossip-interval-ms", "100",
            "--ae-interval-ms", "200"};
  }

  void StartNode(int i) {
    ASSERT_TRUE(nodes_[i]->Start().ok()) << nodes_[i]->LogTail();
    auto c = client::Client::Connect(addresses_[i]);
    ASSERT_TRUE(c.ok()) << c.status();
    if (clients_.size() <= static_cast<size_t>(i)) clients_.resize(i + 1);
    clients_[i] = std::move(*c);
  }

  // Node `observer`'s view of node `target` (an empty Member when unknown or
  // when the observer does not answer).
  kv::v1::Member View(int observer, int target) {
    auto r = clients_[observer]->Members();
    if (!r.ok()) return {};
    for (const kv::v1::Member& m : r->members()) {
      if (m.name() == Name(target)) return m;
    }
    return {};
  }

  // Every running node other than `target` and `except` sees `target` with
  // `status`.
  bool AllSee(int target, const std::string& status, std::set<int> except = {}) {
    for (int i = 0; i < kNodes; ++i) {
      if (i == target || except.count(i) || !nodes_[i]->running()) continue;
      if (View(i, target).status() != status) return false;
    }
    return true;
  }

  // Waits until every running node sees every other running node alive.
  bool WaitAllAlive(absl::Duration timeout) {
    return WaitFor(
        [&] {
          for (int i = 0; i < kNodes; ++i) {
            if (!nodes_[i]->running()) continue;
            auto r = clients_[i]->Members();
            if (!r.ok()) return false;
            int alive = 0;
            for (const kv::v1::Member& m : r->members()) alive += m.status() == "alive";
            int running = 0;
            for (auto& n : nodes_) running += n->running();
            if (alive != running) return false;
          }
          return true;
        },
        timeout);
  }

  // Waits until `which` report equal Merkle roots (Admin.Stats).
  bool WaitConverged(const std::vector<int>& which, absl::Duration timeout) {
    return WaitFor(
        [&] {
          std::set<std::string> roots;
          for (int i : which) {
            auto s = clients_[i]->Stats();
            if (!s.ok()) return false;
            roots.insert(s->root_digest());
          }
          return roots.size() == 1;
        },
        timeout);
  }

  CommandResult Kvctl(int node, std::vector<std::string> args) {
    std::vector<std::string> argv = {KvctlPath(), "-e", addresses_[node]};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }

  TempDir tmp_;
  std::vector<std::string> addresses_;
  std::vector<std::string> dirs_;
  std::vector<std::unique_ptr<KvdProcess>> nodes_;
  std::vector<std::unique_ptr<client::Client>> clients_;
};

TEST_F(MembershipTest, CrashFreezeAndRestart) {
  auto t = Clock::now();
  ASSERT_TRUE(WaitAllAlive(kJoinBound)) << nodes_[1]->LogTail();
  std::printf("[ measure  ] all %d nodes see %d alive members after %.2f s\n", kNodes,
              kNodes, SecondsSince(t));
  {
    const CommandResult r = Kvctl(2, {"cluster", "status"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("converged: 5 live members"));
  }

  // A node that has reconciled with n4 (anti-entropy every 200 ms) lists it
  // in Stats.peers; once n4 is down it must stay listed, as not live, with
  // its last exchange time, so its staleness keeps showing.
  auto peer_entry = [&](int node) -> std::optional<kv::v1::PeerStats> {
    auto s = clients_[node]->Stats();
    if (!s.ok()) return std::nullopt;
    for (const kv::v1::PeerStats& p : s->peers()) {
      if (p.address() == addresses_[4]) return p;
    }
    return std::nullopt;
  };
  int synced_with_n4 = -1;
  ASSERT_TRUE(WaitFor(
      [&] {
        for (int i = 0; i < 4; ++i) {
          auto p = peer_entry(i);
          if (p.has_value() && p->live() && p->last_exchange_unix_ms() > 0) {
            synced_with_n4 = i;
            return true;
          }
        }
        return false;
      },
      absl::Seconds(10)));

  // kill -9: every other node marks it down.
  const uint64_t old_generation = View(0, 4).generation();
  nodes_[4]->Kill();
  t = Clock::now();
  ASSERT_TRUE(WaitFor([&] { return AllSee(4, "down"); }, kDownBound));
  std::printf("[ measure  ] kill -9: every other node marked it down after %.2f s\n",
              SecondsSince(t));
  ASSERT_TRUE(WaitFor(
      [&] {
        auto p = peer_entry(synced_with_n4);
        return p.has_value() && !p->live() && p->last_exchange_unix_ms() > 0;
      },
      absl::Seconds(5)))
      << "n" << synced_with_n4 << " no longer lists the down n4 with its last exchange";
  {
    const CommandResult r = Kvctl(0, {"cluster", "status"});
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("down: n4"));
  }

  // Writes while it is down reach it after its restart (anti-entropy with
  // the live members).
  for (int k = 0; k < 50; ++k) {
    ASSERT_TRUE(clients_[0]->Put(absl::StrCat("k", k), "v").ok());
  }
  ASSERT_TRUE(WaitConverged({0, 1, 2, 3}, absl::Seconds(10)));
  t = Clock::now();
  StartNode(4);
  ASSERT_TRUE(WaitFor(
      [&] { return AllSee(4, "alive") && View(0, 4).generation() > old_generation; },
      kJoinBound));
  std::printf("[ measure  ] restart: alive everywhere with a higher generation after %.2f s\n",
              SecondsSince(t));
  ASSERT_TRUE(WaitConverged({0, 1, 2, 3, 4}, absl::Seconds(10)));
  std::printf("[ measure  ] restart: caught up by anti-entropy after %.2f s\n",
              SecondsSince(t));

  // A frozen process: down while stopped, alive again after SIGCONT.
  kill(nodes_[3]->pid(), SIGSTOP);
  t = Clock::now();
  const bool frozen_down = WaitFor([&] { return AllSee(3, "down"); }, kDownBound);
  const double frozen_s = SecondsSince(t);
  kill(nodes_[3]->pid(), SIGCONT);
  ASSERT_TRUE(frozen_down);
  std::printf("[ measure  ] kill -STOP: every other node marked it down after %.2f s\n",
              frozen_s);
  t = Clock::now();
  ASSERT_TRUE(WaitFor([&] { return AllSee(3, "alive"); }, kJoinBound));
  std::printf("[ measure  ] kill -CONT: alive everywhere after %.2f s\n", SecondsSince(t));
  // The frozen node, back, sees everyone alive too (it does not blame the
  // others for its own gap).
  EXPECT_TRUE(WaitAllAlive(absl::Seconds(5)));
  EXPECT_TRUE(WaitFor([&] { return Kvctl(3, {"cluster", "status"}).exit_code == 0; },
                      absl::Seconds(5)))
      << Kvctl(3, {"cluster", "status"}).out;
}

TEST_F(MembershipTest, LeaveDuplicateIdAndRemove) {
  ASSERT_TRUE(WaitAllAlive(kJoinBound)) << nodes_[1]->LogTail();

  // Graceful stop: `left`, quickly (it is announced, not detected).
  auto t = Clock::now();
  kill(nodes_[2]->pid(), SIGTERM);
  ASSERT_TRUE(WaitFor([&] { return AllSee(2, "left"); }, absl::Seconds(5)));
  std::printf("[ measure  ] SIGTERM: every other node shows it left after %.2f s\n",
              SecondsSince(t));
  auto stopped = nodes_[2]->Terminate();  // Reaps it.
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(*stopped, 0);

  // A copy of its data directory (same node id) next to the original,
  // restarted: the copy is refused and exits 1 naming n2.
  const std::string copy = tmp_.path() + "/copy";
  std::filesystem::copy(dirs_[2], copy, std::filesystem::copy_options::recursive);
  StartNode(2);
  ASSERT_TRUE(WaitFor([&] { return AllSee(2, "alive"); }, kJoinBound));
  const CommandResult dup = RunCommand(
      {"/usr/bin/timeout", "20", KvdPath(), "--name", "dup", "--listen",
       absl::StrCat("127.0.0.1:", FreePort()), "--data-dir", copy, "--seeds",
       addresses_[0], "--gossip-interval-ms", "100"});
  EXPECT_EQ(dup.exit_code, 1) << dup.out << dup.err;
  EXPECT_THAT(dup.err, HasSubstr("belongs to live node 'n2'"));
  EXPECT_THAT(dup.err, HasSubstr("fresh data directory"));
  // The original is unharmed.
  EXPECT_TRUE(AllSee(2, "alive"));

  // Removing a live member is refused; a down one is forgotten for good and
  // cannot rejoin under its id.
  {
    const CommandResult r = Kvctl(0, {"members", "remove", "n4"});
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr("FAILED_PRECONDITION"));
  }
  nodes_[4]->Kill();
  ASSERT_TRUE(WaitFor([&] { return View(0, 4).status() == "down"; }, kDownBound));
  {
    const CommandResult r = Kvctl(0, {"members", "remove", "n4"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("removed"));
  }
  ASSERT_TRUE(WaitFor([&] { return AllSee(4, "removed"); }, absl::Seconds(5)));
  const CommandResult back = RunCommand(
      {"/usr/bin/timeout", "20", KvdPath(), "--name", "n4", "--listen", addresses_[4],
       "--data-dir", dirs_[4], "--seeds", addresses_[0], "--gossip-interval-ms", "100"});
  EXPECT_EQ(back.exit_code, 1) << back.out << back.err;
  EXPECT_THAT(back.err, HasSubstr("removed"));

  // kvctl members: a table with every member; JSON too.
  const CommandResult table = Kvctl(1, {"members"});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("n1*"));
  EXPECT_THAT(table.out, HasSubstr("removed"));
  const CommandResult json = Kvctl(1, {"--output", "json", "members"});
  EXPECT_EQ(json.exit_code, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr("\"status\":\"removed\""));
}

}  // namespace
}  // namespace kv::testing
