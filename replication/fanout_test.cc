#include "replication/fanout.h"

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kv::replication {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;

storage::Record Rec(const std::string& key, uint64_t hlc, std::string value = "v") {
  storage::Record r;
  r.key = key;
  r.version = storage::Version{hlc, 7};
  r.value = std::move(value);
  return r;
}

TEST(RequiredReplicasTest, Levels) {
  EXPECT_EQ(RequiredReplicas(ConsistencyLevel::kOne, 5), 1);
  EXPECT_EQ(RequiredReplicas(ConsistencyLevel::kQuorum, 5), 3);
  EXPECT_EQ(RequiredReplicas(ConsistencyLevel::kQuorum, 4), 3);
  EXPECT_EQ(RequiredReplicas(ConsistencyLevel::kQuorum, 3), 2);
  EXPECT_EQ(RequiredReplicas(ConsistencyLevel::kQuorum, 1), 1);
  EXPECT_EQ(RequiredReplicas(ConsistencyLevel::kAll, 3), 3);
  EXPECT_EQ(RequiredReplicas(ConsistencyLevel::kAll, 0), 1);
}

TEST(FanoutTest, PushesEveryWriteToEveryPeerInOneBatch) {
  Fanout f;
  f.SetPeers({"b", "a"});
  std::vector<storage::Record> recs{Rec("k1", 10), Rec("k2", 11)};
  EXPECT_EQ(f.Write(recs, 1, 0, 100), 0u);  // ONE: untracked.
  std::vector<FanoutBatch> batches = f.TakeBatches();
  ASSERT_THAT(batches, SizeIs(2));
  EXPECT_EQ(batches[0].peer, "a");
  EXPECT_EQ(batches[1].peer, "b");
  EXPECT_THAT(batches[0].records, ElementsAre(recs[0], recs[1]));
  EXPECT_THAT(f.TakeBatches(), IsEmpty());
  f.OnBatchDone("a", batches[0].batch_id, true);
  f.OnBatchDone("b", batches[1].batch_id, true);
  EXPECT_EQ(f.stats().records_acked, 4);
  EXPECT_THAT(f.TakeOutcomes(), IsEmpty());
}

TEST(FanoutTest, NewerVersionReplacesQueuedOneOlderIsDiscarded) {
  Fanout f;
  f.SetPeers({"a"});
  f.Write(std::vector{Rec("k", 10, "old")}, 1, 0, 100);
  f.Write(std::vector{Rec("k", 12, "new")}, 1, 0, 100);
  f.Write(std::vector{Rec("k", 11, "mid")}, 1, 0, 100);
  EXPECT_EQ(f.QueuedRecords("a"), 1u);
  EXPECT_EQ(f.stats().records_coalesced, 2);
  std::vector<FanoutBatch> b = f.TakeBatches();
  ASSERT_THAT(b, SizeIs(1));
  ASSERT_THAT(b[0].records, SizeIs(1));
  EXPECT_EQ(b[0].records[0].value, "new");
}

TEST(FanoutTest, QueueIsBoundedAndDropsAreCounted) {
  FanoutOptions o;
  o.max_queue_records = 3;
  o.max_in_flight_per_peer = 1;
  Fanout f(o);
  f.SetPeers({"frozen"});
  for (int i = 0; i < 10; ++i) {
    f.Write(std::vector{Rec("k" + std::to_string(i), 10 + i)}, 1, 0, 100);
  }
  EXPECT_EQ(f.QueuedRecords("frozen"), 3u);
  EXPECT_EQ(f.stats().records_dropped, 7);
  // One batch goes out; while it is in flight nothing more is sent, and new
  // writes queue up to the bound again.
  ASSERT_THAT(f.TakeBatches(), SizeIs(1));
  for (int i = 10; i < 20; ++i) {
    f.Write(std::vector{Rec("k" + std::to_string(i), 10 + i)}, 1, 0, 100);
  }
  EXPECT_THAT(f.TakeBatches(), IsEmpty());
  EXPECT_EQ(f.QueuedRecords("frozen"), 3u);
  EXPECT_EQ(f.InFlight("frozen"), 1u);
  EXPECT_EQ(f.stats().records_dropped, 14);
}

TEST(FanoutTest, QueueIsBoundedInBytes) {
  FanoutOptions o;
  o.max_queue_bytes = 1000;
  Fanout f(o);
  f.SetPeers({"a"});
  for (int i = 0; i < 10; ++i) {
    f.Write(std::vector{Rec("k" + std::to_string(i), 10 + i, std::string(300, 'x'))},
            1, 0, 100);
  }
  EXPECT_LE(f.QueuedBytes("a"), 1000u);
  EXPECT_EQ(f.QueuedRecords("a"), 2u);
  EXPECT_EQ(f.stats().records_dropped, 8);
}

TEST(FanoutTest, BatchesAreBoundedInRecordsAndBytes) {
  FanoutOptions o;
  o.max_batch_records = 4;
  o.max_batch_bytes = 1 << 20;
  o.max_in_flight_per_peer = 10;
  Fanout f(o);
  f.SetPeers({"a"});
  for (int i = 0; i < 10; ++i) {
    f.Write(std::vector{Rec("k" + std::to_string(i), 10 + i)}, 1, 0, 100);
  }
  std::vector<FanoutBatch> b = f.TakeBatches();
  // Two full batches at once; the last two records are not a batch's worth
  // and wait for the answers.
  ASSERT_THAT(b, SizeIs(2));
  EXPECT_THAT(b[0].records, SizeIs(4));
  EXPECT_THAT(b[1].records, SizeIs(4));
  f.OnBatchDone("a", b[0].batch_id, true);
  f.OnBatchDone("a", b[1].batch_id, true);
  f.Tick(100);
  b = f.TakeBatches();
  ASSERT_THAT(b, SizeIs(1));
  EXPECT_THAT(b[0].records, SizeIs(2));

  FanoutOptions ob;
  ob.max_batch_bytes = 500;
  ob.max_in_flight_per_peer = 10;
  Fanout g(ob);
  g.SetPeers({"a"});
  g.Write(std::vector{Rec("big", 1, std::string(2000, 'x'))}, 1, 0, 100);
  g.Write(std::vector{Rec("s1", 2, std::string(200, 'x'))}, 1, 0, 100);
  g.Write(std::vector{Rec("s2", 3, std::string(200, 'x'))}, 1, 0, 100);
  g.Write(std::vector{Rec("s3", 4, std::string(200, 'x'))}, 1, 0, 100);
  b = g.TakeBatches();
  ASSERT_THAT(b, SizeIs(2));
  EXPECT_THAT(b[0].records, SizeIs(1));  // Over the limit alone.
  EXPECT_THAT(b[1].records, SizeIs(2));
  g.OnBatchDone("a", b[0].batch_id, true);
  g.OnBatchDone("a", b[1].batch_id, true);
  g.Tick(100);
  b = g.TakeBatches();
  ASSERT_THAT(b, SizeIs(1));
  EXPECT_THAT(b[0].records, SizeIs(1));
}

TEST(FanoutTest, APartialBatchWaitsForTheOneInFlightAndTheInterval) {
  FanoutOptions o;
  o.min_push_interval_ms = 2;
  Fanout f(o);
  f.SetPeers({"a"});
  // Light load: a write goes at once.
  f.Write(std::vector{Rec("k1", 10)}, 1, 0, 100);
  std::vector<FanoutBatch> b = f.TakeBatches();
  ASSERT_THAT(b, SizeIs(1));
  EXPECT_EQ(f.NextRetryMs(), std::nullopt);
  // Writes while it travels wait for its answer...
  f.Write(std::vector{Rec("k2", 11)}, 1, 1, 100);
  EXPECT_THAT(f.TakeBatches(), IsEmpty());
  EXPECT_EQ(f.NextRetryMs(), std::nullopt);  // Not a time: the answer.
  f.OnBatchDone("a", b[0].batch_id, true);
  // ...and the interval since the previous batch, gathering what comes.
  f.Write(std::vector{Rec("k3", 12)}, 1, 1, 100);
  EXPECT_THAT(f.TakeBatches(), IsEmpty());
  EXPECT_EQ(f.NextRetryMs(), 2);
  f.Tick(2);
  b = f.TakeBatches();
  ASSERT_THAT(b, SizeIs(1));
  EXPECT_THAT(b[0].records, ElementsAre(Rec("k2", 11), Rec("k3", 12)));
  f.OnBatchDone("a", b[0].batch_id, true);
  // Light load again: long after the previous batch, at once.
  f.Write(std::vector{Rec("k4", 13)}, 1, 50, 100);
  EXPECT_THAT(f.TakeBatches(), SizeIs(1));
}

TEST(FanoutTest, AFullBatchGoesAtOnceBehindOneInFlight) {
  FanoutOptions o;
  o.min_push_interval_ms = 1000;
  o.max_batch_records = 3;
  Fanout f(o);
  f.SetPeers({"a"});
  f.Write(std::vector{Rec("k0", 10)}, 1, 0, 100);
  ASSERT_THAT(f.TakeBatches(), SizeIs(1));
  f.Write(std::vector{Rec("k1", 11), Rec("k2", 12)}, 1, 0, 100);
  EXPECT_THAT(f.TakeBatches(), IsEmpty());
  f.Write(std::vector{Rec("k3", 13)}, 1, 0, 100);
  std::vector<FanoutBatch> b = f.TakeBatches();
  ASSERT_THAT(b, SizeIs(1));
  EXPECT_THAT(b[0].records, SizeIs(3));
  EXPECT_EQ(f.InFlight("a"), 2u);
}

TEST(FanoutTest, QuorumWriteCompletesAtEnoughAcks) {
  Fanout f;
  f.SetPeers({"a", "b", "c", "d"});
  // QUORUM of 5: the local apply and two peers.
  const uint64_t id = f.Write(std::vector{Rec("k", 10)}, 3, 0, 1000);
  ASSERT_NE(id, 0u);
  std::vector<FanoutBatch> b = f.TakeBatches();
  ASSERT_THAT(b, SizeIs(4));
  f.OnBatchDone("a", b[0].batch_id, true);
  EXPECT_THAT(f.TakeOutcomes(), IsEmpty());
  f.OnBatchDone("b", b[1].batch_id, false);
  EXPECT_THAT(f.TakeOutcomes(), IsEmpty());
  f.OnBatchDone("c", b[2].batch_id, true);
  std::vector<WriteOutcome> out = f.TakeOutcomes();
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0].write_id, id);
  EXPECT_TRUE(out[0].ok);
  EXPECT_EQ(out[0].acks, 3);
  EXPECT_EQ(out[0].needed, 3);
  // A late answer changes nothing.
  f.OnBatchDone("d", b[3].batch_id, true);
  EXPECT_THAT(f.TakeOutcomes(), IsEmpty());
  EXPECT_EQ(f.TrackedWrites(), 0u);
}

TEST(FanoutTest, AllFailsAsSoonAsAPeerFails) {
  Fanout f;
  f.SetPeers({"a", "b"});
  const uint64_t id = f.Write(std::vector{Rec("k", 10)}, 3, 0, 1000);
  std::vector<FanoutBatch> b = f.TakeBatches();
  f.OnBatchDone("a", b[0].batch_id, true);
  f.OnBatchDone("b", b[1].batch_id, false);
  std::vector<WriteOutcome> out = f.TakeOutcomes();
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0].write_id, id);
  EXPECT_FALSE(out[0].ok);
  EXPECT_FALSE(out[0].timed_out);
  EXPECT_EQ(out[0].acks, 2);
  EXPECT_EQ(out[0].needed, 3);
}

TEST(FanoutTest, TooFewTargetsFailsAtOnce) {
  Fanout f;
  f.SetPeers({"a"});
  f.Write(std::vector{Rec("k", 10)}, 3, 0, 1000);
  std::vector<WriteOutcome> out = f.TakeOutcomes();
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_FALSE(out[0].ok);
  EXPECT_EQ(out[0].acks, 1);
  EXPECT_EQ(out[0].needed, 3);
  // The record still goes to the one peer (it will spread anyway).
  EXPECT_THAT(f.TakeBatches(), SizeIs(1));
}

TEST(FanoutTest, DeadlineFailsWithTheCountSoFar) {
  Fanout f;
  f.SetPeers({"a", "b"});
  f.Write(std::vector{Rec("k", 10)}, 3, 0, 500);
  std::vector<FanoutBatch> b = f.TakeBatches();
  f.OnBatchDone("a", b[0].batch_id, true);
  f.Tick(499);
  EXPECT_THAT(f.TakeOutcomes(), IsEmpty());
  f.Tick(500);
  std::vector<WriteOutcome> out = f.TakeOutcomes();
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_FALSE(out[0].ok);
  EXPECT_TRUE(out[0].timed_out);
  EXPECT_EQ(out[0].acks, 2);
}

TEST(FanoutTest, MultiRecordWriteNeedsEveryRecordAcked) {
  FanoutOptions o;
  o.max_batch_records = 1;
  o.max_in_flight_per_peer = 1;
  Fanout f(o);
  f.SetPeers({"a"});
  f.Write(std::vector{Rec("k1", 10), Rec("k2", 10)}, 2, 0, 1000);
  std::vector<FanoutBatch> b = f.TakeBatches();
  ASSERT_THAT(b, SizeIs(1));
  f.OnBatchDone("a", b[0].batch_id, true);
  EXPECT_THAT(f.TakeOutcomes(), IsEmpty());
  b = f.TakeBatches();
  ASSERT_THAT(b, SizeIs(1));
  f.OnBatchDone("a", b[0].batch_id, true);
  std::vector<WriteOutcome> out = f.TakeOutcomes();
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_TRUE(out[0].ok);
}

TEST(FanoutTest, CoalescedWriteIsAckedByTheNewerRecord) {
  Fanout f;
  f.SetPeers({"a"});
  const uint64_t w1 = f.Write(std::vector{Rec("k", 10)}, 2, 0, 1000);
  const uint64_t w2 = f.Write(std::vector{Rec("k", 12)}, 2, 0, 1000);
  std::vector<FanoutBatch> b = f.TakeBatches();
  ASSERT_THAT(b, SizeIs(1));
  ASSERT_THAT(b[0].records, SizeIs(1));
  EXPECT_EQ(b[0].records[0].version.hlc, 12u);
  f.OnBatchDone("a", b[0].batch_id, true);
  std::vector<WriteOutcome> out = f.TakeOutcomes();
  ASSERT_THAT(out, SizeIs(2));
  EXPECT_EQ(out[0].write_id, w1);
  EXPECT_EQ(out[1].write_id, w2);
  EXPECT_TRUE(out[0].ok);
  EXPECT_TRUE(out[1].ok);
}

TEST(FanoutTest, DroppedRecordFailsItsWriteForThatPeer) {
  FanoutOptions o;
  o.max_queue_records = 1;
  Fanout f(o);
  f.SetPeers({"a"});
  f.Write(std::vector{Rec("x", 10)}, 1, 0, 1000);
  f.Write(std::vector{Rec("k", 11)}, 2, 0, 1000);
  std::vector<WriteOutcome> out = f.TakeOutcomes();
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_FALSE(out[0].ok);
}

TEST(FanoutTest, RemovedPeerLosesItsQueueAndFailsItsWrites) {
  Fanout f;
  f.SetPeers({"a", "b"});
  f.Write(std::vector{Rec("k", 10)}, 3, 0, 1000);
  std::vector<FanoutBatch> b = f.TakeBatches();
  f.Write(std::vector{Rec("k2", 11)}, 1, 0, 1000);
  f.SetPeers({"a"});
  std::vector<WriteOutcome> out = f.TakeOutcomes();
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_FALSE(out[0].ok);
  EXPECT_EQ(f.stats().records_dropped, 2);  // One in flight, one queued.
  EXPECT_EQ(f.QueuedRecords("b"), 0u);
  f.OnBatchDone("b", b[1].batch_id, true);  // Ignored.
  EXPECT_EQ(f.stats().records_acked, 0);
}

TEST(FanoutTest, ExplicitTargetsAndRepair) {
  Fanout f;
  f.SetPeers({"a", "b", "c"});
  f.Write(std::vector{Rec("k", 10)}, 2, 0, 1000, std::vector<std::string>{"c"});
  f.Repair("b", Rec("r", 5));
  std::vector<FanoutBatch> b = f.TakeBatches();
  ASSERT_THAT(b, SizeIs(2));
  EXPECT_EQ(b[0].peer, "b");
  EXPECT_EQ(b[0].records[0].key, "r");
  EXPECT_EQ(b[1].peer, "c");
}

std::vector<std::string> Peers(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back("p" + std::to_string(i));
  return out;
}

std::set<std::string> BatchPeers(const std::vector<FanoutBatch>& batches) {
  std::set<std::string> out;
  for (const FanoutBatch& b : batches) out.insert(b.peer);
  return out;
}

TEST(RumorHopsTest, LogFanoutPlusLnPlusTwo) {
  EXPECT_EQ(RumorHops(1, 4), 2);
  EXPECT_EQ(RumorHops(4, 4), 5);     // 1 + ceil(1.39) + 2.
  EXPECT_EQ(RumorHops(5, 4), 6);     // 2 + ceil(1.61) + 2.
  EXPECT_EQ(RumorHops(50, 4), 9);    // 4^3 = 64 >= 50; ln 50 = 3.9.
  EXPECT_EQ(RumorHops(500, 4), 14);  // 4^5 = 1024 >= 500; ln 500 = 6.2.
  EXPECT_EQ(RumorHops(500, 8), 12);  // 8^3 = 512.
  EXPECT_EQ(RumorHops(100, 1), RumorHops(100, 2));  // fanout below 2 counts as 2.
}

TEST(RumorTest, AtMostFanoutPeersAllGetEveryWriteWithNoHops) {
  FanoutOptions o;
  o.fanout = 4;
  Fanout f(o);
  f.SetPeers(Peers(4));  // A 5-node cluster.
  f.Write(std::vector{Rec("k", 10)}, 1, 0, 100);
  std::vector<FanoutBatch> b = f.TakeBatches();
  EXPECT_THAT(b, SizeIs(4));
  for (const FanoutBatch& batch : b) EXPECT_THAT(batch.hops, ElementsAre(0u));
  EXPECT_EQ(f.stats().rumor_writes, 0);
}

TEST(RumorTest, AboveFanoutAOneWriteGoesToFanoutRandomPeersWithHops) {
  FanoutOptions o;
  o.fanout = 3;
  o.min_push_interval_ms = 0;  // One batch per write at one time.
  Fanout f(o);
  f.SetPeers(Peers(49));  // 50 members.
  std::set<std::string> chosen;
  for (int i = 0; i < 100; ++i) {
    f.Write(std::vector{Rec("k" + std::to_string(i), 10)}, 1, 0, 100);
    std::vector<FanoutBatch> b = f.TakeBatches();
    ASSERT_THAT(b, SizeIs(3));
    EXPECT_THAT(BatchPeers(b), SizeIs(3));  // Distinct.
    for (const FanoutBatch& batch : b) {
      // The writer's push is the first hop.
      EXPECT_THAT(batch.hops, ElementsAre(static_cast<uint32_t>(RumorHops(50, 3) - 1)));
      chosen.insert(batch.peer);
      f.OnBatchDone(batch.peer, batch.batch_id, true);
    }
  }
  EXPECT_EQ(f.stats().rumor_writes, 100);
  // 300 draws over 49 peers: every peer is drawn (a fixed choice would not).
  EXPECT_THAT(chosen, SizeIs(49));
}

TEST(RumorTest, SameSeedSameTargetsOtherSeedOtherTargets) {
  auto targets = [](uint64_t seed) {
    FanoutOptions o;
    o.fanout = 2;
    o.seed = seed;
    Fanout f(o);
    f.SetPeers(Peers(30));
    std::vector<std::string> out;
    for (int i = 0; i < 20; ++i) {
      f.Write(std::vector{Rec("k" + std::to_string(i), 10)}, 1, 0, 100);
      for (const FanoutBatch& b : f.TakeBatches()) {
        out.push_back(b.peer);
        f.OnBatchDone(b.peer, b.batch_id, true);
      }
    }
    return out;
  };
  EXPECT_EQ(targets(7), targets(7));
  EXPECT_NE(targets(7), targets(8));
}

TEST(RumorTest, TrackedWritesGoDirectlyToTheirTargetsWithoutHops) {
  FanoutOptions o;
  o.fanout = 2;
  Fanout f(o);
  f.SetPeers(Peers(10));
  const uint64_t id =
      f.Write(std::vector{Rec("k", 10)}, 6, 0, 100, Peers(10));  // QUORUM of 11.
  ASSERT_NE(id, 0u);
  std::vector<FanoutBatch> b = f.TakeBatches();
  ASSERT_THAT(b, SizeIs(10));
  for (const FanoutBatch& batch : b) EXPECT_THAT(batch.hops, ElementsAre(0u));
  EXPECT_EQ(f.stats().rumor_writes, 0);
}

TEST(RumorTest, ForwardSkipsTheSenderAndSpendsAHop) {
  FanoutOptions o;
  o.fanout = 3;
  o.min_push_interval_ms = 0;  // One batch per write at one time.
  Fanout f(o);
  f.SetPeers(Peers(8));
  for (int i = 0; i < 50; ++i) {
    std::vector recs{Rec("k" + std::to_string(i), 10)};
    std::vector<uint32_t> hops{4};
    EXPECT_EQ(f.Forward(recs, hops, "p0"), 3u);
    std::vector<FanoutBatch> b = f.TakeBatches();
    ASSERT_THAT(b, SizeIs(3));
    EXPECT_EQ(BatchPeers(b).count("p0"), 0u);
    for (const FanoutBatch& batch : b) {
      EXPECT_THAT(batch.hops, ElementsAre(3u));
      f.OnBatchDone(batch.peer, batch.batch_id, true);
    }
  }
  EXPECT_EQ(f.stats().records_forwarded, 150);
}

TEST(RumorTest, NoHopsLeftGoesNowhere) {
  Fanout f;
  f.SetPeers(Peers(20));
  std::vector recs{Rec("a", 10), Rec("b", 11)};
  std::vector<uint32_t> hops{0, 1};
  EXPECT_EQ(f.Forward(recs, hops, "p3"), static_cast<size_t>(kDefaultFanout));
  for (const FanoutBatch& b : f.TakeBatches()) {
    ASSERT_THAT(b.records, SizeIs(1));
    EXPECT_EQ(b.records[0].key, "b");
    EXPECT_THAT(b.hops, ElementsAre(0u));
  }
}

TEST(RumorTest, FewPeersLeftAfterTheSenderAllGetIt) {
  FanoutOptions o;
  o.fanout = 4;
  Fanout f(o);
  f.SetPeers({"a", "b", "c"});
  std::vector recs{Rec("k", 10)};
  std::vector<uint32_t> hops{2};
  EXPECT_EQ(f.Forward(recs, hops, "b"), 2u);
  EXPECT_EQ(BatchPeers(f.TakeBatches()), (std::set<std::string>{"a", "c"}));
}

TEST(RumorTest, NewerVersionCarriesItsOwnHops) {
  Fanout f;
  f.SetPeers({"a"});
  std::vector<uint32_t> five{5}, zero{0};
  // Forward needs a peer other than the sender: "x" is the sender.
  f.Forward(std::vector{Rec("k", 10)}, five, "x");
  f.Write(std::vector{Rec("k", 12)}, 1, 0, 100);  // Direct: no hops.
  std::vector<FanoutBatch> b = f.TakeBatches();
  ASSERT_THAT(b, SizeIs(1));
  EXPECT_EQ(b[0].records[0].version.hlc, 12u);
  EXPECT_THAT(b[0].hops, ElementsAre(0u));
}

// A whole cluster of cores, pushes delivered at once in random order, each
// receiver applying last-writer-wins and forwarding only what changed its
// data: the rumor stops by itself, costs at most fanout messages per node,
// and a budget of 2 hops stops it after the writer's targets and theirs.
struct Cluster {
  explicit Cluster(int n, int fanout, int hops) {
    for (int i = 0; i < n; ++i) {
      FanoutOptions o;
      o.fanout = fanout;
      o.rumor_hops = hops;
      o.seed = 100 + i;
      cores.push_back(std::make_unique<Fanout>(o));
      data.emplace_back();
    }
    for (int i = 0; i < n; ++i) {
      std::vector<std::string> peers;
      for (int j = 0; j < n; ++j) {
        if (j != i) peers.push_back("p" + std::to_string(j));
      }
      cores[i]->SetPeers(peers);
    }
  }
  // Runs until no core has anything to send; returns the pushes made.
  int Run() {
    int pushes = 0;
    for (int guard = 0; guard < 10000; ++guard) {
      bool any = false;
      for (size_t i = 0; i < cores.size(); ++i) {
        for (FanoutBatch& b : cores[i]->TakeBatches()) {
          any = true;
          ++pushes;
          const int to = std::stoi(b.peer.substr(1));
          std::vector<storage::Record> changed;
          std::vector<uint32_t> hops;
          for (size_t r = 0; r < b.records.size(); ++r) {
            auto it = data[to].find(b.records[r].key);
            if (it != data[to].end() && it->second >= b.records[r].version) continue;
            data[to][b.records[r].key] = b.records[r].version;
            changed.push_back(b.records[r]);
            hops.push_back(b.hops[r]);
          }
          cores[i]->OnBatchDone(b.peer, b.batch_id, true);
          cores[to]->Forward(changed, hops, "p" + std::to_string(i));
        }
      }
      if (!any) return pushes;
    }
    ADD_FAILURE() << "the rumor did not stop";
    return pushes;
  }
  int Holding(const std::string& key) const {
    int n = 0;
    for (const auto& d : data) n += d.count(key);
    return n;
  }
  std::vector<std::unique_ptr<Fanout>> cores;
  std::vector<std::map<std::string, storage::Version>> data;
};

TEST(RumorTest, ARumorStopsAndCostsAtMostFanoutPerNode) {
  const int n = 60, fanout = 4;
  Cluster c(n, fanout, 0);
  c.data[0]["k"] = storage::Version{10, 7};
  c.cores[0]->Write(std::vector{Rec("k", 10)}, 1, 0, 100);
  const int pushes = c.Run();
  EXPECT_LE(pushes, fanout * n);
  // Most nodes hear it (the rest are left to anti-entropy).
  EXPECT_GE(c.Holding("k"), n * 9 / 10);
}

TEST(RumorTest, OneHopReachesOnlyTheWritersTargets) {
  const int n = 60, fanout = 3;
  Cluster c(n, fanout, 1);
  c.data[0]["k"] = storage::Version{10, 7};
  c.cores[0]->Write(std::vector{Rec("k", 10)}, 1, 0, 100);
  EXPECT_EQ(c.Run(), fanout);
  EXPECT_EQ(c.Holding("k"), 1 + fanout);
}

TEST(RumorTest, TwoHopsStopAtTheTargetsOfTheTargets) {
  const int n = 60, fanout = 3;
  Cluster c(n, fanout, 2);
  c.data[0]["k"] = storage::Version{10, 7};
  c.cores[0]->Write(std::vector{Rec("k", 10)}, 1, 0, 100);
  const int pushes = c.Run();
  EXPECT_LE(pushes, fanout + fanout * fanout);
  EXPECT_LE(c.Holding("k"), 1 + fanout + fanout * fanout);
  EXPECT_GT(c.Holding("k"), 1 + fanout);  // The first hop was forwarded.
}

// ---------------------------------------------------------------------------
// Retries and hinted handoff

TEST(RetryTest, AFailedBatchIsQueuedAgainAndSentAfterABackoff) {
  Fanout f;  // retry_min_ms 50, retry_max_ms 1000.
  f.SetPeers({"a"});
  f.Write(std::vector{Rec("k", 10)}, 1, 0, 0);
  std::vector<FanoutBatch> b = f.TakeBatches();
  ASSERT_THAT(b, SizeIs(1));
  f.OnBatchDone("a", b[0].batch_id, false);
  EXPECT_EQ(f.stats().records_retried, 1);
  EXPECT_EQ(f.stats().records_dropped, 0);
  EXPECT_EQ(f.QueuedRecords("a"), 1u);
  EXPECT_THAT(f.TakeBatches(), IsEmpty());  // Backing off.
  EXPECT_EQ(f.NextRetryMs(), std::optional<int64_t>(50));
  f.Tick(49);
  EXPECT_THAT(f.TakeBatches(), IsEmpty());
  f.Tick(50);
  b = f.TakeBatches();
  ASSERT_THAT(b, SizeIs(1));
  EXPECT_EQ(b[0].records[0].key, "k");
  f.OnBatchDone("a", b[0].batch_id, false);  // Twice as long now.
  EXPECT_EQ(f.NextRetryMs(), std::optional<int64_t>(150));
  f.Tick(150);
  b = f.TakeBatches();
  ASSERT_THAT(b, SizeIs(1));
  f.OnBatchDone("a", b[0].batch_id, true);
  EXPECT_EQ(f.QueuedRecords("a"), 0u);
  EXPECT_EQ(f.NextRetryMs(), std::nullopt);
  EXPECT_EQ(f.stats().records_acked, 1);
}

TEST(RetryTest, ANewerVersionQueuedMeanwhileWinsOverTheRetry) {
  Fanout f;
  f.SetPeers({"a"});
  f.Write(std::vector{Rec("k", 10, "old")}, 1, 0, 0);
  std::vector<FanoutBatch> b = f.TakeBatches();
  f.Write(std::vector{Rec("k", 12, "new")}, 1, 0, 0);
  f.OnBatchDone("a", b[0].batch_id, false);
  f.Tick(1000);
  b = f.TakeBatches();
  ASSERT_THAT(b, SizeIs(1));
  ASSERT_THAT(b[0].records, SizeIs(1));
  EXPECT_EQ(b[0].records[0].value, "new");
}

TEST(RetryTest, RetriesStayWithinTheQueueBound) {
  FanoutOptions o;
  o.max_queue_records = 2;
  o.max_in_flight_per_peer = 1;
  o.max_batch_records = 2;
  Fanout f(o);
  f.SetPeers({"frozen"});
  f.Write(std::vector{Rec("a", 1), Rec("b", 1)}, 1, 0, 0);
  std::vector<FanoutBatch> b = f.TakeBatches();
  f.Write(std::vector{Rec("c", 1), Rec("d", 1)}, 1, 0, 0);  // The queue is full again.
  f.OnBatchDone("frozen", b[0].batch_id, false);
  EXPECT_EQ(f.QueuedRecords("frozen"), 2u);
  EXPECT_EQ(f.stats().records_dropped, 2);  // a and b found no room.
}

TEST(HintedHandoffTest, ADownMemberGetsDirectWritesOnceLiveAgain) {
  Fanout f;
  f.SetPeers({"a"}, {"b"});
  f.Write(std::vector{Rec("k1", 10)}, 1, 0, 0);
  f.Write(std::vector{Rec("k2", 11)}, 1, 0, 0);
  std::vector<FanoutBatch> b = f.TakeBatches();
  ASSERT_THAT(b, SizeIs(1));
  EXPECT_EQ(b[0].peer, "a");
  EXPECT_EQ(f.QueuedRecords("b"), 2u);
  f.SetPeers({"a", "b"});  // Back.
  b = f.TakeBatches();
  ASSERT_THAT(b, SizeIs(1));
  EXPECT_EQ(b[0].peer, "b");
  EXPECT_THAT(b[0].records, SizeIs(2));
}

TEST(HintedHandoffTest, GoingDownFailsTrackedWritesButKeepsTheRecords) {
  Fanout f;
  f.SetPeers({"a", "b"});
  const uint64_t id = f.Write(std::vector{Rec("k", 10)}, 3, 0, 1000);  // ALL of 3.
  std::vector<FanoutBatch> b = f.TakeBatches();
  ASSERT_THAT(b, SizeIs(2));
  f.OnBatchDone("a", b[0].batch_id, true);
  f.SetPeers({"a"}, {"b"});
  std::vector<WriteOutcome> out = f.TakeOutcomes();
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0].write_id, id);
  EXPECT_FALSE(out[0].ok);
  f.OnBatchDone("b", b[1].batch_id, false);  // Its batch in flight fails...
  EXPECT_EQ(f.QueuedRecords("b"), 1u);       // ...and the record waits for b.
  f.Tick(5000);
  EXPECT_THAT(f.TakeBatches(), IsEmpty());
  f.SetPeers({}, {});  // Removed: gone.
  EXPECT_EQ(f.QueuedRecords("b"), 0u);
}

TEST(HintedHandoffTest, RumorWritesAreNotHeld) {
  FanoutOptions o;
  o.fanout = 2;
  Fanout f(o);
  f.SetPeers(Peers(5), {"x"});
  f.Write(std::vector{Rec("k", 10)}, 1, 0, 0);
  EXPECT_EQ(f.QueuedRecords("x"), 0u);
}

TEST(ReadCollectorTest, NewestWinsAndStaleReplicasAreNamed) {
  ReadCollector c(3, {"a", "b", "c"}, Rec("k", 10, "local"));
  EXPECT_FALSE(c.Ready());
  c.OnReply("a", Rec("k", 12, "newer"));
  EXPECT_FALSE(c.Ready());
  c.OnFailure("b");
  EXPECT_FALSE(c.Ready());
  c.OnReply("c", std::nullopt);
  EXPECT_TRUE(c.Ready());
  EXPECT_TRUE(c.Succeeded());
  EXPECT_TRUE(c.AllDone());
  ASSERT_TRUE(c.newest().has_value());
  EXPECT_EQ(c.newest()->value, "newer");
  EXPECT_THAT(c.StalePeers(), ElementsAre("c"));
  EXPECT_TRUE(c.LocalStale());
}

TEST(ReadCollectorTest, ImpossibleWhenTooManyFail) {
  ReadCollector c(3, {"a", "b"}, std::nullopt);
  c.OnFailure("a");
  EXPECT_TRUE(c.Ready());
  EXPECT_FALSE(c.Succeeded());
  EXPECT_EQ(c.answered(), 1);
  EXPECT_FALSE(c.newest().has_value());
  EXPECT_FALSE(c.LocalStale());
  c.OnReply("a", Rec("k", 1));  // Already failed: ignored.
  EXPECT_EQ(c.answered(), 1);
}

}  // namespace
}  // namespace kv::replication
