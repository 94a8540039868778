// Seeded simulation of anti-entropy under loss, partitions and crashes.
//
//   KV_SIM_SEED=123   runs that seed only (with an event log on failure:
//                     KV_SIM_VERBOSE=1 logs every event)
//   KV_SIM_SEEDS=1000 runs seeds 1..1000 (default 200)
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/sim/simulator.h"

namespace kv::sim {
namespace {

std::string SelfPath() {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("sim_test") : p.string();
}

std::string ReplayCommand(uint64_t seed) {
  const ::testing::TestInfo* t =
      ::testing::UnitTest::GetInstance()->current_test_info();
  return absl::StrCat("KV_SIM_SEED=", seed, " KV_SIM_VERBOSE=1 ", SelfPath(),
                      " --gtest_filter=", t->test_suite_name(), ".", t->name());
}

bool Verbose() {
  const char* v = std::getenv("KV_SIM_VERBOSE");
  return v != nullptr && std::string(v) == "1";
}

// The seeds to run: KV_SIM_SEED, or 1..KV_SIM_SEEDS (default `dflt`).
std::vector<uint64_t> Seeds(uint64_t dflt) {
  if (const char* one = std::getenv("KV_SIM_SEED")) {
    return {std::strtoull(one, nullptr, 10)};
  }
  uint64_t n = dflt;
  if (const char* many = std::getenv("KV_SIM_SEEDS")) {
    n = std::strtoull(many, nullptr, 10);
  }
  std::vector<uint64_t> seeds;
  for (uint64_t s = 1; s <= n; ++s) seeds.push_back(s);
  return seeds;
}

TEST(SimTest, ConvergesUnderFaults) {
  int64_t max_converge = 0, total_converge = 0, exchanges = 0, timed_out = 0,
          messages = 0, bytes = 0;
  const std::vector<uint64_t> seeds = Seeds(200);
  for (uint64_t seed : seeds) {
    SimOptions o = SimOptions::ForSeed(seed);
    o.verbose = Verbose();
    SimResult r = Simulation(o).Run();
    if (!r.ok) {
      ADD_FAILURE() << "seed " << seed << " failed: " << r.failure << "\n  "
                    << r.Summary() << "\n  replay: " << ReplayCommand(seed);
      continue;
    }
    if (seeds.size() == 1) std::printf("seed %llu: %s\n",
                                       static_cast<unsigned long long>(seed),
                                       r.Summary().c_str());
    max_converge = std::max(max_converge, r.converge_ms);
    total_converge += r.converge_ms;
    exchanges += r.exchanges_started;
    timed_out += r.exchanges_timed_out;
    messages += r.messages_delivered;
    bytes += r.bytes_delivered;
  }
  std::printf("%zu seeds: convergence after healing avg %lld ms, max %lld ms; "
              "%lld exchanges (%lld timed out), %lld messages, %lld bytes\n",
              seeds.size(),
              static_cast<long long>(total_converge / std::max<size_t>(1, seeds.size())),
              static_cast<long long>(max_converge),
              static_cast<long long>(exchanges),
              static_cast<long long>(timed_out),
              static_cast<long long>(messages), static_cast<long long>(bytes));
}

TEST(SimTest, NoFaultsConvergesQuickly) {
  for (uint64_t seed : Seeds(20)) {
    SimOptions o = SimOptions::ForSeed(seed);
    o.verbose = Verbose();
    o.loss = 0;
    o.crashes = 0;
    o.partitions = 0;
    o.converge_bound_ms = 30000;
    SimResult r = Simulation(o).Run();
    EXPECT_TRUE(r.ok) << "seed " << seed << ": " << r.failure
                      << "\n  replay: " << ReplayCommand(seed);
    EXPECT_EQ(r.exchanges_timed_out, 0) << "seed " << seed;
  }
}

TEST(SimTest, SameSeedSameTrace) {
  for (uint64_t seed : {1ULL, 2ULL, 77ULL}) {
    SimOptions o = SimOptions::ForSeed(seed);
    SimResult a = Simulation(o).Run();
    SimResult b = Simulation(o).Run();
    EXPECT_EQ(a.trace_hash, b.trace_hash) << "seed " << seed;
    EXPECT_EQ(a.final_roots, b.final_roots) << "seed " << seed;
    EXPECT_EQ(a.messages_delivered, b.messages_delivered) << "seed " << seed;
    EXPECT_EQ(a.converge_ms, b.converge_ms) << "seed " << seed;
    // A different seed takes a different path.
    o.seed = seed + 1000;
    EXPECT_NE(Simulation(o).Run().trace_hash, a.trace_hash) << "seed " << seed;
  }
}

}  // namespace
}  // namespace kv::sim
