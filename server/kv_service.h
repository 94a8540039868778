// The public kv.v1.KV service over a Store.
//
// Thread safety: handlers run concurrently on gRPC's threads; the Store is
// thread-safe and the service keeps no other mutable state.
#ifndef KV_SERVER_KV_SERVICE_H_
#define KV_SERVER_KV_SERVICE_H_

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

 private:
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
};

}  // namespace kv::server

#endif  // KV_SERVER_KV_SERVICE_H_
