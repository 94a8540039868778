// Gossip dissemination at scale in the simulator: for each N, runs seeds and
// prints the rounds until every live node knows of a join and of a crash
// (median, p99), and the gossip bytes per node per round.
//
//   gossip_bench [--n 10,100,1000] [--seeds 10] [--loss 0.01]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "tests/sim/gossip_sim.h"

namespace {

int64_t Pct(std::vector<int64_t> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size()))) - 1;
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gossip_bench: gossip dissemination in the simulator"};
  std::string ns = "10,100,1000";
  int seeds = 10;
  double loss = 0.01;
  app.add_option("--n", ns, "Comma-separated cluster sizes");
  app.add_option("--seeds", seeds, "Seeds per size");
  app.add_option("--loss", loss, "Message loss");
  CLI11_PARSE(app, argc, argv);
  std::printf(
      "| N | seeds | join rounds median / p99 | crash: all down median / p99 | first->all "
      "median / p99 | target | merge rounds max | false downs | bytes/node/round |\n"
      "|---|---|---|---|---|---|---|---|---|\n");
  for (absl::string_view part : absl::StrSplit(ns, ',')) {
    int n = 0;
    if (!absl::SimpleAtoi(part, &n) || n < 2) {
      std::fprintf(stderr, "gossip_bench: bad --n entry '%s'\n", std::string(part).c_str());
      return 2;
    }
    std::vector<int64_t> joins, crashes, spread, merges;
    int64_t false_downs = 0, bytes = 0, node_rounds = 0;
    for (int s = 1; s <= seeds; ++s) {
      kv::sim::GossipSimOptions o;
      o.seed = static_cast<uint64_t>(s);
      o.num_nodes = n;
      o.loss = loss;
      kv::sim::GossipSimResult r = kv::sim::GossipSimulation(o).Run();
      if (!r.ok) {
        std::fprintf(stderr, "N=%d seed %d failed: %s\n", n, s, r.Summary().c_str());
        return 1;
      }
      joins.insert(joins.end(), r.join_rounds.begin(), r.join_rounds.end());
      crashes.insert(crashes.end(), r.crash_rounds.begin(), r.crash_rounds.end());
      for (size_t i = 0; i < r.crash_rounds.size(); ++i) {
        spread.push_back(r.crash_rounds[i] - r.crash_first_rounds[i]);
      }
      merges.push_back(r.merge_rounds);
      false_downs += r.false_downs;
      bytes += r.bytes;
      node_rounds += r.node_rounds;
    }
    const int64_t target = static_cast<int64_t>(
                               std::ceil(std::log(n) / std::log(3.0) + std::log(std::log(n)))) + 1;
    std::printf("| %d | %d | %lld / %lld | %lld / %lld | %lld / %lld | %lld | %lld | %lld | %lld |\n",
                n, seeds, (long long)Pct(joins, 0.5), (long long)Pct(joins, 0.99),
                (long long)Pct(crashes, 0.5), (long long)Pct(crashes, 0.99),
                (long long)Pct(spread, 0.5), (long long)Pct(spread, 0.99), (long long)target,
                (long long)Pct(merges, 1.0), (long long)false_downs,
                (long long)(node_rounds > 0 ? bytes / node_rounds : 0));
    std::fflush(stdout);
  }
  return 0;
}
