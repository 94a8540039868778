// Write fan-out as a pure state machine: per-peer bounded coalescing queues,
// batching, and the acknowledgement bookkeeping of consistency levels; plus
// the collection of replica answers for a QUORUM/ALL read.
//
// A node applies a write locally, then hands its records to Write(): each
// record is queued for every target peer. A queue holds at most one record
// per key: a newer version replaces the one queued (the older write then
// rides on the newer record: a replica holding the newer version has
// superseded it), an older one is discarded. A queue is bounded in records
// and bytes; a record that does not fit is dropped and counted (anti-entropy
// repairs it). TakeBatches() cuts each peer's queue into batches (bounded in
// records and bytes) while the peer has fewer than max_in_flight_per_peer
// batches in flight; a batch that is not full waits until none is in flight
// to that peer and min_push_interval_ms has passed since its previous batch
// (so under load records go together in few calls; see FanoutOptions). The
// driver sends each batch and reports OnBatchDone.
// The records of a failed batch are queued again (within the bounds) and
// the peer is backed off (retry_min_ms, doubling up to retry_max_ms).
//
// Hinted handoff: members that are down (SetPeers' `down`) keep their queue,
// and a direct (not rumor) write is queued for them too; nothing is sent to
// them until they are live again, and then the queue goes out. So after a
// partition heals or a node restarts, what it missed arrives by push (up to
// the queue bounds; the rest is anti-entropy's).
//
// A write that needs K acknowledgements (ConsistencyLevel; the local durable
// apply counts as one) is tracked by id: a target peer acknowledges it when
// every record of the write it was sent was acknowledged in a successful
// batch; it fails for that peer when one of them is dropped, lost in a failed
// batch, or the peer is removed. The write completes (TakeOutcomes) OK as
// soon as K - 1 peers acknowledged, not OK as soon as that became impossible,
// or at its deadline (Tick) with the count reached so far.
//
// Rumor mongering (Demers et al. 1987) for large clusters: when the peer set
// is larger than FanoutOptions::fanout, an untracked (ONE) write goes to
// `fanout` random peers only, each record carrying the forwards it has left
// (the writer's push is hop 1 of RumorHops, a TTL). A receiver whose apply changed something (it learned a newer
// version) hands those records to Forward(), which queues them for `fanout`
// random peers other than the sender with one hop less; a record with no
// hops left, or one the receiver already held, goes no further. Tracked
// (QUORUM/ALL) writes are pushed directly to their given targets with no
// hops: their acknowledgements must come from those replicas, and rumor
// forwarding only spreads. See RumorHops for why the stopping rule is a TTL.
//
// No I/O, threads or clock: time is passed to Write and Tick, and the random
// peer choice comes from FanoutOptions::seed, so the same inputs give the
// same outputs.
//
// Thread safety: not thread-safe; the driver serializes calls.
#ifndef KV_REPLICATION_FANOUT_H_
#define KV_REPLICATION_FANOUT_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "storage/record.h"

namespace kv::replication {

enum class ConsistencyLevel { kOne, kQuorum, kAll };

// Replicas (the coordinator included) that must acknowledge a request at
// `level` in a cluster of `members` members (self included; >= 1):
// 1, members / 2 + 1, members.
int RequiredReplicas(ConsistencyLevel level, int members);

// The default of FanoutOptions::fanout (kvd --fanout), picked from the
// fan-out simulator's table (tests/bench/fanout_sim_bench; README): up to 9
// members every write is pushed directly (a 5-node cluster included); above,
// at fanout 8 a rumor reached 99.99% of the nodes of 50 (99.7% of writes
// reached every node; p99 19 ms until all held one) and 99.97% of the nodes
// of 500, where fanout 4 and 6 left 1.5% and 0.1% of the nodes of 50 to
// anti-entropy (p99 1.1 s and 0.9 s). A rumor costs about fanout x N Push
// messages (a direct push N - 1): it spreads the sending, not the total.
inline constexpr int kDefaultFanout = 8;

// The most hops a rumor travels in a cluster of `members` members (self
// included) at `fanout` (below 2 counts as 2): ceil(log_fanout(members)) +
// ceil(ln(members)) + 2. The writer's push is the first hop; each forward
// is one more.
//
// The stopping rule: a node forwards a version at most once, when it first
// learns it (its apply changed something; a second copy changes nothing),
// to `fanout` peers at once (Demers' rumor mongering with counter k = 1),
// so a write costs at most fanout x N messages; and a hop limit (TTL)
// carried in each pushed record caps the depth. Demers' feedback + counter
// (stop after k pushes that found the peer up to date) would need
// per-record feedback in every Push reply and a counter per live rumor on
// each node, re-pushed across rounds: state that grows with the write rate;
// forwarding once needs neither. The TTL bounds the damage when "changed
// something" misfires (a wiped node re-learning everything, two copies
// racing in at once) and costs one field. Its value was measured in the
// simulator: the last node of a write is reached after about log_f(N) +
// ln(N) hops (the infect-once tail); log_f(N) + 2 cut coverage at N = 500,
// fanout 8 from 99.97% to 99.25% of the nodes.
int RumorHops(int members, int fanout);

struct FanoutOptions {
  // Per-peer queue bounds. A frozen peer costs at most this much memory,
  // plus max_in_flight_per_peer batches.
  size_t max_queue_records = 10000;
  size_t max_queue_bytes = 16 << 20;
  // Per batch (one Push call). A record larger than max_batch_bytes goes
  // alone.
  size_t max_batch_records = 512;
  size_t max_batch_bytes = 1 << 20;
  // Batches a peer may have in flight: two keep a peer busy on a long pipe
  // (full batches back to back while an answer travels).
  int max_in_flight_per_peer = 2;
  // A batch that is not full goes to a peer only when no batch is in flight
  // to it and at least this long after its previous batch; a full one goes
  // at once. At light load (writes further apart than this) a write is sent
  // as soon as it is queued; under load what arrives meanwhile goes together
  // in one call, for at most this much added delay. Why: a Push costs the
  // replica about 95 us of CPU for the call (gRPC, one engine write) besides
  // about 11 us per record (measured on a 5-node loopback cluster, 2 cores);
  // sending every batch at once made pushes of 4-8 records under load, 2 ms
  // made them about 32 and the cluster's CPU per put 40% lower (README,
  // "Write fan-out"). 0: no interval (a partial batch still waits for the
  // one in flight).
  int64_t min_push_interval_ms = 2;
  // Rumor mongering: with more peers than this, an untracked write goes to
  // this many random peers and receivers forward it (see above). 0 pushes
  // every write to every peer.
  int fanout = kDefaultFanout;
  // The most hops a rumor travels (1: the writer's targets only); 0:
  // RumorHops(peers + 1, fanout).
  int rumor_hops = 0;
  // Seeds the random choice of rumor targets.
  uint64_t seed = 1;
  // Backoff of a peer after a failed batch: the first retry waits this long,
  // each further failure twice as long, up to retry_max_ms.
  int64_t retry_min_ms = 50;
  int64_t retry_max_ms = 1000;
};

struct FanoutStats {
  int64_t records_queued = 0;     // Record copies queued (one per peer).
  int64_t records_coalesced = 0;  // Replaced or discarded by another version.
  int64_t records_dropped = 0;    // Queue full, peer removed, batch failed.
  int64_t records_acked = 0;
  int64_t batches_sent = 0;
  int64_t batches_failed = 0;
  int64_t writes_ok = 0;      // Tracked writes that reached their count.
  int64_t writes_failed = 0;  // Tracked writes that did not.
  int64_t rumor_writes = 0;      // Writes sent to `fanout` random peers.
  int64_t records_forwarded = 0;  // Copies queued by Forward (rumor hops).
  int64_t records_retried = 0;    // Copies of failed batches queued again.
};

// One Push call to make.
struct FanoutBatch {
  std::string peer;
  uint64_t batch_id = 0;
  std::vector<storage::Record> records;
  // Hops left for records[i] (same size; all 0 outside rumor mongering).
  std::vector<uint32_t> hops;
  size_t bytes = 0;
};

// The result of a tracked write.
struct WriteOutcome {
  uint64_t write_id = 0;
  bool ok = false;
  int acks = 0;    // Replicas that acknowledged, the local apply included.
  int needed = 0;  // Replicas the level asked for.
  bool timed_out = false;  // Not OK because the deadline passed.
};

class Fanout {
 public:
  explicit Fanout(FanoutOptions options = {});

  // The live peers, which Write targets when it is given none, and the
  // members that are down (not removed), whose queues are held (hinted
  // handoff, above). A peer in neither loses its queue (counted as dropped)
  // and its tracked writes fail for it; answers of its batches in flight
  // are then ignored. A peer that goes down keeps its records, but its
  // tracked writes fail for it.
  void SetPeers(std::vector<std::string> peers, std::vector<std::string> down = {});
  const std::vector<std::string>& peers() const { return peers_; }

  // Queues copies of `records` (already durable locally; distinct keys) for
  // each of `targets` (the peer set when nullopt). When `needed` > 1, tracks
  // the write: it needs needed - 1 of the targets to acknowledge by
  // `deadline_ms`. Returns the write id (0 when untracked). When the targets
  // cannot give needed - 1 acknowledgements, the outcome is ready at once.
  // An untracked write without targets, with more peers than
  // options.fanout, goes to `fanout` random peers with RumorHops hops.
  uint64_t Write(std::span<const storage::Record> records, int needed,
                 int64_t now_ms, int64_t deadline_ms,
                 const std::optional<std::vector<std::string>>& targets =
                     std::nullopt);

  // Queues `record` for `peer` alone, untracked (read repair). A peer not in
  // the set gets a queue until the next SetPeers.
  void Repair(const std::string& peer, const storage::Record& record);

  // Rumor forwarding: `records` arrived in a push from `from` with `hops`
  // (hops[i] for records[i]) and each changed this node's store. Those with
  // hops left are queued, untracked, for up to `fanout` random peers other
  // than `from`, with one hop less; the rest go nowhere. Returns the copies
  // queued. REQUIRES: hops.size() == records.size().
  size_t Forward(std::span<const storage::Record> records,
                 std::span<const uint32_t> hops, const std::string& from);

  // Batches ready to send: at most max_in_flight_per_peer per peer in
  // flight, and a batch that is not full only as min_push_interval_ms allows.
  std::vector<FanoutBatch> TakeBatches();

  // The answer to a batch: `ok` means the peer applied every record durably.
  // Unknown (peer, batch_id) pairs are ignored.
  void OnBatchDone(const std::string& peer, uint64_t batch_id, bool ok);

  // Fails the tracked writes whose deadline is at or before `now_ms`, and
  // advances the time that ends backoffs (TakeBatches).
  void Tick(int64_t now_ms);

  // When the earliest peer with records queued that waits for time (a
  // backoff, or min_push_interval_ms) may be sent to (a Tick at or after it,
  // then TakeBatches); nullopt when none waits for time.
  std::optional<int64_t> NextRetryMs() const;

  std::vector<WriteOutcome> TakeOutcomes();

  const FanoutStats& stats() const { return stats_; }
  // Records and bytes queued for `peer` (not counting batches in flight).
  size_t QueuedRecords(const std::string& peer) const;
  size_t QueuedBytes(const std::string& peer) const;
  size_t InFlight(const std::string& peer) const;
  size_t TrackedWrites() const { return writes_.size(); }

 private:
  struct Item {
    storage::Record record;
    size_t bytes = 0;
    std::vector<uint64_t> write_ids;  // Tracked writes riding on it.
    uint32_t hops = 0;                // Rumor hops left at the receiver.
  };
  struct PeerQueue {
    std::deque<std::string> order;  // Keys, oldest first.
    absl::flat_hash_map<std::string, Item> items;
    size_t bytes = 0;
    uint64_t next_batch_id = 1;
    std::map<uint64_t, std::vector<Item>> in_flight;
    bool held = false;         // Down: kept, not sent to.
    int64_t backoff_ms = 0;    // After failed batches; 0 after a success.
    int64_t retry_at_ms = 0;   // No batch before this.
    int64_t last_send_ms = INT64_MIN / 2;  // When its latest batch was cut.
  };
  struct Pending {
    int needed_peers = 0;  // Peer acknowledgements needed.
    int targets = 0;
    int acked = 0;
    int failed = 0;
    int64_t deadline_ms = 0;
    // Records of the write not yet acknowledged, per target peer.
    absl::flat_hash_map<std::string, int> outstanding;
  };

  void Enqueue(PeerQueue& q, const std::string& peer, const storage::Record& r,
               uint64_t write_id, uint32_t hops = 0);
  // Up to k peers of peers_ other than `exclude`, drawn at random.
  std::vector<std::string> ChoosePeers(size_t k, const std::string& exclude);
  // The item carried `write_ids` to `peer`; ok or lost.
  void Resolve(const std::string& peer, const std::vector<uint64_t>& write_ids,
               bool ok);
  void DropQueue(const std::string& peer, PeerQueue& q);
  // A batch's worth (records or bytes) is queued.
  bool Full(const PeerQueue& q) const;
  // The earliest time a batch that is not full may be cut for q.
  int64_t SendableAtMs(const PeerQueue& q) const;
  // The peer went down: its tracked writes fail for it, its records stay.
  void Hold(const std::string& peer, PeerQueue& q);
  void MaybeComplete(uint64_t write_id);
  void Complete(uint64_t write_id, bool timed_out);

  const FanoutOptions options_;
  std::vector<std::string> peers_;
  std::vector<std::string> down_;  // Sorted; never in peers_.
  int64_t now_ms_ = 0;             // The latest time given to Write or Tick.
  std::map<std::string, PeerQueue> queues_;
  std::set<std::string> ready_;  // Peers whose queue holds records.
  uint64_t next_write_id_ = 1;
  std::map<uint64_t, Pending> writes_;
  std::vector<WriteOutcome> outcomes_;
  FanoutStats stats_;
  std::mt19937_64 rng_;
};

// Collects the answers of a QUORUM/ALL read: the coordinator's own record
// and one answer (or failure) per asked peer. Ready once `needed` replicas
// answered (the coordinator included) or no longer can.
class ReadCollector {
 public:
  // `local` is the coordinator's record (nullopt: never written).
  ReadCollector(int needed, std::vector<std::string> asked,
                std::optional<storage::Record> local);

  void OnReply(const std::string& peer, std::optional<storage::Record> record);
  void OnFailure(const std::string& peer);

  // needed replicas answered (newest() is the result), or impossible.
  bool Ready() const { return answered_ >= needed_ || Impossible(); }
  bool Succeeded() const { return answered_ >= needed_; }
  bool Impossible() const {
    return answered_ + pending_ < needed_;
  }
  // Every asked peer answered or failed.
  bool AllDone() const { return pending_ == 0; }
  int answered() const { return answered_; }
  int needed() const { return needed_; }
  // The newest record among the answers (nullopt when none holds the key).
  const std::optional<storage::Record>& newest() const { return newest_; }
  // Peers that answered with an older record than newest() or none.
  std::vector<std::string> StalePeers() const;
  // Whether the coordinator's own record is older than newest().
  bool LocalStale() const;

 private:
  const int needed_;
  int answered_ = 1;  // The coordinator.
  int pending_ = 0;
  std::optional<storage::Record> local_;
  std::optional<storage::Record> newest_;
  std::map<std::string, std::optional<storage::Version>> replies_;
  std::map<std::string, bool> asked_;  // Peer -> still pending.
};

}  // namespace kv::replication

#endif  // KV_REPLICATION_FANOUT_H_
