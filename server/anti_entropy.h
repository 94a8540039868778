// Background anti-entropy: the gRPC driver of replication::Exchange.
//
// Every interval (jittered) the node picks a random peer and runs one
// exchange as initiator over the Peer.Exchange stream; PeerService runs the
// responder side of exchanges other nodes open. Both sides go through
// DriveExchange, which feeds received messages to the pure core, applies the
// records it returns and sends its messages through the node-wide rate
// limiter. Peers come from a static list today (--peers); gossip membership
// will supply the live set through SetPeers.
//
// Pairs of nodes do not exchange in both directions at once (that would
// stream each difference twice): a node does not start an exchange while it
// serves one, and when two nodes start exchanges with each other at the same
// moment, the one with the lower node id refuses the other's (ABORTED)
// and only its own runs.
//
// Thread safety: thread-safe. One background thread initiates exchanges;
// incoming exchanges run on gRPC's threads (at most max_incoming at once).
#ifndef KV_SERVER_ANTI_ENTROPY_H_
#define KV_SERVER_ANTI_ENTROPY_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "proto/kv.pb.h"
#include "proto/peer.grpc.pb.h"
#include "replication/exchange.h"
#include "server/rate_limiter.h"
#include "storage/store.h"

namespace kv::server {

struct AntiEntropyOptions {
  std::vector<std::string> peers;           // host:port of the other nodes.
  absl::Duration interval = absl::Seconds(1);
  absl::Duration exchange_deadline = absl::Seconds(30);
  int64_t bandwidth_bytes_per_s = 64 << 20;  // Repair traffic cap; 0 = none.
  int max_incoming = 4;                      // Concurrent responder exchanges.
  bool start_paused = false;
  replication::ExchangeOptions exchange;
};

class AntiEntropy {
 public:
  // `store` must outlive this object.
  AntiEntropy(storage::Store* store, AntiEntropyOptions options);
  ~AntiEntropy();  // Stops the background thread.

  // Starts the background loop (a no-op loop while there are no peers).
  void Start();
  void Stop();

  // Pause (false) or resume (true). While paused no exchange starts and
  // incoming ones are refused with UNAVAILABLE.
  void SetRunning(bool running) { running_.store(running); }
  bool running() const { return running_.load(); }

  // Replaces the peer list (the seam for gossip membership).
  void SetPeers(std::vector<std::string> peers);

  // Runs one exchange with `peer` as initiator, now, on the calling thread.
  // Errors: UNAVAILABLE when the peer cannot be reached, refuses (paused,
  // busy) or the stream breaks; DEADLINE_EXCEEDED; INVALID_ARGUMENT when the
  // peer sent a malformed message; storage errors.
  absl::Status ExchangeWith(const std::string& peer);

  // Runs the responder side of an exchange on `stream` (PeerService).
  // Errors: as ExchangeWith; UNAVAILABLE when paused or at max_incoming;
  // ABORTED when this node yields to a simultaneous exchange of its own.
  absl::Status Serve(
      const std::string& peer,
      grpc::ServerReaderWriter<peer::v1::ExchangeMessage, peer::v1::ExchangeMessage>*
          stream);

  // Adds the counters and per-peer state to a Stats response.
  void FillStats(kv::v1::StatsResponse* resp) const;

 private:
  struct PeerState {
    int64_t last_ok_ms = 0;
    int64_t last_failure_ms = 0;
    std::string last_error;
  };
  void Loop();
  // Adds one finished exchange to the counters.
  void Record(const std::string& peer, const replication::Exchange* ex,
              const absl::Status& status);
  peer::v1::Peer::Stub* StubFor(const std::string& peer);

  // Constant after construction.
  storage::Store* const store_;
  const AntiEntropyOptions options_;

  std::atomic<bool> running_;
  std::atomic<int> incoming_{0};        // Exchanges being served.
  std::atomic<int> outgoing_count_{0};  // Exchanges we initiated, running.
  RateLimiter limiter_;
  absl::Notification stop_;
  std::thread thread_;

  // Counters (this node as either side).
  std::atomic<int64_t> started_{0}, completed_{0}, failed_{0}, equal_roots_{0},
      differing_leaves_{0}, keys_sent_{0}, keys_received_{0}, bytes_sent_{0},
      bytes_received_{0}, refused_clock_{0};

  mutable absl::Mutex mu_;
  std::vector<std::string> peers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, PeerState> peer_state_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<peer::v1::Peer::Stub>> stubs_
      ABSL_GUARDED_BY(mu_);
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  // Outgoing exchanges in progress, cancelled by Stop().
  std::vector<grpc::ClientContext*> outgoing_ ABSL_GUARDED_BY(mu_);
};

// The responder side as a gRPC service. Uses the synchronous API on
// purpose: an exchange blocks on storage and on the rate limiter, which
// belongs on a thread of its own rather than on a callback thread.
class PeerService final : public peer::v1::Peer::Service {
 public:
  explicit PeerService(AntiEntropy* anti_entropy) : anti_entropy_(anti_entropy) {}
  grpc::Status Exchange(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<peer::v1::ExchangeMessage, peer::v1::ExchangeMessage>*
          stream) override;

 private:
  AntiEntropy* const anti_entropy_;
};

}  // namespace kv::server

#endif  // KV_SERVER_ANTI_ENTROPY_H_
