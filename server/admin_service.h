// kv.v1.Admin: node status, tree verification, anti-entropy control and the
// membership view.
//
// Thread safety: thread-safe (the Store, the counters it reads and the
// gossip service are).
#ifndef KV_SERVER_ADMIN_SERVICE_H_
#define KV_SERVER_ADMIN_SERVICE_H_

#include <atomic>
#include <string>

#include "proto/kv.grpc.pb.h"
#include "server/anti_entropy.h"
#include "server/fanout_service.h"
#include "server/gossip_service.h"
#include "storage/store.h"

namespace kv::server {

// Counters of the background tree verification (shared with Node).
struct VerifyCounters {
  std::atomic<int64_t> runs{0};
  std::atomic<int64_t> mismatches{0};
};

class AdminService final : public kv::v1::Admin::CallbackService {
 public:
  // All pointers must outlive the service.
  AdminService(std::string node_name, storage::Store* store, VerifyCounters* verify,
               AntiEntropy* anti_entropy, GossipService* gossip,
               std::string build_version = "dev")
      : node_name_(std::move(node_name)),
        build_version_(std::move(build_version)),
        store_(store),
        verify_(verify),
        anti_entropy_(anti_entropy),
        gossip_(gossip) {}

  // The fan-out counters Stats reports (none until set). Call before
  // serving; both must outlive the service.
  void set_fanout(const Replicator* replicator, const ReplicaService* replica) {
    replicator_ = replicator;
    replica_ = replica;
  }

  grpc::ServerUnaryReactor* Stats(grpc::CallbackServerContext* ctx,
                                  const kv::v1::StatsRequest* req,
                                  kv::v1::StatsResponse* resp) override;
  grpc::ServerUnaryReactor* SetAntiEntropy(
      grpc::CallbackServerContext* ctx, const kv::v1::SetAntiEntropyRequest* req,
      kv::v1::SetAntiEntropyResponse* resp) override;
  grpc::ServerUnaryReactor* VerifyTree(grpc::CallbackServerContext* ctx,
                                       const kv::v1::VerifyTreeRequest* req,
                                       kv::v1::VerifyTreeResponse* resp) override;
  // Every member this node knows, ordered by name (then node id).
  grpc::ServerUnaryReactor* Members(grpc::CallbackServerContext* ctx,
                                    const kv::v1::MembersRequest* req,
                                    kv::v1::MembersResponse* resp) override;
  // Errors: NOT_FOUND, FAILED_PRECONDITION (alive, suspect or self), as
  // Gossiper::Remove.
  grpc::ServerUnaryReactor* RemoveMember(grpc::CallbackServerContext* ctx,
                                         const kv::v1::RemoveMemberRequest* req,
                                         kv::v1::RemoveMemberResponse* resp) override;
  // A snapshot of the store into a new directory on this machine
  // (SaveSnapshot in server/snapshot.h; defined in admin_snapshot.cc).
  // Errors: as SaveSnapshot.
  grpc::ServerUnaryReactor* Snapshot(grpc::CallbackServerContext* ctx,
                                     const kv::v1::SnapshotRequest* req,
                                     kv::v1::SnapshotResponse* resp) override;

 private:
  const std::string node_name_;
  const std::string build_version_;  // For snapshot manifests.
  storage::Store* const store_;
  VerifyCounters* const verify_;
  AntiEntropy* const anti_entropy_;
  GossipService* const gossip_;
  // Set before serving (set_fanout), read-only after.
  const Replicator* replicator_ = nullptr;
  const ReplicaService* replica_ = nullptr;
};

// One member as kv.v1.Member (status is HealthName's word).
void ToProto(const replication::MemberView& view, kv::v1::Member* out);

// Runs Store::VerifyTree, counts it and logs a mismatch. Shared by the RPC
// and the background loop.
absl::StatusOr<storage::VerifyResult> RunVerification(storage::Store& store,
                                                      VerifyCounters& counters);

}  // namespace kv::server

#endif  // KV_SERVER_ADMIN_SERVICE_H_
