// A deterministic simulator of gossip membership at scale.
//
// One process, virtual time, everything drawn from one seed: N nodes, each
// the production replication::Gossiper behind the production GossipDriver,
// with a simulated transport (per-message loss, a delay in [min, max],
// partitions) instead of gRPC. Every node ticks every interval (jittered).
//
// Run(): the nodes start knowing only `seeds_per_node` random seeds and the
// run waits until every node knows every other (bootstrap). Then, in the
// measured phase, `joins` new nodes join through one random seed each and
// `crashes` random nodes crash (kill -9: silent from then on), spaced by
// `event_spacing_rounds`; for each, the rounds until every live node knows of
// it (a join: the new member is known; a crash: it is marked down). Then an
// optional partition into two halves long enough for each side to mark the
// other down, healed, with the rounds until every node sees every live node
// alive again. Down events of members that never crashed are counted as
// false.
//
// Thread safety: not thread-safe; one simulation per thread.
#ifndef KV_TESTS_SIM_GOSSIP_SIM_H_
#define KV_TESTS_SIM_GOSSIP_SIM_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "replication/gossip.h"
#include "tests/sim/sim_core.h"

namespace kv::sim {

struct GossipSimOptions {
  uint64_t seed = 1;
  int num_nodes = 10;
  replication::GossipOptions gossip;  // interval_ms is the round length.
  int seeds_per_node = 3;
  double loss = 0.0;  // Per message.
  int64_t min_delay_ms = 1;
  int64_t max_delay_ms = 20;
  int64_t bootstrap_bound_rounds = 200;
  int joins = 5;
  int crashes = 5;
  int event_spacing_rounds = 3;
  int64_t event_bound_rounds = 200;  // Each join/crash must be known by then.
  bool partition = true;
  int64_t partition_rounds = 60;     // Long enough to mark the other side down.
  int64_t merge_bound_rounds = 200;
  // Steady rounds at the end with no faults but `loss` (false downs counted).
  int64_t steady_rounds = 50;
};

struct GossipSimResult {
  bool ok = false;
  std::string failure;
  int64_t bootstrap_rounds = -1;
  std::vector<int64_t> join_rounds;     // Per join: until all live nodes know.
  std::vector<int64_t> crash_first_rounds;  // Per crash: until the first marks it down.
  std::vector<int64_t> crash_rounds;    // Per crash: until all live nodes do.
  int64_t merge_rounds = -1;            // After the partition healed.
  int64_t false_downs = 0;              // Down events about live nodes outside a partition.
  int64_t messages = 0;
  // Steady phase (no faults but loss): messages and serialized bytes sent,
  // and live nodes x rounds.
  int64_t bytes = 0;
  int64_t node_rounds = 0;
  std::string Summary() const;
};

class GossipSimulation {
 public:
  explicit GossipSimulation(const GossipSimOptions& options);
  ~GossipSimulation();
  GossipSimResult Run();

 private:
  struct Node;
  class Transport;

  uint64_t Uniform(uint64_t lo, uint64_t hi);
  bool Chance(double p);
  void At(int64_t time, std::function<void()> fn);
  // Runs events until virtual time `until`.
  void RunUntil(int64_t until);
  void StartNode(int i, std::vector<std::string> seeds);
  void ScheduleTick(int i, uint64_t incarnation);
  void Deliver(int from, int to, const peer::v1::GossipMessage& msg);
  bool Connected(int a, int b) const;
  // Rounds (from `start`) until pred holds, checked once per round, or -1.
  int64_t WaitRounds(int64_t start, int64_t bound, const std::function<bool()>& pred);
  std::vector<int> LiveNodes() const;
  int64_t Round() const;

  const GossipSimOptions options_;
  SimRandom rng_;
  int64_t now_ = 0;
  EventQueue events_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<int> group_;
  bool partitioned_ = false;
  bool counting_ = false;        // Down events of live nodes are false.
  bool expect_downs_ = false;    // Partitioned or merging: downs expected.
  bool counting_bytes_ = false;  // Steady phase: messages and bytes.
  GossipSimResult result_;
};

}  // namespace kv::sim

#endif  // KV_TESTS_SIM_GOSSIP_SIM_H_
