#include "server/node.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "proto/health.pb.h"
#include "server/admin_service.h"
#include "server/auth.h"
#include "server/cpu_priority.h"
#include "server/generation.h"
#include "server/gossip_service.h"
#include "server/kv_service.h"
#include "server/metrics.h"
#include "server/node_metrics.h"
#include "server/peer_channel.h"
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
  InstallGrpcLogSink();  // gRPC's own lines in our log format; counts refused handshakes.
  TlsConfig tls = o.tls;
  tls.has_peer_listen = !o.peer_listen.empty();
  KV_RETURN_IF_ERROR(ValidateTlsConfig(tls));

  std::error_code ec;
  std::filesystem::create_directories(o.data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create data directory ", o.data_dir, ": ", ec.message()));
  }
  KV_ASSIGN_OR_RETURN(auto engine, storage::OpenRocksDbEngine(storage::RocksDbOptions{
                                       .path = o.data_dir,
                                       .sync = o.sync,
                                       .low_priority_background =
                                           o.storage_priority ==
                                           NodeOptions::StoragePriority::kLow}));
  node->physical_clock_ = std::make_unique<storage::SystemClock>(o.clock_offset_ms);
  storage::StoreOptions store_options;
  store_options.leaf_depth = o.leaf_depth;
  store_options.committer_thread = true;
  store_options.count_tombstones = true;  // kvd_store_tombstones on /metrics.
  store_options.max_clock_drift_ms = o.max_clock_drift_ms;
  store_options.clock = node->physical_clock_.get();
  KV_ASSIGN_OR_RETURN(node->store_,
                      storage::Store::Open(std::move(engine), store_options));

  AntiEntropyOptions ae = o.anti_entropy;
  ae.exchange.max_key_bytes = o.limits.max_key_bytes;
  ae.exchange.max_value_bytes = o.limits.max_value_bytes;
  ae.max_clock_drift_ms = o.max_clock_drift_ms;
  ae.clock = node->physical_clock_.get();
  const int max_message_bytes = static_cast<int>(
      std::max<uint64_t>(o.limits.EffectiveMaxMessageBytes(),
                         replication::MaxReceivedMessageBytes(ae.exchange)));
  if (ae.peers.empty()) ae.peers = o.seeds;  // Until gossip knows better.
  node->anti_entropy_ = std::make_unique<AntiEntropy>(node->store_.get(), ae);
  node->peer_service_ = std::make_unique<PeerService>(node->anti_entropy_.get());
  GossipServiceOptions gossip;
  gossip.gossip = o.gossip;
  // 0 means "no limit" for the store; likewise for the flag on members.
  gossip.gossip.max_clock_drift_ms =
      o.max_clock_drift_ms > 0 ? o.max_clock_drift_ms : std::numeric_limits<int64_t>::max();
  gossip.seeds = o.seeds;
  node->gossip_service_ = std::make_unique<GossipService>(
      std::move(gossip), node->store_.get(), node->anti_entropy_.get(),
      node->physical_clock_.get(), o.on_fatal);
  // Fan-out targets and the cluster size N come from gossip: N counts
  // members alive, suspect or down (not left or removed), self included.
  ReplicatorOptions fanout = o.fanout;
  fanout.max_message_bytes = max_message_bytes;
  node->replicator_ = std::make_unique<Replicator>(
      node->store_.get(), fanout, [gossip = node->gossip_service_.get()] {
        ClusterView view;
        const std::vector<replication::MemberView> members = gossip->Members();
        if (members.empty()) return view;
        view.members = 0;
        for (const replication::MemberView& m : members) {
          if (m.health == replication::MemberHealth::kLeft ||
              m.health == replication::MemberHealth::kRemoved) {
            continue;
          }
          ++view.members;
          if (m.is_self) view.self_address = m.state.peer_address();
          if (!m.is_self && m.health == replication::MemberHealth::kDown) {
            view.down_peers.push_back(m.state.peer_address());
          }
          if (!m.is_self && (m.health == replication::MemberHealth::kAlive ||
                             m.health == replication::MemberHealth::kSuspect)) {
            view.live_peers.push_back(m.state.peer_address());
          }
        }
        view.members = std::max(view.members, 1);
        return view;
      });
  node->replica_service_ = std::make_unique<ReplicaService>(
      node->store_.get(), replication::RecordLimits{.max_key_bytes = o.limits.max_key_bytes,
                                                    .max_value_bytes = o.limits.max_value_bytes},
      node->replicator_.get());
  node->kv_service_ = std::make_unique<KvService>(node->store_.get(), o.limits,
                                                  node->replicator_.get());
  node->admin_service_ = std::make_unique<AdminService>(
      o.name, node->store_.get(), &g_verify_counters, node->anti_entropy_.get(),
      node->gossip_service_.get(), o.build_version);
  node->admin_service_->set_fanout(node->replicator_.get(), node->replica_service_.get());

  // Keep grpc.health.v1's descriptor linked in so reflection can serve it.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  grpc::Service* kv_service = node->kv_service_.get();
  grpc::Service* admin_service = node->admin_service_.get();
  if (!o.auth_token_file.empty()) {
    KV_ASSIGN_OR_RETURN(node->auth_, TokenAuthenticator::FromFile(o.auth_token_file));
    node->auth_kv_service_ =
        std::make_unique<AuthKvService>(node->kv_service_.get(), node->auth_.get());
    node->auth_admin_service_ =
        std::make_unique<AuthAdminService>(node->admin_service_.get(), node->auth_.get());
    kv_service = node->auth_kv_service_.get();
    admin_service = node->auth_admin_service_.get();
    spdlog::info("auth: {} client tokens from {}", node->auth_->size(), o.auth_token_file);
  } else {
    spdlog::warn("auth: OFF: any client that reaches {} may read, write and administer "
                 "this node (set --auth-token-file)",
                 o.listen);
  }
  node->metrics_ = std::make_unique<MetricsRegistry>();
  // One interceptor factory list per server (the builder takes ownership).
  auto interceptors = [&]() {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> v;
    if (!o.metrics_listen.empty()) {
      v.push_back(std::make_unique<MetricsInterceptorFactory>(node->metrics_->rpc()));
    }
    return v;
  };

  const bool split = !o.peer_listen.empty();
  // Peers are dialled with mutual TLS when the port they listen on has it:
  // the peer port's files, or without --peer-listen the one shared port's.
  const TlsFiles& peer_files = split ? tls.peer : tls.client;
  SetPeerChannelCredentials(peer_files.enabled()
                                ? PeerChannelCredentials(peer_files, tls.reload_interval_s)
                                : nullptr);
  if (tls.client.enabled()) {
    spdlog::info("tls: {} serves TLS ({}, {}); client certificates {}; files reread every {} s",
                 o.listen, tls.client.cert_file, tls.client.key_file,
                 tls.client_cert_auth        ? "required, verified against " + tls.client.ca_file
                 : tls.client.ca_file.empty() ? std::string("not requested")
                                              : "verified against " + tls.client.ca_file +
                                                    " when presented",
                 tls.reload_interval_s);
  } else {
    spdlog::info("tls: off on {} (plaintext; set --tls-cert/--tls-key)", o.listen);
  }
  if (split) {
    if (tls.peer.enabled()) {
      spdlog::info("tls: {} speaks mutual TLS ({}, {}, CA {})", o.peer_listen,
                   tls.peer.cert_file, tls.peer.key_file, tls.peer.ca_file);
    } else {
      spdlog::info("tls: off on the peer port {} (set --peer-tls-cert/-key/-ca)",
                   o.peer_listen);
    }
  }
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(
      o.listen,
      tls.client.enabled()
          ? ClientPortCredentials(tls.client, tls.client_cert_auth, tls.reload_interval_s)
          : grpc::InsecureServerCredentials(),
      &port);
  builder.experimental().SetInterceptorCreators(interceptors());
  builder.SetMaxReceiveMessageSize(max_message_bytes);
  builder.SetMaxSendMessageSize(max_message_bytes);
  ApplyServerLimits(o.limits, &builder);
  builder.RegisterService(kv_service);
  builder.RegisterService(admin_service);
  if (!split) {
    builder.RegisterService(node->peer_service_.get());
    builder.RegisterService(node->gossip_service_.get());
    builder.RegisterService(node->replica_service_.get());
  }
  node->server_ = builder.BuildAndStart();
  if (node->server_ == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", o.listen,
                                               " (address in use or invalid?)"));
  }
  node->address_ = o.listen.substr(0, o.listen.rfind(':') + 1) + std::to_string(port);
  node->advertise_ = o.advertise.empty() ? node->address_ : o.advertise;
  if (split) {
    grpc::ServerBuilder peer_builder;
    int peer_port = 0;
    peer_builder.AddListeningPort(
        o.peer_listen,
        tls.peer.enabled() ? PeerServerCredentials(tls.peer, tls.reload_interval_s)
                           : grpc::InsecureServerCredentials(),
        &peer_port);
    peer_builder.SetMaxReceiveMessageSize(max_message_bytes);
    peer_builder.SetMaxSendMessageSize(max_message_bytes);
    ApplyServerLimits(o.limits, &peer_builder);
    peer_builder.experimental().SetInterceptorCreators(interceptors());
    peer_builder.RegisterService(node->peer_service_.get());
    peer_builder.RegisterService(node->gossip_service_.get());
    peer_builder.RegisterService(node->replica_service_.get());
    node->peer_server_ = peer_builder.BuildAndStart();
    if (node->peer_server_ == nullptr || peer_port == 0) {
      return absl::UnavailableError(absl::StrCat(
          "cannot listen on ", o.peer_listen, " (--peer-listen: address in use or invalid?)"));
    }
    node->peer_address_ = o.peer_listen.substr(0, o.peer_listen.rfind(':') + 1) +
                          std::to_string(peer_port);
    node->peer_advertise_ =
        o.peer_advertise.empty() ? node->peer_address_ : o.peer_advertise;
  } else {
    node->peer_address_ = node->address_;
    node->peer_advertise_ = node->advertise_;
  }
  for (const std::string& a : {node->advertise_, node->peer_advertise_}) {
    const std::string host = a.substr(0, a.rfind(':'));
    if (host == "0.0.0.0" || host == "[::]" || host.empty()) {
      spdlog::warn("gossip: peers are told to reach this node at {}, which they cannot; "
                   "set --advertise / --peer-advertise host:port",
                   a);
    }
  }
  // The start epoch, persisted: a restart has a higher one even when the
  // clock stepped back (a real clock, not the test-only skewed one).
  KV_ASSIGN_OR_RETURN(const uint64_t generation,
                      NextGeneration(o.data_dir, absl::ToUnixMillis(absl::Now())));
  node->gossip_service_->Start(replication::LocalNode{
      .node_id = node->store_->node_id(),
      .name = o.name,
      .client_address = node->advertise_,
      .peer_address = node->peer_advertise_,
      .generation = generation,
      .build_version = o.build_version,
  });
  {
    // A node may list itself among the seeds: anti-entropy skips it.
    std::vector<std::string> peers;
    for (const std::string& p : ae.peers) {
      if (p != node->peer_advertise_ && p != node->peer_address_) peers.push_back(p);
    }
    node->anti_entropy_->SetPeers(std::move(peers));
  }
  node->anti_entropy_->Start();
  node->replicator_->Start();
  if (!o.metrics_listen.empty()) {
    AddNodeCollectors(node->metrics_.get(), node->store_.get(), node->anti_entropy_.get(),
                      node->gossip_service_.get(), node->replicator_.get());
    node->metrics_->AddCollector([](MetricsWriter& w) {
      const std::string name = "kvd_tls_handshake_failures_total";
      w.Family(name, "counter",
               "TLS handshakes that failed, on either side of a connection of this process "
               "(counted from gRPC's log line), by reason");
      const auto counts = TlsHandshakeFailures();
      for (int i = 0; i < kNumHandshakeFailureReasons; ++i) {
        w.Sample(name,
                 {{"reason", HandshakeFailureReasonName(static_cast<HandshakeFailureReason>(i))}},
                 static_cast<double>(counts[i]));
      }
    });
    KV_ASSIGN_OR_RETURN(node->metrics_http_,
                        MetricsHttpServer::Start(o.metrics_listen, node->metrics_.get()));
  }
  if (o.verify_interval_s > 0) {
    node->verifier_ = std::thread([n = node.get()] { n->VerifyLoop(); });
  }
  if (o.storage_priority == NodeOptions::StoragePriority::kAuto) {
    if (CanLowerAndRaiseNice()) {
      node->storage_priority_ = std::make_unique<StoragePriorityMonitor>(
          [store = node->store_.get()] { return store->engine_backlog(); },
          absl::Milliseconds(10));
    } else {
      spdlog::info(
          "storage: --storage-cpu-priority auto is not possible here (raising a "
          "thread's priority back needs root with CAP_SYS_NICE or an RLIMIT_NICE of 20); "
          "flush and compaction run at normal priority");
    }
  }
  spdlog::info(
      "kvd {} (node id {:016x}) listening on {} (peers on {}), data in {} (sync={}, "
      "keys={}, root={}, seeds={}, anti-entropy {}, build {})",
      o.name, node->store_->node_id(), node->address_,
      split ? node->peer_address_ : std::string("the same port"),
      std::filesystem::absolute(o.data_dir).lexically_normal().string(),
      o.sync ? "on" : "off", node->store_->tree().KeyCount(),
      node->store_->tree().Root().Hex(), o.seeds.size(),
      ae.start_paused ? "paused" : "running", o.build_version);
  if (ae.cpu_priority == CpuPriority::kIdle && !CanSwitchToIdleAndBack()) {
    spdlog::info(
        "anti-entropy: --ae-cpu-priority idle is not possible here (moving a thread to "
        "SCHED_IDLE and back needs root with CAP_SYS_NICE or an RLIMIT_NICE of 20); "
        "exchanges run at normal priority");
  }
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
  // Writes from now on get UNAVAILABLE; those under way are answered before
  // the server stops (at its deadline it cancels what still runs, and a
  // client then cannot know whether its write was applied). Calls gRPC has
  // not yet handed to a service when the server stops are ended by gRPC
  // itself with CANCELLED, unapplied (kv.proto).
  if (kv_service_ != nullptr) {
    if (const int64_t left = kv_service_->Drain(absl::Seconds(10)); left > 0) {
      spdlog::warn("shutdown: {} writes still under way after 10 s; the server's "
                   "shutdown cancels them",
                   left);
    }
  }
  if (metrics_http_ != nullptr) metrics_http_->Stop();
  // First, while the server still runs: tell the cluster this node leaves.
  if (gossip_service_ != nullptr) gossip_service_->Shutdown();
  // Calls in flight get a second to finish; then they are cancelled.
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(1);
  for (grpc::Server* server : {server_.get(), peer_server_.get()}) {
    if (server == nullptr) continue;
    server->Shutdown(deadline);
    server->Wait();
  }
  // After the server: writes in flight at QUORUM/ALL got their answers.
  if (replicator_ != nullptr) replicator_->Stop();
  if (anti_entropy_ != nullptr) anti_entropy_->Stop();
  if (verifier_.joinable()) verifier_.join();
  storage_priority_.reset();
  store_.reset();  // Closes RocksDB (flushes nothing more: the WAL has it all).
  spdlog::info("kvd {} stopped", options_.name);
}

const std::string& Node::metrics_address() const {
  static const std::string* const kNone = new std::string();
  return metrics_http_ != nullptr ? metrics_http_->address() : *kNone;
}

Node::Node(NodeOptions options) : options_(std::move(options)) {}

Node::~Node() { Shutdown(); }

}  // namespace kv::server
