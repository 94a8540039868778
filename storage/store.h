// Store: versioned records with last-writer-wins, the hash index and the
// Merkle tree, over any Engine. Every change of a key updates its record,
// its hash-index entry and its Merkle leaf in one atomic engine batch.
//
// Invariants:
//  - the Merkle column's leaves equal, per leaf, the XOR of EntryDigest and
//    the count of the records in the data column (VerifyTree checks this);
//  - every stored version is below the clock's persisted high-water mark, so
//    a local write always gets a version above the one it replaces.
//
// Thread safety: all methods are thread-safe. The read-compare-write of a key
// is serialized by a striped lock on its hash; different keys proceed in
// parallel.
//
// Lock order (a thread holding one lock takes only those below it):
//   verify_mu_                 one VerifyTree at a time
//   stripes_[i], ascending i   a key's read-compare-write; KeyStateCache
//                              shard i
//   HybridClock's mutex        Now/Observe; its persist function writes the
//                              high-water mark to the engine under it
//   the engine's own locks     (RocksDB's write thread)
// queue_mu_ (the committer's queue) is taken alone: no other lock is held
// while it is held, and it is released before a group is committed.
#ifndef KV_STORAGE_STORE_H_
#define KV_STORAGE_STORE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "storage/config.h"
#include "storage/engine.h"
#include "storage/hlc.h"
#include "storage/key_state_cache.h"
#include "storage/merkle.h"
#include "storage/record.h"

namespace kv::storage {

struct StoreOptions {
  // Merkle leaves: 2^leaf_depth, leaf_depth <= config::kMaxLeafDepth.
  uint32_t leaf_depth = config::kDefaultLeafDepth;
  // Runs a committer thread for WriteAsync: writes that arrive while a group
  // is being committed are committed together as the next group, one engine
  // batch (one WAL write, one fsync with sync) per group; a write that finds
  // the store idle commits on the calling thread. Without it WriteAsync
  // always commits on the calling thread (the simulator).
  bool committer_thread = false;
  size_t max_group_mutations = 4096;  // Per committed group.
  PhysicalClock* clock = nullptr;    // Default: the system clock.
  int64_t hlc_window_ms = 1000;      // See HybridClock.
  uint64_t node_id = 0;              // Nonzero: id for a new store (tests).
  // Count the tombstones once after Open, on a thread of the store (see
  // Store::tombstones()).
  bool count_tombstones = false;
  // Apply refuses a record whose version is more than this far ahead of the
  // local wall clock (a peer with a broken clock, or a hostile one, would
  // otherwise drag this node's clock, and every later version, with it).
  // 0 = no limit.
  int64_t max_clock_drift_ms = 0;
  // KeyStateCache budget: the version and digest of recently written keys,
  // so that rewriting one does not read its old record. 0 = off.
  size_t key_cache_bytes = size_t{64} << 20;
};

// A condition a Mutation must meet, checked atomically with the write.
//  kNone: always met.
//  kVersion: the key's newest record, live or a delete (tombstone), has
//    exactly `version`: a write against a deleted key names the version of
//    the delete (what Get returns for it). A key never written fails.
//  kAbsent: the key was never written or its newest record is a delete.
struct Precondition {
  enum class Kind { kNone, kVersion, kAbsent };
  Kind kind = Kind::kNone;
  Version version;  // For kVersion.
};

struct Mutation {
  std::string key;
  bool tombstone = false;
  std::string value;  // Ignored for a tombstone.
  Precondition precondition;
};

struct VerifyResult {
  bool matched = true;
  int64_t mismatched_leaves = 0;
  int64_t key_count = 0;
  Digest root;
};

struct ApplyOptions {
  // Whether keys applied that are not in the key-state cache are added to
  // it. Anti-entropy passes false: a full sync would otherwise fill the
  // cache (64 MiB by default) with keys nobody writes, evicting the ones
  // foreground and fan-out writes use. Cached keys are updated either way.
  bool cache_new_keys = true;
};

struct ApplyResult {
  int64_t applied = 0;         // Keys whose stored record was replaced.
  int64_t refused = 0;         // Records refused for their clock.
  absl::Status first_refusal;  // Why the first one was refused.
  // Positions in the input of the records refused for their clock.
  std::vector<size_t> refused_index;
  // Records with the stored version but other contents (a copied data
  // directory, a forged record), whichever of the two was kept.
  int64_t ties = 0;
};

// What a store's data holds, read without a data scan (Store::Inspect).
struct StoreInfo {
  uint64_t node_id = 0;
  uint32_t leaf_depth = 0;
  int64_t key_count = 0;  // Keys, tombstones included (MerkleTree::KeyCount).
  Digest root;
};

struct RangeSummary {
  Digest digest;
  int64_t count = 0;
};

class Store {
 public:
  // Opens the store over `engine`, creating the node id and tree metadata on
  // first use, and loads the Merkle leaves (no data scan).
  // Errors: FAILED_PRECONDITION when the data was made with another
  // leaf_depth; DATA_LOSS for corrupt metadata; engine errors.
  static absl::StatusOr<std::unique_ptr<Store>> Open(
      std::unique_ptr<Engine> engine, StoreOptions options);

  // Reads the node id, leaf depth, key count and root of the store in
  // `engine` (which may be read-only; nothing is written).
  // Errors: FAILED_PRECONDITION when the engine holds no store (no node id or
  // leaf depth); DATA_LOSS for corrupt metadata or leaves; engine errors.
  static absl::StatusOr<StoreInfo> Inspect(std::unique_ptr<Engine> engine);

  // Gives the store in `engine` (not open as a Store) a new random node id,
  // different from its current one, and returns it. For a copy of another
  // node's data (a restored snapshot): two live nodes with one id are
  // refused by the cluster, and versions written under one id by two nodes
  // would collide. Errors: FAILED_PRECONDITION when the engine holds no
  // store; engine errors.
  static absl::StatusOr<uint64_t> AssignNewNodeId(Engine& engine);

  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  uint64_t node_id() const { return node_id_; }
  // Keys in the key-state cache now (for tests and metrics).
  int64_t key_cache_entries() const { return key_cache_.entries(); }
  const MerkleTree& tree() const { return tree_; }

  // Engine::Checkpoint of the underlying engine: a consistent copy of the
  // store (data, index, tree and metadata of one moment) in a new directory,
  // while writes go on. Errors: as Engine::Checkpoint.
  absl::Status Checkpoint(const std::string& dir) { return engine_->Checkpoint(dir); }
  // Engine::Stats of the underlying engine (memtable, table file and pending
  // compaction bytes), for /metrics.
  EngineStats engine_stats() { return engine_->Stats(); }
  EngineBacklog engine_backlog() { return engine_->Backlog(); }

  // Local writes (Write, WriteAsync) committed since Open, for /metrics: each
  // group is one engine batch (Write: a group of one request; WriteAsync
  // with the committer thread: the requests queued meanwhile), refused or
  // failed ones included.
  struct CommitStats {
    uint64_t groups = 0;
    uint64_t requests = 0;
    uint64_t mutations = 0;
  };
  CommitStats commit_stats() const {
    return {commit_groups_.load(std::memory_order_relaxed),
            commit_requests_.load(std::memory_order_relaxed),
            commit_mutations_.load(std::memory_order_relaxed)};
  }
  // Tombstones (deleted keys' records) held, for /metrics; nullopt until the
  // count is known. The store counts them once after Open, in the background
  // (a scan of the data column from a consistent snapshot, with
  // count_tombstones in StoreOptions), and from then on keeps the count exact
  // from its writes and applies.
  std::optional<int64_t> tombstones() const {
    if (!tombstones_known_.load(std::memory_order_acquire)) return std::nullopt;
    return tombstone_base_ + tombstone_delta_.load(std::memory_order_relaxed);
  }

  // The clock versions come from, read-only (tests check that a refused
  // record left it untouched); only the store advances it.
  const HybridClock& clock() const { return *clock_; }

  // The newest record of `key`, tombstones included; nullopt when the key was
  // never written. Errors: engine errors, DATA_LOSS.
  absl::StatusOr<std::optional<Record>> Get(absl::string_view key);

  // Writes `mutations` atomically, each with a fresh version from the clock
  // (above the version it replaces). Returns the versions in order.
  // Errors: INVALID_ARGUMENT when a key repeats or is empty;
  // FAILED_PRECONDITION when a precondition fails (message names the key;
  // nothing written); engine errors (nothing acknowledged).
  absl::StatusOr<std::vector<Version>> Write(std::span<const Mutation> mutations);

  using WriteCallback =
      absl::AnyInvocable<void(absl::StatusOr<std::vector<Version>>) &&>;
  // As Write, but `done` gets Write's result. With the committer thread,
  // a write that finds no group being committed and none waiting is
  // committed on the calling thread (no hand-off: a lone write pays for no
  // thread switch), and `done` runs there before WriteAsync returns;
  // otherwise it joins the queue, WriteAsync returns at once, and the
  // committer commits everything queued as the next group and runs `done`
  // on its thread. Groups are committed one at a time. Without the
  // committer thread every write commits on the calling thread. `done` must
  // not block. After the store started closing, `done` gets UNAVAILABLE.
  void WriteAsync(std::vector<Mutation> mutations, WriteCallback done);

  // Stores `record` iff its version is above the stored one (last writer
  // wins), or equal to it with a higher EntryDigest (two records with one
  // version and different contents: every replica keeps the same one);
  // returns whether it was stored. The clock observes the version either
  // way. Applying the same records in any order, from any threads,
  // gives the same final state. Errors: INVALID_ARGUMENT for an empty key or
  // a zero version; OUT_OF_RANGE when the version is further ahead of the
  // wall clock than max_clock_drift_ms (nothing stored, clock untouched);
  // engine errors.
  absl::StatusOr<bool> Apply(const Record& record);

  // Applies `records` (from a peer) as Apply does each, in one engine batch,
  // and observes the newest of their versions in the clock (persisting its
  // high-water mark past it) before storing any. A record refused for its
  // clock (OUT_OF_RANGE above) is skipped and counted; the others are
  // applied. Equal versions with different contents are counted in `ties`.
  // Errors: INVALID_ARGUMENT for an empty key or a zero version (nothing
  // applied); engine errors (nothing applied).
  absl::StatusOr<ApplyResult> ApplyBatch(std::span<const Record> records,
                                         const ApplyOptions& options = {});

  // Calls fn for each live (non-tombstone) record with start <= key < end in
  // key order (an empty `end` has no bound) until fn returns false.
  // Errors: engine errors, DATA_LOSS.
  absl::Status Scan(absl::string_view start, absl::string_view end,
                    absl::FunctionRef<bool(const Record&)> fn);

  // Calls fn for each hash-index entry under Merkle node (depth, index), in
  // hash order, until fn returns false. REQUIRES depth <= 64, index < 2^depth.
  absl::Status ForEachIndexEntry(uint32_t depth, uint64_t index,
                                 absl::FunctionRef<bool(const IndexEntry&)> fn);

  // Calls fn for the record of each entry under Merkle node (depth, index),
  // in hash order, until fn returns false: a scan for streaming the range to
  // a peer, read in batches (Engine::ScanGet, NewScanIterator) without
  // filling the block cache. An entry whose record is gone by the time it is
  // read (a concurrent write) is skipped. REQUIRES as ForEachIndexEntry.
  absl::Status ForEachRecordUnder(uint32_t depth, uint64_t index,
                                  absl::FunctionRef<bool(Record&&)> fn);

  // Digest and count of node (depth, index): from the tree when depth <=
  // leaf_depth, else computed from the hash index (the finer levels).
  absl::StatusOr<RangeSummary> Summarize(uint32_t depth, uint64_t index);

  // Rebuilds the leaves from the data column (recomputing every digest) as of
  // one consistent moment and compares them with the stored leaves and the
  // in-memory tree. A mismatch in either is repaired (the difference is
  // merged in, which commutes with concurrent writes) and reported in the
  // result. Verifications are serialized (two at once would each merge the
  // same repair in, undoing each other's); foreground writes and applies
  // proceed meanwhile, except while the snapshot is taken.
  absl::StatusOr<VerifyResult> VerifyTree() ABSL_LOCKS_EXCLUDED(verify_mu_);

 private:
  static constexpr int kStripes = 1024;

  Store(std::unique_ptr<Engine> engine, const StoreOptions& options,
        uint64_t node_id, uint64_t high_water);

  struct LeafDelta {
    uint32_t leaf;
    Digest digest;
    int64_t count;
  };
  // The changes of one engine batch while it is built: the records' data
  // and index updates, the leaf deltas (a run of records in one leaf makes
  // one; CommitStaged adds their merges to the batch), and the new state of
  // each key (the newest when a key is staged twice).
  struct Staged {
    WriteBatch batch;
    std::vector<LeafDelta> deltas;
    absl::flat_hash_map<std::string, KeyState> states;
    int64_t tombstone_delta = 0;
    bool cache_new_keys = true;  // ApplyOptions::cache_new_keys.
  };
  // Adds `record`, replacing a record in state `old`, to `staged`.
  // REQUIRES the key's stripe lock.
  void StageRecord(const Record& record, const std::optional<KeyState>& old,
                   uint64_t key_hash, Staged* staged);
  // Writes the staged batch to the engine, then applies its deltas to the
  // in-memory tree and its states to the key cache; on an engine error
  // nothing changes. The one commit step of local writes and applies.
  // REQUIRES the stripe lock of every staged key.
  absl::Status CommitStaged(Staged& staged);
  // A key and its hash.
  struct KeyRef {
    absl::string_view key;
    uint64_t hash;
  };
  // The stored state of each of `keys` ((*states)[i] for keys[i]; nullopt
  // for a key never written): from the cache, the others read together in
  // one Engine::MultiGet (a full sync applies 1 000 new keys a call, a bulk
  // load writes as many), or a Get when only one is not cached.
  // REQUIRES the stripe lock of every key.
  absl::Status ReadStatesLocked(std::span<const KeyRef> keys,
                                std::vector<std::optional<KeyState>>* states);
  absl::Mutex& StripeOf(uint64_t key_hash) { return stripes_[key_hash % kStripes]; }
  // Checks a record received from a peer. Errors: as Apply.
  absl::Status CheckRemote(const Record& record) const;
  absl::Status LoadTree();
  // VerifyTree's last step: compares the leaves rebuilt from the data with
  // the stored and in-memory ones of the same moment, merges the
  // differences into both, and reports them. REQUIRES verify_mu_.
  absl::StatusOr<VerifyResult> RepairLeaves(const std::vector<LeafValue>& rebuilt,
                                            const std::vector<LeafValue>& stored,
                                            const std::vector<LeafValue>& memory)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(verify_mu_);
  // Every stripe, in ascending order (VerifyTree's consistent moment).
  void LockAllStripes();
  void UnlockAllStripes();

  struct WriteRequest {
    std::vector<Mutation> mutations;
    std::vector<uint64_t> hashes;
    WriteCallback done;
    absl::StatusOr<std::vector<Version>> result;
  };
  // Checks a request on its own (keys non-empty and distinct) and hashes
  // its keys. Errors: INVALID_ARGUMENT.
  static absl::Status Prepare(WriteRequest& request);
  // Commits `group` in one engine batch: each request's preconditions are
  // checked against the store and the group's earlier requests; a request
  // that fails gets its error and writes nothing. When the group itself
  // fails (the clock's high-water mark or the batch cannot be written),
  // nothing is written and every request gets that error, except one
  // refused on the stored state alone, which keeps its own. Sets every
  // result; no request is OK without its versions stored.
  void CommitGroup(std::vector<WriteRequest>& group);
  // Takes the stripes of every key in `group`, then CommitGroup.
  void CommitLocked(std::vector<WriteRequest>& group);
  void CommitterLoop();

  // Constant after construction.
  const std::unique_ptr<Engine> engine_;
  const uint64_t node_id_;
  std::unique_ptr<SystemClock> owned_clock_;
  PhysicalClock* physical_ = nullptr;
  int64_t max_clock_drift_ms_ = 0;
  std::unique_ptr<HybridClock> clock_;

  MerkleTree tree_;  // Thread-safe itself.
  std::array<absl::Mutex, kStripes> stripes_;  // Guard read-compare-write.
  KeyStateCache key_cache_;  // Shard i guarded by stripes_[i].
  // Held for a whole VerifyTree. Lock order: verify_mu_ before the stripes
  // (which are taken in ascending order).
  absl::Mutex verify_mu_;

  // The committer's queue.
  absl::Mutex queue_mu_;
  std::vector<WriteRequest> queue_ ABSL_GUARDED_BY(queue_mu_);
  bool closing_ ABSL_GUARDED_BY(queue_mu_) = false;
  // A group is being committed (by the committer, or inline by WriteAsync).
  bool committing_ ABSL_GUARDED_BY(queue_mu_) = false;
  size_t max_group_mutations_ = 4096;
  std::thread committer_;

  // tombstones(): the count at the snapshot the background scan read, minus
  // the writes' delta up to that snapshot (so base + delta is the count now).
  void CountTombstones();
  std::atomic<int64_t> tombstone_delta_{0};
  int64_t tombstone_base_ = 0;  // Written once, before tombstones_known_.
  std::atomic<bool> tombstones_known_{false};
  std::atomic<bool> stop_counting_{false};
  std::thread tombstone_counter_;

  // commit_stats().
  std::atomic<uint64_t> commit_groups_{0};
  std::atomic<uint64_t> commit_requests_{0};
  std::atomic<uint64_t> commit_mutations_{0};
};

}  // namespace kv::storage

#endif  // KV_STORAGE_STORE_H_
