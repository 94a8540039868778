#include "server/node.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "proto/health.pb.h"
#include "server/admin_service.h"
#include "server/kv_service.h"
#include "storage/rocksdb_engine.h"
#include "storage/status_macros.h"

namespace kv::server {
namespace {

// Shared with the admin service through Node; one instance per process is
// enough (one node per process).
VerifyCounters g_verify_counters;

}  // namespace

absl::StatusOr<std::unique_ptr<Node>> Node::Start(NodeOptions options) {
  std::unique_ptr<Node> node(new Node(std::move(options)));
  const NodeOptions& o = node->options_;

  std::error_code ec;
  std::filesystem::create_directories(o.data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create data directory ", o.data_dir, ": ", ec.message()));
  }
  KV_ASSIGN_OR_RETURN(auto engine, storage::OpenRocksDbEngine(storage::RocksDbOptions{
                                       .path = o.data_dir, .sync = o.sync}));
  node->physical_clock_ = std::make_unique<storage::SystemClock>(o.clock_offset_ms);
  storage::StoreOptions store_options;
  store_options.leaf_depth = o.leaf_depth;
  store_options.committer_thread = true;
  store_options.max_clock_drift_ms = o.max_clock_drift_ms;
  store_options.clock = node->physical_clock_.get();
  KV_ASSIGN_OR_RETURN(node->store_,
                      storage::Store::Open(std::move(engine), store_options));

  AntiEntropyOptions ae = o.anti_entropy;
  ae.exchange.max_key_bytes = o.limits.max_key_bytes;
  ae.exchange.max_value_bytes = o.limits.max_value_bytes;
  node->anti_entropy_ = std::make_unique<AntiEntropy>(node->store_.get(), ae);
  node->kv_service_ = std::make_unique<KvService>(node->store_.get(), o.limits);
  node->peer_service_ = std::make_unique<PeerService>(node->anti_entropy_.get());
  node->admin_service_ = std::make_unique<AdminService>(
      o.name, node->store_.get(), &g_verify_counters, node->anti_entropy_.get());

  // Keep grpc.health.v1's descriptor linked in so reflection can serve it.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(o.listen, grpc::InsecureServerCredentials(), &port);
  const int max_message = static_cast<int>(
      std::max<uint64_t>(o.limits.EffectiveMaxMessageBytes(),
                         replication::MaxReceivedMessageBytes(ae.exchange)));
  builder.SetMaxReceiveMessageSize(max_message);
  builder.SetMaxSendMessageSize(max_message);
  builder.RegisterService(node->kv_service_.get());
  builder.RegisterService(node->admin_service_.get());
  builder.RegisterService(node->peer_service_.get());
  node->server_ = builder.BuildAndStart();
  if (node->server_ == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", o.listen,
                                               " (address in use or invalid?)"));
  }
  node->address_ = o.listen.substr(0, o.listen.rfind(':') + 1) + std::to_string(port);
  node->anti_entropy_->Start();
  if (o.verify_interval_s > 0) {
    node->verifier_ = std::thread([n = node.get()] { n->VerifyLoop(); });
  }
  spdlog::info(
      "kvd {} (node id {:016x}) listening on {}, data in {} (sync={}, keys={}, "
      "root={}, peers={}, anti-entropy {})",
      o.name, node->store_->node_id(), node->address_,
      std::filesystem::absolute(o.data_dir).lexically_normal().string(),
      o.sync ? "on" : "off", node->store_->tree().KeyCount(),
      node->store_->tree().Root().Hex(), ae.peers.size(),
      ae.start_paused ? "paused" : "running");
  return node;
}

void Node::VerifyLoop() {
  while (!stopping_.WaitForNotificationWithTimeout(
      absl::Seconds(options_.verify_interval_s))) {
    (void)RunVerification(*store_, g_verify_counters);
  }
}

void Node::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  stopping_.Notify();
  if (server_ != nullptr) {
    // Calls in flight get a second to finish; then they are cancelled.
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    server_->Wait();
  }
  if (anti_entropy_ != nullptr) anti_entropy_->Stop();
  if (verifier_.joinable()) verifier_.join();
  store_.reset();  // Closes RocksDB (flushes nothing more: the WAL has it all).
  spdlog::info("kvd {} stopped", options_.name);
}

Node::Node(NodeOptions options) : options_(std::move(options)) {}

Node::~Node() { Shutdown(); }

}  // namespace kv::server
