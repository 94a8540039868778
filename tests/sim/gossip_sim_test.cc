// Seeded simulation of gossip membership: joins, crashes, a partition that
// heals, and no false down events, at N = 10 and N = 100.
//
//   KV_SIM_SEED=123    runs that seed only
//   KV_SIM_SEEDS=100   runs seeds 1..100 (defaults below)
// scripts/bench_gossip.sh prints the table for N = 10, 100, 1000.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "gtest/gtest.h"
#include "tests/sim/gossip_sim.h"

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

// The dissemination target: ceil(log3 N + ln ln N) + 1 rounds.
int64_t Target(int n) {
  return static_cast<int64_t>(std::ceil(std::log(n) / std::log(3.0) + std::log(std::log(n)))) + 1;
}

int64_t Median(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void RunSeeds(int n, uint64_t default_seeds, double loss) {
  std::vector<int64_t> joins, spread;
  for (uint64_t seed : Seeds(default_seeds)) {
    GossipSimOptions o;
    o.seed = seed;
    o.num_nodes = n;
    o.loss = loss;
    GossipSimResult r = GossipSimulation(o).Run();
    ASSERT_TRUE(r.ok) << "seed " << seed << ": " << r.Summary()
                      << "\nreplay: KV_SIM_SEED=" << seed;
    EXPECT_EQ(r.false_downs, 0) << "seed " << seed;
    joins.insert(joins.end(), r.join_rounds.begin(), r.join_rounds.end());
    for (size_t i = 0; i < r.crash_rounds.size(); ++i) {
      // A crash is detected by each node on its own (phi); once the first
      // has, the rest follow within the dissemination bound.
      spread.push_back(r.crash_rounds[i] - r.crash_first_rounds[i]);
      EXPECT_LE(r.crash_rounds[i], 40) << "seed " << seed << ": " << r.Summary();
    }
  }
  EXPECT_LE(Median(joins), Target(n)) << "N=" << n;
  EXPECT_LE(Median(spread), Target(n)) << "N=" << n;
}

TEST(GossipSimTest, TenNodesOnePercentLoss) { RunSeeds(10, 30, 0.01); }

TEST(GossipSimTest, HundredNodesOnePercentLoss) { RunSeeds(100, 3, 0.01); }

TEST(GossipSimTest, SameSeedSameResult) {
  GossipSimOptions o;
  o.seed = 42;
  o.num_nodes = 12;
  o.loss = 0.05;
  GossipSimResult a = GossipSimulation(o).Run();
  GossipSimResult b = GossipSimulation(o).Run();
  EXPECT_EQ(a.Summary(), b.Summary());
}

}  // namespace
}  // namespace kv::sim
