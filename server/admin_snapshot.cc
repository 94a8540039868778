// Admin.Snapshot (the rest of AdminService is in admin_service.cc).
#include <spdlog/spdlog.h>

#include <filesystem>

#include "absl/time/clock.h"
#include "server/admin_service.h"
#include "server/snapshot.h"
#include "server/status_mapping.h"

namespace kv::server {

grpc::ServerUnaryReactor* AdminService::Snapshot(grpc::CallbackServerContext* ctx,
                                                 const kv::v1::SnapshotRequest* req,
                                                 kv::v1::SnapshotResponse* resp) {
  const absl::Time start = absl::Now();
  std::error_code ec;
  const std::string dir =
      req->dir().empty() ? "" : std::filesystem::absolute(req->dir(), ec).lexically_normal().string();
  auto manifest = SaveSnapshot(*store_, dir, node_name_, build_version_);
  if (manifest.ok()) {
    *resp->mutable_manifest() = *manifest;
    resp->set_dir(dir);
    resp->set_duration_ms(absl::ToInt64Milliseconds(absl::Now() - start));
    spdlog::info("snapshot: {} keys (root {}) into {} in {} ms", manifest->key_count(),
                 manifest->root_digest(), dir, resp->duration_ms());
  } else {
    spdlog::warn("snapshot into '{}' failed: {}", req->dir(), manifest.status().ToString());
  }
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(manifest.status()));
  return reactor;
}

}  // namespace kv::server
