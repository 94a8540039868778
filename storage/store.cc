#include "storage/store.h"

#include <algorithm>
#include <random>

#include "absl/base/internal/endian.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "storage/status_macros.h"

namespace kv::storage {
namespace {

constexpr absl::string_view kMetaNodeId = "node_id";
constexpr absl::string_view kMetaHighWater = "hlc_high_water";
constexpr absl::string_view kMetaLeafDepth = "leaf_depth";

std::string EncodeU64(uint64_t v) {
  char buf[8];
  absl::little_endian::Store64(buf, v);
  return std::string(buf, 8);
}

absl::StatusOr<std::optional<uint64_t>> ReadMetaU64(Engine& engine,
                                                    absl::string_view name) {
  KV_ASSIGN_OR_RETURN(auto v, engine.Get(Column::kMeta, name));
  if (!v.has_value()) return std::nullopt;
  if (v->size() != 8) {
    return absl::DataLossError(
        absl::StrCat("metadata '", name, "' is ", v->size(), " bytes, not 8"));
  }
  return absl::little_endian::Load64(v->data());
}

// Reads the Merkle column through `it`: `num_leaves` leaves, absent ones
// zero. Errors: DATA_LOSS for a malformed key or value, or a leaf index out
// of range (data made with a larger tree); the iterator's errors.
absl::StatusOr<std::vector<LeafValue>> ReadLeaves(Iterator& it, size_t num_leaves) {
  std::vector<LeafValue> leaves(num_leaves);
  for (it.SeekToFirst(); it.Valid(); it.Next()) {
    if (it.key().size() != 4) return absl::DataLossError("malformed Merkle leaf key");
    const uint32_t index = absl::big_endian::Load32(it.key().data());
    if (index >= leaves.size()) {
      return absl::DataLossError(absl::StrCat("Merkle leaf ", index, " is out of range"));
    }
    KV_ASSIGN_OR_RETURN(leaves[index], DecodeLeafValue(it.value()));
  }
  KV_RETURN_IF_ERROR(it.status());
  return leaves;
}

// Every record's leaf contribution, recomputed from the data column read
// through `data`. Errors: DATA_LOSS for a malformed record; the iterator's.
absl::StatusOr<std::vector<LeafValue>> RebuildLeaves(Iterator& data,
                                                     const MerkleTree& tree) {
  std::vector<LeafValue> leaves(tree.num_leaves());
  for (data.SeekToFirst(); data.Valid(); data.Next()) {
    KV_ASSIGN_OR_RETURN(Record r, DecodeRecordValue(data.key(), data.value()));
    LeafValue& leaf = leaves[tree.LeafOf(KeyHash(r.key))];
    leaf.digest ^= EntryDigest(r);
    ++leaf.count;
  }
  KV_RETURN_IF_ERROR(data.status());
  return leaves;
}

uint64_t RandomNodeId() {
  std::random_device rd;
  uint64_t id = 0;
  while (id == 0) id = (uint64_t{rd()} << 32) ^ rd();
  return id;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> Store::Open(
    std::unique_ptr<Engine> engine, StoreOptions options) {
  if (options.leaf_depth > config::kMaxLeafDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat("leaf depth ", options.leaf_depth, " is over the maximum ",
                     config::kMaxLeafDepth));
  }
  KV_ASSIGN_OR_RETURN(auto node_id, ReadMetaU64(*engine, kMetaNodeId));
  KV_ASSIGN_OR_RETURN(auto depth, ReadMetaU64(*engine, kMetaLeafDepth));
  KV_ASSIGN_OR_RETURN(auto high_water, ReadMetaU64(*engine, kMetaHighWater));
  if (depth.has_value() && *depth != options.leaf_depth) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the data was written with Merkle leaf depth ", *depth,
        ", not the configured ", options.leaf_depth));
  }
  if (!node_id.has_value() || !depth.has_value()) {
    WriteBatch batch;
    if (!node_id.has_value()) {
      node_id = options.node_id != 0 ? options.node_id : RandomNodeId();
      batch.Put(Column::kMeta, std::string(kMetaNodeId), EncodeU64(*node_id));
    }
    batch.Put(Column::kMeta, std::string(kMetaLeafDepth),
              EncodeU64(options.leaf_depth));
    KV_RETURN_IF_ERROR(engine->Write(batch));
  }
  std::unique_ptr<Store> store(new Store(std::move(engine), options, *node_id,
                                         high_water.value_or(0)));
  KV_RETURN_IF_ERROR(store->LoadTree());
  store->max_group_mutations_ = std::max<size_t>(options.max_group_mutations, 1);
  if (options.committer_thread) {
    store->committer_ = std::thread([s = store.get()] { s->CommitterLoop(); });
  }
  if (options.count_tombstones) {
    store->tombstone_counter_ = std::thread([s = store.get()] { s->CountTombstones(); });
  }
  return store;
}

absl::StatusOr<StoreInfo> Store::Inspect(std::unique_ptr<Engine> engine) {
  KV_ASSIGN_OR_RETURN(auto node_id, ReadMetaU64(*engine, kMetaNodeId));
  KV_ASSIGN_OR_RETURN(auto depth, ReadMetaU64(*engine, kMetaLeafDepth));
  if (!node_id.has_value() || !depth.has_value()) {
    return absl::FailedPreconditionError("no kvd store here (no node id or leaf depth)");
  }
  if (*depth > config::kMaxLeafDepth) {
    return absl::DataLossError(absl::StrCat("stored leaf depth ", *depth, " is invalid"));
  }
  StoreOptions options;
  options.leaf_depth = static_cast<uint32_t>(*depth);
  // Both metadata values exist, so Open writes nothing.
  KV_ASSIGN_OR_RETURN(auto store, Open(std::move(engine), options));
  return StoreInfo{.node_id = *node_id,
                   .leaf_depth = options.leaf_depth,
                   .key_count = store->tree().KeyCount(),
                   .root = store->tree().Root()};
}

absl::StatusOr<uint64_t> Store::AssignNewNodeId(Engine& engine) {
  KV_ASSIGN_OR_RETURN(auto old_id, ReadMetaU64(engine, kMetaNodeId));
  if (!old_id.has_value()) {
    return absl::FailedPreconditionError("no kvd store here (no node id)");
  }
  uint64_t id = RandomNodeId();
  while (id == *old_id) id = RandomNodeId();
  WriteBatch batch;
  batch.Put(Column::kMeta, std::string(kMetaNodeId), EncodeU64(id));
  KV_RETURN_IF_ERROR(engine.Write(batch));
  return id;
}

Store::Store(std::unique_ptr<Engine> engine, const StoreOptions& options,
             uint64_t node_id, uint64_t high_water)
    : engine_(std::move(engine)),
      node_id_(node_id),
      tree_(options.leaf_depth),
      key_cache_(kStripes, options.key_cache_bytes) {
  PhysicalClock* physical = options.clock;
  if (physical == nullptr) {
    owned_clock_ = std::make_unique<SystemClock>();
    physical = owned_clock_.get();
  }
  physical_ = physical;
  max_clock_drift_ms_ = options.max_clock_drift_ms;
  Engine* e = engine_.get();
  clock_ = std::make_unique<HybridClock>(
      physical, high_water,
      [e](uint64_t mark) {
        WriteBatch batch;
        batch.Put(Column::kMeta, std::string(kMetaHighWater), EncodeU64(mark));
        return e->Write(batch);
      },
      options.hlc_window_ms);
}

Store::~Store() {
  {
    absl::MutexLock lock(&queue_mu_);
    closing_ = true;
  }
  if (committer_.joinable()) committer_.join();  // Drains the queue first.
  stop_counting_.store(true);
  if (tombstone_counter_.joinable()) tombstone_counter_.join();
}

void Store::CountTombstones() {
  // One consistent moment, as in VerifyTree: no write is between its engine
  // batch and its delta while the snapshot is taken and the delta read.
  LockAllStripes();
  std::unique_ptr<Iterator> data = engine_->NewIterator(Column::kData);
  const int64_t delta_at_snapshot = tombstone_delta_.load();
  UnlockAllStripes();
  int64_t count = 0;
  int64_t seen = 0;
  for (data->SeekToFirst(); data->Valid(); data->Next()) {
    if ((++seen & 0xfff) == 0 && stop_counting_.load()) return;
    absl::StatusOr<Record> r = DecodeRecordValue(data->key(), data->value());
    if (!r.ok()) return;  // DATA_LOSS: VerifyTree reports it; no count.
    count += r->tombstone ? 1 : 0;
  }
  if (!data->status().ok()) return;
  tombstone_base_ = count - delta_at_snapshot;
  tombstones_known_.store(true, std::memory_order_release);
}

absl::Status Store::LoadTree() {
  auto it = engine_->NewIterator(Column::kMerkle);
  KV_ASSIGN_OR_RETURN(std::vector<LeafValue> leaves, ReadLeaves(*it, tree_.num_leaves()));
  tree_.Reset(leaves);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<Record>> Store::Get(absl::string_view key) {
  // A single engine read is atomic; no stripe lock needed.
  KV_ASSIGN_OR_RETURN(auto raw, engine_->Get(Column::kData, key));
  if (!raw.has_value()) return std::nullopt;
  KV_ASSIGN_OR_RETURN(Record r, DecodeRecordValue(key, *raw));
  return r;
}

absl::Status Store::ReadStatesLocked(std::span<const KeyRef> keys,
                                     std::vector<std::optional<KeyState>>* states) {
  states->assign(keys.size(), std::nullopt);
  std::vector<size_t> missed;  // Positions not in the cache.
  std::vector<std::string> missed_keys;
  for (size_t i = 0; i < keys.size(); ++i) {
    StripeOf(keys[i].hash).AssertHeld();
    if (const KeyState* cached = key_cache_.Find(keys[i].hash % kStripes, keys[i].key)) {
      (*states)[i] = *cached;
    } else {
      missed.push_back(i);
      missed_keys.emplace_back(keys[i].key);
    }
  }
  if (missed.empty()) return absl::OkStatus();
  std::vector<std::optional<std::string>> values;
  // A lone put's key: a Get (store_bench --group 1 over new keys: 15.6-17.6
  // us per write with it, 16.8-17.5 with a MultiGet of one key).
  if (missed.size() == 1) {
    KV_ASSIGN_OR_RETURN(std::optional<std::string> v, engine_->Get(Column::kData, missed_keys[0]));
    values.push_back(std::move(v));
  } else {
    KV_RETURN_IF_ERROR(engine_->MultiGet(Column::kData, missed_keys, &values));
  }
  for (size_t j = 0; j < missed.size(); ++j) {
    if (!values[j].has_value()) continue;
    KV_ASSIGN_OR_RETURN(Record r, DecodeRecordValue(missed_keys[j], *values[j]));
    (*states)[missed[j]] = KeyState{r.version, r.tombstone, EntryDigest(r)};
  }
  return absl::OkStatus();
}

void Store::StageRecord(const Record& record, const std::optional<KeyState>& old,
                        uint64_t key_hash, Staged* staged) {
  StripeOf(key_hash).AssertHeld();
  const Digest digest = EntryDigest(record);
  Digest delta = digest;
  if (old.has_value()) delta ^= old->digest;
  const int64_t count_delta = old.has_value() ? 0 : 1;
  const uint32_t leaf = tree_.LeafOf(key_hash);
  staged->batch.Put(Column::kData, record.key, EncodeRecordValue(record));
  staged->batch.Put(Column::kIndex, EncodeIndexKey(key_hash, record.key),
                    EncodeIndexValue(record.version, digest));
  // Records in hash order (an apply of streamed records) fall into the same
  // leaf in runs: one delta per run, merged once at commit.
  if (!staged->deltas.empty() && staged->deltas.back().leaf == leaf) {
    staged->deltas.back().digest ^= delta;
    staged->deltas.back().count += count_delta;
  } else {
    staged->deltas.push_back(LeafDelta{leaf, delta, count_delta});
  }
  staged->states[record.key] = KeyState{record.version, record.tombstone, digest};
  staged->tombstone_delta +=
      (record.tombstone ? 1 : 0) - (old.has_value() && old->tombstone ? 1 : 0);
}

absl::Status Store::CommitStaged(Staged& staged) {
  if (staged.batch.empty()) return absl::OkStatus();
  for (const LeafDelta& d : staged.deltas) {
    staged.batch.Merge(Column::kMerkle, EncodeLeafKey(d.leaf),
                       EncodeLeafValue(LeafValue{d.digest, d.count}));
  }
  KV_RETURN_IF_ERROR(engine_->Write(staged.batch));
  for (const LeafDelta& d : staged.deltas) tree_.Apply(d.leaf, d.digest, d.count);
  tombstone_delta_.fetch_add(staged.tombstone_delta);
  for (const auto& [key, state] : staged.states) {
    const uint64_t hash = KeyHash(key);
    StripeOf(hash).AssertHeld();
    if (staged.cache_new_keys) {
      key_cache_.Set(hash % kStripes, key, state);
    } else {
      key_cache_.Update(hash % kStripes, key, state);
    }
  }
  return absl::OkStatus();
}

absl::Status Store::Prepare(WriteRequest& request) {
  const std::vector<Mutation>& muts = request.mutations;
  request.hashes.clear();
  request.hashes.reserve(muts.size());
  for (size_t i = 0; i < muts.size(); ++i) {
    if (muts[i].key.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("mutation ", i, ": empty key"));
    }
    request.hashes.push_back(KeyHash(muts[i].key));
  }
  if (muts.size() > 1) {
    std::vector<absl::string_view> keys;
    for (const Mutation& m : muts) keys.push_back(m.key);
    std::sort(keys.begin(), keys.end());
    auto dup = std::adjacent_find(keys.begin(), keys.end());
    if (dup != keys.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("key '", *dup, "' appears more than once in the batch"));
    }
  }
  return absl::OkStatus();
}

namespace {

absl::Status CheckPrecondition(const Mutation& m, const std::optional<KeyState>& old) {
  const bool live = old.has_value() && !old->tombstone;
  switch (m.precondition.kind) {
    case Precondition::Kind::kNone:
      break;
    case Precondition::Kind::kAbsent:
      if (live) {
        return absl::FailedPreconditionError(absl::StrCat(
            "key '", m.key, "' exists (version ", old->version.ToString(),
            "); the write required it to be absent"));
      }
      break;
    case Precondition::Kind::kVersion:
      // A delete's version counts too (kv.proto: a client reads it from a
      // not-found Get and writes against it).
      if (!old.has_value() || old->version != m.precondition.version) {
        return absl::FailedPreconditionError(absl::StrCat(
            "key '", m.key, "' is at version ",
            !old.has_value()
                ? std::string("(absent)")
                : absl::StrCat(old->version.ToString(),
                               old->tombstone ? " (deleted)" : ""),
            ", not the expected ", m.precondition.version.ToString()));
      }
      break;
  }
  return absl::OkStatus();
}

// Locks the stripes of every key in `requests` in ascending order (no
// deadlock between groups) and unlocks them on destruction.
template <typename Requests>
class StripeLocks {
 public:
  StripeLocks(absl::Mutex* stripes, size_t num_stripes, const Requests& requests)
      : stripes_(stripes) {
    for (const auto& r : requests) {
      for (uint64_t h : r.hashes) held_.push_back(static_cast<int>(h % num_stripes));
    }
    std::sort(held_.begin(), held_.end());
    held_.erase(std::unique(held_.begin(), held_.end()), held_.end());
    for (int i : held_) stripes_[i].Lock();
  }
  ~StripeLocks() {
    for (auto it = held_.rbegin(); it != held_.rend(); ++it) stripes_[*it].Unlock();
  }

 private:
  absl::Mutex* const stripes_;
  std::vector<int> held_;
};

}  // namespace

void Store::CommitGroup(std::vector<WriteRequest>& group) {
  Staged staged;
  absl::Status group_error;
  // Requests refused for a precondition on a record staged by an earlier
  // request of this group: the refusal stands only if the group is written.
  std::vector<bool> refused_by_group(group.size(), false);
  for (size_t r = 0; r < group.size() && group_error.ok(); ++r) {
    WriteRequest& req = group[r];
    if (!req.result.ok()) continue;  // Refused by Prepare.
    // Read and check everything first: a request is all or nothing. The
    // stored state of its keys that no earlier request of the group staged
    // is read together (a BatchWrite of 1 000 new keys: one MultiGet).
    std::vector<KeyRef> unstaged;
    for (size_t i = 0; i < req.mutations.size(); ++i) {
      if (!staged.states.contains(req.mutations[i].key)) {
        unstaged.push_back(KeyRef{req.mutations[i].key, req.hashes[i]});
      }
    }
    std::vector<std::optional<KeyState>> stored;
    absl::Status s = ReadStatesLocked(unstaged, &stored);
    std::vector<std::optional<KeyState>> olds;
    size_t next_stored = 0;
    for (size_t i = 0; s.ok() && i < req.mutations.size(); ++i) {
      const Mutation& m = req.mutations[i];
      auto it = staged.states.find(m.key);
      if (it != staged.states.end()) {
        olds.emplace_back(it->second);
        refused_by_group[r] = true;  // Meaningful only if the check fails.
      } else {
        olds.push_back(stored[next_stored++]);
      }
      s = CheckPrecondition(m, olds.back());
      if (!s.ok()) break;
      refused_by_group[r] = false;
    }
    if (!s.ok()) {
      req.result = s;
      continue;
    }
    std::vector<Version> versions;
    for (size_t i = 0; i < req.mutations.size(); ++i) {
      const Mutation& m = req.mutations[i];
      // The clock is already above every stored version (see the class
      // invariant); observing the old one keeps that true regardless.
      if (olds[i].has_value()) group_error = clock_->Observe(olds[i]->version.hlc);
      absl::StatusOr<uint64_t> hlc =
          group_error.ok() ? clock_->Now() : absl::StatusOr<uint64_t>(group_error);
      if (!hlc.ok()) {
        group_error = hlc.status();
        break;
      }
      Record rec{m.key, Version{*hlc, node_id_}, m.tombstone,
                 m.tombstone ? std::string() : m.value};
      StageRecord(rec, olds[i], req.hashes[i], &staged);
      versions.push_back(rec.version);
    }
    req.result = std::move(versions);
  }
  if (group_error.ok()) group_error = CommitStaged(staged);
  if (!group_error.ok()) {
    // Nothing of the batch was written: every request still OK (staged,
    // failing, or not reached) gets the error, and so does one refused on a
    // record of this group; one refused on the stored state (Prepare, a
    // precondition) keeps its own error.
    for (size_t r = 0; r < group.size(); ++r) {
      if (group[r].result.ok() || refused_by_group[r]) {
        group[r].result = group_error;
      }
    }
  }
}

void Store::CommitLocked(std::vector<WriteRequest>& group) {
  StripeLocks locks(stripes_.data(), stripes_.size(), group);
  CommitGroup(group);
  size_t mutations = 0;
  for (const WriteRequest& r : group) mutations += r.mutations.size();
  commit_groups_.fetch_add(1, std::memory_order_relaxed);
  commit_requests_.fetch_add(group.size(), std::memory_order_relaxed);
  commit_mutations_.fetch_add(mutations, std::memory_order_relaxed);
}

absl::StatusOr<std::vector<Version>> Store::Write(std::span<const Mutation> mutations) {
  std::vector<WriteRequest> group(1);
  group[0].mutations.assign(mutations.begin(), mutations.end());
  group[0].result = std::vector<Version>();
  absl::Status s = Prepare(group[0]);
  if (!s.ok()) return s;
  CommitLocked(group);
  return std::move(group[0].result);
}

void Store::WriteAsync(std::vector<Mutation> mutations, WriteCallback done) {
  WriteRequest req;
  req.mutations = std::move(mutations);
  req.result = std::vector<Version>();
  absl::Status s = Prepare(req);
  if (!s.ok()) {
    std::move(done)(s);
    return;
  }
  const bool committer = committer_.joinable();
  if (committer) {
    bool closing = false;
    {
      absl::MutexLock lock(&queue_mu_);
      closing = closing_;
      if (!closing && (committing_ || !queue_.empty())) {
        // A group is being committed: this request joins the next one.
        req.done = std::move(done);
        queue_.push_back(std::move(req));
        return;
      }
      if (!closing) committing_ = true;  // Nothing pending: commit here.
    }
    if (closing) {
      std::move(done)(absl::UnavailableError("the store is closing"));  // Unlocked.
      return;
    }
  }
  // On the calling thread, as a group of one.
  std::vector<WriteRequest> group(1);
  group[0] = std::move(req);
  CommitLocked(group);
  // As on the committer: writes that arrive until `done` returns queue up
  // for the next group.
  std::move(done)(std::move(group[0].result));
  if (committer) {
    absl::MutexLock lock(&queue_mu_);
    committing_ = false;  // The committer takes what queued meanwhile.
  }
}

void Store::CommitterLoop() {
  std::vector<WriteRequest> pending;
  while (true) {
    {
      absl::MutexLock lock(&queue_mu_);
      queue_mu_.Await(absl::Condition(
          +[](Store* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->queue_mu_) {
            return !s->committing_ && (!s->queue_.empty() || s->closing_);
          },
          this));
      if (queue_.empty()) return;  // Closing and drained.
      pending.swap(queue_);
      committing_ = true;
    }
    // Commit in groups of bounded size; requests keep their order.
    size_t begin = 0;
    while (begin < pending.size()) {
      size_t end = begin, mutations = 0;
      while (end < pending.size() &&
             (end == begin || mutations + pending[end].mutations.size() <=
                                  max_group_mutations_)) {
        mutations += pending[end].mutations.size();
        ++end;
      }
      std::vector<WriteRequest> group(std::make_move_iterator(pending.begin() + begin),
                                      std::make_move_iterator(pending.begin() + end));
      CommitLocked(group);
      for (WriteRequest& r : group) std::move(r.done)(std::move(r.result));
      begin = end;
    }
    pending.clear();
    absl::MutexLock lock(&queue_mu_);
    committing_ = false;
  }
}

absl::Status Store::CheckRemote(const Record& record) const {
  if (record.key.empty()) return absl::InvalidArgumentError("record with an empty key");
  if (record.version.hlc == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("record of key '", record.key, "' has no version"));
  }
  // Refused (OUT_OF_RANGE) like a clock too far ahead, whatever the drift
  // limit: observing it would wrap the clock around 2^64.
  KV_RETURN_IF_ERROR(clock_->CheckObservable(record.version.hlc));
  if (max_clock_drift_ms_ > 0) {
    const int64_t ahead_ms = HlcMillis(record.version.hlc) - physical_->NowMillis();
    if (ahead_ms > max_clock_drift_ms_) {
      return absl::OutOfRangeError(absl::StrCat(
          "record of key '", record.key, "' from node ", record.version.node_id,
          " is versioned ", ahead_ms, " ms ahead of this node's clock, over the limit of ",
          max_clock_drift_ms_, " ms (--max-clock-drift-ms)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> Store::Apply(const Record& record) {
  KV_ASSIGN_OR_RETURN(ApplyResult r, ApplyBatch(std::span<const Record>(&record, 1)));
  if (!r.first_refusal.ok()) return r.first_refusal;
  return r.applied == 1;
}

absl::StatusOr<ApplyResult> Store::ApplyBatch(std::span<const Record> records,
                                              const ApplyOptions& options) {
  ApplyResult result;
  // The records not refused for their clock, and their keys (refs[i] is
  // accepted[i]'s).
  std::vector<const Record*> accepted;
  std::vector<KeyRef> refs;
  accepted.reserve(records.size());
  refs.reserve(records.size());
  uint64_t newest = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    const Record& r = records[i];
    absl::Status s = CheckRemote(r);
    if (s.code() == absl::StatusCode::kOutOfRange) {
      if (result.first_refusal.ok()) result.first_refusal = s;
      ++result.refused;
      result.refused_index.push_back(i);
      continue;
    }
    KV_RETURN_IF_ERROR(s);
    accepted.push_back(&r);
    refs.push_back(KeyRef{r.key, KeyHash(r.key)});
    newest = std::max(newest, r.version.hlc);
  }
  if (accepted.empty()) return result;
  struct Hashes {
    std::vector<uint64_t> hashes;
  };
  std::vector<Hashes> lock_set(1);
  for (const KeyRef& ref : refs) lock_set[0].hashes.push_back(ref.hash);
  StripeLocks locks(stripes_.data(), stripes_.size(), lock_set);
  // Persist the clock past every version first: it must stay above all
  // stored versions.
  KV_RETURN_IF_ERROR(clock_->Observe(newest));
  // The stored state of every key, read before any is staged (the stripes
  // held keep them): from the cache, the rest in one engine call.
  std::vector<std::optional<KeyState>> stored;
  KV_RETURN_IF_ERROR(ReadStatesLocked(refs, &stored));
  Staged staged;
  staged.cache_new_keys = options.cache_new_keys;
  for (size_t i = 0; i < accepted.size(); ++i) {
    const Record& incoming_record = *accepted[i];
    std::optional<KeyState> old;
    if (auto st = staged.states.find(incoming_record.key); st != staged.states.end()) {
      old = st->second;  // Staged by an earlier record of this batch.
    } else {
      old = stored[i];
    }
    if (old.has_value() && old->version > incoming_record.version) continue;
    Record r = incoming_record;
    if (r.tombstone) r.value.clear();
    if (old.has_value() && old->version == r.version) {
      // One version, two contents: the higher digest wins, on every replica
      // and in any order of arrival, so the replicas converge.
      const Digest incoming = EntryDigest(r);
      if (incoming == old->digest) continue;
      ++result.ties;
      if (incoming < old->digest) continue;
    }
    StageRecord(r, old, refs[i].hash, &staged);
  }
  KV_RETURN_IF_ERROR(CommitStaged(staged));
  // A key replaced twice in the batch counts once.
  result.applied = static_cast<int64_t>(staged.states.size());
  return result;
}

absl::Status Store::Scan(absl::string_view start, absl::string_view end,
                         absl::FunctionRef<bool(const Record&)> fn) {
  auto it = engine_->NewIterator(Column::kData);
  for (it->Seek(start); it->Valid(); it->Next()) {
    if (!end.empty() && it->key() >= end) break;
    KV_ASSIGN_OR_RETURN(Record r, DecodeRecordValue(it->key(), it->value()));
    if (r.tombstone) continue;
    if (!fn(r)) break;
  }
  return it->status();
}

absl::Status Store::ForEachIndexEntry(
    uint32_t depth, uint64_t index,
    absl::FunctionRef<bool(const IndexEntry&)> fn) {
  const HashRange range = RangeOf(depth, index);
  auto it = engine_->NewIterator(Column::kIndex);
  for (it->Seek(IndexSeekKey(range.lo)); it->Valid(); it->Next()) {
    KV_ASSIGN_OR_RETURN(IndexEntry e, DecodeIndexEntry(it->key(), it->value()));
    if (!range.Contains(e.hash)) break;
    if (!fn(e)) break;
  }
  return it->status();
}

absl::Status Store::ForEachRecordUnder(uint32_t depth, uint64_t index,
                                       absl::FunctionRef<bool(Record&&)> fn) {
  // Keys per batched read: large enough for MultiGet to pay off, small
  // enough that a caller stopping early wastes little.
  constexpr size_t kBatch = 256;
  const HashRange range = RangeOf(depth, index);
  auto it = engine_->NewScanIterator(Column::kIndex);
  std::vector<std::string> keys;
  std::vector<std::optional<std::string>> values;
  bool more = true;
  auto flush = [&]() -> absl::Status {
    KV_RETURN_IF_ERROR(engine_->ScanGet(Column::kData, keys, &values));
    for (size_t i = 0; i < keys.size() && more; ++i) {
      if (!values[i].has_value()) continue;
      KV_ASSIGN_OR_RETURN(Record r, DecodeRecordValue(keys[i], *values[i]));
      more = fn(std::move(r));
    }
    keys.clear();
    return absl::OkStatus();
  };
  for (it->Seek(IndexSeekKey(range.lo)); more && it->Valid(); it->Next()) {
    KV_ASSIGN_OR_RETURN(IndexEntry e, DecodeIndexEntry(it->key(), it->value()));
    if (!range.Contains(e.hash)) break;
    keys.push_back(std::move(e.key));
    if (keys.size() == kBatch) KV_RETURN_IF_ERROR(flush());
  }
  KV_RETURN_IF_ERROR(it->status());
  if (more && !keys.empty()) KV_RETURN_IF_ERROR(flush());
  return absl::OkStatus();
}

absl::StatusOr<RangeSummary> Store::Summarize(uint32_t depth, uint64_t index) {
  if (depth <= tree_.leaf_depth()) {
    return RangeSummary{tree_.NodeDigest(depth, index),
                        tree_.NodeCount(depth, index)};
  }
  RangeSummary s;
  KV_RETURN_IF_ERROR(ForEachIndexEntry(depth, index, [&](const IndexEntry& e) {
    s.digest ^= e.digest;
    ++s.count;
    return true;
  }));
  return s;
}

// The analysis cannot follow a loop over an array of mutexes; the order
// (ascending, as StripeLocks takes them) is what keeps this deadlock-free.
void Store::LockAllStripes() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  for (auto& m : stripes_) m.Lock();
}

void Store::UnlockAllStripes() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  for (auto it = stripes_.rbegin(); it != stripes_.rend(); ++it) it->Unlock();
}

absl::StatusOr<VerifyResult> Store::VerifyTree() {
  absl::MutexLock verify_lock(&verify_mu_);
  // One consistent moment: no read-compare-write is between its read and its
  // write (nor its in-memory tree update) while both iterators are created
  // and the in-memory leaves are copied.
  LockAllStripes();
  std::unique_ptr<Iterator> data = engine_->NewIterator(Column::kData);
  std::unique_ptr<Iterator> leaves = engine_->NewIterator(Column::kMerkle);
  std::vector<LeafValue> memory(tree_.num_leaves());
  for (uint32_t i = 0; i < memory.size(); ++i) {
    memory[i] = LeafValue{tree_.NodeDigest(tree_.leaf_depth(), i),
                          tree_.NodeCount(tree_.leaf_depth(), i)};
  }
  UnlockAllStripes();
  KV_ASSIGN_OR_RETURN(std::vector<LeafValue> rebuilt, RebuildLeaves(*data, tree_));
  KV_ASSIGN_OR_RETURN(std::vector<LeafValue> stored, ReadLeaves(*leaves, tree_.num_leaves()));
  return RepairLeaves(rebuilt, stored, memory);
}

absl::StatusOr<VerifyResult> Store::RepairLeaves(const std::vector<LeafValue>& rebuilt,
                                                 const std::vector<LeafValue>& stored,
                                                 const std::vector<LeafValue>& memory) {
  // The differences are merged into the stored and in-memory leaves; XOR
  // and addition commute with writes made since the snapshot.
  auto differs = [](const LeafValue& a, const LeafValue& b) {
    return a.digest != b.digest || a.count != b.count;
  };
  VerifyResult result;
  WriteBatch repair;
  std::vector<LeafDelta> memory_repairs;
  for (uint32_t i = 0; i < rebuilt.size(); ++i) {
    result.key_count += rebuilt[i].count;
    result.root ^= rebuilt[i].digest;
    const bool stored_bad = differs(rebuilt[i], stored[i]);
    const bool memory_bad = differs(rebuilt[i], memory[i]);
    if (!stored_bad && !memory_bad) continue;
    ++result.mismatched_leaves;
    if (stored_bad) {
      repair.Merge(Column::kMerkle, EncodeLeafKey(i),
                   EncodeLeafValue(LeafValue{rebuilt[i].digest ^ stored[i].digest,
                                             rebuilt[i].count - stored[i].count}));
    }
    if (memory_bad) {
      memory_repairs.push_back(LeafDelta{i, rebuilt[i].digest ^ memory[i].digest,
                                         rebuilt[i].count - memory[i].count});
    }
  }
  result.matched = result.mismatched_leaves == 0;
  if (!repair.empty()) KV_RETURN_IF_ERROR(engine_->Write(repair));
  for (const LeafDelta& d : memory_repairs) tree_.Apply(d.leaf, d.digest, d.count);
  return result;
}

}  // namespace kv::storage
