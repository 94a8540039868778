// Write fan-out in the simulator (tests/sim/fanout_sim.h): for each cluster
// size N and fanout, writes of fresh keys at random nodes, 100 ms apart (one
// write per Push), no faults but `--loss`, and prints per write: Push calls
// and record copies (all nodes, and the writer's), the nodes the fast path
// reached, the hops it took (per node reached, and the last node of each
// write), all with the fast path alone; then, in a second run with the same
// seed and anti-entropy on (abstract, every --ae-interval-ms), the time until
// every node held the write.
//
//   fanout_sim_bench [--n 5,50,500] [--fanout 0,3,4,6,8] [--seeds 3]
//                    [--writes 100] [--loss 0] [--hops 0] [--ae-interval-ms 1000]
//
// fanout 0 (and any fanout >= N - 1) pushes every write directly to every
// peer; above, the writer pushes to `fanout` random peers and each node that
// learns the write forwards it once to `fanout` others (hop budget --hops, 0:
// RumorHops(N, fanout)).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "tests/sim/fanout_sim.h"

namespace {

int64_t Pct(std::vector<int64_t> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::min(i == 0 ? 0 : i - 1, v.size() - 1)];
}

bool ParseList(const std::string& s, std::vector<int>* out) {
  for (absl::string_view part : absl::StrSplit(s, ',')) {
    int v = 0;
    if (!absl::SimpleAtoi(part, &v) || v < 0) return false;
    out->push_back(v);
  }
  return !out->empty();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fanout_sim_bench: write fan-out vs N and fanout in the simulator"};
  std::string ns = "5,50,500";
  std::string fanouts = "0,3,4,6,8";
  int seeds = 3;
  int writes = 100;
  double loss = 0;
  int hops = 0;
  int64_t ae_interval_ms = 1000;
  app.add_option("--n", ns, "Comma-separated cluster sizes (>= 2)");
  app.add_option("--fanout", fanouts, "Comma-separated fanouts (0: push to all)");
  app.add_option("--seeds", seeds, "Seeds per cell")->check(CLI::Range(1, 1000));
  app.add_option("--writes", writes, "Writes per seed")->check(CLI::Range(1, 100000));
  app.add_option("--loss", loss, "Per-message loss")->check(CLI::Range(0.0, 0.5));
  app.add_option("--hops", hops, "Rumor hop budget (0: RumorHops(N, fanout))")
      ->check(CLI::Range(0, 64));
  app.add_option("--ae-interval-ms", ae_interval_ms, "Anti-entropy interval per node")
      ->check(CLI::Range(int64_t{10}, int64_t{600000}));
  CLI11_PARSE(app, argc, argv);
  std::vector<int> n_list, f_list;
  if (!ParseList(ns, &n_list) ||
      std::any_of(n_list.begin(), n_list.end(), [](int n) { return n < 2; })) {
    std::fprintf(stderr, "fanout_sim_bench: --n wants sizes >= 2, got '%s'\n", ns.c_str());
    return 2;
  }
  if (!ParseList(fanouts, &f_list)) {
    std::fprintf(stderr, "fanout_sim_bench: --fanout wants numbers >= 0, got '%s'\n",
                 fanouts.c_str());
    return 2;
  }
  std::printf(
      "| N | fanout | mode | push calls/write | copies/write | writer copies/write | "
      "nodes reached by push | writes reaching all by push | hop per node p50/p99 | "
      "rounds (last node) p50/p99/max | all nodes hold it p50/p99 ms |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (int n : n_list) {
    for (int f : f_list) {
      const bool direct = f == 0 || f >= n - 1;
      int64_t calls = 0, copies = 0, writer = 0, reached = 0, all_by_push = 0, count = 0;
      std::vector<int64_t> node_hops, rounds, all_ms;
      for (int s = 1; s <= seeds; ++s) {
        kv::sim::FanoutSimOptions o;
        o.seed = static_cast<uint64_t>(s);
        o.num_nodes = n;
        o.fanout.fanout = f;
        o.fanout.rumor_hops = hops;
        o.loss = loss;
        o.key_space = 0;
        o.writes = writes;
        o.write_phase_ms = int64_t{100} * (writes + 1);
        o.quorum_fraction = 0;
        o.all_fraction = 0;
        o.quorum_reads = 0;
        o.crashes = 0;
        o.partitions = 0;
        o.ae_interval_ms = ae_interval_ms;
        // The fast path measured alone (anti-entropy would hand some nodes
        // the write first, and they would then not forward it)...
        o.anti_entropy = false;
        kv::sim::FanoutSimResult r = kv::sim::FanoutSimulation(o).Run();
        // ...and the time until every node holds each write with it.
        o.anti_entropy = true;
        kv::sim::FanoutSimResult with_ae = kv::sim::FanoutSimulation(o).Run();
        if (!r.ok || !with_ae.ok) {
          std::fprintf(stderr, "N=%d fanout=%d seed %d failed: %s\n", n, f, s,
                       (r.ok ? with_ae : r).Summary().c_str());
          return 1;
        }
        for (const kv::sim::WriteSpread& w : with_ae.spreads) {
          all_ms.push_back(w.all_ms >= 0 ? w.all_ms : int64_t{1} << 40);
        }
        for (const kv::sim::WriteSpread& w : r.spreads) {
          ++count;
          calls += w.push_calls;
          copies += w.copies;
          writer += w.writer_copies;
          reached += w.reached;
          if (w.reached == n - 1) ++all_by_push;
          rounds.push_back(w.max_hop);
          for (int h : w.hops) {
            if (h > 0) node_hops.push_back(h);
          }
        }
      }
      if (count == 0) continue;
      const double c = static_cast<double>(count);
      std::printf(
          "| %d | %d | %s | %.1f | %.1f | %.1f | %.2f%% | %.1f%% | %lld / %lld | %lld / %lld / "
          "%lld | %lld / %lld |\n",
          n, f, direct ? "direct" : "rumor", calls / c, copies / c, writer / c,
          100.0 * reached / (c * (n - 1)), 100.0 * all_by_push / c,
          (long long)Pct(node_hops, 0.5), (long long)Pct(node_hops, 0.99),
          (long long)Pct(rounds, 0.5), (long long)Pct(rounds, 0.99),
          (long long)Pct(rounds, 1.0), (long long)Pct(all_ms, 0.5),
          (long long)Pct(all_ms, 0.99));
      std::fflush(stdout);
    }
  }
  return 0;
}
