// Write fan-out, consistency levels and replica reads on a real node: the
// gRPC driver of replication::Fanout and the kv.peer.v1.Replica service.
//
// Replicator owns the Fanout core. KvService hands it every write once the
// write is durable locally (Replicate); it queues the records for the live
// peers and starts one async unary Replica.Push call per batch per peer
// (at most FanoutOptions::max_in_flight_per_peer at once, each with
// push_deadline), so a write spreads in about one round trip (under load,
// batches that are not full go at most every min_push_interval_ms, 2 ms, so
// that the records go in few calls); a failed push
// is retried after a backoff, and writes for members that are down are held
// for them within the queue bounds (hinted handoff, replication/fanout.h).
// A ONE write is
// acknowledged before any push; a QUORUM/ALL write's callback runs when the
// core reports its outcome (enough durable peer acks, impossible, or the
// deadline). A frozen peer holds at most its queue bound plus the batches in
// flight; what is dropped is left to anti-entropy.
//
// Read at QUORUM/ALL asks every live peer (Replica.Read), answers once the
// level's count of replicas answered (the coordinator included) with the
// newest record, and once every asked peer answered or failed pushes that
// record to the stale ones (read repair; a stale local copy is applied
// directly).
//
// Membership: a function giving the cluster size N (members alive, suspect
// or down, self included; not left or removed) and the live peers' addresses
// (gossip). It is read on every QUORUM/ALL request and about every
// peer_refresh for the peers ONE writes go to.
//
// Thread safety: thread-safe. A background thread ticks the core (write
// deadlines; batches held back by FanoutOptions::min_push_interval_ms or a
// backoff go when their time comes) and refreshes the peers; call callbacks run on gRPC's threads.
// All calls into the core happen under mu_; no callback given by a caller is
// run while mu_ is held, and mu_ is never held while starting a call.
#ifndef KV_SERVER_FANOUT_SERVICE_H_
#define KV_SERVER_FANOUT_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "proto/kv.pb.h"
#include "proto/peer.grpc.pb.h"
#include "replication/fanout.h"
#include "replication/wire.h"
#include "storage/store.h"

namespace kv::server {

struct ReplicatorOptions {
  replication::FanoutOptions fanout;
  // Push ONE writes to the live peers at once. Off: only QUORUM/ALL writes
  // and read repair push (anti-entropy alone spreads ONE writes).
  bool enabled = true;
  // Deadline of one Push call: how long a frozen peer holds a batch.
  absl::Duration push_deadline = absl::Seconds(1);
  // Longest a QUORUM/ALL request waits for replicas (less when the client's
  // own deadline is nearer).
  absl::Duration ack_timeout = absl::Seconds(2);
  absl::Duration tick = absl::Milliseconds(5);
  absl::Duration peer_refresh = absl::Milliseconds(100);
  int max_message_bytes = 4 << 20;
  int max_reconnect_backoff_ms = 1000;
};

// The cluster as gossip sees it now.
struct ClusterView {
  int members = 1;                      // N: self included.
  std::vector<std::string> live_peers;  // Peer addresses, self excluded.
  // Members marked down (not left or removed): their fan-out queues are
  // held and pushed when they are live again (hinted handoff).
  std::vector<std::string> down_peers;
  std::string self_address;             // This node's peer address ("" unknown).
};

struct ReplicatorStats {
  replication::FanoutStats fanout;
  int64_t push_calls_failed = 0;
  int64_t reads_repaired = 0;  // Stale replicas sent the newest record.
};

class Replicator {
 public:
  using MembershipFn = std::function<ClusterView()>;
  using WriteDone = absl::AnyInvocable<void(absl::Status) &&>;
  using ReadDone =
      absl::AnyInvocable<void(absl::StatusOr<std::optional<storage::Record>>) &&>;

  // `store` must outlive this object. `membership` is called without any
  // lock of this class held.
  Replicator(storage::Store* store, ReplicatorOptions options,
             MembershipFn membership);
  ~Replicator();  // Stop().

  // Starts the tick thread.
  void Start();
  // Cancels the calls in flight and waits for them; pending writes and
  // reads get UNAVAILABLE. Later requests get UNAVAILABLE. Idempotent.
  void Stop();

  // How many replicas `level` needs and which peers to push to, checked
  // before a QUORUM/ALL write is made. Errors: UNAVAILABLE when fewer members
  // are live than the level needs (the message names live, needed and N).
  struct Plan {
    replication::ConsistencyLevel level = replication::ConsistencyLevel::kOne;
    int needed = 1;
    int members = 1;
    std::vector<std::string> targets;  // Empty for ONE: the current peers.
  };
  absl::StatusOr<Plan> PlanFor(replication::ConsistencyLevel level);

  // Pushes `records` (durable locally, distinct keys) to the peers and calls
  // `done` once the plan's count of replicas hold them: at once for ONE (on
  // the calling thread); for QUORUM/ALL from a gRPC or the tick thread, with
  // OK, or DEADLINE_EXCEEDED (deadline passed) / UNAVAILABLE (peers failed)
  // naming acks received vs needed. `deadline` bounds the wait (the earlier
  // of it and now + ack_timeout).
  void Replicate(std::vector<storage::Record> records, const Plan& plan,
                 absl::Time deadline, WriteDone done);

  // A QUORUM/ALL read of `key` (ONE is the caller's local read). `done` gets
  // the newest record among the answers (nullopt: no replica holds the key).
  // Errors: UNAVAILABLE (too few live members, or peers failed) or
  // DEADLINE_EXCEEDED, naming the replicas that answered and the count
  // needed; storage errors of the local read.
  void Read(std::string key, replication::ConsistencyLevel level,
            absl::Time deadline, ReadDone done);

  // Rumor forwarding: `records` came in a push from `from` (a peer address)
  // with `hops` (hops[i] for records[i]), and each changed this node's store.
  // Queues those with hops left for random live peers (Fanout::Forward) and
  // starts the pushes. No-op when disabled or stopped.
  // REQUIRES: hops.size() == records.size().
  void Forward(std::span<const storage::Record> records,
               std::span<const uint32_t> hops, const std::string& from);

  ReplicatorStats stats() const;

 private:
  struct PushCall;
  struct ReadState;
  struct ReadCall;

  void Loop();
  // Starts the calls of the batches the core has ready and runs the write
  // callbacks of finished writes. REQUIRES: mu_ not held.
  void Pump();
  void PushDone(PushCall* call, const grpc::Status& status);
  void ReadReplied(const std::shared_ptr<ReadState>& state, ReadCall* call,
                   const grpc::Status& status);
  void Repair(const std::vector<std::string>& peers, const storage::Record& record);
  peer::v1::Replica::Stub* StubForLocked(const std::string& peer)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The write callbacks of the outcomes the core has ready.
  std::vector<std::pair<WriteDone, absl::Status>> TakeDoneLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t DeadlineMs(absl::Time deadline) const;

  // Constant after construction.
  storage::Store* const store_;
  const ReplicatorOptions options_;
  const MembershipFn membership_;

  absl::Notification stop_;
  std::thread thread_;

  // State below is protected by mu_.
  mutable absl::Mutex mu_;
  replication::Fanout core_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, WriteDone> waiting_ ABSL_GUARDED_BY(mu_);  // By write id.
  std::map<std::string, std::unique_ptr<peer::v1::Replica::Stub>> stubs_
      ABSL_GUARDED_BY(mu_);
  std::set<PushCall*> pushes_ ABSL_GUARDED_BY(mu_);
  std::set<ReadCall*> reads_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  int64_t push_calls_failed_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t reads_repaired_ ABSL_GUARDED_BY(mu_) = 0;
  std::string self_address_ ABSL_GUARDED_BY(mu_);  // Sent as PushRequest.sender.
  // When the tick thread wakes next (monotonic ms); Pump makes it earlier,
  // through wake_, for a batch the core holds back until a time.
  int64_t loop_wake_ms_ ABSL_GUARDED_BY(mu_) = 0;
  absl::CondVar wake_;
  std::vector<std::string> down_peers_ ABSL_GUARDED_BY(mu_);  // As last given.
};

// The Replica service: pushed records and replica reads from other nodes.
// With a `forwarder`, pushed records that carry hops (rumor mongering) and
// are new to this node (stored version older, or none, before the apply)
// are handed to forwarder->Forward once applied. Two copies of one version
// arriving at once may both count as new and both be forwarded: a few extra
// messages, never a lost one.
//
// Thread safety: handlers run concurrently; the Store is thread-safe.
class ReplicaService final : public peer::v1::Replica::CallbackService {
 public:
  // `store` and `forwarder` (may be null: never forwards) must outlive the
  // service.
  ReplicaService(storage::Store* store, replication::RecordLimits limits,
                 Replicator* forwarder = nullptr)
      : store_(store), limits_(limits), forwarder_(forwarder) {}

  grpc::ServerUnaryReactor* Push(grpc::CallbackServerContext* ctx,
                                 const peer::v1::PushRequest* req,
                                 peer::v1::PushReply* reply) override;
  grpc::ServerUnaryReactor* Read(grpc::CallbackServerContext* ctx,
                                 const peer::v1::ReadRequest* req,
                                 peer::v1::ReadReply* reply) override;

  int64_t records_applied() const { return applied_.load(); }
  int64_t records_refused_clock() const { return refused_clock_.load(); }
  // Well-formed pushed records over this node's key/value limits, skipped.
  int64_t records_over_limits() const { return over_limits_.load(); }

 private:
  storage::Store* const store_;
  const replication::RecordLimits limits_;
  Replicator* const forwarder_;  // May be null.
  std::atomic<int64_t> applied_{0};
  std::atomic<int64_t> refused_clock_{0};
  std::atomic<int64_t> over_limits_{0};
};

// The fan-out counters of `replicator` and `replica` (either may be null:
// its fields stay 0) as kv.v1.FanoutStats (Admin.Stats).
void FillFanoutStats(const Replicator* replicator, const ReplicaService* replica,
                     kv::v1::FanoutStats* out);

}  // namespace kv::server

#endif  // KV_SERVER_FANOUT_SERVICE_H_
