// The anti-entropy exchange (proto/peer.proto) as a pure state machine.
//
// One Exchange object plays one side of one exchange. It does no I/O: it
// reads local data through ExchangeStorage (a storage::Store, or a test's
// stand-in; synchronous reads only), takes
// the peer's messages through Step(), and hands back, through TakeReady(),
// the messages to send and the records the driver must apply with
// Store::Apply (the pattern of etcd raft's Ready). It has no clock, thread or
// random source: the salt is passed in. The same store contents and inputs
// always give the same outputs.
//
// Protocol (both sides take turns; a turn is one or more messages, the last
// with end_of_turn):
//   turn 1, initiator: Hello{version, leaf_depth, salt, salted root}.
//   responder: equal roots -> an empty turn (both done); else the Digests of
//     the root's children.
//   Digests -> for each child whose salted digest differs from ours: above
//     the leaves our Digests of its children (2^fanout_bits); at or below
//     the leaves, when we hold at most max_fingerprints entries under it (or
//     it is at depth 64), our Fingerprints of those entries, else the
//     Digests of its 2^finer_bits children computed from the hash index.
//   Fingerprints -> a Diff: our entries whose fingerprint is not in the list
//     (as key hash + version) and the list positions that match none of
//     ours. Diffs do not name their node: the n-th Diff of a turn answers
//     the n-th Fingerprints of the turn before.
// Versions in Diffs and records go through each message's version table
// (hlc_base, node_ids; VersionTableWriter in wire.h), so a version costs a
// varint hlc delta and a node position instead of 16 bytes or more.
//   Diff -> the records we hold newer or the peer lacks, and `wants` (Diff
//     entry positions) for the keys the peer holds newer or we lack; for a
//     key at the same HLC on both sides (its contents differ, or a collision
//     hid it), both: Apply breaks the tie by version and digest, so the two
//     sides converge.
//   wants -> those records.
// Empty ranges: a node that holds no entries has the salted digest 0
// (kEmptyDigest, wire.h). A side that sees the peer's digest 0 for a node
// where it holds entries sends, instead of descending, the records of every
// entry under it (in hash order, within the record budget): the peer lacks
// them all, so neither fingerprints, Diffs nor wants are needed. This is
// what makes the full sync of a new or wiped node cost little more than its
// records. A side whose own node is empty while the peer's is not answers
// with the Digests of its children (all 0), so the peer streams them.
// A turn "asks" when it carries digests, fingerprints, diffs or wants; a side
// that sends a turn which asks nothing is done after sending it, a side that
// receives one is done after applying it. Records streamed are exactly the
// differing keys, in both directions (unless a budget below cuts the round
// short, or a 16-bit salted digest or fingerprint collides, which the next
// salt undoes; a collided key may also cost a record sent in vain).
// The side that sends Fingerprints keeps the keys it listed, so the `missing`
// positions of the Diff are read against exactly that list even if the store
// changed in between.
//
// Peer input is checked as it arrives: bounds of every depth, index, size and
// list, that every Digests/Fingerprints is about a node the peer was asked
// about (once), that every Fingerprints we sent is answered by one Diff in
// the next turn, that wanted keys were offered in our Diffs, and each record
// (RecordFromProto in wire.h). A violation makes Step return
// INVALID_ARGUMENT and fails the exchange; nothing crashes.
// Records are taken only when our last turn asked for them, once each: a key
// we wanted, a key we offered in a Diff (the peer sends its own when newer or
// tied), an entry the peer listed whose fingerprint our Diff named missing
// (the record's fingerprint must be the listed one and its key under that
// node), a key whose hash we wanted, or any key under a node our last turn
// declared empty (digest 0). Any other record (a key not asked for, a second copy, contents other
// than the fingerprint listed) fails the exchange with INVALID_ARGUMENT and
// is counted (ExchangeStats::records_not_asked); no record of that message is
// applied. The side answering a Diff sends the record of a missing position
// only while it still has the listed fingerprint: one written over in
// between waits for a later exchange. A well-formed
// record or Diff key over this side's limits is not a violation (the peer
// may run with larger limits): it is skipped and counted
// (ExchangeStats::records_over_limits) and the exchange goes on.
//
// Work per exchange is capped (ExchangeOptions::max_differing_leaves,
// max_record_bytes_per_exchange): what is left over stays different and is
// found by a later exchange, so a wiped node converges over several rounds.
//
// Thread safety: not thread-safe; one exchange = one object, driven by one
// thread at a time. The Store it reads may be written concurrently (by
// foreground writes): the exchange stays valid, a change it races with is
// repaired by a later exchange.
#ifndef KV_REPLICATION_EXCHANGE_H_
#define KV_REPLICATION_EXCHANGE_H_

#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "proto/peer.pb.h"
#include "replication/wire.h"
#include "storage/config.h"
#include "storage/merkle.h"
#include "storage/record.h"
#include "storage/store.h"

namespace kv::replication {

struct ExchangeOptions {
  // Children per Digests item above the leaves (2^fanout_bits), in [1, 8].
  uint32_t fanout_bits = 4;
  // Children per Digests item below the leaves (the finer levels), in [1, 8].
  uint32_t finer_bits = 4;
  // A differing node at or below the leaves with at most this many local
  // entries is compared by fingerprints; above it, it is split further.
  int64_t max_fingerprints = 64;
  // Budget of differing leaves this side expands in one exchange (>= 1);
  // the others wait for a later exchange. An expanded leaf is compared to
  // the end, through the finer levels below it.
  int64_t max_differing_leaves = 65536;
  // Splitting of a turn into messages; a single item larger than
  // max_message_bytes is sent alone in its message.
  int64_t max_records_per_message = 1000;
  int64_t max_message_bytes = int64_t{1} << 20;
  // Budget of record bytes (key + value) this side sends in one exchange;
  // records beyond it are left for a later exchange (the first record is
  // always sent, whatever its size). A turn's records are built in memory,
  // so this bounds the memory of an exchange; an exchange cut by it is
  // followed at once by the next (CutByBudget). 4 MiB: a 1M-key full sync
  // peaked at 264 MB RSS on the sender with it, 383 MB with 16 MiB.
  int64_t max_record_bytes_per_exchange = int64_t{4} << 20;
  // Limits of received records and keys.
  size_t max_key_bytes = storage::config::kDefaultMaxKeyBytes;
  size_t max_value_bytes = storage::config::kDefaultMaxValueBytes;
  // Most entries accepted in one received Fingerprints item; also the most
  // this side sends in one (a longer local list is cut, which is safe).
  int64_t max_received_fingerprints = 16384;
  // Most bytes of (key, version) entries this side puts in one Diff; the
  // entries beyond are left out (the peer then wants fewer keys this round).
  int64_t max_diff_bytes = int64_t{512} << 10;
  // Most entries accepted in one received list: Diff entries, Diff missing,
  // wants and records of one message.
  int64_t max_list_entries = 65536;
};

struct ExchangeStats {
  // Ended at equal roots: the responder found them equal on Hello; the
  // initiator got an empty answer to Hello.
  bool equal_roots = false;
  int64_t differing_leaves = 0;    // Differing leaves this side expanded.
  int64_t skipped_leaves = 0;      // Differing leaves left for later (budget).
  // The peer said it left leaves or records for later (cut_by_budget).
  bool peer_cut_by_budget = false;
  int64_t fingerprints_sent = 0;   // Fingerprints items sent.
  int64_t records_sent = 0;
  int64_t records_skipped = 0;     // Over max_record_bytes_per_exchange.
  // Records of the peer not asked for, or kept from being re-sent, because
  // this node refused them for their clock before (PeerRefusals).
  int64_t refusals_remembered = 0;
  int64_t records_received = 0;
  // Well-formed records received with a key or value over this side's
  // limits (max_key_bytes, max_value_bytes): skipped, not applied.
  int64_t records_over_limits = 0;
  // Records the peer sent that this side had not asked for (the exchange
  // then failed): see the class comment.
  int64_t records_not_asked = 0;
  // Records of missing positions not sent because they changed since their
  // fingerprint was listed (a later exchange repairs them).
  int64_t records_changed = 0;
  int64_t wants_sent = 0;
  // Nodes the peer declared empty whose records this side streamed (or,
  // past the record budget, left for a later exchange), and the records.
  int64_t ranges_streamed = 0;
  int64_t records_streamed = 0;
  int64_t bytes_sent = 0;          // Sum of ByteSizeLong of sent messages.
  // bytes_sent by what they carried: each item's serialized size with its
  // field tag and length. The rest of bytes_sent is Hello, end_of_turn and
  // the messages' own framing.
  int64_t bytes_sent_digests = 0;
  int64_t bytes_sent_fingerprints = 0;
  int64_t bytes_sent_diffs = 0;
  int64_t bytes_sent_wants = 0;
  int64_t bytes_sent_records = 0;
  int64_t bytes_received = 0;
  int64_t messages_sent = 0;
  int64_t messages_received = 0;
  int64_t turns_sent = 0;
};

// The records one peer sent that this node refused for their clock
// (storage::ApplyResult::refused_index: versioned further ahead of the local
// clock than --max-clock-drift-ms), by key and version. An exchange given
// them (Exchange::set_refusals) neither asks that peer for those records
// again nor lets it re-send them: a node whose clock jumped forward would
// otherwise re-send every refused record in every exchange. Expire forgets
// the ones the local clock has caught up with, which are then repaired as
// usual.
//
// Bounded: at most max_entries records (one per key, the newest refused
// version); refusals beyond are not remembered (those records are re-sent, as
// without the memory).
//
// Thread safety: thread-safe (exchanges with one peer may overlap).
class PeerRefusals {
 public:
  explicit PeerRefusals(size_t max_entries = 4096) : max_entries_(max_entries) {}

  // Remembers `record` (its key, version and entry digest).
  void Add(const storage::Record& record);
  // Whether `key` was refused at exactly `version`.
  bool Contains(absl::string_view key, const storage::Version& version) const;
  // Whether a key of hash `key_hash` was refused at exactly `version` (what
  // a Diff entry names).
  bool ContainsHashAt(uint64_t key_hash, const storage::Version& version) const;
  // Calls fn(key, entry digest) for each remembered record whose key hash is
  // in `range`, in hash order.
  void ForEachIn(const storage::HashRange& range,
                 absl::FunctionRef<void(const std::string&,
                                        const storage::Digest&)>
                     fn) const;
  // Forgets the records versioned at most `max_drift_ms` ahead of `now_ms`
  // (they would be taken now); max_drift_ms <= 0 (no limit) forgets all.
  void Expire(int64_t now_ms, int64_t max_drift_ms);
  size_t size() const;

 private:
  struct Entry {
    std::string key;
    storage::Version version;
    storage::Digest digest;
  };
  const size_t max_entries_;
  mutable absl::Mutex mu_;
  // Key hash -> entries (hash order, for ForEachIn).
  std::multimap<uint64_t, Entry> by_hash_ ABSL_GUARDED_BY(mu_);
};

// The largest message a peer with the same options sends; Step rejects
// larger ones. Transports should accept messages of this size.
uint64_t MaxReceivedMessageBytes(const ExchangeOptions& options);

// What an exchange reads of the local replica, and nothing else (the
// pattern of etcd raft's Storage): the Merkle tree's digests, the hash index
// under a node, and single records. Reads only: the driver applies the
// records it is handed with storage::Store::ApplyBatch. StoreStorage is the
// implementation over storage::Store; a test may give one that fails reads.
//
// Thread safety: as the implementation; StoreStorage's calls are Store's,
// which are thread-safe.
class ExchangeStorage {
 public:
  virtual ~ExchangeStorage() = default;
  // The local replica's node id (sent in Hello).
  virtual uint64_t node_id() const = 0;
  // Depth of the Merkle tree's leaves.
  virtual uint32_t leaf_depth() const = 0;
  // Digest of tree node (depth, index). REQUIRES depth <= leaf_depth(),
  // index < 2^depth.
  virtual storage::Digest NodeDigest(uint32_t depth, uint64_t index) const = 0;
  // As storage::Store::ForEachIndexEntry.
  virtual absl::Status ForEachIndexEntry(
      uint32_t depth, uint64_t index,
      absl::FunctionRef<bool(const storage::IndexEntry&)> fn) = 0;
  // As storage::Store::Summarize.
  virtual absl::StatusOr<storage::RangeSummary> Summarize(uint32_t depth,
                                                          uint64_t index) = 0;
  // As storage::Store::Get.
  virtual absl::StatusOr<std::optional<storage::Record>> Get(
      absl::string_view key) = 0;
  // As storage::Store::ForEachRecordUnder; the default reads through
  // ForEachIndexEntry and Get.
  virtual absl::Status ForEachRecordUnder(
      uint32_t depth, uint64_t index,
      absl::FunctionRef<bool(storage::Record&&)> fn);
};

// ExchangeStorage over a storage::Store (not owned; must outlive this).
class StoreStorage final : public ExchangeStorage {
 public:
  explicit StoreStorage(storage::Store* store) : store_(store) {}
  uint64_t node_id() const override { return store_->node_id(); }
  uint32_t leaf_depth() const override { return store_->tree().leaf_depth(); }
  storage::Digest NodeDigest(uint32_t depth, uint64_t index) const override {
    return store_->tree().NodeDigest(depth, index);
  }
  absl::Status ForEachIndexEntry(
      uint32_t depth, uint64_t index,
      absl::FunctionRef<bool(const storage::IndexEntry&)> fn) override {
    return store_->ForEachIndexEntry(depth, index, fn);
  }
  absl::StatusOr<storage::RangeSummary> Summarize(uint32_t depth,
                                                  uint64_t index) override {
    return store_->Summarize(depth, index);
  }
  absl::StatusOr<std::optional<storage::Record>> Get(
      absl::string_view key) override {
    return store_->Get(key);
  }
  absl::Status ForEachRecordUnder(
      uint32_t depth, uint64_t index,
      absl::FunctionRef<bool(storage::Record&&)> fn) override {
    return store_->ForEachRecordUnder(depth, index, fn);
  }

 private:
  storage::Store* const store_;
};

// What the driver must do after Step (or after creating an initiator).
struct Ready {
  // To send to the peer, in order, on the exchange's stream.
  std::vector<peer::v1::ExchangeMessage> messages;
  // Valid records from the peer, to apply with storage::Store::Apply (in any
  // order; applying is idempotent and last-writer-wins).
  std::vector<storage::Record> records_to_apply;

  bool empty() const { return messages.empty() && records_to_apply.empty(); }
};

class Exchange {
 public:
  // The side that opens the stream. Its first Ready holds the Hello turn.
  // `storage` must outlive the exchange. `salt` should be random per
  // exchange. Errors: INVALID_ARGUMENT when `options` are out of range
  // (message names the field) or `storage` is null.
  static absl::StatusOr<std::unique_ptr<Exchange>> Initiator(
      ExchangeStorage* storage, const ExchangeOptions& options, uint64_t salt);
  // As above, reading `store` (through a StoreStorage the exchange owns).
  static absl::StatusOr<std::unique_ptr<Exchange>> Initiator(
      storage::Store* store, const ExchangeOptions& options, uint64_t salt);

  // The side that accepts the stream; it waits for Hello.
  // Errors: as Initiator.
  static absl::StatusOr<std::unique_ptr<Exchange>> Responder(
      ExchangeStorage* storage, const ExchangeOptions& options);
  static absl::StatusOr<std::unique_ptr<Exchange>> Responder(
      storage::Store* store, const ExchangeOptions& options);

  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // Handles one message received from the peer, in stream order. When it
  // ends the peer's turn, our answer turn (if any) is queued in Ready.
  // Success: OK; read TakeReady() and done().
  // Errors (the exchange is then failed: queued messages are dropped,
  // records from messages handled before stay in Ready, as each was valid):
  //  - INVALID_ARGUMENT: the message is malformed or breaks the protocol
  //    (bounds, sizes, a node not asked about, a Hello out of place, a
  //    message after the exchange finished, ...); the message says what.
  //  - FAILED_PRECONDITION: Step after the exchange had already failed.
  //  - a Store read error, returned as is.
  absl::Status Step(const peer::v1::ExchangeMessage& msg);

  // Moves out and clears what is queued.
  Ready TakeReady();

  // What this node refused from the peer earlier (may be null: none).
  // Refused records are not wanted when the peer's Diff lists them, and
  // when answering the peer's Fingerprints their fingerprints count as
  // matched and our older entries of those keys are not listed, so the peer
  // does not send them. `refusals` must outlive the exchange; set it before
  // the peer's Digests or Fingerprints arrive (a responder: at the latest in
  // its Admit, which runs after the Hello).
  void set_refusals(const PeerRefusals* refusals) { refusals_ = refusals; }

  // Called in the middle of a Step while records are streamed for ranges
  // the peer declared empty: every max_records_per_message records are
  // queued in Ready as a message of their own (not ending the turn), and
  // `hook` is called to send them (TakeReady, write) before more are read.
  // So the peer applies one message while this side reads the next, instead
  // of waiting for a whole turn (up to max_record_bytes_per_exchange) to be
  // read first. Only while handling the last message of the peer's turn:
  // before it the peer may still be writing its turn, and two sides that
  // both write on a full stream window would wait on each other. A hook
  // error ends the Step with that error. Without a hook (the default) the
  // whole turn is queued when it ends.
  void set_flush_hook(absl::AnyInvocable<absl::Status()> hook) {
    flush_hook_ = std::move(hook);
  }

  // The exchange finished cleanly. A Ready taken after it became done may
  // still hold the last messages to send and records to apply.
  bool done() const { return state_ == State::kDone; }
  // Step returned an error; the stream should be closed.
  bool failed() const { return state_ == State::kFailed; }
  bool is_initiator() const { return role_ == Role::kInitiator; }
  // Some turn of ours declared a node empty (the peer streams its records).
  bool declared_empty() const { return declared_empty_; }
  // The peer's node id from Hello (responder), else 0.
  uint64_t peer_node_id() const { return peer_node_id_; }
  const ExchangeStats& stats() const { return stats_; }
  // Why the first record over our limits was skipped (OK when none was), for
  // one log line per exchange.
  const absl::Status& first_over_limits() const { return first_over_limits_; }

 private:
  enum class Role { kInitiator, kResponder };
  enum class State { kAwaitingHello, kAwaitingTurn, kDone, kFailed };

  // A node of the Merkle tree by its position: depth and index at that
  // depth (not a replica: that is peer_node_id_).
  struct TreePos {
    uint32_t depth = 0;
    uint64_t index = 0;
    friend auto operator<=>(const TreePos&, const TreePos&) = default;
  };

  // A Diff being built: encoded when the turn is split into messages (its
  // versions go through the message's version table).
  struct DiffOut {
    uint32_t depth = 0;  // Of its node: the width of the key hashes.
    std::vector<uint64_t> key_hashes;
    std::vector<storage::Version> versions;  // Parallel to key_hashes.
    std::vector<uint32_t> missing;
  };

  // Fingerprints being built: encoded when the turn is split into messages
  // (the index is sent as a delta from the message's previous one).
  struct FingerprintsOut {
    TreePos node;
    std::string fingerprints;  // kFingerprintBytes each.
  };

  // The turn being built, sent when the peer's turn ends.
  struct Turn {
    std::vector<peer::v1::Digests> digests;
    std::vector<FingerprintsOut> fingerprints;
    std::vector<DiffOut> diffs;
    std::vector<uint32_t> wants;  // Positions of the peer's Diff entries.
    std::vector<storage::Record> records;
    bool Asks() const {
      return !digests.empty() || !fingerprints.empty() || !diffs.empty() ||
             !wants.empty();
    }
  };

  // What our last turn asked, which the peer's next turn may answer.
  struct Asked {
    bool root = false;                    // We sent Hello.
    std::map<TreePos, uint32_t> digests;  // Parent -> child_bits we sent.
    // The nodes we sent Fingerprints of, in the order sent (the n-th Diff
    // of the peer's next turn answers the n-th), each with our entries (key,
    // fingerprint) in the order of its fingerprints.
    std::vector<
        std::pair<TreePos, std::vector<std::pair<std::string, uint32_t>>>>
        fingerprints;
    // The keys of our Diff entries, by position (the peer wants them by
    // position); a wanted one is cleared, so it is wanted once.
    std::vector<std::string> offered;
    // The records the peer may send in its next turn, each once: the keys we
    // offered, the key hashes we wanted, and, by fingerprint, the peer's
    // entries our Diffs named missing (fingerprint -> the nodes they were
    // listed under).
    absl::flat_hash_set<std::string> record_keys;
    absl::flat_hash_set<uint64_t> record_hashes;
    absl::flat_hash_map<uint32_t, std::vector<TreePos>> record_fingerprints;
    // Hash ranges of the nodes we declared empty (sorted by lo once the
    // turn is sent; disjoint): the peer may send any record under them.
    std::vector<storage::HashRange> empty;
  };

  Exchange(ExchangeStorage* storage, const ExchangeOptions& options,
           Role role, uint64_t salt);
  static absl::Status ValidateOptions(const ExchangeStorage* storage,
                                      const ExchangeOptions& options);

  absl::Status StepImpl(const peer::v1::ExchangeMessage& msg);
  absl::Status HandleHello(const peer::v1::Hello& hello);
  absl::Status HandleDigests(const peer::v1::Digests& digests);
  // `node` is the one `fingerprints` names (levels_below_leaves and
  // index_delta resolved by StepImpl).
  absl::Status HandleFingerprints(const peer::v1::Fingerprints& fingerprints,
                                  uint32_t depth, uint64_t index);
  absl::Status HandleDiff(const peer::v1::Diff& diff,
                          const VersionTableReader& versions);
  absl::Status HandleWants(const peer::v1::ExchangeMessage& msg);
  absl::Status HandleRecords(const peer::v1::ExchangeMessage& msg,
                             const VersionTableReader& versions);
  // Called when the peer's turn ends: checks it answered what we asked,
  // then sends our turn.
  absl::Status EndPeerTurn();

  // Checks that (depth, index) names a tree node.
  absl::Status ValidateNode(uint32_t depth, uint64_t index,
                            const char* what) const;
  // Checks that `node` is one the peer may address now (a child of a node we
  // sent Digests of, or the root after Hello) and that it does so once.
  absl::Status ClaimSubject(const TreePos& node, const char* what);

  // Our answer for a node that differs: Digests, Fingerprints or nothing
  // (budget spent).
  absl::Status ExpandNode(const TreePos& node);
  absl::Status SendDigests(const TreePos& node, uint32_t child_bits);
  absl::Status SendFingerprints(const TreePos& node);
  // Queues the records of our entries under `node`, which the peer declared
  // empty, in hash order until the record budget is spent.
  absl::Status StreamNode(const TreePos& node);
  // Whether `hash` is under a node our last turn declared empty.
  bool InEmptyRange(uint64_t hash) const;
  // Salted digests of the 2^child_bits children of `node`.
  absl::StatusOr<std::vector<uint32_t>> ChildDigests(const TreePos& node,
                                                     uint32_t child_bits);
  // Queues our record of `key` (if we hold one, the budget allows and, when
  // `listed` is given, its fingerprint is still that one).
  absl::Status SendRecord(const std::string& key,
                          std::optional<uint32_t> listed = std::nullopt);
  // Queues `record` unless sent already or over the budget (then counted in
  // records_skipped); returns whether it was queued.
  bool QueueRecord(storage::Record&& record);
  // Whether the peer's turn may carry `record` (see Asked); takes it off.
  bool TakeAsked(const storage::Record& record);
  // Wants the peer's Diff entry at `position` (the key of hash `key_hash`).
  void AddWant(uint32_t position, uint64_t key_hash);
  // Splits the turn into messages and queues them.
  void FlushTurn() { EncodeTurn(/*end_of_turn=*/true); }
  // Queues the records of the turn so far as messages that do not end it,
  // then calls the flush hook (set_flush_hook).
  absl::Status FlushRecordsEarly();
  // Splits turn_ into messages, queues them and clears turn_; the last one
  // ends the turn when `end_of_turn`.
  void EncodeTurn(bool end_of_turn);

  // Constant after construction.
  std::unique_ptr<ExchangeStorage> owned_storage_;  // Made from a Store*.
  ExchangeStorage* const storage_;
  const ExchangeOptions options_;
  const RecordLimits limits_;
  const Role role_;
  const uint32_t leaf_depth_;

  uint64_t salt_;               // Initiator's, or from Hello.
  uint64_t peer_node_id_ = 0;   // The peer replica's id, from Hello.
  State state_;
  bool peer_turn_asked_ = false;  // An earlier message of this turn asked.
  Asked asked_;                 // By our last turn.
  Asked asking_;                // By the turn being built.
  std::set<TreePos> answered_;  // Nodes the peer's current turn addressed.
  Turn turn_;                   // Being built.
  absl::flat_hash_set<std::string> keys_sent_;    // Records sent, per exchange.
  // Diff entries received in the peer's current turn (the next one's
  // position).
  uint32_t diff_entries_received_ = 0;
  // Diffs received in the peer's current turn: the next one answers
  // asked_.fingerprints[diffs_received_].
  size_t diffs_received_ = 0;
  // Records taken under our empty ranges (each key once per exchange).
  absl::flat_hash_set<std::string> streamed_taken_;
  int64_t leaves_expanded_ = 0;  // Against max_differing_leaves.
  int64_t record_bytes_sent_ = 0;
  bool declared_empty_ = false;
  Ready ready_;
  absl::AnyInvocable<absl::Status()> flush_hook_;
  // The message being handled ends the peer's turn (see set_flush_hook).
  bool peer_turn_ends_ = false;
  ExchangeStats stats_;
  absl::Status first_over_limits_;
  const PeerRefusals* refusals_ = nullptr;  // Not owned; may be null.
};

}  // namespace kv::replication

#endif  // KV_REPLICATION_EXCHANGE_H_
