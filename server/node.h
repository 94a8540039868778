// A kvd node: the Store, the gRPC server with its services, and the
// background work (gossip membership, anti-entropy, tree verification). main() only parses
// flags into NodeOptions and calls Start/Shutdown.
//
// Thread safety: Start and Shutdown are called from one thread; the rest is
// internal.
#ifndef KV_SERVER_NODE_H_
#define KV_SERVER_NODE_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "replication/gossip.h"
#include "server/anti_entropy.h"
#include "server/fanout_service.h"
#include "server/limits.h"
#include "server/storage_priority.h"
#include "server/tls.h"
#include "storage/store.h"

namespace kv::server {

class AdminService;
class AuthAdminService;
class AuthKvService;
class GossipService;
class KvService;
class MetricsHttpServer;
class MetricsRegistry;
class PeerService;
class TokenAuthenticator;

struct NodeOptions {
  std::string name = "kvd";
  std::string listen = "127.0.0.1:7070";  // Port 0 picks a free port.
  // Where the peer services (Peer, Gossip, Replica) listen. "" = on `listen`
  // with the client services (one port, as before --peer-listen). When set,
  // `listen` serves only KV and Admin and this port only the peer services.
  std::string peer_listen;
  // host:port peers reach the peer port at ("" = the bound peer address).
  // Without peer_listen, `advertise` is gossiped for both.
  std::string peer_advertise;
  // host:port of the HTTP /metrics endpoint (Prometheus text); "" = none.
  std::string metrics_listen;
  // Token file for client calls (see server/auth.h); "" = no authentication.
  std::string auth_token_file;
  // TLS on the client port and mutual TLS on the peer port (server/tls.h);
  // all off by default. tls.has_peer_listen is set by Start from
  // peer_listen. Without peer_listen the one port serves TLS to clients and
  // peers alike, and this node dials peers with the tls.client files.
  TlsConfig tls;
  std::string data_dir = "data/kvd";
  bool sync = false;
  // CPU priority of RocksDB's flush and compaction threads: kNormal; kLow,
  // nice 19 always (storage::RocksDbOptions::low_priority_background: a
  // core saturated by requests starves the flush, and writes stop until it
  // ends, for seconds); kAuto, nice 19 while their backlog is small
  // (server/storage_priority.h), normal where that is not possible.
  enum class StoragePriority { kNormal, kLow, kAuto };
  StoragePriority storage_priority = StoragePriority::kAuto;
  Limits limits;
  uint32_t leaf_depth = storage::config::kDefaultLeafDepth;
  int64_t verify_interval_s = 3600;  // 0 = never (VerifyTree RPC still works).
  int64_t clock_offset_ms = 0;       // Test-only: skews this node's wall clock.
  int64_t max_clock_drift_ms = 3'600'000;  // See StoreOptions.
  // Anti-entropy starts with anti_entropy.peers (the seeds) and follows the
  // live members once gossip has seen one.
  AntiEntropyOptions anti_entropy;
  // Gossip membership. `seeds` are peer addresses (our own is skipped);
  // `advertise` is the address others reach this node at ("" = the bound
  // listen address, which does not work for 0.0.0.0).
  std::vector<std::string> seeds;
  std::string advertise;
  replication::GossipOptions gossip;  // max_clock_drift_ms is set from above.
  // Write fan-out and consistency levels (members and live peers come from
  // gossip).
  ReplicatorOptions fanout;
  std::string build_version = "dev";
  // Called once, from a background thread, when this node must stop (its
  // node id was refused by the cluster). Null: only logged.
  std::function<void(const absl::Status&)> on_fatal;
};

class Node {
 public:
  // Opens the data directory and starts serving.
  // Errors: INVALID_ARGUMENT naming the flag for TLS files that are missing,
  // unreadable or do not go together (ValidateTlsConfig, checked first); the
  // store's (e.g. FAILED_PRECONDITION when another process uses the
  // directory); UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Node>> Start(NodeOptions options);
  ~Node();

  // The address actually bound (with the real port when 0 was asked).
  const std::string& address() const { return address_; }
  // The client address gossiped to peers.
  const std::string& advertise_address() const { return advertise_; }
  // The bound peer address (== address() without --peer-listen).
  const std::string& peer_address() const { return peer_address_; }
  // The peer address gossiped to peers (== advertise_address() without
  // --peer-listen).
  const std::string& peer_advertise_address() const { return peer_advertise_; }
  // The bound metrics address ("" without metrics_listen).
  const std::string& metrics_address() const;
  storage::Store& store() { return *store_; }

  // Announces to the cluster that this node leaves (gossip, ~300 ms), stops
  // accepting calls, lets calls in flight finish (up to a deadline), stops
  // background work and closes the store. Idempotent.
  void Shutdown();

 private:
  explicit Node(NodeOptions options);
  void VerifyLoop();

  const NodeOptions options_;
  std::string address_;
  std::string advertise_;
  std::string peer_address_;
  std::string peer_advertise_;
  std::unique_ptr<storage::SystemClock> physical_clock_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<AntiEntropy> anti_entropy_;
  std::unique_ptr<KvService> kv_service_;
  std::unique_ptr<PeerService> peer_service_;
  std::unique_ptr<GossipService> gossip_service_;
  std::unique_ptr<Replicator> replicator_;
  std::unique_ptr<ReplicaService> replica_service_;
  std::unique_ptr<AdminService> admin_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> peer_server_;  // Null without --peer-listen.
  std::unique_ptr<MetricsRegistry> metrics_;
  std::unique_ptr<MetricsHttpServer> metrics_http_;  // Null without metrics_listen.
  std::unique_ptr<TokenAuthenticator> auth_;         // Null without auth_token_file.
  std::unique_ptr<AuthKvService> auth_kv_service_;
  std::unique_ptr<AuthAdminService> auth_admin_service_;
  absl::Notification stopping_;
  std::thread verifier_;
  std::unique_ptr<StoragePriorityMonitor> storage_priority_;  // kAuto only.
  bool shut_down_ = false;
};

}  // namespace kv::server

#endif  // KV_SERVER_NODE_H_
