// Seeded simulation of write fan-out (replication::Fanout, rumor mongering,
// QUORUM/ALL bookkeeping, read repair) under loss, partitions and crashes,
// with anti-entropy as the backstop.
//
//   KV_SIM_SEED=123    runs that seed only (and prints its summary)
//   KV_SIM_SEEDS=500   runs seeds 1..500 (defaults below)
// tests/bench/fanout_sim_bench (scripts/bench_fanout_sim.sh) prints the
// messages per write and dissemination rounds for N and fanout.
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <vector>

#include "gtest/gtest.h"
#include "tests/sim/fanout_sim.h"

namespace kv::sim {
namespace {

std::vector<uint64_t> Seeds(uint64_t dflt) {
  if (const char* one = std::getenv("KV_SIM_SEED")) return {std::strtoull(one, nullptr, 10)};
  uint64_t n = dflt;
  if (const char* many = std::getenv("KV_SIM_SEEDS")) n = std::strtoull(many, nullptr, 10);
  std::vector<uint64_t> out;
  for (uint64_t s = 1; s <= n; ++s) out.push_back(s);
  return out;
}

// Runs the seeds with faults; every run must keep the ALL/QUORUM promises and
// converge. Returns the sums, so that a test can check the promises were
// exercised at all.
FanoutSimResult RunFaultSeeds(FanoutSimOptions o, uint64_t default_seeds) {
  FanoutSimResult sum;
  const std::vector<uint64_t> seeds = Seeds(default_seeds);
  for (uint64_t seed : seeds) {
    o.seed = seed;
    FanoutSimResult r = FanoutSimulation(o).Run();
    EXPECT_TRUE(r.ok) << "N=" << o.num_nodes << " fanout=" << o.fanout.fanout << " seed "
                      << seed << ": " << r.Summary() << "\nreplay: KV_SIM_SEED=" << seed;
    if (seeds.size() == 1) std::printf("seed %llu: %s\n", (unsigned long long)seed,
                                       r.Summary().c_str());
    for (int i = 0; i < 3; ++i) sum.writes_acked[i] += r.writes_acked[i];
    sum.writes_failed += r.writes_failed;
    sum.writes_refused += r.writes_refused;
    sum.reads_checked += r.reads_checked;
    sum.reads_ok += r.reads_ok;
    sum.crashes += r.crashes;
    sum.push_failed += r.push_failed;
    sum.fanout.records_forwarded += r.fanout.records_forwarded;
    sum.converge_ms = std::max(sum.converge_ms, r.converge_ms);
  }
  return sum;
}

FanoutSimOptions Faulty(int n, int fanout) {
  FanoutSimOptions o;
  o.num_nodes = n;
  o.fanout.fanout = fanout;
  o.loss = 0.05;
  o.write_phase_ms = 10000;
  o.writes = 200;
  o.quorum_reads = 150;
  o.key_space = 20;
  o.crashes = 2;
  o.partitions = 2;
  return o;
}

void ExpectExercised(const FanoutSimResult& sum) {
  // The promises were put to the test: writes acknowledged at every level,
  // reads compared against acknowledged writes, faults that failed some.
  EXPECT_GT(sum.writes_acked[0], 0);
  EXPECT_GT(sum.writes_acked[1], 0);
  EXPECT_GT(sum.writes_acked[2], 0);
  EXPECT_GT(sum.reads_checked, 0);
  EXPECT_GT(sum.crashes, 0);
  EXPECT_GT(sum.push_failed, 0);
  EXPECT_GT(sum.writes_failed + sum.writes_refused, 0);
}

// Five nodes at the default fanout: every write pushed directly.
TEST(FanoutSimTest, FiveNodesDirectUnderLossPartitionsAndCrashes) {
  FanoutSimOptions o = Faulty(5, replication::kDefaultFanout);
  FanoutSimResult sum = RunFaultSeeds(o, 20);
  ExpectExercised(sum);
  EXPECT_EQ(sum.fanout.records_forwarded, 0);  // 4 peers <= fanout: no rumors.
}

// Twelve nodes at fanout 3: ONE writes spread as rumors.
TEST(FanoutSimTest, TwelveNodesRumorsUnderLossPartitionsAndCrashes) {
  FanoutSimResult sum = RunFaultSeeds(Faulty(12, 3), 10);
  ExpectExercised(sum);
  EXPECT_GT(sum.fanout.records_forwarded, 0);
}

TEST(FanoutSimTest, FiftyNodesRumorsUnderFaults) {
  FanoutSimOptions o = Faulty(50, replication::kDefaultFanout);
  o.writes = 100;
  o.quorum_reads = 50;
  FanoutSimResult sum = RunFaultSeeds(o, 2);
  EXPECT_GT(sum.fanout.records_forwarded, 0);
  EXPECT_GT(sum.reads_checked, 0);
}

TEST(FanoutSimTest, SameSeedSameRun) {
  FanoutSimOptions o = Faulty(9, 3);
  o.seed = 42;
  FanoutSimResult a = FanoutSimulation(o).Run();
  FanoutSimResult b = FanoutSimulation(o).Run();
  EXPECT_EQ(a.trace_hash, b.trace_hash);
  EXPECT_EQ(a.Summary(), b.Summary());
  o.seed = 43;
  EXPECT_NE(FanoutSimulation(o).Run().trace_hash, a.trace_hash);
}

// Hinted handoff: with anti-entropy once an hour, a healed partition where
// both sides took writes converges by pushes alone (the queues held for the
// members each side saw down), within a second of the views seeing the
// heal; without hints it does not converge at all.
FanoutSimOptions PartitionOnly(bool hints) {
  FanoutSimOptions o;
  o.num_nodes = 5;
  o.hinted_handoff = hints;
  o.ae_interval_ms = 3600000;
  o.write_phase_ms = 10000;
  o.writes = 300;
  o.key_space = 100;
  o.quorum_fraction = 0;
  o.all_fraction = 0;
  o.quorum_reads = 0;
  o.crashes = 0;
  o.partitions = 1;
  o.max_partition_ms = 8000;
  o.converge_bound_ms = 5000;
  return o;
}

TEST(FanoutSimTest, HintedHandoffHealsAPartitionWithoutAntiEntropy) {
  for (uint64_t seed : Seeds(20)) {
    FanoutSimOptions o = PartitionOnly(true);
    o.seed = seed;
    FanoutSimResult r = FanoutSimulation(o).Run();
    EXPECT_TRUE(r.ok) << "seed " << seed << ": " << r.Summary();
    // The views see the heal detect_ms (300 ms, jittered) after it.
    EXPECT_LE(r.converge_ms, 1000) << "seed " << seed << ": " << r.Summary();
    EXPECT_EQ(r.ae_syncs, 0);
  }
}

TEST(FanoutSimTest, WithoutHintsAHealedPartitionWaitsForAntiEntropy) {
  int failed = 0;
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    FanoutSimOptions o = PartitionOnly(false);
    o.seed = seed;
    failed += FanoutSimulation(o).Run().ok ? 0 : 1;
  }
  EXPECT_EQ(failed, 5);
}

// The fast path alone (no anti-entropy, no faults), one key per write.
FanoutSimResult Spread(int n, int fanout) {
  FanoutSimOptions o;
  o.num_nodes = n;
  o.fanout.fanout = fanout;
  o.key_space = 0;
  o.writes = 50;
  o.write_phase_ms = 5000;  // 100 ms apart: one write per batch.
  o.quorum_fraction = 0;
  o.all_fraction = 0;
  o.quorum_reads = 0;
  o.crashes = 0;
  o.partitions = 0;
  o.anti_entropy = false;
  FanoutSimResult r = FanoutSimulation(o).Run();
  EXPECT_TRUE(r.ok) << r.Summary();
  return r;
}

TEST(FanoutSimTest, DirectPushCostsNMinusOneFromTheWriterInOneHop) {
  FanoutSimResult r = Spread(20, 0);
  ASSERT_EQ(r.spreads.size(), 50u);
  for (const WriteSpread& s : r.spreads) {
    EXPECT_EQ(s.writer_copies, 19);
    EXPECT_EQ(s.copies, 19);
    EXPECT_EQ(s.reached, 19);
    EXPECT_EQ(s.max_hop, 1);
  }
}

TEST(FanoutSimTest, RumorCostsFanoutPerNodeAndReachesNearlyAll) {
  const int n = 100, fanout = 4;
  FanoutSimResult r = Spread(n, fanout);
  ASSERT_EQ(r.spreads.size(), 50u);
  int64_t reached = 0;
  for (const WriteSpread& s : r.spreads) {
    EXPECT_EQ(s.writer_copies, fanout);           // Not N - 1.
    EXPECT_LE(s.copies, int64_t{fanout} * n);     // Each node forwards once.
    EXPECT_LE(s.max_hop, replication::RumorHops(n, fanout));  // The TTL holds.
    reached += s.reached;
  }
  // Infect-once push with fanout f misses about e^-f of the nodes (1.8% at
  // 4); anti-entropy repairs those.
  EXPECT_GE(reached, static_cast<int64_t>(0.95 * 50 * (n - 1)));
}

}  // namespace
}  // namespace kv::sim
