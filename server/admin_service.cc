#include "server/admin_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "server/status_mapping.h"

namespace kv::server {

absl::StatusOr<storage::VerifyResult> RunVerification(storage::Store& store,
                                                      VerifyCounters& counters) {
  auto result = store.VerifyTree();
  if (!result.ok()) {
    spdlog::error("tree verification failed: {}", result.status().ToString());
    return result;
  }
  counters.runs.fetch_add(1);
  if (!result->matched) {
    counters.mismatches.fetch_add(1);
    spdlog::error(
        "tree verification: {} Merkle leaves did not match the data; repaired "
        "(keys={}, root={})",
        result->mismatched_leaves, result->key_count, result->root.Hex());
  } else {
    spdlog::info("tree verification: ok (keys={}, root={})", result->key_count,
                 result->root.Hex());
  }
  return result;
}

grpc::ServerUnaryReactor* AdminService::Stats(grpc::CallbackServerContext* ctx,
                                              const kv::v1::StatsRequest*,
                                              kv::v1::StatsResponse* resp) {
  resp->set_node_name(node_name_);
  resp->set_node_id(store_->node_id());
  resp->set_key_count(store_->tree().KeyCount());
  resp->set_root_digest(store_->tree().Root().Hex());
  resp->set_tree_verifications(verify_->runs.load());
  resp->set_tree_mismatches(verify_->mismatches.load());
  anti_entropy_->FillStats(resp);
  if (replicator_ != nullptr || replica_ != nullptr) {
    FillFanoutStats(replicator_, replica_, resp->mutable_fanout());
  }
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::SetAntiEntropy(
    grpc::CallbackServerContext* ctx, const kv::v1::SetAntiEntropyRequest* req,
    kv::v1::SetAntiEntropyResponse* resp) {
  anti_entropy_->SetRunning(req->running());
  spdlog::info("anti-entropy {}", req->running() ? "resumed" : "paused");
  resp->set_running(anti_entropy_->running());
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::VerifyTree(
    grpc::CallbackServerContext* ctx, const kv::v1::VerifyTreeRequest*,
    kv::v1::VerifyTreeResponse* resp) {
  auto result = RunVerification(*store_, *verify_);
  if (result.ok()) {
    resp->set_matched(result->matched);
    resp->set_key_count(result->key_count);
    resp->set_root_digest(result->root.Hex());
  }
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(result.status()));
  return reactor;
}

void ToProto(const replication::MemberView& view, kv::v1::Member* out) {
  const peer::v1::MemberState& st = view.state;
  out->set_node_id(st.node_id());
  out->set_name(st.name());
  out->set_client_address(st.client_address());
  out->set_peer_address(st.peer_address());
  out->set_generation(st.generation());
  out->set_heartbeat(st.version());
  out->set_status(replication::HealthName(view.health));
  out->set_heartbeat_age_ms(view.is_self ? 0 : view.heartbeat_age_ms);
  out->set_phi(view.is_self ? 0 : view.phi);
  out->set_root_digest(RootHex(st.merkle_root()));
  out->set_key_count(st.key_count());
  out->set_clock_offset_ms(view.clock_offset_known ? view.clock_offset_ms : 0);
  out->set_clock_offset_known(view.clock_offset_known);
  out->set_clock_skewed(view.clock_skewed);
  out->set_build_version(st.build_version());
  out->set_is_self(view.is_self);
}

grpc::ServerUnaryReactor* AdminService::Members(grpc::CallbackServerContext* ctx,
                                                const kv::v1::MembersRequest*,
                                                kv::v1::MembersResponse* resp) {
  std::vector<replication::MemberView> members = gossip_->Members();
  std::stable_sort(members.begin(), members.end(),
                   [](const replication::MemberView& a, const replication::MemberView& b) {
                     return a.state.name() < b.state.name();
                   });
  for (const replication::MemberView& m : members) ToProto(m, resp->add_members());
  const replication::GossipStats stats = gossip_->stats();
  resp->set_down_events(stats.down_events);
  resp->set_clock_skew_events(stats.clock_skew_events);
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::RemoveMember(
    grpc::CallbackServerContext* ctx, const kv::v1::RemoveMemberRequest* req,
    kv::v1::RemoveMemberResponse*) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(gossip_->Remove(req->node_id())));
  return reactor;
}

}  // namespace kv::server
