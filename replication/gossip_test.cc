#include "replication/gossip.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"

namespace kv::replication {
namespace {

using peer::v1::GossipMessage;
using ::testing::HasSubstr;

// A scripted network of Gossipers: messages are delivered at once, in
// order, unless the destination is cut off or stopped.
class Net {
 public:
  explicit Net(GossipOptions options = {}) : options_(options) {}

  // Adds node `i` (address "n<i>", id 1000 + i unless given) with `seeds`.
  Gossiper* Add(int i, std::vector<std::string> seeds, uint64_t id = 0,
                uint64_t generation = 1) {
    LocalNode self;
    self.node_id = id != 0 ? id : 1000 + i;
    self.name = absl::StrCat("node", i);
    self.peer_address = absl::StrCat("n", i);
    self.client_address = absl::StrCat("c", i);
    self.generation = generation;
    auto g = std::make_unique<Gossiper>(self, std::move(seeds), options_, 7 + i);
    Gossiper* raw = g.get();
    nodes_[self.peer_address] = std::move(g);
    return raw;
  }
  Gossiper* At(int i) { return nodes_.at(absl::StrCat("n", i)).get(); }
  void Stop(int i) { stopped_.insert(absl::StrCat("n", i)); }
  void Resume(int i) { stopped_.erase(absl::StrCat("n", i)); }

  // Every running node ticks once, then messages flow until quiet.
  void Round() {
    now_ += options_.interval_ms;
    for (auto& [addr, g] : nodes_) {
      if (stopped_.count(addr)) continue;
      g->Tick(now_, AppState{std::string(16, 'r'), 3, now_ + skew_[addr]});
      Pump(addr);
    }
  }
  void Rounds(int n) {
    for (int i = 0; i < n; ++i) Round();
  }
  void Pump(const std::string& from) {
    std::vector<std::pair<std::string, GossipMessage>> queue;
    for (auto& out : nodes_.at(from)->TakeMessages()) {
      queue.emplace_back(out.to, std::move(out.message));
    }
    while (!queue.empty()) {
      auto [to, msg] = std::move(queue.front());
      queue.erase(queue.begin());
      auto it = nodes_.find(to);
      if (it == nodes_.end() || stopped_.count(to)) continue;
      EXPECT_TRUE(it->second->Step(msg, now_).ok());
      for (auto& out : it->second->TakeMessages()) {
        queue.emplace_back(out.to, std::move(out.message));
      }
    }
  }
  // Health of `id` as node `i` sees it.
  std::string HealthAt(int i, uint64_t id) {
    for (const MemberView& v : At(i)->Members(now_)) {
      if (v.state.node_id() == id) return HealthName(v.health);
    }
    return "unknown";
  }
  int64_t now() const { return now_; }
  void set_now(int64_t now) { now_ = now; }
  void Skew(int i, int64_t ms) { skew_[absl::StrCat("n", i)] = ms; }

 private:
  GossipOptions options_;
  int64_t now_ = 1'000'000;
  std::map<std::string, std::unique_ptr<Gossiper>> nodes_;
  std::set<std::string> stopped_;
  std::map<std::string, int64_t> skew_;
};

TEST(GossipTest, FiveNodesJoinThroughOneSeed) {
  Net net;
  net.Add(1, {"n1"});  // A seed may list itself.
  for (int i = 2; i <= 5; ++i) net.Add(i, {"n1"});
  net.Rounds(10);
  for (int i = 1; i <= 5; ++i) {
    EXPECT_EQ(net.At(i)->Members(net.now()).size(), 5u) << "node " << i;
    EXPECT_EQ(net.At(i)->LivePeers().size(), 4u) << "node " << i;
  }
  EXPECT_EQ(net.HealthAt(3, 1005), "alive");
}

TEST(GossipTest, SilentMemberIsSuspectThenDownThenAliveAgain) {
  GossipOptions o;
  Net net(o);
  for (int i = 1; i <= 3; ++i) net.Add(i, {"n1"});
  net.Rounds(20);
  ASSERT_EQ(net.HealthAt(1, 1003), "alive");
  net.Stop(3);
  int suspect_round = -1, down_round = -1;
  for (int r = 1; r <= 60 && down_round < 0; ++r) {
    net.Round();
    if (suspect_round < 0 && net.HealthAt(1, 1003) == "suspect") suspect_round = r;
    if (net.HealthAt(1, 1003) == "down") down_round = r;
  }
  ASSERT_GT(suspect_round, 0);
  ASSERT_GT(down_round, suspect_round);
  // phi = t / mean * log10(e): down after about phi_down / 0.434 intervals
  // when heartbeats came once per interval.
  EXPECT_LE(down_round, 30);
  EXPECT_EQ(net.At(1)->stats().down_events, 1);
  EXPECT_EQ(net.At(1)->stats().suspect_events, 1);
  EXPECT_EQ(net.At(1)->stats().recovered_from_down, 0);
  EXPECT_THAT(net.At(1)->LivePeers(), ::testing::ElementsAre("n2"));
  net.Resume(3);
  net.Rounds(5);
  EXPECT_EQ(net.HealthAt(1, 1003), "alive");
  // Same generation: the down verdict was refuted, not a restart.
  EXPECT_EQ(net.At(1)->stats().recovered_from_down, 1);
  EXPECT_EQ(net.At(1)->stats().recovered_from_suspect, 0);
  EXPECT_EQ(net.HealthAt(3, 1001), "alive");  // Its own late tick forgave them.
}

TEST(GossipTest, RestartWithHigherGenerationIsAliveAgain) {
  Net net;
  for (int i = 1; i <= 3; ++i) net.Add(i, {"n1"});
  net.Rounds(10);
  net.Stop(3);
  net.Rounds(40);
  ASSERT_EQ(net.HealthAt(1, 1003), "down");
  net.Add(3, {"n1"}, 0, /*generation=*/2);  // Same id, same address.
  net.Resume(3);
  std::vector<GossipEvent> events;
  for (int r = 0; r < 10; ++r) {
    net.Round();
    for (auto& e : net.At(2)->TakeEvents()) events.push_back(e);
  }
  EXPECT_EQ(net.HealthAt(1, 1003), "alive");
  EXPECT_EQ(net.HealthAt(2, 1003), "alive");
  bool restarted = false;
  for (const auto& e : events) restarted |= e.kind == GossipEvent::Kind::kRestarted;
  EXPECT_TRUE(restarted);
  // A restart is no recovery of the old generation.
  EXPECT_EQ(net.At(1)->stats().recovered_from_down, 0);
  EXPECT_EQ(net.At(2)->stats().recovered_from_down, 0);
  for (const MemberView& v : net.At(2)->Members(net.now())) {
    if (v.state.node_id() == 1003) EXPECT_EQ(v.state.generation(), 2u);
  }
}

TEST(GossipTest, GracefulLeaveIsLeftEverywhere) {
  Net net;
  for (int i = 1; i <= 4; ++i) net.Add(i, {"n1"});
  net.Rounds(10);
  net.At(4)->Leave(net.now());
  net.Pump("n4");
  net.Stop(4);
  net.Rounds(5);
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(net.HealthAt(i, 1004), "left") << i;
  net.Rounds(60);  // A left member is never "down".
  EXPECT_EQ(net.HealthAt(1, 1004), "left");
  EXPECT_EQ(net.At(1)->stats().down_events, 0);
}

TEST(GossipTest, RemovedMemberStaysRemovedAndItsIdIsRefused) {
  Net net;
  for (int i = 1; i <= 4; ++i) net.Add(i, {"n1"});
  net.Rounds(10);
  // Alive members cannot be removed.
  EXPECT_EQ(net.At(1)->Remove(1004, net.now()).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(net.At(1)->Remove(1001, net.now()).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(net.At(1)->Remove(4242, net.now()).code(), absl::StatusCode::kNotFound);
  net.Stop(4);
  net.Rounds(40);
  ASSERT_EQ(net.HealthAt(1, 1004), "down");
  ASSERT_TRUE(net.At(1)->Remove(1004, net.now()).ok());
  net.Rounds(10);
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(net.HealthAt(i, 1004), "removed") << i;
  // The node comes back with a higher generation: refused, it stops.
  Gossiper* back = net.Add(4, {"n1"}, 0, /*generation=*/5);
  net.Resume(4);
  net.Rounds(3);
  EXPECT_EQ(back->fatal_error().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(back->fatal_error().message(), HasSubstr("was removed"));
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(net.HealthAt(i, 1004), "removed") << i;
}

TEST(GossipTest, SecondNodeWithTheSameIdIsRefusedNamingTheFirst) {
  Net net;
  for (int i = 1; i <= 3; ++i) net.Add(i, {"n1"});
  net.Rounds(10);
  // node9 runs with node3's id (a copied data directory), started later.
  Gossiper* copy = net.Add(9, {"n1"}, 1003, /*generation=*/7);
  net.Rounds(3);
  ASSERT_FALSE(copy->fatal_error().ok());
  EXPECT_THAT(copy->fatal_error().message(), HasSubstr("node3"));
  EXPECT_THAT(copy->fatal_error().message(), HasSubstr("n3"));
  EXPECT_THAT(copy->fatal_error().message(), HasSubstr("fresh data directory"));
  net.Rounds(5);
  EXPECT_TRUE(net.At(3)->fatal_error().ok());
  EXPECT_EQ(net.HealthAt(1, 1003), "alive");
  for (const MemberView& v : net.At(2)->Members(net.now())) {
    if (v.state.node_id() == 1003) EXPECT_EQ(v.state.peer_address(), "n3");
  }
}

TEST(GossipTest, LateOwnTickDoesNotConvictPeers) {
  Net net;
  for (int i = 1; i <= 3; ++i) net.Add(i, {"n1"});
  net.Rounds(20);
  // Node 1 is frozen for 20 s (everyone else too, in this script: only
  // node 1's view matters), then ticks again.
  net.set_now(net.now() + 20'000);
  net.Round();
  EXPECT_EQ(net.HealthAt(1, 1002), "alive");
  EXPECT_EQ(net.HealthAt(1, 1003), "alive");
  EXPECT_EQ(net.At(1)->stats().down_events, 0);
  EXPECT_GT(net.At(1)->local_health(), 0);
}

TEST(GossipTest, ClockSkewIsFlaggedOnce) {
  GossipOptions o;
  o.max_clock_drift_ms = 1000;
  Net net(o);
  for (int i = 1; i <= 3; ++i) net.Add(i, {"n1"});
  net.Skew(3, 2 * 3600 * 1000);
  net.Rounds(20);
  bool skewed = false;
  for (const MemberView& v : net.At(1)->Members(net.now())) {
    if (v.state.node_id() == 1003) {
      skewed = v.clock_skewed;
      EXPECT_TRUE(v.clock_offset_known);
      EXPECT_NEAR(static_cast<double>(v.clock_offset_ms), 7.2e6, 1000);
    }
    if (v.state.node_id() == 1002) EXPECT_FALSE(v.clock_skewed);
  }
  EXPECT_TRUE(skewed);
  EXPECT_EQ(net.At(1)->stats().clock_skew_events, 1);
}

TEST(GossipTest, UnknownOrAbsurdSenderClocksAreNotSkew) {
  Net net;
  for (int i = 1; i <= 2; ++i) net.Add(i, {"n1"});
  net.Rounds(5);
  // A node that restarted and has not ticked yet sends no wall clock; a
  // forged one sends one near 2^63. Neither is a clock offset.
  for (int64_t sent : {int64_t{0}, int64_t{-5}, std::numeric_limits<int64_t>::max(),
                       std::numeric_limits<int64_t>::min()}) {
    GossipMessage m;
    m.set_kind(GossipMessage::ACK2);
    m.set_from_address("n2");
    m.set_from_node_id(1002);
    m.set_from_generation(1);
    m.set_sent_unix_ms(sent);
    ASSERT_TRUE(net.At(1)->Step(m, net.now()).ok());
  }
  for (const MemberView& v : net.At(1)->Members(net.now())) {
    EXPECT_FALSE(v.clock_skewed) << v.state.name();
    EXPECT_LT(std::llabs(v.clock_offset_ms), 1000) << v.state.name();
  }
  EXPECT_EQ(net.At(1)->stats().clock_skew_events, 0);
  // Before its first Tick a node does not claim a wall clock.
  Gossiper fresh(LocalNode{.node_id = 9, .name = "f", .peer_address = "f", .generation = 1},
                 {"n1"}, GossipOptions{}, 1);
  ASSERT_TRUE(fresh.Remove(1, 0).code() == absl::StatusCode::kNotFound);
  GossipMessage syn;
  syn.set_kind(GossipMessage::SYN);
  syn.set_from_address("n1");
  syn.set_from_node_id(1001);
  ASSERT_TRUE(fresh.Step(syn, 123).ok());
  auto out = fresh.TakeMessages();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].message.sent_unix_ms(), 0);
}

TEST(GossipTest, MalformedMessagesAreRejectedAndCounted) {
  Net net;
  Gossiper* g = net.Add(1, {});
  GossipMessage m;
  m.set_kind(GossipMessage::SYN);
  EXPECT_EQ(g->Step(m, 1).code(), absl::StatusCode::kInvalidArgument);  // No address.
  m.set_from_address("x");
  m.set_kind(static_cast<GossipMessage::Kind>(9));
  EXPECT_EQ(g->Step(m, 1).code(), absl::StatusCode::kInvalidArgument);
  m.set_kind(GossipMessage::ACK2);
  m.add_states()->set_node_id(5);  // No status.
  EXPECT_THAT(g->Step(m, 1).message(), HasSubstr("no status"));
  EXPECT_EQ(g->stats().malformed, 3);
  EXPECT_EQ(g->Members(1).size(), 1u);
}

TEST(GossipTest, AckIsBoundedAndSendsMostOutOfDateFirst) {
  GossipOptions o;
  o.max_message_bytes = 400;
  Gossiper g(LocalNode{.node_id = 1, .name = "a", .peer_address = "a", .generation = 1},
             {}, o, 1);
  // Learn 20 members at various versions.
  GossipMessage learn;
  learn.set_kind(GossipMessage::ACK2);
  learn.set_from_address("x");
  for (int i = 0; i < 20; ++i) {
    peer::v1::MemberState* s = learn.add_states();
    s->set_node_id(100 + i);
    s->set_name(absl::StrCat("m", i));
    s->set_peer_address(absl::StrCat("m", i));
    s->set_generation(1);
    s->set_version(50 + i);
    s->set_app_version(50 + i);  // Changed at this version: sent in full.
    s->set_status(peer::v1::MEMBER_ALIVE);
  }
  ASSERT_TRUE(g.Step(learn, 1).ok());
  // A SYN that knows every member at version 50.
  GossipMessage syn;
  syn.set_kind(GossipMessage::SYN);
  syn.set_from_address("b");
  syn.set_from_node_id(2);
  for (int i = 0; i < 20; ++i) {
    auto* d = syn.add_digests();
    d->set_node_id(100 + i);
    d->set_generation(1);
    d->set_version(50);
  }
  auto* d = syn.add_digests();
  d->set_node_id(1);
  d->set_generation(1);
  d->set_version(0);
  ASSERT_TRUE(g.Step(syn, 2).ok());
  auto out = g.TakeMessages();
  ASSERT_EQ(out.size(), 1u);
  const GossipMessage& ack = out[0].message;
  EXPECT_LE(ack.ByteSizeLong(), 400u);
  ASSERT_GT(ack.states_size(), 1);
  EXPECT_LT(ack.states_size(), 19);
  // Most out of date first: member 119 (lag 19), then 118, ...
  EXPECT_EQ(ack.states(0).node_id(), 119u);
  EXPECT_EQ(ack.states(1).node_id(), 118u);
}

TEST(GossipTest, SteadyStateSendsHeartbeatsOnlyAndKeepsTheAppState) {
  Net net;
  for (int i = 1; i <= 3; ++i) net.Add(i, {"n1"});
  net.Rounds(10);
  // Node 1 now holds node 2's app state; the next states about node 2 that
  // node 1 receives are heartbeats only.
  Gossiper* a = net.At(1);
  GossipMessage syn;
  syn.set_kind(GossipMessage::SYN);
  syn.set_from_address("n1");
  syn.set_from_node_id(1001);
  syn.set_from_generation(1);
  uint64_t known = 0;
  for (const MemberView& v : a->Members(net.now())) {
    if (v.state.node_id() == 1002) known = v.state.version();
  }
  ASSERT_GT(known, 0u);
  auto* d = syn.add_digests();
  d->set_node_id(1002);
  d->set_generation(1);
  d->set_version(known - 1);
  ASSERT_TRUE(net.At(2)->Step(syn, net.now()).ok());
  auto out = net.At(2)->TakeMessages();
  ASSERT_EQ(out.size(), 1u);
  const GossipMessage& ack = out[0].message;
  const peer::v1::MemberState* hb = nullptr;
  for (const auto& st : ack.states()) {
    if (st.node_id() == 1002) hb = &st;
  }
  ASSERT_NE(hb, nullptr);
  EXPECT_TRUE(hb->heartbeat_only());
  EXPECT_TRUE(hb->name().empty());
  ASSERT_TRUE(a->Step(ack, net.now()).ok());
  for (const MemberView& v : a->Members(net.now())) {
    if (v.state.node_id() != 1002) continue;
    EXPECT_EQ(v.state.version(), hb->version());
    EXPECT_EQ(v.state.name(), "node2");
    EXPECT_EQ(v.state.peer_address(), "n2");
    EXPECT_EQ(v.state.merkle_root(), std::string(16, 'r'));
  }
  // A heartbeat-only state for an app state the receiver lacks is ignored.
  GossipMessage stale;
  stale.set_kind(GossipMessage::ACK2);
  stale.set_from_address("n2");
  peer::v1::MemberState* s = stale.add_states();
  s->set_node_id(1002);
  s->set_generation(1);
  s->set_version(hb->version() + 100);
  s->set_app_version(hb->version() + 50);
  s->set_status(peer::v1::MEMBER_ALIVE);
  s->set_heartbeat_only(true);
  ASSERT_TRUE(a->Step(stale, net.now()).ok());
  for (const MemberView& v : a->Members(net.now())) {
    if (v.state.node_id() == 1002) EXPECT_EQ(v.state.version(), hb->version());
  }
}

}  // namespace
}  // namespace kv::replication
