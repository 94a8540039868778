// Gossip membership on a real node: the gRPC edge of replication::Gossiper.
//
// GrpcGossipTransport sends one GossipMessage per unary Gossip.Gossip call
// (callback API, one cached channel per peer address, ~1 s deadline, short
// reconnect backoff). Sending never blocks: beyond max_in_flight calls a
// message is dropped and counted, which the protocol tolerates (a lost
// message is a lost message).
//
// GossipService is the kv.peer.v1.Gossip service and the owner of the core,
// its driver and the transport. A background thread ticks the driver about
// every GossipOptions::interval_ms (jittered +-10%) with this node's
// application state (Merkle root, key count, wall clock), hands the live
// members to anti-entropy whenever they change, and logs membership events.
// When the core reports a fatal error (this node's id was refused: another
// live node holds it, or it was removed) the loop stops gossiping and calls
// the `on_fatal` callback once; kvd then exits non-zero.
//
// Lifecycle: construct, register with the gRPC server, Start() once the
// address is known, Shutdown() before the server stops. Messages received
// before Start or after Shutdown are refused with UNAVAILABLE.
//
// Thread safety: thread-safe. All calls into the core and the driver happen
// under mu_. Lock order: mu_ before the transport's mutex; no lock of this
// class is held while calling AntiEntropy or `on_fatal`.
#ifndef KV_SERVER_GOSSIP_SERVICE_H_
#define KV_SERVER_GOSSIP_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "proto/peer.grpc.pb.h"
#include "replication/gossip.h"
#include "server/anti_entropy.h"
#include "storage/hlc.h"
#include "storage/store.h"

namespace kv::server {

struct GossipTransportOptions {
  // Deadline of one call; gossip is periodic, a late message is worthless.
  absl::Duration deadline = absl::Seconds(1);
  // Calls in flight over all peers; more are dropped (and counted).
  int max_in_flight = 128;
  // Reconnect backoff cap for a peer that is down: about a few gossip
  // intervals, not gRPC's default of two minutes.
  int max_reconnect_backoff_ms = 1000;
  // Largest message sent or accepted (gossip messages are bounded by
  // GossipOptions::max_message_bytes, 256 KiB by default).
  int max_message_bytes = 4 << 20;
};

struct GossipTransportStats {
  int64_t sent = 0;     // Calls started.
  int64_t failed = 0;   // Calls that ended with an error.
  int64_t dropped = 0;  // Messages not sent: max_in_flight reached or closed.
};

// replication::GossipTransport over gRPC unary calls.
//
// Thread safety: thread-safe. Callbacks run on gRPC threads and take only
// mu_ (never a caller's lock).
class GrpcGossipTransport final : public replication::GossipTransport {
 public:
  explicit GrpcGossipTransport(GossipTransportOptions options = {});
  // Cancels the calls in flight and waits for their callbacks.
  ~GrpcGossipTransport() override;

  // Starts one call to `to` and returns at once.
  void Send(const std::string& to, const peer::v1::GossipMessage& message) override;

  // Waits up to `timeout` for the calls in flight to end, then cancels the
  // rest and waits for them; later Sends are dropped. Idempotent.
  void Close(absl::Duration timeout);

  GossipTransportStats stats() const;

 private:
  struct Call;
  peer::v1::Gossip::Stub* StubForLocked(const std::string& to)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Done(Call* call, const grpc::Status& status);

  const GossipTransportOptions options_;

  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<peer::v1::Gossip::Stub>> stubs_
      ABSL_GUARDED_BY(mu_);
  std::set<Call*> in_flight_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  GossipTransportStats stats_ ABSL_GUARDED_BY(mu_);
};

struct GossipServiceOptions {
  replication::GossipOptions gossip;
  GossipTransportOptions transport;
  std::vector<std::string> seeds;  // Peer addresses; our own is skipped.
  // How long Shutdown lets the `left` announcement travel.
  absl::Duration leave_grace = absl::Milliseconds(300);
};

class GossipService final : public peer::v1::Gossip::CallbackService {
 public:
  using FatalCallback = std::function<void(const absl::Status&)>;

  // `store`, `anti_entropy` and `clock` must outlive the service. `clock`
  // gives the wall clock gossiped to peers and the time of the core.
  // `on_fatal` is called at most once, from the gossip thread.
  GossipService(GossipServiceOptions options, storage::Store* store,
                AntiEntropy* anti_entropy, storage::PhysicalClock* clock,
                FatalCallback on_fatal);
  ~GossipService() override;  // Shutdown().

  // Creates the core for `self` and starts the gossip thread.
  // REQUIRES: called once, before Shutdown.
  void Start(replication::LocalNode self);

  // Announces that this node leaves, gives the announcement leave_grace to
  // travel, stops the thread and closes the transport. Idempotent.
  void Shutdown();

  // The Gossip RPC. Errors: INVALID_ARGUMENT for a malformed message;
  // UNAVAILABLE before Start or after Shutdown.
  grpc::ServerUnaryReactor* Gossip(grpc::CallbackServerContext* ctx,
                                   const peer::v1::GossipMessage* request,
                                   peer::v1::GossipReply* reply) override;

  // Every member, self included (Gossiper::Members). Empty before Start.
  std::vector<replication::MemberView> Members() const;
  // Gossiper::Remove. Errors: its codes; UNAVAILABLE before Start.
  absl::Status Remove(uint64_t node_id);
  replication::GossipStats stats() const;
  GossipTransportStats transport_stats() const { return transport_.stats(); }

 private:
  void Loop();
  void OnEvent(const replication::GossipEvent& event);
  replication::AppState CurrentAppState() const;

  // Constant after construction.
  const GossipServiceOptions options_;
  storage::Store* const store_;
  AntiEntropy* const anti_entropy_;
  storage::PhysicalClock* const clock_;
  const FatalCallback on_fatal_;

  GrpcGossipTransport transport_;  // Thread-safe on its own.
  absl::Notification stop_;
  std::thread thread_;
  std::atomic<bool> shut_down_{false};

  // State below is protected by mu_.
  mutable absl::Mutex mu_;
  std::unique_ptr<replication::Gossiper> core_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<replication::GossipDriver> driver_ ABSL_GUARDED_BY(mu_);
  bool active_ ABSL_GUARDED_BY(mu_) = false;  // Between Start and Shutdown.
  // Until a live member is first seen, anti-entropy keeps its seed peers.
  bool seen_live_ ABSL_GUARDED_BY(mu_) = false;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
};

// The 16 bytes of a Merkle root as gossiped: hi then lo, big-endian, so that
// their hex is Digest::Hex().
std::string RootBytes(const storage::Digest& root);
// 32 lowercase hex digits of gossiped root bytes ("" when not 16 bytes).
std::string RootHex(const std::string& root_bytes);

}  // namespace kv::server

#endif  // KV_SERVER_GOSSIP_SERVICE_H_
