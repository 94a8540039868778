#include "server/admin_service.h"

#include <spdlog/spdlog.h>

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

}  // namespace kv::server
