#include "replication/exchange.h"

#include <algorithm>
#include <utility>

#include "absl/base/internal/endian.h"
#include "google/protobuf/io/coded_stream.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "storage/hlc.h"
#include "storage/merkle.h"
#include "storage/status_macros.h"

namespace kv::replication {
namespace {

using peer::v1::ExchangeMessage;

// Bytes a repeated/embedded field adds beyond the item itself: tag plus a
// length varint (at most 5 bytes for our sizes).
constexpr int64_t kFieldOverhead = 6;

absl::Status Invalid(const auto&... parts) {
  return absl::InvalidArgumentError(absl::StrCat(parts...));
}

std::string NodeName(uint32_t depth, uint64_t index) {
  return absl::StrCat("(", depth, ", ", index, ")");
}

// Whether `msg` asks the other side something: it carries digests,
// fingerprints, diffs or wants (records and Hello answer or open, they do
// not ask).
bool MessageAsks(const ExchangeMessage& msg) {
  return msg.digests_size() > 0 || msg.fingerprints_size() > 0 ||
         msg.diffs_size() > 0 || msg.wants_size() > 0;
}

}  // namespace

void PeerRefusals::Add(const storage::Record& record) {
  const uint64_t hash = storage::KeyHash(record.key);
  absl::MutexLock lock(&mu_);
  auto [lo, hi] = by_hash_.equal_range(hash);
  for (auto it = lo; it != hi; ++it) {
    if (it->second.key == record.key) {
      if (it->second.version < record.version) {
        it->second.version = record.version;
        it->second.digest = storage::EntryDigest(record);
      }
      return;
    }
  }
  if (by_hash_.size() >= max_entries_) return;
  by_hash_.emplace(hash, Entry{record.key, record.version,
                               storage::EntryDigest(record)});
}

bool PeerRefusals::ContainsHashAt(uint64_t key_hash,
                                  const storage::Version& version) const {
  absl::MutexLock lock(&mu_);
  auto [lo, hi] = by_hash_.equal_range(key_hash);
  for (auto it = lo; it != hi; ++it) {
    if (it->second.version == version) return true;
  }
  return false;
}

bool PeerRefusals::Contains(absl::string_view key,
                            const storage::Version& version) const {
  const uint64_t hash = storage::KeyHash(key);
  absl::MutexLock lock(&mu_);
  auto [lo, hi] = by_hash_.equal_range(hash);
  for (auto it = lo; it != hi; ++it) {
    if (it->second.key == key) return it->second.version == version;
  }
  return false;
}

void PeerRefusals::ForEachIn(
    const storage::HashRange& range,
    absl::FunctionRef<void(const std::string&, const storage::Digest&)> fn)
    const {
  absl::MutexLock lock(&mu_);
  for (auto it = by_hash_.lower_bound(range.lo);
       it != by_hash_.end() && range.Contains(it->first); ++it) {
    fn(it->second.key, it->second.digest);
  }
}

void PeerRefusals::Expire(int64_t now_ms, int64_t max_drift_ms) {
  absl::MutexLock lock(&mu_);
  for (auto it = by_hash_.begin(); it != by_hash_.end();) {
    const int64_t ahead_ms = storage::HlcMillis(it->second.version.hlc) - now_ms;
    if (max_drift_ms <= 0 || ahead_ms <= max_drift_ms) {
      it = by_hash_.erase(it);
    } else {
      ++it;
    }
  }
}

size_t PeerRefusals::size() const {
  absl::MutexLock lock(&mu_);
  return by_hash_.size();
}

uint64_t MaxReceivedMessageBytes(const ExchangeOptions& o) {
  // A message is filled up to max_message_bytes, or holds one larger item:
  // a record at the limits, or a Diff (entries up to max_diff_bytes plus the
  // missing positions, at most 5 bytes each).
  const uint64_t record = o.max_key_bytes + o.max_value_bytes;
  const uint64_t diff = static_cast<uint64_t>(o.max_diff_bytes) +
                        5 * static_cast<uint64_t>(o.max_received_fingerprints);
  return std::max({static_cast<uint64_t>(o.max_message_bytes), record, diff}) +
         4096;
}

absl::Status Exchange::ValidateOptions(const ExchangeStorage* storage,
                                       const ExchangeOptions& o) {
  if (storage == nullptr) return Invalid("store is null");
  if (o.fanout_bits < 1 || o.fanout_bits > 8) {
    return Invalid("fanout_bits ", o.fanout_bits, " is not in [1, 8]");
  }
  if (o.finer_bits < 1 || o.finer_bits > 8) {
    return Invalid("finer_bits ", o.finer_bits, " is not in [1, 8]");
  }
  if (o.max_fingerprints < 0) return Invalid("max_fingerprints is negative");
  if (o.max_differing_leaves < 1) return Invalid("max_differing_leaves < 1");
  if (o.max_records_per_message < 1) {
    return Invalid("max_records_per_message < 1");
  }
  if (o.max_message_bytes < 64) return Invalid("max_message_bytes < 64");
  if (o.max_record_bytes_per_exchange < 0) {
    return Invalid("max_record_bytes_per_exchange is negative");
  }
  if (o.max_key_bytes < 1) return Invalid("max_key_bytes < 1");
  if (o.max_received_fingerprints < o.max_fingerprints) {
    return Invalid("max_received_fingerprints < max_fingerprints");
  }
  if (o.max_list_entries < 1) return Invalid("max_list_entries < 1");
  if (o.max_diff_bytes < 1) return Invalid("max_diff_bytes < 1");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Exchange>> Exchange::Initiator(
    storage::Store* store, const ExchangeOptions& options, uint64_t salt) {
  if (store == nullptr) return Invalid("store is null");
  auto owned = std::make_unique<StoreStorage>(store);
  KV_ASSIGN_OR_RETURN(std::unique_ptr<Exchange> e,
                      Initiator(owned.get(), options, salt));
  e->owned_storage_ = std::move(owned);
  return e;
}

absl::StatusOr<std::unique_ptr<Exchange>> Exchange::Responder(
    storage::Store* store, const ExchangeOptions& options) {
  if (store == nullptr) return Invalid("store is null");
  auto owned = std::make_unique<StoreStorage>(store);
  KV_ASSIGN_OR_RETURN(std::unique_ptr<Exchange> e,
                      Responder(owned.get(), options));
  e->owned_storage_ = std::move(owned);
  return e;
}

absl::StatusOr<std::unique_ptr<Exchange>> Exchange::Initiator(
    ExchangeStorage* store, const ExchangeOptions& options, uint64_t salt) {
  KV_RETURN_IF_ERROR(ValidateOptions(store, options));
  std::unique_ptr<Exchange> e(
      new Exchange(store, options, Role::kInitiator, salt));
  ExchangeMessage hello_msg;
  peer::v1::Hello* hello = hello_msg.mutable_hello();
  hello->set_protocol_version(kProtocolVersion);
  hello->set_leaf_depth(e->leaf_depth_);
  hello->set_salt(salt);
  hello->set_root(SaltedDigest(store->NodeDigest(0, 0), salt));
  hello->set_node_id(store->node_id());
  hello_msg.set_end_of_turn(true);
  e->stats_.messages_sent = 1;
  e->stats_.turns_sent = 1;
  e->stats_.bytes_sent = static_cast<int64_t>(hello_msg.ByteSizeLong());
  e->ready_.messages.push_back(std::move(hello_msg));
  e->asked_.root = true;
  if (hello->root() == kEmptyDigest) {
    e->asked_.empty.push_back(storage::RangeOf(0, 0));
    e->declared_empty_ = true;
  }
  e->state_ = State::kAwaitingTurn;
  return e;
}

absl::StatusOr<std::unique_ptr<Exchange>> Exchange::Responder(
    ExchangeStorage* store, const ExchangeOptions& options) {
  KV_RETURN_IF_ERROR(ValidateOptions(store, options));
  return std::unique_ptr<Exchange>(
      new Exchange(store, options, Role::kResponder, 0));
}

Exchange::Exchange(ExchangeStorage* store, const ExchangeOptions& options,
                   Role role, uint64_t salt)
    : storage_(store),
      options_(options),
      limits_{options.max_key_bytes, options.max_value_bytes},
      role_(role),
      leaf_depth_(store->leaf_depth()),
      salt_(salt),
      state_(role == Role::kInitiator ? State::kAwaitingTurn
                                      : State::kAwaitingHello) {}

Ready Exchange::TakeReady() {
  Ready out = std::move(ready_);
  ready_ = Ready{};
  return out;
}

absl::Status Exchange::Step(const ExchangeMessage& msg) {
  switch (state_) {
    case State::kFailed:
      return absl::FailedPreconditionError(
          "the exchange has already failed; no more messages are accepted");
    case State::kDone:
      state_ = State::kFailed;
      ready_.messages.clear();
      return Invalid("message received after the exchange finished");
    default:
      break;
  }
  ++stats_.messages_received;
  const size_t size = msg.ByteSizeLong();
  stats_.bytes_received += static_cast<int64_t>(size);
  const size_t records_before = ready_.records_to_apply.size();
  absl::Status status = StepImpl(msg);
  if (!status.ok()) {
    state_ = State::kFailed;
    ready_.messages.clear();
    // Keep only the records of messages handled completely before.
    stats_.records_received -= static_cast<int64_t>(
        ready_.records_to_apply.size() - records_before);
    ready_.records_to_apply.resize(records_before);
    return status;
  }
  return absl::OkStatus();
}

absl::Status Exchange::StepImpl(const ExchangeMessage& msg) {
  // The largest message a well-behaved peer sends: max_message_bytes, or one
  // item over it (a record at the limits, or a Diff).
  const uint64_t max_bytes = MaxReceivedMessageBytes(options_);
  const size_t size = msg.ByteSizeLong();
  // A message of one record alone may be larger: a peer with larger record
  // limits sends it so, and the record is then skipped (HandleRecords). The
  // transport's message limit still bounds it.
  peer_turn_ends_ = msg.end_of_turn();
  const bool lone_record =
      msg.records_size() == 1 && !MessageAsks(msg) && !msg.has_hello();
  if (size > max_bytes && !lone_record) {
    return Invalid("message of ", size, " bytes is over the limit of ",
                   max_bytes, " bytes");
  }
  if (state_ == State::kAwaitingHello) {
    if (!msg.has_hello()) return Invalid("the first message must be a Hello");
    if (!msg.end_of_turn() || MessageAsks(msg) || msg.records_size() > 0) {
      return Invalid("the Hello message must be a turn of its own");
    }
    return HandleHello(msg.hello());
  }
  if (msg.has_hello()) {
    return Invalid(role_ == Role::kInitiator
                       ? "Hello received by the initiator"
                       : "Hello after the first message");
  }
  for (const peer::v1::Digests& d : msg.digests()) {
    KV_RETURN_IF_ERROR(HandleDigests(d));
  }
  // Fingerprints name their node relative to the leaves and to the
  // message's previous Fingerprints.
  uint64_t fingerprints_index = 0;
  for (const peer::v1::Fingerprints& f : msg.fingerprints()) {
    if (f.levels_below_leaves() > 64 - leaf_depth_) {
      return Invalid("Fingerprints: depth ", leaf_depth_, " + ",
                     f.levels_below_leaves(), " is over 64");
    }
    fingerprints_index += static_cast<uint64_t>(f.index_delta());
    KV_RETURN_IF_ERROR(HandleFingerprints(
        f, leaf_depth_ + f.levels_below_leaves(), fingerprints_index));
  }
  if (msg.node_ids_size() > options_.max_list_entries) {
    return Invalid("node_ids: ", msg.node_ids_size(),
                   " ids is over the limit of ", options_.max_list_entries);
  }
  const VersionTableReader versions(msg);
  for (const peer::v1::Diff& d : msg.diffs()) {
    KV_RETURN_IF_ERROR(HandleDiff(d, versions));
  }
  KV_RETURN_IF_ERROR(HandleWants(msg));
  KV_RETURN_IF_ERROR(HandleRecords(msg, versions));
  if (msg.end_of_turn()) {
    if (msg.cut_by_budget()) stats_.peer_cut_by_budget = true;
    const bool peer_asked = peer_turn_asked_ || MessageAsks(msg);
    peer_turn_asked_ = false;
    diff_entries_received_ = 0;
    if (!peer_asked) {
      // The responder's answer to Hello asked nothing: equal roots.
      if (asked_.root && msg.records_size() == 0) stats_.equal_roots = true;
      // A turn that asks nothing ends the exchange; it cannot leave any of
      // our questions open.
      if (diffs_received_ < asked_.fingerprints.size()) {
        const TreePos& n = asked_.fingerprints[diffs_received_].first;
        return Invalid("the peer ended the exchange without a Diff for node ",
                       NodeName(n.depth, n.index));
      }
      if (!turn_.records.empty() || turn_.Asks()) {
        return absl::InternalError("answer built for a turn that asked nothing");
      }
      state_ = State::kDone;
      return absl::OkStatus();
    }
    return EndPeerTurn();
  }
  peer_turn_asked_ = peer_turn_asked_ || MessageAsks(msg);
  return absl::OkStatus();
}

absl::Status Exchange::HandleHello(const peer::v1::Hello& hello) {
  if (hello.protocol_version() != kProtocolVersion) {
    return Invalid("Hello: protocol version ", hello.protocol_version(),
                   " is not the supported ", kProtocolVersion);
  }
  if (hello.leaf_depth() != leaf_depth_) {
    return Invalid("Hello: the peer's Merkle leaf depth ", hello.leaf_depth(),
                   " differs from ours, ", leaf_depth_);
  }
  salt_ = hello.salt();
  peer_node_id_ = hello.node_id();
  state_ = State::kAwaitingTurn;
  const uint32_t own_root = SaltedDigest(storage_->NodeDigest(0, 0), salt_);
  if (own_root == hello.root()) {
    stats_.equal_roots = true;
  } else if (hello.root() == kEmptyDigest) {
    KV_RETURN_IF_ERROR(StreamNode(TreePos{0, 0}));
  } else {
    KV_RETURN_IF_ERROR(ExpandNode(TreePos{0, 0}));
  }
  return EndPeerTurn();
}

absl::Status Exchange::ValidateNode(uint32_t depth, uint64_t index,
                                    const char* what) const {
  if (depth > 64) return Invalid(what, ": depth ", depth, " is over 64");
  if (depth < 64 && (index >> depth) != 0) {
    return Invalid(what, ": index ", index, " is out of range at depth ",
                   depth);
  }
  return absl::OkStatus();
}

absl::Status Exchange::ClaimSubject(const TreePos& node, const char* what) {
  bool asked = asked_.root && node == TreePos{0, 0};
  for (uint32_t bits = 1; !asked && bits <= 8 && bits <= node.depth; ++bits) {
    auto it =
        asked_.digests.find(TreePos{node.depth - bits, node.index >> bits});
    asked = it != asked_.digests.end() && it->second == bits;
  }
  if (!asked) {
    return Invalid(what, ": node ", NodeName(node.depth, node.index),
                   " was not asked about");
  }
  if (!answered_.insert(node).second) {
    return Invalid(what, ": node ", NodeName(node.depth, node.index),
                   " appears twice in one turn");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint32_t>> Exchange::ChildDigests(
    const TreePos& node, uint32_t child_bits) {
  const uint32_t child_depth = node.depth + child_bits;
  const uint64_t n = uint64_t{1} << child_bits;
  std::vector<storage::Digest> digests(n);
  if (child_depth <= leaf_depth_) {
    for (uint64_t j = 0; j < n; ++j) {
      digests[j] =
          storage_->NodeDigest(child_depth, (node.index << child_bits) | j);
    }
  } else {
    const uint64_t mask = n - 1;
    KV_RETURN_IF_ERROR(storage_->ForEachIndexEntry(
        node.depth, node.index, [&](const storage::IndexEntry& e) {
          digests[(e.hash >> (64 - child_depth)) & mask] ^= e.digest;
          return true;
        }));
  }
  std::vector<uint32_t> out(n);
  for (uint64_t j = 0; j < n; ++j) out[j] = ChildDigest(digests[j], salt_);
  return out;
}

absl::Status Exchange::HandleDigests(const peer::v1::Digests& d) {
  KV_RETURN_IF_ERROR(ValidateNode(d.parent_depth(), d.parent_index(), "Digests"));
  const uint32_t bits = d.child_bits();
  if (bits < 1 || bits > 8) {
    return Invalid("Digests: child_bits ", bits, " is not in [1, 8]");
  }
  const uint32_t child_depth = d.parent_depth() + bits;
  if (child_depth > 64) {
    return Invalid("Digests: parent depth ", d.parent_depth(),
                   " + child_bits ", bits, " is over 64");
  }
  if (d.parent_depth() < leaf_depth_ && child_depth > leaf_depth_) {
    return Invalid("Digests: children at depth ", child_depth,
                   " skip the leaf level ", leaf_depth_);
  }
  if (d.digests().size() != (kChildDigestBytes << bits)) {
    return Invalid("Digests: ", d.digests().size(), " bytes of digests, not ",
                   kChildDigestBytes << bits, " for child_bits ", bits);
  }
  const TreePos parent{d.parent_depth(), d.parent_index()};
  KV_RETURN_IF_ERROR(ClaimSubject(parent, "Digests"));
  KV_ASSIGN_OR_RETURN(std::vector<uint32_t> own, ChildDigests(parent, bits));
  const char* theirs = d.digests().data();
  for (uint64_t j = 0; j < own.size(); ++j) {
    const uint32_t their =
        absl::little_endian::Load16(theirs + kChildDigestBytes * j);
    if (their == own[j]) continue;
    const TreePos child{child_depth, (parent.index << bits) | j};
    KV_RETURN_IF_ERROR(their == kEmptyDigest ? StreamNode(child)
                                             : ExpandNode(child));
  }
  return absl::OkStatus();
}

absl::Status Exchange::ExpandNode(const TreePos& node) {
  if (node.depth < leaf_depth_) {
    return SendDigests(node,
                       std::min(options_.fanout_bits, leaf_depth_ - node.depth));
  }
  if (node.depth == leaf_depth_) {
    // The budget admits whole leaves: below an admitted leaf the descent
    // runs to the end (its work is bounded by the leaf's entries), so every
    // exchange finishes the leaves it starts and the next one gets further.
    if (leaves_expanded_ >= options_.max_differing_leaves) {
      ++stats_.skipped_leaves;
      return absl::OkStatus();
    }
    ++leaves_expanded_;
    ++stats_.differing_leaves;
  }
  if (node.depth >= 64) return SendFingerprints(node);
  KV_ASSIGN_OR_RETURN(storage::RangeSummary summary,
                      storage_->Summarize(node.depth, node.index));
  // Holding nothing here, our children's Digests (all empty) make the peer
  // stream its records; an empty Fingerprints would cost a Diff entry and a
  // want per key.
  if (summary.count > 0 && summary.count <= options_.max_fingerprints) {
    return SendFingerprints(node);
  }
  return SendDigests(node, std::min(options_.finer_bits, 64 - node.depth));
}

absl::Status Exchange::SendDigests(const TreePos& node, uint32_t child_bits) {
  KV_ASSIGN_OR_RETURN(std::vector<uint32_t> own, ChildDigests(node, child_bits));
  const uint32_t child_depth = node.depth + child_bits;
  for (size_t j = 0; j < own.size(); ++j) {
    if (own[j] != kEmptyDigest) continue;
    const storage::HashRange range =
        storage::RangeOf(child_depth, (node.index << child_bits) | j);
    // Under a record we refused from the peer for its clock, a stream would
    // bring it again: the child is sent as differing (1) instead, so the
    // peer lists fingerprints and HandleFingerprints leaves it out.
    bool refused = false;
    if (refusals_ != nullptr) {
      refusals_->ForEachIn(range, [&](const std::string&,
                                      const storage::Digest&) { refused = true; });
    }
    if (refused) {
      own[j] = 1;
    } else {
      asking_.empty.push_back(range);
      declared_empty_ = true;
    }
  }
  std::string bytes(own.size() * kChildDigestBytes, '\0');
  for (size_t j = 0; j < own.size(); ++j) {
    absl::little_endian::Store16(bytes.data() + kChildDigestBytes * j,
                                 static_cast<uint16_t>(own[j]));
  }
  peer::v1::Digests& d = turn_.digests.emplace_back();
  d.set_parent_depth(node.depth);
  d.set_parent_index(node.index);
  d.set_child_bits(child_bits);
  d.set_digests(std::move(bytes));
  asking_.digests[node] = child_bits;
  return absl::OkStatus();
}

absl::Status Exchange::SendFingerprints(const TreePos& node) {
  std::vector<std::pair<std::string, uint32_t>> keys;
  std::string fps;
  KV_RETURN_IF_ERROR(storage_->ForEachIndexEntry(
      node.depth, node.index, [&](const storage::IndexEntry& e) {
        // Cutting the list is safe: the peer then treats the rest of our
        // entries as unknown, and they are compared in a later exchange.
        if (static_cast<int64_t>(keys.size()) >=
            options_.max_received_fingerprints) {
          return false;
        }
        const uint32_t fp = Fingerprint(e.digest, salt_);
        AppendFingerprint(fp, &fps);
        keys.emplace_back(e.key, fp);
        return true;
      }));
  turn_.fingerprints.push_back(FingerprintsOut{node, std::move(fps)});
  asking_.fingerprints.emplace_back(node, std::move(keys));
  ++stats_.fingerprints_sent;
  return absl::OkStatus();
}

absl::Status ExchangeStorage::ForEachRecordUnder(
    uint32_t depth, uint64_t index,
    absl::FunctionRef<bool(storage::Record&&)> fn) {
  absl::Status status;
  KV_RETURN_IF_ERROR(ForEachIndexEntry(
      depth, index, [&](const storage::IndexEntry& e) {
        absl::StatusOr<std::optional<storage::Record>> r = Get(e.key);
        if (!r.ok()) {
          status = r.status();
          return false;
        }
        return !r->has_value() || fn(**std::move(r));
      }));
  return status;
}

absl::Status Exchange::StreamNode(const TreePos& node) {
  ++stats_.ranges_streamed;
  if (stats_.records_skipped > 0) {  // The record budget is spent.
    // Reading records only to skip them would cost a batch of reads per
    // empty node left; a later exchange streams this one.
    ++stats_.records_skipped;
    return absl::OkStatus();
  }
  const int64_t skipped_before = stats_.records_skipped;
  const int64_t sent_before = stats_.records_sent;
  absl::Status flushed;
  KV_RETURN_IF_ERROR(storage_->ForEachRecordUnder(
      node.depth, node.index, [&](storage::Record&& record) {
        QueueRecord(std::move(record));
        if (flush_hook_ && peer_turn_ends_ &&
            static_cast<int64_t>(turn_.records.size()) >=
                options_.max_records_per_message) {
          flushed = FlushRecordsEarly();
          if (!flushed.ok()) return false;
        }
        // Past the budget the rest waits for a later exchange (reading it
        // only to skip it would cost a read per record).
        return stats_.records_skipped == skipped_before;
      }));
  stats_.records_streamed += stats_.records_sent - sent_before;
  return flushed;
}

absl::Status Exchange::FlushRecordsEarly() {
  Turn rest = std::move(turn_);
  turn_ = Turn{};
  turn_.records = std::move(rest.records);
  rest.records.clear();
  EncodeTurn(/*end_of_turn=*/false);
  turn_ = std::move(rest);
  return flush_hook_();
}

bool Exchange::InEmptyRange(uint64_t hash) const {
  const std::vector<storage::HashRange>& empty = asked_.empty;
  auto it = std::upper_bound(
      empty.begin(), empty.end(), hash,
      [](uint64_t h, const storage::HashRange& r) { return h < r.lo; });
  return it != empty.begin() && std::prev(it)->Contains(hash);
}

absl::Status Exchange::HandleFingerprints(const peer::v1::Fingerprints& f,
                                          uint32_t depth, uint64_t index) {
  KV_RETURN_IF_ERROR(ValidateNode(depth, index, "Fingerprints"));
  if (f.fingerprints().size() % kFingerprintBytes != 0) {
    return Invalid("Fingerprints: ", f.fingerprints().size(),
                   " bytes is not a multiple of ", kFingerprintBytes);
  }
  const size_t count = f.fingerprints().size() / kFingerprintBytes;
  if (count > static_cast<size_t>(options_.max_received_fingerprints)) {
    return Invalid("Fingerprints: ", count, " entries is over the limit of ",
                   options_.max_received_fingerprints);
  }
  const TreePos node{depth, index};
  KV_RETURN_IF_ERROR(ClaimSubject(node, "Fingerprints"));

  // Fingerprint -> its positions not yet matched by one of our entries.
  absl::flat_hash_map<uint32_t, std::vector<uint32_t>> positions;
  const char* fps = f.fingerprints().data();
  for (size_t i = count; i-- > 0;) {  // Reversed: matched from the back.
    positions[ReadFingerprint(fps + kFingerprintBytes * i)].push_back(
        static_cast<uint32_t>(i));
  }
  // Records we refused from this peer for their clock: their fingerprints
  // count as matched and our entries of those keys are not listed, so the
  // peer does not send them again (PeerRefusals).
  absl::flat_hash_set<std::string> refused_keys;
  if (refusals_ != nullptr) {
    refusals_->ForEachIn(
        storage::RangeOf(node.depth, node.index),
        [&](const std::string& key, const storage::Digest& digest) {
          auto it = positions.find(Fingerprint(digest, salt_));
          if (it == positions.end() || it->second.empty()) return;
          it->second.pop_back();
          refused_keys.insert(key);
          ++stats_.refusals_remembered;
        });
  }
  DiffOut& diff = turn_.diffs.emplace_back();
  diff.depth = node.depth;
  // Entries beyond this budget are left out: the peer then misses some keys
  // it should want, which a later exchange finds.
  const int64_t entry_budget = options_.max_diff_bytes;
  int64_t entry_bytes = 0;
  int64_t entries = 0;
  absl::flat_hash_set<uint64_t> node_ids;  // Of this Diff's versions.
  KV_RETURN_IF_ERROR(storage_->ForEachIndexEntry(
      node.depth, node.index, [&](const storage::IndexEntry& e) {
        auto it = positions.find(Fingerprint(e.digest, salt_));
        if (it != positions.end() && !it->second.empty()) {
          it->second.pop_back();
          return true;
        }
        if (refused_keys.contains(e.key)) return true;
        // At most: the key hash, a 10-byte hlc delta, a 3-byte node
        // position (the table holds at most max_list_entries ids), and 8
        // bytes in the message's version table for a node id new to it.
        const int64_t entry_bytes_max =
            static_cast<int64_t>(KeyHashBytes(node.depth)) + 10 + 3 +
            (node_ids.contains(e.version.node_id) ? 0 : 8);
        if (entries >= options_.max_list_entries ||
            entry_bytes + entry_bytes_max > entry_budget) {
          return true;  // Keep matching the rest for `missing`.
        }
        entry_bytes += entry_bytes_max;
        ++entries;
        node_ids.insert(e.version.node_id);
        diff.key_hashes.push_back(e.hash);
        diff.versions.push_back(e.version);
        asking_.offered.push_back(e.key);
        asking_.record_keys.insert(e.key);  // The peer's, if newer or tied.
        return true;
      }));
  std::vector<uint32_t> missing;
  for (auto& [fp, list] : positions) {
    missing.insert(missing.end(), list.begin(), list.end());
    // The peer sends the records of these entries: taken by fingerprint.
    std::vector<TreePos>& nodes = asking_.record_fingerprints[fp];
    nodes.insert(nodes.end(), list.size(), node);
  }
  std::sort(missing.begin(), missing.end());
  diff.missing = std::move(missing);
  return absl::OkStatus();
}

absl::Status Exchange::HandleDiff(const peer::v1::Diff& diff,
                                  const VersionTableReader& versions) {
  // The n-th Diff of the turn answers our n-th Fingerprints.
  if (diffs_received_ >= asked_.fingerprints.size()) {
    return Invalid("Diff: more Diffs than the ", asked_.fingerprints.size(),
                   " Fingerprints we sent");
  }
  const TreePos node = asked_.fingerprints[diffs_received_].first;
  const std::vector<std::pair<std::string, uint32_t>> keys =
      std::move(asked_.fingerprints[diffs_received_].second);
  ++diffs_received_;
  absl::StatusOr<std::vector<WireDiffEntry>> wire_entries = ParseDiffEntries(
      diff.entries(), node.depth, node.index,
      static_cast<size_t>(options_.max_list_entries));
  if (!wire_entries.ok()) {
    return Invalid("Diff of node ", NodeName(node.depth, node.index), ": ",
                   wire_entries.status().message());
  }
  if (static_cast<size_t>(diff.missing_size()) > keys.size()) {
    return Invalid("Diff: ", diff.missing_size(),
                   " missing positions for a list of ", keys.size());
  }
  std::vector<bool> named(keys.size(), false);
  for (uint32_t p : diff.missing()) {
    if (p >= keys.size()) {
      return Invalid("Diff: missing position ", p,
                     " is out of range of a list of ", keys.size());
    }
    if (named[p]) return Invalid("Diff: missing position ", p, " repeats");
    named[p] = true;
  }
  struct Entry {
    uint64_t key_hash;
    storage::Version version;
  };
  std::vector<Entry> entries;
  entries.reserve(wire_entries->size());
  absl::flat_hash_set<uint64_t> listed;
  for (const WireDiffEntry& e : *wire_entries) {
    KV_ASSIGN_OR_RETURN(
        storage::Version version,
        versions.Read(e.hlc_delta, e.node,
                      absl::StrCat("Diff entry: key hash ", e.key_hash)));
    if (!listed.insert(e.key_hash).second) {
      return Invalid("Diff entry: key hash ", e.key_hash, " repeats");
    }
    entries.push_back(Entry{e.key_hash, version});
  }
  // All checked; now act. Our entries under the node, by key hash.
  struct Own {
    std::string key;
    storage::Version version;
  };
  absl::flat_hash_map<uint64_t, Own> own_by_hash;
  if (!entries.empty()) {
    KV_RETURN_IF_ERROR(storage_->ForEachIndexEntry(
        node.depth, node.index, [&](const storage::IndexEntry& e) {
          if (listed.contains(e.hash)) {
            own_by_hash[e.hash] = Own{e.key, e.version};
          }
          return true;
        }));
  }
  for (const Entry& entry : entries) {
    const uint32_t position = diff_entries_received_++;
    auto it = own_by_hash.find(entry.key_hash);
    const Own* own = it == own_by_hash.end() ? nullptr : &it->second;
    const storage::Version& theirs = entry.version;
    const storage::Version ours = own == nullptr ? storage::Version{} : own->version;
    if (refusals_ != nullptr &&
        refusals_->ContainsHashAt(entry.key_hash, theirs) &&
        !(own != nullptr && ours > theirs)) {
      ++stats_.refusals_remembered;  // Refused before: not asked again.
      continue;
    }
    if (own != nullptr && ours > theirs) {
      KV_RETURN_IF_ERROR(SendRecord(own->key));
    } else if (own == nullptr || ours < theirs) {
      AddWant(position, entry.key_hash);
    } else {
      // A tie: the peer's entry matched none of our fingerprints, so its
      // contents differ from ours under the same version (a copied data
      // directory, a forged record), or a fingerprint collision displaced
      // it. Either way send ours and ask for theirs: Store::Apply keeps the
      // higher digest on both sides, so they converge.
      KV_RETURN_IF_ERROR(SendRecord(own->key));
      AddWant(position, entry.key_hash);
    }
  }
  for (size_t p = 0; p < keys.size(); ++p) {
    if (named[p] && !listed.contains(storage::KeyHash(keys[p].first))) {
      // The peer takes it only with the fingerprint it was asked by.
      KV_RETURN_IF_ERROR(SendRecord(keys[p].first, keys[p].second));
    }
  }
  return absl::OkStatus();
}

absl::Status Exchange::HandleWants(const ExchangeMessage& msg) {
  if (msg.wants_size() > options_.max_list_entries) {
    return Invalid("wants: ", msg.wants_size(), " keys is over the limit of ",
                   options_.max_list_entries);
  }
  for (uint32_t position : msg.wants()) {
    if (position >= asked_.offered.size() || asked_.offered[position].empty()) {
      return Invalid("wants: position ", position,
                     " is not an entry of our last Diffs (or is wanted twice)");
    }
    const std::string key = std::move(asked_.offered[position]);
    asked_.offered[position].clear();
    KV_RETURN_IF_ERROR(SendRecord(key));
  }
  return absl::OkStatus();
}

absl::Status Exchange::HandleRecords(const ExchangeMessage& msg,
                                     const VersionTableReader& versions) {
  if (msg.records_size() > options_.max_list_entries) {
    return Invalid("records: ", msg.records_size(),
                   " records is over the limit of ", options_.max_list_entries);
  }
  std::vector<storage::Record> records;
  records.reserve(msg.records_size());
  for (const peer::v1::ExchangeRecord& r : msg.records()) {
    absl::StatusOr<storage::Record> record =
        ExchangeRecordFromProto(r, versions, limits_);
    if (!record.ok()) {
      // A well-formed record over our limits (the peer runs with larger
      // ones) is skipped: failing would stop the whole exchange, every time.
      if (!OverLimits(r, versions, limits_)) return record.status();
      if (stats_.records_over_limits++ == 0) first_over_limits_ = record.status();
      continue;
    }
    if (!TakeAsked(*record)) {
      ++stats_.records_not_asked;
      return Invalid("records: the record of key '", KeyForMessage(r.key()),
                     "' was not asked for in this exchange (not wanted, not "
                     "offered, not an entry named missing with this "
                     "fingerprint), or was sent twice");
    }
    // Refused before for its clock (PeerRefusals): only a stream for a node
    // declared empty before the refusals were known (the initiator's Hello)
    // brings one again; not applied, nothing changed since.
    if (refusals_ != nullptr &&
        refusals_->Contains(record->key, record->version)) {
      ++stats_.refusals_remembered;
      continue;
    }
    records.push_back(*std::move(record));
  }
  stats_.records_received += static_cast<int64_t>(records.size());
  for (storage::Record& r : records) {
    ready_.records_to_apply.push_back(std::move(r));
  }
  return absl::OkStatus();
}

bool Exchange::TakeAsked(const storage::Record& record) {
  if (asked_.record_keys.erase(record.key) > 0) return true;
  const uint64_t hash = storage::KeyHash(record.key);
  if (asked_.record_hashes.erase(hash) > 0) return true;
  if (InEmptyRange(hash)) return streamed_taken_.insert(record.key).second;
  auto it = asked_.record_fingerprints.find(
      Fingerprint(storage::EntryDigest(record), salt_));
  if (it == asked_.record_fingerprints.end()) return false;
  std::vector<TreePos>& nodes = it->second;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (storage::RangeOf(nodes[i].depth, nodes[i].index).Contains(hash)) {
      nodes[i] = nodes.back();
      nodes.pop_back();
      if (nodes.empty()) asked_.record_fingerprints.erase(it);
      return true;
    }
  }
  return false;
}

absl::Status Exchange::SendRecord(const std::string& key,
                                  std::optional<uint32_t> listed) {
  if (keys_sent_.contains(key)) return absl::OkStatus();
  KV_ASSIGN_OR_RETURN(std::optional<storage::Record> own, storage_->Get(key));
  if (!own.has_value()) return absl::OkStatus();  // Purged meanwhile.
  if (listed.has_value() &&
      Fingerprint(storage::EntryDigest(*own), salt_) != *listed) {
    ++stats_.records_changed;  // Written over since it was listed.
    return absl::OkStatus();
  }
  QueueRecord(*std::move(own));
  return absl::OkStatus();
}

bool Exchange::QueueRecord(storage::Record&& record) {
  if (keys_sent_.contains(record.key)) return false;
  const int64_t size =
      static_cast<int64_t>(record.key.size() + record.value.size());
  // At least one record per exchange, so that a record larger than the
  // budget still gets through.
  if (record_bytes_sent_ > 0 &&
      record_bytes_sent_ + size > options_.max_record_bytes_per_exchange) {
    ++stats_.records_skipped;
    return false;
  }
  record_bytes_sent_ += size;
  keys_sent_.insert(record.key);
  turn_.records.push_back(std::move(record));
  ++stats_.records_sent;
  return true;
}

void Exchange::AddWant(uint32_t position, uint64_t key_hash) {
  asking_.record_hashes.insert(key_hash);
  turn_.wants.push_back(position);
  ++stats_.wants_sent;
}

absl::Status Exchange::EndPeerTurn() {
  if (diffs_received_ < asked_.fingerprints.size()) {
    const TreePos& n = asked_.fingerprints[diffs_received_].first;
    return Invalid("the peer's turn ended without a Diff for node ",
                   NodeName(n.depth, n.index));
  }
  diffs_received_ = 0;
  const bool asks = turn_.Asks();
  FlushTurn();
  asked_ = std::move(asking_);
  asking_ = Asked{};
  std::sort(asked_.empty.begin(), asked_.empty.end(),
            [](const storage::HashRange& a, const storage::HashRange& b) {
              return a.lo < b.lo;
            });
  answered_.clear();
  state_ = asks ? State::kAwaitingTurn : State::kDone;
  return absl::OkStatus();
}

void Exchange::EncodeTurn(bool end_of_turn) {
  using google::protobuf::io::CodedOutputStream;
  std::vector<ExchangeMessage> out;
  ExchangeMessage cur;
  VersionTableWriter table;  // Of `cur`.
  int64_t cur_bytes = 0;
  int64_t cur_records = 0;
  uint64_t fingerprints_index = 0;  // Of cur's last Fingerprints.
  auto next_message = [&]() {
    table.WriteTo(&cur);
    out.push_back(std::move(cur));
    cur = ExchangeMessage();
    table = VersionTableWriter();
    cur_bytes = 0;
    cur_records = 0;
    fingerprints_index = 0;
  };
  auto full = [&](int64_t item_bytes, bool is_record) {
    return cur_bytes > 0 &&
           (cur_bytes + item_bytes > options_.max_message_bytes ||
            (is_record && cur_records >= options_.max_records_per_message));
  };
  // item_bytes plus its field's tag and length, as protobuf writes them
  // (kFieldOverhead above is their upper bound, for splitting).
  auto framed = [](int64_t item_bytes) {
    return item_bytes + 1 +
           static_cast<int64_t>(
               CodedOutputStream::VarintSize64(static_cast<uint64_t>(item_bytes)));
  };
  // Makes room for an item without versions; returns its framed size.
  auto make_room = [&](int64_t item_bytes) -> int64_t {
    if (full(item_bytes, false)) next_message();
    cur_bytes += item_bytes + kFieldOverhead;
    return framed(item_bytes);
  };
  // Encodes an item whose versions go through the message's version table,
  // in the message that takes it (a new one when it does not fit), and adds
  // its framed size plus what it added to the table to `*part`.
  auto versioned = [&](auto encode, bool is_record, int64_t* part) {
    for (bool retried = false;; retried = true) {
      const VersionTableWriter::Mark mark = table.mark();
      const int64_t table_before = table.ByteSize();
      auto item = encode(&table);
      const auto item_bytes = static_cast<int64_t>(item.ByteSizeLong());
      const int64_t growth = table.ByteSize() - table_before;
      if (!retried && full(item_bytes + growth, is_record)) {
        table.Rollback(mark);
        next_message();
        continue;
      }
      if (is_record) ++cur_records;
      cur_bytes += item_bytes + kFieldOverhead + growth;
      *part += framed(item_bytes) + growth;
      return item;
    }
  };
  for (peer::v1::Digests& d : turn_.digests) {
    stats_.bytes_sent_digests += make_room(static_cast<int64_t>(d.ByteSizeLong()));
    *cur.add_digests() = std::move(d);
  }
  for (FingerprintsOut& out_f : turn_.fingerprints) {
    // The index is a delta from the message's previous Fingerprints, so the
    // item is made again when it opens a new message.
    auto make = [&]() {
      peer::v1::Fingerprints f;
      f.set_levels_below_leaves(out_f.node.depth - leaf_depth_);
      f.set_index_delta(static_cast<int64_t>(out_f.node.index - fingerprints_index));
      f.set_fingerprints(out_f.fingerprints);
      return f;
    };
    peer::v1::Fingerprints f = make();
    auto bytes = static_cast<int64_t>(f.ByteSizeLong());
    if (full(bytes, false)) {
      next_message();
      f = make();
      bytes = static_cast<int64_t>(f.ByteSizeLong());
    }
    stats_.bytes_sent_fingerprints += make_room(bytes);
    fingerprints_index = out_f.node.index;
    *cur.add_fingerprints() = std::move(f);
  }
  for (const DiffOut& d : turn_.diffs) {
    *cur.add_diffs() = versioned(
        [&](VersionTableWriter* t) {
          peer::v1::Diff diff;
          std::string entries;
          entries.reserve(12 * d.key_hashes.size());
          for (size_t i = 0; i < d.key_hashes.size(); ++i) {
            AppendDiffEntry(
                WireDiffEntry{d.key_hashes[i], t->HlcDelta(d.versions[i].hlc),
                              t->NodePosition(d.versions[i].node_id)},
                d.depth, &entries);
          }
          diff.set_entries(std::move(entries));
          for (uint32_t p : d.missing) diff.add_missing(p);
          return diff;
        },
        false, &stats_.bytes_sent_diffs);
  }
  for (uint32_t w : turn_.wants) {
    // Packed: each position is its varint alone (make_room's framing is an
    // upper bound, for splitting).
    const auto bytes =
        static_cast<int64_t>(CodedOutputStream::VarintSize32(w));
    make_room(bytes);
    stats_.bytes_sent_wants += bytes;
    cur.add_wants(w);
  }
  for (const storage::Record& r : turn_.records) {
    *cur.add_records() = versioned(
        [&](VersionTableWriter* t) { return ExchangeRecordToProto(r, t); },
        true, &stats_.bytes_sent_records);
  }
  if (end_of_turn) {
    cur.set_end_of_turn(true);
    if (stats_.skipped_leaves > 0 || stats_.records_skipped > 0) {
      cur.set_cut_by_budget(true);
    }
  }
  next_message();
  for (ExchangeMessage& m : out) {
    ++stats_.messages_sent;
    stats_.bytes_sent += static_cast<int64_t>(m.ByteSizeLong());
    ready_.messages.push_back(std::move(m));
  }
  if (end_of_turn) ++stats_.turns_sent;
  turn_ = Turn{};
}

}  // namespace kv::replication
