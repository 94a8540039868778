// A deterministic simulator of write fan-out: the production
// replication::Fanout core (per-peer coalescing queues, batches, QUORUM/ALL
// acknowledgement bookkeeping, rumor mongering) and ReadCollector on N nodes
// over a simulated network, with anti-entropy as the backstop.
//
// One process, virtual time, everything drawn from one seed. Each node holds
// its durable data (key -> record, last writer wins, as Store::ApplyBatch),
// a hybrid clock and a Fanout core (volatile: a crash loses its queues).
// A Push is one message per batch with a delay in [min, max]; it is lost
// with probability `loss` (then, like a lost reply, the sender learns it at
// the push deadline), fails fast toward a crashed node, and times out across
// a partition. A receiver applies the records, answers (the ack), and hands
// the records that changed its data to Fanout::Forward, as ReplicaService
// does. Membership is an oracle with a lag: a node sees a crash, a restart,
// a partition or its healing `detect_ms` (jittered) later, and then its
// core's peer set changes (Replicator::Loop's refresh): the others are down
// to it (their queues held: hinted handoff). A failed push is retried after
// the core's backoff.
//
// Anti-entropy is abstract here (tests/sim/simulator.h tests the exchange
// itself): every `ae_interval_ms` (jittered) a node picks a random peer it
// sees live, and one delay later, if both are up and connected, both end up
// with the newer record of every key (one message each way).
//
// Run(): a write phase (puts at random live nodes at ONE, QUORUM or ALL, and
// QUORUM reads, under loss, crashes and partitions), then healing (no loss,
// partitions healed, crashed nodes restarted), then the run continues until
// every node holds the same data, which must include the newest acknowledged
// version of every key. Checked on the way:
//   - a write acknowledged at ALL is on every node when acknowledged;
//   - a write acknowledged at QUORUM is then on at least a quorum;
//   - a QUORUM read returns a version at or above every write acknowledged
//     at QUORUM or ALL before the read started (so, when no newer write
//     exists, that write).
// Per write it also records how the fast path spread it: the Push calls and
// record copies it cost, and the hop at which each node first received it
// (the writer's pushes are hop 1).
//
// The same options always give the same result (FanoutSimResult.trace_hash).
//
// Thread safety: not thread-safe; one simulation per thread.
#ifndef KV_TESTS_SIM_FANOUT_SIM_H_
#define KV_TESTS_SIM_FANOUT_SIM_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "replication/fanout.h"
#include "storage/record.h"
#include "tests/sim/sim_core.h"

namespace kv::sim {

struct FanoutSimOptions {
  uint64_t seed = 1;
  int num_nodes = 5;
  // Fanout core options; fanout.fanout is --fanout (0: push to all).
  replication::FanoutOptions fanout;

  int64_t min_delay_ms = 1;  // One-way message delay range.
  int64_t max_delay_ms = 10;
  double loss = 0.0;             // Per message (a push or its reply).
  int64_t push_deadline_ms = 200;  // A lost push fails at this deadline.
  int64_t ack_timeout_ms = 1000;   // QUORUM/ALL writes and reads.
  int64_t detect_ms = 300;         // Membership lag (jittered +-50%).

  // Write phase.
  int64_t write_phase_ms = 20000;
  int writes = 300;            // Spread evenly (jittered) over the phase.
  int key_space = 50;          // Keys k0..; 0: a fresh key per write.
  double quorum_fraction = 0.3;  // Of writes; the rest ONE, or ALL:
  double all_fraction = 0.1;
  int quorum_reads = 200;      // Spread over the phase.
  int crashes = 2;             // Crash + restart pairs.
  int64_t max_down_ms = 4000;
  int partitions = 2;          // Partition into two sides + heal.
  int64_t max_partition_ms = 4000;

  // Down members are given to the cores (SetPeers' `down`), which hold
  // direct writes for them (as Replicator does).
  bool hinted_handoff = true;
  bool anti_entropy = true;
  int64_t ae_interval_ms = 1000;  // Per node, jittered +-50%.
  // After healing, convergence must happen within this much virtual time.
  int64_t converge_bound_ms = 60000;
  int64_t check_interval_ms = 100;
};

// How the fast path spread one write (without anti-entropy's help).
struct WriteSpread {
  int64_t push_calls = 0;    // Push messages that carried it (any hop).
  int64_t copies = 0;        // Record copies sent.
  int64_t writer_copies = 0;  // Of those, sent by the writer.
  int reached = 0;           // Nodes other than the writer that got it by push.
  int max_hop = 0;           // Hop at which the last of them got it.
  // Per node: the hop at which it first got the write by push (the writer 0,
  // -1: not by push).
  std::vector<int> hops;
  int holders = 0;           // Nodes holding it by any path (so far).
  int64_t all_ms = -1;       // From the write until every node held it.
  int64_t start_ms = 0;
};

struct FanoutSimResult {
  bool ok = false;
  std::string failure;
  uint64_t trace_hash = 0;
  int64_t converge_ms = -1;  // After healing.
  int64_t writes_attempted = 0;
  int64_t writes_acked[3] = {0, 0, 0};    // ONE, QUORUM, ALL.
  int64_t writes_refused = 0;             // Too few live members (UNAVAILABLE).
  int64_t writes_failed = 0;              // Not enough acks (deadline, failures).
  int64_t reads_ok = 0;
  int64_t reads_failed = 0;
  int64_t reads_checked = 0;  // Reads with an acknowledged write to compare.
  int64_t push_calls = 0;
  int64_t push_failed = 0;
  int64_t ae_syncs = 0;
  int64_t crashes = 0;
  // Per write with a key of its own (key_space 0), in write order; empty
  // otherwise (coalescing makes a write's cost not its own).
  std::vector<WriteSpread> spreads;
  replication::FanoutStats fanout;  // Summed over all cores, restarts included.
  std::string Summary() const;
};

class FanoutSimulation {
 public:
  explicit FanoutSimulation(const FanoutSimOptions& options);
  ~FanoutSimulation();
  FanoutSimulation(const FanoutSimulation&) = delete;
  FanoutSimulation& operator=(const FanoutSimulation&) = delete;

  FanoutSimResult Run();

 private:
  struct Node;
  struct Tracked;  // A QUORUM/ALL write waiting for its outcome.

  void At(int64_t time, std::function<void()> fn);
  int64_t Delay();
  void Trace(uint64_t v);
  void Trace(const std::string& s);
  void Fail(const std::string& why);
  bool Connected(int a, int b) const;
  bool Up(int n) const;
  static std::string Address(int n);
  static int Index(const std::string& address);

  storage::Version NextVersion(Node& n);
  // Last writer wins; returns whether `r` changed n's data.
  bool Apply(Node& n, const storage::Record& r);
  void MakeCore(int n);
  // Sends what n's core has ready and handles finished writes.
  void Pump(int n);
  void DeliverPush(int from, uint64_t from_inc, int to, uint64_t batch_id,
                   std::vector<storage::Record> records, std::vector<uint32_t> hops);
  void PushDone(int from, uint64_t from_inc, const std::string& to, uint64_t batch_id,
                bool ok);
  void TakeOutcomes(int n);
  void Write(int n);
  void Read(int n);
  void AntiEntropyTick(int n, uint64_t inc);
  void Sync(int a, int b);
  void Crash(int n);
  void Restart(int n);
  void Partition();
  void Heal();
  // Every node updates its view of who is live detect_ms (jittered) later.
  void ScheduleViews();
  void UpdateView(int n);
  // The peers n would see live now, and the others (down to it).
  std::vector<std::string> ComputeView(int n) const;
  std::vector<std::string> DownPeers(int n) const;
  // Empty when converged; else what differs.
  std::string CheckConverged() const;
  void RunUntil(int64_t until);

  const FanoutSimOptions options_;
  SimRandom rng_;
  EventQueue events_;
  int64_t now_ = 0;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<int> group_;
  bool partitioned_ = false;
  double loss_ = 0;
  // Newest acknowledged version per key (any level), and per key the
  // acknowledged QUORUM/ALL versions with their times, for read checks.
  std::map<std::string, storage::Version> newest_acked_;
  std::map<std::string, storage::Version> quorum_acked_;
  // Fast-path spread per write key (key_space 0).
  std::map<std::string, size_t> spread_index_;
  FanoutSimResult result_;
};

}  // namespace kv::sim

#endif  // KV_TESTS_SIM_FANOUT_SIM_H_
