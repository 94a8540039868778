#include "server/kv_service.h"

#include <algorithm>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "replication/wire.h"
#include "server/status_mapping.h"
#include "storage/status_macros.h"

namespace kv::server {
namespace {

using storage::Mutation;
using storage::Precondition;

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* ctx,
                                 const absl::Status& status) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

replication::ConsistencyLevel LevelFromProto(kv::v1::Consistency c) {
  switch (c) {
    case kv::v1::QUORUM:
      return replication::ConsistencyLevel::kQuorum;
    case kv::v1::ALL:
      return replication::ConsistencyLevel::kAll;
    default:
      return replication::ConsistencyLevel::kOne;
  }
}

Precondition PreconditionFromProto(const kv::v1::Precondition& p) {
  Precondition out;
  switch (p.condition_case()) {
    case kv::v1::Precondition::kExpectedVersion:
      out.kind = Precondition::Kind::kVersion;
      out.version = storage::VersionFromProto(p.expected_version());
      break;
    case kv::v1::Precondition::kMustNotExist:
      if (p.must_not_exist()) out.kind = Precondition::Kind::kAbsent;
      break;
    case kv::v1::Precondition::CONDITION_NOT_SET:
      break;
  }
  return out;
}

// Entries per scan message: small enough to stream, large enough to batch.
constexpr int kScanChunkEntries = 256;
constexpr size_t kScanChunkBytes = 1 << 20;

// What an entry (Entry in a ScanResponse, GetResponse in a BatchGetResponse)
// adds to its message beyond its key and value: field tags, length prefixes
// and the version's two varints. An upper bound, so that a reply sized with
// it is never over the limit.
constexpr size_t kEntryOverheadBytes = 48;

size_t EntryWireBytes(const storage::Record& r) {
  return r.key.size() + r.value.size() + kEntryOverheadBytes;
}

// Streams a scan in chunks; each chunk resumes after the last key sent, so a
// long scan holds no snapshot and sees writes made while it runs. A chunk
// holds at most `chunk_bytes` (counted by EntryWireBytes, checked before an
// entry is added), except that an entry larger than that on its own is sent
// alone: it is within the message limit, which leaves 64 KiB above the
// largest key and value.
class ScanReactor final : public grpc::ServerWriteReactor<kv::v1::ScanResponse> {
 public:
  ScanReactor(storage::Store* store, size_t chunk_bytes, std::string start,
              std::string end, std::string prefix, uint64_t limit)
      : store_(store),
        chunk_bytes_(chunk_bytes),
        next_(std::move(start)),
        end_(std::move(end)),
        prefix_(std::move(prefix)),
        remaining_(limit == 0 ? UINT64_MAX : limit) {
    NextChunk();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
      return;
    }
    NextChunk();
  }
  void OnDone() override { delete this; }

 private:
  void NextChunk() {
    chunk_.Clear();
    if (finished_ || remaining_ == 0) {
      Finish(grpc::Status::OK);
      return;
    }
    size_t bytes = 0;
    bool more = false;
    absl::Status s = store_->Scan(next_, end_, [&](const storage::Record& r) {
      if (!prefix_.empty() && r.key.compare(0, prefix_.size(), prefix_) != 0) {
        finished_ = true;
        return false;
      }
      const size_t entry_bytes = EntryWireBytes(r);
      if (chunk_.entries_size() >= kScanChunkEntries ||
          (chunk_.entries_size() > 0 && bytes + entry_bytes > chunk_bytes_)) {
        more = true;  // This entry starts the next chunk.
        return false;
      }
      kv::v1::Entry* e = chunk_.add_entries();
      e->set_key(r.key);
      e->set_value(r.value);
      storage::VersionToProto(r.version, e->mutable_version());
      bytes += entry_bytes;
      next_ = r.key;
      next_.push_back('\0');  // The smallest key after r.key.
      return --remaining_ > 0;
    });
    if (!s.ok()) {
      Finish(ToGrpcStatus(s));
      return;
    }
    if (!more) finished_ = true;
    if (chunk_.entries_size() == 0) {
      Finish(grpc::Status::OK);
      return;
    }
    StartWrite(&chunk_);
  }

  storage::Store* const store_;
  const size_t chunk_bytes_;
  std::string next_;
  const std::string end_;
  const std::string prefix_;
  uint64_t remaining_;
  bool finished_ = false;
  kv::v1::ScanResponse chunk_;
};

}  // namespace

absl::Status KvService::DoGet(const std::string& key, kv::v1::GetResponse* resp) {
  KV_RETURN_IF_ERROR(storage::CheckKey(limits_, key));
  KV_ASSIGN_OR_RETURN(auto rec, store_->Get(key));
  if (!rec.has_value()) return absl::OkStatus();
  storage::VersionToProto(rec->version, resp->mutable_version());
  if (rec->tombstone) return absl::OkStatus();
  resp->set_found(true);
  resp->set_value(std::move(rec->value));
  return absl::OkStatus();
}

bool KvService::BeginWrite() {
  absl::MutexLock lock(&mu_);
  if (draining_) return false;
  ++writes_under_way_;
  return true;
}

void KvService::FinishWrite(grpc::ServerUnaryReactor* reactor, const absl::Status& status) {
  reactor->Finish(ToGrpcStatus(status));
  absl::MutexLock lock(&mu_);
  --writes_under_way_;
}

int64_t KvService::Drain(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  draining_ = true;
  mu_.AwaitWithTimeout(absl::Condition(
                           +[](int64_t* n) { return *n == 0; }, &writes_under_way_),
                       timeout);
  return writes_under_way_;
}

grpc::ServerUnaryReactor* KvService::Commit(
    grpc::CallbackServerContext* ctx, std::vector<Mutation> muts,
    google::protobuf::RepeatedPtrField<kv::v1::Version>* versions,
    kv::v1::Version* version, kv::v1::Consistency consistency) {
  auto* reactor = ctx->DefaultReactor();
  if (!BeginWrite()) {
    reactor->Finish(ToGrpcStatus(absl::UnavailableError(
        "the node is shutting down; the write was not applied (send it to another "
        "node, or retry once this one is back)")));
    return reactor;
  }
  if (replicator_ == nullptr) {
    // Finished on the store's committer thread once the group is durable.
    store_->WriteAsync(
        std::move(muts),
        [this, reactor, versions, version](absl::StatusOr<std::vector<storage::Version>> r) {
          if (r.ok()) {
            for (const auto& v : *r) {
              storage::VersionToProto(v, versions != nullptr ? versions->Add() : version);
            }
          }
          FinishWrite(reactor, r.status());
        });
    return reactor;
  }
  // Enough live members for the level? Checked before anything is written.
  absl::StatusOr<Replicator::Plan> plan = replicator_->PlanFor(LevelFromProto(consistency));
  if (!plan.ok()) {
    FinishWrite(reactor, plan.status());
    return reactor;
  }
  // The records to push; their versions are known once written.
  std::vector<storage::Record> records;
  records.reserve(muts.size());
  for (const Mutation& m : muts) {
    records.push_back(storage::Record{m.key, {}, m.tombstone, m.tombstone ? "" : m.value});
  }
  const absl::Time deadline = absl::FromChrono(ctx->deadline());
  // Finished once the group is durable here and the level is met.
  store_->WriteAsync(
      std::move(muts),
      [this, reactor, versions, version, records = std::move(records),
       plan = *std::move(plan),
       deadline](absl::StatusOr<std::vector<storage::Version>> r) mutable {
        if (!r.ok()) {
          FinishWrite(reactor, r.status());
          return;
        }
        for (size_t i = 0; i < r->size(); ++i) {
          storage::VersionToProto((*r)[i],
                                      versions != nullptr ? versions->Add() : version);
          records[i].version = (*r)[i];
        }
        replicator_->Replicate(std::move(records), plan, deadline,
                               [this, reactor](absl::Status s) { FinishWrite(reactor, s); });
      });
  return reactor;
}

grpc::ServerUnaryReactor* KvService::Get(grpc::CallbackServerContext* ctx,
                                         const kv::v1::GetRequest* req,
                                         kv::v1::GetResponse* resp) {
  if (replicator_ == nullptr || req->consistency() == kv::v1::ONE) {
    return Finish(ctx, DoGet(req->key(), resp));
  }
  absl::Status s = storage::CheckKey(limits_, req->key());
  if (!s.ok()) return Finish(ctx, s);
  auto* reactor = ctx->DefaultReactor();
  replicator_->Read(
      req->key(), LevelFromProto(req->consistency()), absl::FromChrono(ctx->deadline()),
      [reactor, resp](absl::StatusOr<std::optional<storage::Record>> rec) {
        if (rec.ok() && rec->has_value()) {
          storage::Record& r = **rec;
          storage::VersionToProto(r.version, resp->mutable_version());
          if (!r.tombstone) {
            resp->set_found(true);
            resp->set_value(std::move(r.value));
          }
        }
        reactor->Finish(ToGrpcStatus(rec.status()));
      });
  return reactor;
}

grpc::ServerUnaryReactor* KvService::Put(grpc::CallbackServerContext* ctx,
                                         const kv::v1::PutRequest* req,
                                         kv::v1::PutResponse* resp) {
  absl::Status s = storage::CheckKey(limits_, req->key());
  if (s.ok()) s = storage::CheckValue(limits_, req->value());
  if (!s.ok()) return Finish(ctx, s);
  std::vector<Mutation> muts{Mutation{req->key(), false, req->value(),
                                      PreconditionFromProto(req->precondition())}};
  return Commit(ctx, std::move(muts), nullptr, resp->mutable_version(),
                req->consistency());
}

grpc::ServerUnaryReactor* KvService::Delete(grpc::CallbackServerContext* ctx,
                                            const kv::v1::DeleteRequest* req,
                                            kv::v1::DeleteResponse* resp) {
  absl::Status s = storage::CheckKey(limits_, req->key());
  if (!s.ok()) return Finish(ctx, s);
  std::vector<Mutation> muts{
      Mutation{req->key(), true, "", PreconditionFromProto(req->precondition())}};
  return Commit(ctx, std::move(muts), nullptr, resp->mutable_version(),
                req->consistency());
}

grpc::ServerWriteReactor<kv::v1::ScanResponse>* KvService::Scan(
    grpc::CallbackServerContext* ctx, const kv::v1::ScanRequest* req) {
  std::string start = req->start();
  std::string end = req->end();
  absl::Status bad;
  if (!req->prefix().empty() && (!req->start().empty() || !req->end().empty())) {
    bad = absl::InvalidArgumentError("give either prefix or start/end, not both");
  } else if (!req->end().empty() && req->start() >= req->end()) {
    bad = absl::InvalidArgumentError(absl::StrCat(
        "start must be below end (start is ", req->start().size(),
        " bytes, end ", req->end().size(), " bytes)"));
  }
  if (!bad.ok()) {
    class Refuse final : public grpc::ServerWriteReactor<kv::v1::ScanResponse> {
     public:
      explicit Refuse(const absl::Status& s) { Finish(ToGrpcStatus(s)); }
      void OnDone() override { delete this; }
    };
    return new Refuse(bad);
  }
  if (!req->prefix().empty()) start = req->prefix();
  const size_t chunk_bytes =
      std::min(kScanChunkBytes, limits_.EffectiveMaxMessageBytes());
  return new ScanReactor(store_, chunk_bytes, std::move(start), std::move(end),
                         req->prefix(), req->limit());
}

grpc::ServerUnaryReactor* KvService::BatchWrite(
    grpc::CallbackServerContext* ctx, const kv::v1::BatchWriteRequest* req,
    kv::v1::BatchWriteResponse* resp) {
  const int n = req->mutations_size();
  if (n == 0) return Finish(ctx, absl::InvalidArgumentError("batch has no mutations"));
  if (static_cast<size_t>(n) > limits_.max_batch) {
    return Finish(ctx, absl::InvalidArgumentError(absl::StrCat(
                           "batch has ", n, " mutations, over the limit of ",
                           limits_.max_batch, " (--max-batch)")));
  }
  std::vector<Mutation> muts;
  muts.reserve(n);
  for (int i = 0; i < n; ++i) {
    const kv::v1::Mutation& m = req->mutations(i);
    const std::string what = absl::StrCat("mutation ", i, ": ");
    absl::Status s = storage::CheckKey(limits_, m.key(), what);
    if (s.ok() && !m.delete_()) s = storage::CheckValue(limits_, m.value(), what);
    if (!s.ok()) return Finish(ctx, s);
    muts.push_back(Mutation{m.key(), m.delete_(), m.delete_() ? "" : m.value(),
                            PreconditionFromProto(m.precondition())});
  }
  return Commit(ctx, std::move(muts), resp->mutable_versions(), nullptr,
                req->consistency());
}

grpc::ServerUnaryReactor* KvService::BatchGet(grpc::CallbackServerContext* ctx,
                                              const kv::v1::BatchGetRequest* req,
                                              kv::v1::BatchGetResponse* resp) {
  const int n = req->keys_size();
  if (n == 0) return Finish(ctx, absl::InvalidArgumentError("batch has no keys"));
  if (static_cast<size_t>(n) > limits_.max_batch) {
    return Finish(ctx, absl::InvalidArgumentError(
                           absl::StrCat("batch has ", n, " keys, over the limit of ",
                                        limits_.max_batch, " (--max-batch)")));
  }
  // Each key once: a repeated key would cost its value again in the reply
  // (a request of a few KB could ask for a gigabyte).
  absl::flat_hash_map<absl::string_view, int> first_index;
  first_index.reserve(n);
  for (int i = 0; i < n; ++i) {
    const std::string& key = req->keys(i);
    absl::Status s = storage::CheckKey(limits_, key, absl::StrCat("key ", i, ": "));
    if (!s.ok()) return Finish(ctx, s);
    auto [it, inserted] = first_index.emplace(key, i);
    if (!inserted) {
      return Finish(ctx, absl::InvalidArgumentError(absl::StrCat(
                             "key ", i, ": repeats key ", it->second, " (\"",
                             replication::KeyForMessage(key),
                             "\"); give each key once")));
    }
  }
  // The reply is one message: each record's size is added before it goes in,
  // so the reply never grows past the node's message limit.
  const size_t budget = limits_.EffectiveMaxMessageBytes();
  size_t bytes = 0;
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<std::optional<storage::Record>> rec = store_->Get(req->keys(i));
    if (!rec.ok()) {
      resp->Clear();
      return Finish(ctx, rec.status());
    }
    kv::v1::GetResponse* result = resp->add_results();
    if (!rec->has_value()) continue;
    const storage::Record& r = **rec;
    bytes += (r.tombstone ? 0 : r.value.size()) + kEntryOverheadBytes;
    if (bytes > budget) {
      resp->Clear();
      return Finish(ctx, absl::ResourceExhaustedError(absl::StrCat(
                             "the reply would be over ", budget,
                             " bytes, the node's message limit (--max-message-bytes), "
                             "at key ", i, " of ", n, "; ask for fewer keys at a time")));
    }
    storage::VersionToProto(r.version, result->mutable_version());
    if (r.tombstone) continue;
    result->set_found(true);
    result->set_value(std::move((*rec)->value));
  }
  return Finish(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* KvService::Ping(grpc::CallbackServerContext* ctx,
                                          const kv::v1::PingRequest*,
                                          kv::v1::PingResponse*) {
  return Finish(ctx, absl::OkStatus());
}

}  // namespace kv::server
