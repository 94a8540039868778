// Background anti-entropy: the gRPC transport of replication's exchange
// driver (replication/session.h), which the simulator runs too.
//
// Every interval (jittered) the node asks its replication::Sessions for a
// peer (PickPeer, with a random draw) and runs one exchange as initiator over
// the Peer.Exchange stream; PeerService runs the responder side of exchanges
// other nodes open. Both sides feed each message read from the stream to an
// ExchangeDriver, which steps the core, applies records and writes through
// the node-wide rate limiter. The session rules are Sessions': an incoming
// exchange takes a serving slot only after a valid Hello (max_incoming), a
// node does not initiate to a peer it serves but does to others, the lower
// node id yields when two nodes start exchanges with each other at once, and
// every exchange ends at its deadline or after idle_timeout without a
// message (a watchdog thread cancels it). The responder tells its node id in
// the "kv-node-id" initial metadata, so the initiator learns which node an
// address is. Peers come from --peers or gossip (SetPeers).
//
// Thread safety: thread-safe. One background thread initiates exchanges, one
// watchdog thread ends expired ones; incoming exchanges run on gRPC's
// threads.
#ifndef KV_SERVER_ANTI_ENTROPY_H_
#define KV_SERVER_ANTI_ENTROPY_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
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
#include "replication/session.h"
#include "server/cpu_priority.h"
#include "server/rate_limiter.h"
#include "storage/store.h"

namespace kv::server {

struct AntiEntropyOptions {
  std::vector<std::string> peers;           // host:port of the other nodes.
  absl::Duration interval = absl::Seconds(1);
  absl::Duration exchange_deadline = absl::Seconds(30);  // Either side.
  // An exchange (either side, a responder also before its Hello) that gets
  // no message for this long ends.
  absl::Duration idle_timeout = absl::Seconds(10);
  int64_t bandwidth_bytes_per_s = 64 << 20;  // Repair traffic cap; 0 = none.
  int max_incoming = 4;  // Exchanges served at once (after their Hello).
  bool start_paused = false;
  replication::ExchangeOptions exchange;
  // The store's --max-clock-drift-ms (0: none) and its wall clock (null: the
  // system's): what this node refused from a peer for its clock is not asked
  // for again until the clock has caught up (replication::PeerRefusals).
  int64_t max_clock_drift_ms = 0;
  storage::PhysicalClock* clock = nullptr;
  // The CPU priority of exchanges, both the ones this node starts and the
  // ones it serves: each exchange's thread, for the exchange's duration
  // (only where CanSwitchToIdleAndBack()). kIdle keeps
  // a full sync from delaying foreground requests (server/cpu_priority.h).
  CpuPriority cpu_priority = CpuPriority::kIdle;
  // With kIdle: an exchange still running after this long goes on at
  // normal priority (the watchdog promotes its thread), so that repair
  // keeps going when other work saturates the cores.
  absl::Duration idle_promote_after = absl::Seconds(2);
};

class AntiEntropy {
 public:
  // `store` must outlive this object.
  AntiEntropy(storage::Store* store, AntiEntropyOptions options);
  ~AntiEntropy();  // Stops the background thread.

  // Starts the background loop (a no-op loop while there are no peers) and
  // the watchdog. Thread-safe; only the first call starts them, and a call
  // after Stop() does nothing.
  void Start() ABSL_LOCKS_EXCLUDED(threads_mu_);
  // Ends the exchanges under way and joins the threads. Thread-safe and
  // idempotent; returns once the threads have ended.
  void Stop() ABSL_LOCKS_EXCLUDED(threads_mu_);

  // Pause (false) or resume (true). While paused no exchange starts and
  // incoming ones are refused with UNAVAILABLE.
  void SetRunning(bool running) { running_.store(running); }
  bool running() const { return running_.load(); }

  // Replaces the peer list (host:port; gossip feeds it the live members).
  void SetPeers(std::vector<std::string> peers);
  // Records which node each peer address is (gossip knows; otherwise the
  // first exchange with it teaches it).
  void LearnPeerIds(const std::vector<std::pair<std::string, uint64_t>>& ids);

  // Runs one exchange with `peer` as initiator, now, on the calling thread.
  // Errors: UNAVAILABLE when the peer cannot be reached, refuses (paused,
  // busy) or the stream breaks, or when this node already runs an exchange
  // with it (or its max_outgoing); DEADLINE_EXCEEDED (deadline or idle
  // timeout); ABORTED when the peer yields; INVALID_ARGUMENT when the peer
  // sent a malformed message; CANCELLED after Stop; storage errors.
  // `more` (may be null) is set to whether the exchange was cut short by a
  // budget (replication::CutByBudget): the next one should follow at once.
  absl::Status ExchangeWith(const std::string& peer, bool* more = nullptr);

  // Runs the responder side of an exchange on `stream` (PeerService).
  // Errors: as ExchangeWith; UNAVAILABLE when paused or at max_incoming;
  // ABORTED when this node yields to a simultaneous exchange of its own;
  // INVALID_ARGUMENT when the first message is not a valid Hello.
  absl::Status Serve(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<peer::v1::ExchangeMessage, peer::v1::ExchangeMessage>*
          stream);

  // Adds the counters and per-peer state to a Stats response.
  void FillStats(kv::v1::StatsResponse* resp) const;

 private:
  struct PeerState {
    int64_t last_ok_ms = 0;
    int64_t last_failure_ms = 0;
    std::string last_error;
    int64_t refused_clock = 0;  // Records refused from it for their clock.
  };
  // What this node refused from peer `node_id` (created on first use), with
  // the records the clock has caught up with forgotten.
  replication::PeerRefusals* RefusalsFor(uint64_t node_id)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Loop();
  // Cancels the exchanges past their deadline or idle timeout.
  void Watchdog();
  // Registers how to end session `id` early (EndSession forgets it).
  void RegisterCancel(replication::Sessions::Id id, std::function<void()> cancel)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets session `id`; says why it was cut short, if it was.
  enum class Cut { kNo, kExpired, kSuperseded };
  Cut EndSession(replication::Sessions::Id id);
  // Once `driver`'s exchange has declared ranges of this node empty, tells
  // the session rules (Sessions::MarkFilling); `marked` remembers it.
  void MarkIfFilling(replication::Sessions::Id id,
                     const replication::ExchangeDriver& driver, bool* marked);
  // Reads the next message; marks activity. False when the stream ended.
  template <typename Stream>
  bool ReadMessage(Stream* stream, replication::Sessions::Id id,
                   peer::v1::ExchangeMessage* msg);
  // Adds one finished exchange to the counters and the peer's state, and
  // logs it.
  void CountExchange(const std::string& peer, const replication::ExchangeDriver* driver,
                     const absl::Status& status);
  peer::v1::Peer::Stub* StubFor(const std::string& peer);

  // Constant after construction.
  storage::Store* const store_;
  const AntiEntropyOptions options_;

  std::atomic<bool> running_;
  RateLimiter limiter_;
  absl::Notification stop_;

  // Held by Start() and Stop() (never by the threads themselves), so that
  // they may race: the threads are made and joined under it. Lock order:
  // threads_mu_, then mu_.
  absl::Mutex threads_mu_;
  std::thread thread_ ABSL_GUARDED_BY(threads_mu_);
  std::thread watchdog_ ABSL_GUARDED_BY(threads_mu_);

  // Counters (this node as either side).
  std::atomic<int64_t> started_{0}, completed_{0}, failed_{0}, equal_roots_{0},
      differing_leaves_{0}, keys_sent_{0}, keys_received_{0}, bytes_sent_{0},
      bytes_received_{0}, refused_clock_{0}, over_limits_{0}, not_asked_{0},
      keys_streamed_{0}, promoted_{0}, yielded_{0};
  // bytes_sent_ by part (kv.v1.AntiEntropyBytes).
  std::atomic<int64_t> bytes_digests_{0}, bytes_fingerprints_{0}, bytes_diffs_{0},
      bytes_wants_{0}, bytes_records_{0};

  // Never held while a driver runs (it blocks on storage and the limiter).
  mutable absl::Mutex mu_;
  // The session rules and table, and the peer list.
  replication::Sessions sessions_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, PeerState> peer_state_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<peer::v1::Peer::Stub>> stubs_
      ABSL_GUARDED_BY(mu_);
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  // How to end each running exchange (its gRPC context's TryCancel): used
  // by the watchdog and by Stop().
  std::map<replication::Sessions::Id, std::function<void()>> cancel_
      ABSL_GUARDED_BY(mu_);
  // Sessions cut short, and why: by the watchdog (their status is
  // DEADLINE_EXCEEDED), or by a newer exchange from their peer
  // (Sessions::Supersede). The first cause counts.
  std::map<replication::Sessions::Id, Cut> cut_ ABSL_GUARDED_BY(mu_);
  // Exchanges running at idle CPU priority: their thread and start, until
  // the watchdog promotes them (options_.idle_promote_after) or they end.
  struct IdleExchange {
    int tid = 0;
    int64_t since_ms = 0;
  };
  std::map<replication::Sessions::Id, IdleExchange> idle_ ABSL_GUARDED_BY(mu_);
  void RegisterIdle(replication::Sessions::Id id, const ScopedCpuPriority& priority)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Per peer node id; entries are never removed (one per node ever seen,
  // each bounded by PeerRefusals' own limit).
  std::map<uint64_t, std::unique_ptr<replication::PeerRefusals>> refusals_
      ABSL_GUARDED_BY(mu_);
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
