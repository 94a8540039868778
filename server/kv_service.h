// The public kv.v1.KV service over a Store.
//
// Shutdown: Drain() makes every later write fail with UNAVAILABLE (nothing
// applied) and waits for the writes under way to be answered, so that the
// server's shutdown, which cancels the calls still running at its deadline,
// never cuts a write that was started (its client would not know whether it
// was applied).
//
// Thread safety: handlers run concurrently on gRPC's threads; the Store is
// thread-safe; the drain state is guarded by a mutex.
#ifndef KV_SERVER_KV_SERVICE_H_
#define KV_SERVER_KV_SERVICE_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/kv.grpc.pb.h"
#include "replication/fanout.h"
#include "server/fanout_service.h"
#include "server/limits.h"
#include "storage/store.h"

namespace kv::server {

class KvService final : public kv::v1::KV::CallbackService {
 public:
  // `store` and `replicator` (null: single node, every level is local)
  // must outlive the service.
  KvService(storage::Store* store, Limits limits, Replicator* replicator = nullptr)
      : store_(store), limits_(limits), replicator_(replicator) {}

  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* ctx,
                                const kv::v1::GetRequest* req,
                                kv::v1::GetResponse* resp) override;
  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx,
                                const kv::v1::PutRequest* req,
                                kv::v1::PutResponse* resp) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* ctx,
                                   const kv::v1::DeleteRequest* req,
                                   kv::v1::DeleteResponse* resp) override;
  grpc::ServerWriteReactor<kv::v1::ScanResponse>* Scan(
      grpc::CallbackServerContext* ctx, const kv::v1::ScanRequest* req) override;
  grpc::ServerUnaryReactor* BatchWrite(grpc::CallbackServerContext* ctx,
                                       const kv::v1::BatchWriteRequest* req,
                                       kv::v1::BatchWriteResponse* resp) override;
  grpc::ServerUnaryReactor* BatchGet(grpc::CallbackServerContext* ctx,
                                     const kv::v1::BatchGetRequest* req,
                                     kv::v1::BatchGetResponse* resp) override;
  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext* ctx,
                                 const kv::v1::PingRequest* req,
                                 kv::v1::PingResponse* resp) override;

  // Refuses the writes that arrive from now on (UNAVAILABLE: the node is
  // shutting down) and waits up to `timeout` until every write under way has
  // been answered. Returns how many were still under way at the timeout (0:
  // all answered). Idempotent.
  int64_t Drain(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Counts a write as under way; false (and nothing counted) once draining.
  bool BeginWrite() ABSL_LOCKS_EXCLUDED(mu_);
  // Answers a write begun with BeginWrite.
  void FinishWrite(grpc::ServerUnaryReactor* reactor, const absl::Status& status)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status DoGet(const std::string& key, kv::v1::GetResponse* resp);
  // Hands `muts` to the store's committer and, once the write is durable,
  // to the replicator; finishes the call when `consistency` is met, filling
  // `versions` (batch) or `version` (single). At QUORUM/ALL with too few
  // live members, fails with UNAVAILABLE before writing.
  grpc::ServerUnaryReactor* Commit(
      grpc::CallbackServerContext* ctx, std::vector<storage::Mutation> muts,
      google::protobuf::RepeatedPtrField<kv::v1::Version>* versions,
      kv::v1::Version* version, kv::v1::Consistency consistency);

  storage::Store* const store_;
  const Limits limits_;
  Replicator* const replicator_;

  absl::Mutex mu_;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  int64_t writes_under_way_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kv::server

#endif  // KV_SERVER_KV_SERVICE_H_
