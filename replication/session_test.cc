#include "replication/session.h"

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/memory_engine.h"

namespace kv::replication {
namespace {

using ::kv::peer::v1::ExchangeMessage;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

struct Node {
  Node(uint64_t node_id, uint32_t leaf_depth = 4) : clock(1'700'000'000'000) {
    storage::StoreOptions o;
    o.leaf_depth = leaf_depth;
    o.clock = &clock;
    o.node_id = node_id;
    auto s = storage::Store::Open(std::make_unique<storage::MemoryEngine>(), o);
    EXPECT_TRUE(s.ok()) << s.status();
    store = std::move(s).value();
  }
  void Put(const std::string& key, const std::string& value) {
    clock.Advance(1);
    storage::Mutation m{key, false, value, {}};
    ASSERT_TRUE(store->Write({&m, 1}).ok());
  }
  storage::ManualClock clock;
  std::unique_ptr<storage::Store> store;
};

// A stream that queues what is written; can be closed.
class QueueStream final : public ExchangeStream {
 public:
  absl::Status Write(const ExchangeMessage& msg) override {
    if (closed) return absl::UnavailableError("closed");
    out.push_back(msg);
    return absl::OkStatus();
  }
  std::deque<ExchangeMessage> out;
  bool closed = false;
};

// Runs both drivers until neither has anything to read.
void Pump(ExchangeDriver& a, QueueStream& to_b, ExchangeDriver& b,
          QueueStream& to_a) {
  for (int guard = 0; guard < 10000; ++guard) {
    if (!to_b.out.empty()) {
      ExchangeMessage m = std::move(to_b.out.front());
      to_b.out.pop_front();
      ASSERT_TRUE(b.OnMessage(m).ok()) << b.status();
    } else if (!to_a.out.empty()) {
      ExchangeMessage m = std::move(to_a.out.front());
      to_a.out.pop_front();
      ASSERT_TRUE(a.OnMessage(m).ok()) << a.status();
    } else {
      return;
    }
  }
  FAIL() << "no end";
}

TEST(ExchangeDriverTest, RepairsBothSidesAndCountsApplied) {
  Node a(1), b(2);
  for (int i = 0; i < 20; ++i) (i % 2 ? a : b).Put(absl::StrCat("k", i), "v");
  QueueStream to_b, to_a;
  auto i = ExchangeDriver::Initiate(a.store.get(), {}, 7, &to_b);
  uint64_t admitted_peer = 0;
  auto r = ExchangeDriver::Respond(b.store.get(), {}, &to_a, [&](uint64_t p) {
    admitted_peer = p;
    return absl::OkStatus();
  });
  ASSERT_TRUE(i.ok() && r.ok());
  ASSERT_TRUE((*i)->Start().ok());
  EXPECT_FALSE((*r)->admitted());
  Pump(**i, to_b, **r, to_a);
  EXPECT_TRUE((*i)->done());
  EXPECT_TRUE((*r)->done());
  EXPECT_EQ(admitted_peer, 1u);
  EXPECT_TRUE((*r)->admitted());
  EXPECT_EQ((*i)->records_applied(), 10);
  EXPECT_EQ((*r)->records_applied(), 10);
  EXPECT_EQ((*i)->records_refused(), 0);
  EXPECT_EQ(a.store->tree().Root(), b.store->tree().Root());
  // Nothing after the end.
  ExchangeMessage m;
  m.set_end_of_turn(true);
  EXPECT_EQ((*r)->OnMessage(m).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ExchangeDriverTest, ResponderAdmitsOnlyAfterAValidHello) {
  Node a(1), b(2);
  a.Put("x", "1");
  QueueStream to_a;
  int admits = 0;
  auto admit = [&](uint64_t) {
    ++admits;
    return absl::OkStatus();
  };
  // Not a Hello first.
  {
    auto r = ExchangeDriver::Respond(b.store.get(), {}, &to_a, admit);
    ExchangeMessage m;
    m.set_end_of_turn(true);
    absl::Status s = (*r)->OnMessage(m);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.message()), HasSubstr("must be a Hello"));
    EXPECT_FALSE((*r)->admitted());
  }
  // A Hello the core rejects (other leaf depth).
  {
    Node other(3, 7);
    QueueStream sink;
    auto i = ExchangeDriver::Initiate(other.store.get(), {}, 1, &sink);
    ASSERT_TRUE((*i)->Start().ok());
    auto r = ExchangeDriver::Respond(b.store.get(), {}, &to_a, admit);
    EXPECT_EQ((*r)->OnMessage(sink.out.at(0)).code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_FALSE((*r)->admitted());
  }
  EXPECT_EQ(admits, 0);
  EXPECT_TRUE(to_a.out.empty());
}

TEST(ExchangeDriverTest, RefusedAdmissionSendsNothing) {
  Node a(1), b(2);
  a.Put("x", "1");
  QueueStream to_b, to_a;
  auto i = ExchangeDriver::Initiate(a.store.get(), {}, 1, &to_b);
  ASSERT_TRUE((*i)->Start().ok());
  auto r = ExchangeDriver::Respond(b.store.get(), {}, &to_a, [](uint64_t) {
    return absl::UnavailableError("full");
  });
  EXPECT_EQ((*r)->OnMessage(to_b.out.at(0)).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_TRUE(to_a.out.empty());
  EXPECT_FALSE((*r)->done());
  EXPECT_EQ((*r)->OnMessage(to_b.out.at(0)).code(),
            absl::StatusCode::kUnavailable);  // Stays failed.
}

TEST(ExchangeDriverTest, WriteErrorEndsTheExchange) {
  Node a(1), b(2);
  a.Put("x", "1");
  QueueStream to_b;
  to_b.closed = true;
  auto i = ExchangeDriver::Initiate(a.store.get(), {}, 1, &to_b);
  EXPECT_EQ((*i)->Start().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE((*i)->done());
}

TEST(ExchangeDriverTest, RefusedRecordsAreCounted) {
  Node a(1), b(2);
  storage::StoreOptions o;
  o.leaf_depth = 4;
  o.clock = &b.clock;
  o.node_id = 2;
  o.max_clock_drift_ms = 1000;
  auto strict = storage::Store::Open(std::make_unique<storage::MemoryEngine>(), o);
  ASSERT_TRUE(strict.ok());
  a.clock.Advance(3'600'000);  // An hour ahead.
  a.Put("ahead", "1");
  QueueStream to_b, to_a;
  auto i = ExchangeDriver::Initiate(a.store.get(), {}, 1, &to_b);
  auto r = ExchangeDriver::Respond(strict->get(), {}, &to_a, nullptr);
  ASSERT_TRUE((*i)->Start().ok());
  Pump(**i, to_b, **r, to_a);
  EXPECT_TRUE((*r)->done());
  EXPECT_EQ((*r)->records_refused(), 1);
  EXPECT_EQ((*r)->records_applied(), 0);
  EXPECT_FALSE((*r)->first_refusal().ok());
}

// Issue 13 item 15: every peer, the last included, can be picked, and the
// draw picks uniformly.
TEST(SessionsTest, PickPeerReachesEveryPeerUniformly) {
  Sessions s(1, {});
  EXPECT_EQ(s.PickPeer(5), std::nullopt);
  s.SetPeers({"a:1", "b:2", "c:3"});
  EXPECT_EQ(s.PickPeer(0), "a:1");
  EXPECT_EQ(s.PickPeer(1), "b:2");
  EXPECT_EQ(s.PickPeer(2), "c:3");
  std::map<std::string, int> counts;
  for (uint64_t d = 0; d < 3000; ++d) ++counts[*s.PickPeer(d * 0x9e3779b97f4a7c15ULL)];
  ASSERT_EQ(counts.size(), 3u);
  for (const auto& [p, n] : counts) EXPECT_NEAR(n, 1000, 100) << p;
  // A single peer, and uneven lists (a new node listing a dead seed).
  s.SetPeers({"only:1"});
  EXPECT_EQ(s.PickPeer(0), "only:1");
  EXPECT_EQ(s.PickPeer(UINT64_MAX), "only:1");
  s.SetPeers({"a:1", "dead-seed:9"});
  EXPECT_EQ(s.PickPeer(1), "dead-seed:9");
}

TEST(SessionsTest, PickPeerSkipsPeersItCannotStartWith) {
  SessionOptions o;
  o.max_outgoing = 2;
  Sessions s(1, o);
  s.SetPeers({"a:1", "b:2"});
  ASSERT_TRUE(s.BeginOutgoing("a:1", 0).ok());
  for (uint64_t d = 0; d < 10; ++d) EXPECT_EQ(s.PickPeer(d), "b:2");
  // Serving b (known as node 9): no peer left.
  s.LearnPeerId("a:1", 5);
  s.LearnPeerId("b:2", 9);
  const Sessions::Id in = s.BeginIncoming(0);
  ASSERT_TRUE(s.Admit(in, 9).ok());
  EXPECT_EQ(s.PickPeer(0), std::nullopt);
  s.End(in);
  EXPECT_EQ(s.PickPeer(0), "b:2");
  // At max_outgoing: none.
  ASSERT_TRUE(s.BeginOutgoing("b:2", 0).ok());
  s.SetPeers({"a:1", "b:2", "c:3"});
  EXPECT_FALSE(s.CanInitiate("c:3"));
  EXPECT_EQ(s.PickPeer(0), std::nullopt);
}

// Issue 13 item 6: a slot is taken only after a valid Hello (Admit), and a
// node serving others still initiates.
TEST(SessionsTest, StreamsWithoutHelloTakeNoSlot) {
  SessionOptions o;
  o.max_incoming = 2;
  Sessions s(5, o);
  for (int i = 0; i < 10; ++i) s.BeginIncoming(0);  // Idle, no Hello.
  EXPECT_EQ(s.incoming_admitted(), 0);
  const Sessions::Id a = s.BeginIncoming(0), b = s.BeginIncoming(0),
                     c = s.BeginIncoming(0);
  EXPECT_TRUE(s.Admit(a, 1).ok());
  EXPECT_TRUE(s.Admit(b, 2).ok());
  absl::Status full = s.Admit(c, 3);
  EXPECT_EQ(full.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(full.message()), HasSubstr("already serving 2"));
  EXPECT_EQ(s.Admit(999, 3).code(), absl::StatusCode::kNotFound);
  // Serving nodes 1 and 2, it initiates to others.
  s.SetPeers({"n1", "n3"});
  s.LearnPeerId("n1", 1);
  s.LearnPeerId("n3", 3);
  EXPECT_FALSE(s.CanInitiate("n1"));  // The same peer: no.
  EXPECT_TRUE(s.CanInitiate("n3"));
  // A peer of unknown id may be node 1 or 2, already served: not yet (both
  // would stream the same differences at once).
  EXPECT_FALSE(s.CanInitiate("unknown:1"));
  EXPECT_TRUE(s.BeginOutgoing("n3", 0).ok());
  EXPECT_EQ(s.BeginOutgoing("n3", 0).status().code(),
            absl::StatusCode::kUnavailable);  // One at a time per peer.
  s.End(a);
  EXPECT_TRUE(s.Admit(c, 3).ok());
  EXPECT_EQ(s.incoming_admitted(), 2);
}

// While one peer fills this node (an exchange declared ranges empty), no
// exchange with another peer starts either way: it would stream the same
// ranges. The filling peer's exchanges go on; after it ends, all is open.
TEST(SessionsTest, ANodeBeingFilledTakesNoOtherPeer) {
  Sessions s(5, {});
  s.SetPeers({"n1", "n2", "unknown:3"});
  s.LearnPeerId("n1", 1);
  s.LearnPeerId("n2", 2);
  // Filled by n1 through an exchange it started.
  const Sessions::Id in = s.BeginIncoming(0);
  ASSERT_TRUE(s.Admit(in, 1).ok());
  s.MarkFilling(in);
  EXPECT_FALSE(s.CanInitiate("n2"));
  EXPECT_FALSE(s.CanInitiate("unknown:3"));  // Might be anyone.
  const Sessions::Id other = s.BeginIncoming(0);
  absl::Status refused = s.Admit(other, 2);
  EXPECT_EQ(refused.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("being filled"));
  s.End(in);
  EXPECT_TRUE(s.CanInitiate("n2"));
  EXPECT_TRUE(s.Admit(other, 2).ok());
  s.End(other);
  // Filled through an exchange it started itself, with n2: n2 may come
  // back at once (after that one ends), n1 may not meanwhile.
  auto out = s.BeginOutgoing("n2", 0);
  ASSERT_TRUE(out.ok());
  s.MarkFilling(*out);
  const Sessions::Id from_n1 = s.BeginIncoming(0);
  EXPECT_EQ(s.Admit(from_n1, 1).code(), absl::StatusCode::kAborted);
  s.End(*out);
  EXPECT_TRUE(s.Admit(from_n1, 1).ok());
}

TEST(SessionsTest, LowerIdYieldsOnlyForTheSamePeer) {
  Sessions low(2, {});
  low.LearnPeerId("n7", 7);
  low.LearnPeerId("n9", 9);
  ASSERT_TRUE(low.BeginOutgoing("n7", 0).ok());
  // Node 7 starts one with us at the same moment: we have the lower id.
  absl::Status yield = low.Admit(low.BeginIncoming(0), 7);
  EXPECT_EQ(yield.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(yield.message()), HasSubstr("yields"));
  // Another node is served while we run ours with node 7.
  EXPECT_TRUE(low.Admit(low.BeginIncoming(0), 9).ok());
  // A lower node is served (it yields on its side).
  EXPECT_TRUE(low.Admit(low.BeginIncoming(0), 1).ok());

  // Higher id: serves the peer it also started one with.
  Sessions high(7, {});
  high.LearnPeerId("n2", 2);
  ASSERT_TRUE(high.BeginOutgoing("n2", 0).ok());
  EXPECT_TRUE(high.Admit(high.BeginIncoming(0), 2).ok());

  // An outgoing exchange to a peer of unknown id may be the same peer.
  Sessions unsure(2, {});
  ASSERT_TRUE(unsure.BeginOutgoing("somewhere:1", 0).ok());
  EXPECT_EQ(unsure.Admit(unsure.BeginIncoming(0), 7).code(),
            absl::StatusCode::kAborted);
}

TEST(SessionsTest, DeadlineAndIdleTimeout) {
  SessionOptions o;
  o.deadline_ms = 1000;
  o.idle_timeout_ms = 300;
  Sessions s(1, o);
  const Sessions::Id quiet = s.BeginIncoming(0);  // Never sends.
  const Sessions::Id chatty = s.BeginIncoming(0);
  auto out = s.BeginOutgoing("p", 0);
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(s.Expired(299).empty());
  for (int64_t t = 100; t < 1000; t += 100) {
    s.Touch(chatty, t);
    s.Touch(*out, t);
    if (t == 300) {
      EXPECT_THAT(s.Expired(t), ElementsAre(quiet));
    }
  }
  // The overall deadline ends even an exchange that keeps talking.
  s.Touch(chatty, 1000);
  s.Touch(*out, 1000);
  EXPECT_THAT(s.Expired(1000), ElementsAre(quiet, chatty, *out));
  s.End(quiet);
  s.End(chatty);
  s.End(*out);
  EXPECT_EQ(s.size(), 0u);
  EXPECT_TRUE(s.Expired(5000).empty());
}

TEST(SessionsTest, EndFreesTheSlot) {
  SessionOptions o;
  o.max_incoming = 1;
  Sessions s(1, o);
  const Sessions::Id a = s.BeginIncoming(0);
  ASSERT_TRUE(s.Admit(a, 2).ok());
  const Sessions::Id b = s.BeginIncoming(0);
  EXPECT_EQ(s.Admit(b, 3).code(), absl::StatusCode::kUnavailable);
  s.End(a);
  s.End(a);  // Twice: no effect.
  EXPECT_TRUE(s.Admit(b, 3).ok());
  EXPECT_EQ(s.incoming_admitted(), 1);
}

// A new exchange from a peer means it gave up its earlier ones here: they
// free their slots (and their filling mark) for it; other peers' stay.
TEST(SessionsTest, ANewExchangeFromAPeerSupersedesItsEarlierOnes) {
  SessionOptions o;
  o.max_incoming = 2;
  Sessions s(1, o);
  const Sessions::Id a = s.BeginIncoming(0), b = s.BeginIncoming(0);
  ASSERT_TRUE(s.Admit(a, 7).ok());
  ASSERT_TRUE(s.Admit(b, 8).ok());
  s.MarkFilling(a);
  s.SetPeers({"n9"});
  s.LearnPeerId("n9", 9);
  EXPECT_FALSE(s.CanInitiate("n9"));  // Node 7 fills this one.
  const Sessions::Id c = s.BeginIncoming(0);
  EXPECT_EQ(s.Admit(c, 7).code(), absl::StatusCode::kUnavailable);  // Both slots held.
  EXPECT_THAT(s.Supersede(c, 7), ElementsAre(a));
  EXPECT_EQ(s.incoming_admitted(), 1);
  EXPECT_TRUE(s.CanInitiate("n9"));  // a no longer fills it.
  EXPECT_TRUE(s.Admit(c, 7).ok());
  EXPECT_EQ(s.incoming_admitted(), 2);
  s.End(a);  // The superseded one ends later: its slot is not freed twice.
  EXPECT_EQ(s.incoming_admitted(), 2);
  EXPECT_THAT(s.Supersede(c, 7), IsEmpty());  // c itself is not superseded.
  EXPECT_THAT(s.Supersede(s.BeginIncoming(0), 0), IsEmpty());  // Unknown peer.
  EXPECT_EQ(s.incoming_admitted(), 2);
}

}  // namespace
}  // namespace kv::replication
