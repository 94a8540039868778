// A deterministic discrete-event simulator of a kvd cluster's anti-entropy.
//
// One process, virtual time, everything drawn from one seed: N nodes, each a
// storage::Store over a MemoryEngine (its "disk") with a ManualClock driven
// by virtual time plus a per-node skew, run anti-entropy through the same
// driver and session rules as kvd (replication/session.h: ExchangeDriver
// over replication::Exchange, and one replication::Sessions per node).
// Every interval (jittered) each node ends its expired exchanges (the
// timer) and opens an exchange with a peer Sessions::PickPeer chooses.
// Messages of one exchange travel in order, like one gRPC stream, with
// random delays; a lost message, a partition or a crashed peer breaks the
// stream, and both sides' exchanges then end at their idle timeout or
// deadline. A side that fails or refuses (a full node, a yield) closes the
// stream, and the other side learns it one delay later, as from a gRPC
// status. A crash drops the node's in-flight exchanges, its Sessions and its
// Store object; a restart re-opens a Store on the same engine (tree and clock
// come back from it).
//
// Run(): a fault phase (random puts and deletes on a small key space at live
// nodes, loss, partitions, crashes), then healing (partitions healed,
// crashed nodes restarted, no loss), then the run continues until every
// node has the same Merkle root and the same contents, which must include
// the newest acknowledged version of every key, within a bound.
//
// The same options always give the same event trace (SimResult.trace_hash).
//
// Thread safety: not thread-safe; one Simulation per thread.
#ifndef KV_TESTS_SIM_SIMULATOR_H_
#define KV_TESTS_SIM_SIMULATOR_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "proto/peer.pb.h"
#include "replication/exchange.h"
#include "replication/session.h"
#include "storage/hlc.h"
#include "storage/memory_engine.h"
#include "storage/record.h"
#include "storage/store.h"
#include "tests/sim/sim_core.h"

namespace kv::sim {

struct SimOptions {
  uint64_t seed = 1;
  int num_nodes = 5;
  uint32_t leaf_depth = 6;
  replication::ExchangeOptions exchange;

  // Virtual time, in milliseconds.
  int64_t exchange_interval_ms = 1000;  // Per node, jittered +-50%.
  int64_t exchange_deadline_ms = 5000;  // An exchange not done by then fails.
  int64_t idle_timeout_ms = 2000;       // Or with no message for this long.
  int max_incoming = 4;                 // Exchanges a node serves at once.
  int64_t min_delay_ms = 1;             // One-way message delay range.
  int64_t max_delay_ms = 40;
  int64_t max_clock_skew_ms = 3000;     // Per-node wall clock offset.

  // Fault phase.
  int64_t fault_phase_ms = 20000;
  int writes = 300;               // Puts and deletes, spread over the phase.
  int key_space = 60;             // Keys k0..k{key_space-1}: they collide.
  double delete_fraction = 0.2;
  double loss = 0.01;             // Per message: the stream breaks.
  int crashes = 3;                // Crash + restart pairs.
  int64_t max_down_ms = 6000;
  int partitions = 2;             // Partition + heal pairs.
  int64_t max_partition_ms = 6000;

  // After healing, convergence must happen within this much virtual time.
  int64_t converge_bound_ms = 60000;
  int64_t check_interval_ms = 250;

  // Logs every event to stderr (for replaying a failing seed).
  bool verbose = false;

  // Options drawn from `seed`: 3..6 nodes, 1..4 incoming slots, leaf depth 0..8, small
  // fingerprint lists, fanouts, message limits and budgets, so that finer
  // levels, split turns and multi-exchange convergence are all exercised.
  static SimOptions ForSeed(uint64_t seed);
};

struct SimResult {
  bool ok = false;
  std::string failure;            // Why not ok.
  uint64_t trace_hash = 0;        // Of every delivered message and event.
  int64_t converge_ms = -1;       // After healing.
  int64_t exchanges_started = 0;
  int64_t exchanges_completed = 0;
  int64_t exchanges_timed_out = 0;  // Initiators ended by the timer.
  int64_t exchanges_refused = 0;    // Responders that refused (full, yield).
  int64_t equal_root_exchanges = 0;
  int64_t messages_delivered = 0;
  int64_t bytes_delivered = 0;
  int64_t records_applied = 0;    // Stored (newer than the local copy).
  int64_t writes_acked = 0;
  int64_t crashes = 0;
  int64_t streams_broken = 0;
  std::vector<std::string> final_roots;  // Hex, per node.
  std::string Summary() const;
};

class Simulation {
 public:
  explicit Simulation(const SimOptions& options);
  ~Simulation();
  Simulation(const Simulation&) = delete;
  Simulation& operator=(const Simulation&) = delete;

  SimResult Run();

 private:
  struct Node;
  struct Stream;
  class Writer;

  // Randomness (no std distributions: their output is library-defined).
  uint64_t Uniform(uint64_t lo, uint64_t hi);  // In [lo, hi].
  bool Chance(double p);

  void At(int64_t time, std::function<void()> fn);
  void Log(const std::string& line);
  void Fail(const std::string& why);
  void Trace(uint64_t v);
  void Trace(const std::string& bytes);
  void SetClocks();

  absl::Status OpenStore(int n);
  void Tick(int n);
  void StartExchange(int from, const std::string& to);
  // The transport: one message written by `from_side`, to be delivered.
  absl::Status Send(uint64_t stream_id, int from_side,
                    const peer::v1::ExchangeMessage& msg);
  void Deliver(uint64_t stream_id, int to_side,
               const peer::v1::ExchangeMessage& msg);
  // Ends one side: frees its session, counts it; a failed side closes the
  // stream, and the other side hears of it one delay later.
  void EndSide(uint64_t stream_id, int side, const absl::Status& status);
  void PeerClosed(uint64_t stream_id, int side, const absl::Status& status);
  void BreakStream(Stream& s, const char* why);
  // The timer: ends node n's exchanges past their idle timeout or deadline.
  void ExpireSessions(int n);
  // Drops the stream once neither side runs.
  void MaybeErase(uint64_t stream_id);
  static std::string Address(int n);
  void Crash(int n);
  void Restart(int n);
  void Partition();
  void HealPartition();
  void Write(int n);
  bool Connected(int a, int b) const;
  // Empty when every node holds the same data, including every key's newest
  // acknowledged write; else what differs.
  std::string CheckConverged();

  const SimOptions options_;
  SimRandom rng_;
  int64_t now_ = 0;
  uint64_t next_stream_ = 1;
  EventQueue events_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::map<uint64_t, std::unique_ptr<Stream>> streams_;
  std::vector<int> group_;     // Partition group per node.
  double loss_ = 0;
  bool faults_ = true;         // Fault phase.
  std::map<std::string, storage::Record> newest_;  // Newest acked per key.
  SimResult result_;
};

}  // namespace kv::sim

#endif  // KV_TESTS_SIM_SIMULATOR_H_
