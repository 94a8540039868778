// Gossip membership and failure detection as a pure state machine.
//
// Every node owns one versioned MemberState (proto/peer.proto): its id,
// name, addresses, generation (start epoch), a version bumped on every
// heartbeat, its status (alive, left, removed) and small application states
// (Merkle root, key count, wall clock, build version). Nodes reconcile these
// states with Scuttlebutt (van Renesse et al., 2008): every Tick a node sends
// a SYN digest to one random live member; the receiver answers ACK with the
// states it holds newer and the digests of those it wants; the initiator
// answers ACK2 with them. A state with a higher (generation, version)
// replaces an older one. Messages are bounded (GossipOptions::
// max_message_bytes): states go most out of date first.
//
// Targets per Tick (Cassandra's rule): one random live member; with
// probability down/(live+1) also one random down member; and a random seed
// when no live member is known or, with probability seeds/(live+down+1),
// when the live target was not a seed. So a node joins through any seed and a
// healed partition merges.
//
// Failure detection is phi-accrual (Hayashibara et al., 2004) on the arrival
// times of newer heartbeats of each member, with an exponential model:
// phi = (now - last) / mean * log10(e), mean an exponentially weighted
// average of inter-arrival times, never below the gossip interval. Suspect at
// phi >= phi_suspect, down at phi >= phi_down; a newer heartbeat makes a
// member alive again; a higher generation is a restart. Local health
// (Lifeguard, Dadgar et al., 2018): when this node's own Tick comes late (it
// was frozen, starved of CPU), the gap is not counted against others (their
// last-arrival times move forward by it) and the thresholds are multiplied by
// (1 + local_health), which rises with every late tick and falls back with
// on-time ones, so a slow node suspects its peers more slowly. A verdict
// spreads: SYN and ACK carry the sender's down members at the newest state
// it holds of each; a receiver that holds nothing newer of one marks it down
// too. A member wrongly marked down is alive again at its next heartbeat.
//
// Node id conflicts: a receiver that knows the sender's node id under
// another peer address and another generation, alive, answers with
// `conflict`; the sender, when it is the newer generation, fails
// (fatal_error()) and stops gossiping. A removed id is refused the same way.
//
// No I/O, threads, clock or global randomness: time is passed to every call
// and the random source is seeded at construction, so the same inputs give
// the same outputs.
//
// Thread safety: not thread-safe; the driver serializes calls.
#ifndef KV_REPLICATION_GOSSIP_H_
#define KV_REPLICATION_GOSSIP_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "proto/peer.pb.h"

namespace kv::replication {

struct GossipOptions {
  // The driver ticks about this often; also the floor of the failure
  // detector's mean inter-arrival time.
  int64_t interval_ms = 200;
  // Phi levels of suspicion and of conviction. Heartbeats arrive about once
  // every 1.2 intervals (simulator), so with a 200 ms interval down comes
  // after ~6 / 0.434 * 1.2 * 0.2 s = 3.3 s of silence. Cassandra's 8 (with a
  // 1 s interval) would take ~18 s; the chance that a healthy member's
  // heartbeat is late by 14 mean intervals is what 6 buys (e^-13.8 = 1e-6 in
  // the exponential model; in practice only real stalls, which Lifeguard's
  // local health covers on the slow side).
  double phi_suspect = 4.0;
  double phi_down = 6.0;
  // Weight of a new inter-arrival sample in the mean: 1/window.
  int window = 32;
  // A Tick later than this many intervals after the previous one counts as
  // this node being unhealthy (Lifeguard).
  double late_tick_intervals = 3.0;
  int max_local_health = 8;
  // Most serialized bytes of one message (digests or states beyond are left
  // for later rounds; at least one state is always sent).
  int64_t max_message_bytes = 256 << 10;
  // A member's clock more than this far from ours is flagged.
  int64_t max_clock_drift_ms = 3'600'000;
  // Received messages with more digests or states than this are malformed.
  int64_t max_entries = 100000;
  // Most down members listed in one message.
  int max_down_hints = 64;
};

// The local node's identity, fixed for a run.
struct LocalNode {
  uint64_t node_id = 0;
  std::string name;
  std::string client_address;
  std::string peer_address;  // Gossip and exchanges reach it here.
  uint64_t generation = 0;   // Start epoch, e.g. Unix ms at start.
  std::string build_version;
};

// Application states refreshed on every Tick.
struct AppState {
  std::string merkle_root;  // 16 bytes.
  int64_t key_count = 0;
  int64_t wall_clock_ms = 0;
};

enum class MemberHealth { kAlive, kSuspect, kDown, kLeft, kRemoved };
const char* HealthName(MemberHealth health);

// One member as this node sees it.
struct MemberView {
  peer::v1::MemberState state;
  MemberHealth health = MemberHealth::kAlive;
  bool is_self = false;
  double phi = 0;
  int64_t heartbeat_age_ms = 0;   // Since the last newer heartbeat.
  bool clock_offset_known = false;
  int64_t clock_offset_ms = 0;    // Its clock minus ours.
  bool clock_skewed = false;
};

// Something a driver may log or count.
struct GossipEvent {
  enum class Kind {
    kJoined,     // A member seen for the first time.
    kRestarted,  // A higher generation.
    kSuspect,
    kDown,
    kAlive,      // Back from suspect or down.
    kLeft,
    kRemoved,
    kClockSkew,  // Clock offset over max_clock_drift_ms (once per member
                 // until it comes back within).
    kConflict,   // Refused a node's id (this node's fatal_error on self).
  };
  Kind kind;
  uint64_t node_id = 0;
  std::string name;
  std::string detail;
};
const char* EventName(GossipEvent::Kind kind);

struct OutgoingGossip {
  std::string to;  // Peer address.
  peer::v1::GossipMessage message;
};

struct GossipStats {
  int64_t messages_sent = 0;
  int64_t bytes_sent = 0;
  int64_t messages_received = 0;
  int64_t bytes_received = 0;
  int64_t malformed = 0;
  int64_t down_events = 0;
  int64_t suspect_events = 0;  // Members this node's detector made suspect.
  // Members heard from again, in the same generation (no restart), after
  // this node held them suspect or down: each a failure-detector verdict
  // the member's own heartbeat refuted (a false positive, or a pause or
  // partition that ended).
  int64_t recovered_from_suspect = 0;
  int64_t recovered_from_down = 0;
  int64_t clock_skew_events = 0;
};

class Gossiper {
 public:
  // `seeds` are peer addresses (this node's own is skipped). `seed` seeds the
  // random choice of targets.
  Gossiper(LocalNode self, std::vector<std::string> seeds,
           GossipOptions options, uint64_t seed);

  // One round: a heartbeat (version + 1, `app` stored), failure detection,
  // then SYNs to the targets (TakeMessages). After fatal_error() or Leave()
  // it does nothing.
  void Tick(int64_t now_ms, const AppState& app);

  // Handles one received message.
  // Errors: INVALID_ARGUMENT when it is malformed (counted; nothing of it is
  // applied).
  absl::Status Step(const peer::v1::GossipMessage& message, int64_t now_ms);

  // Announces a graceful departure: status left, version + 1, pushed (as an
  // ACK2 carrying this node's state) to every live member. Then inactive.
  void Leave(int64_t now_ms);

  // Forgets `node_id` for good (MEMBER_REMOVED, spread by gossip).
  // Errors: NOT_FOUND unknown; FAILED_PRECONDITION for self or a member
  // alive or suspect.
  absl::Status Remove(uint64_t node_id, int64_t now_ms);

  std::vector<OutgoingGossip> TakeMessages();
  std::vector<GossipEvent> TakeEvents();

  // Every known member, self included, in node id order.
  std::vector<MemberView> Members(int64_t now_ms) const;
  // Peer addresses of members alive or suspect (not self), sorted.
  std::vector<std::string> LivePeers() const;
  // Whether this node considers `node_id` alive or suspect (false: unknown,
  // down, left, removed, self).
  bool IsLive(uint64_t node_id) const;
  // This node's view of `node_id` without copying states: nullopt when
  // unknown; kAlive for self.
  std::optional<MemberHealth> HealthOf(uint64_t node_id) const;
  // Number of members known, self included.
  size_t size() const { return members_.size() + 1; }
  // Changes whenever LivePeers() may have changed (cheap to poll).
  uint64_t live_version() const { return live_version_; }

  // Not OK once this node's id was refused; the node must stop.
  const absl::Status& fatal_error() const { return fatal_; }
  const LocalNode& self() const { return self_; }
  const GossipStats& stats() const { return stats_; }
  int local_health() const { return local_health_; }

 private:
  struct Member {
    peer::v1::MemberState state;
    MemberHealth health = MemberHealth::kAlive;
    int64_t last_arrival_ms = 0;  // Of a newer heartbeat.
    double mean_interval_ms = 0;
    int64_t samples = 0;
    bool clock_offset_known = false;
    int64_t clock_offset_ms = 0;
    bool clock_skew_reported = false;
  };

  double Phi(const Member& m, int64_t now_ms) const;
  // A newer heartbeat of `m` arrived (fresh: first of a member or
  // generation): a detector sample, and alive again.
  void NoteHeartbeat(Member& m, int64_t now_ms, bool fresh, MemberHealth before);
  void Detect(int64_t now_ms);
  void SendSyn(const std::string& to, int64_t now_ms);
  peer::v1::GossipMessage NewMessage(peer::v1::GossipMessage::Kind kind,
                                     int64_t now_ms) const;
  // Applies a received state (full or heartbeat-only); returns true when it
  // replaced ours.
  bool ApplyState(const peer::v1::MemberState& state, int64_t now_ms);
  bool ApplyFullState(const peer::v1::MemberState& state, int64_t now_ms);
  void HandleSyn(const peer::v1::GossipMessage& m, int64_t now_ms);
  void HandleAck(const peer::v1::GossipMessage& m, int64_t now_ms);
  // Adds states to `out` most out of date first, within the byte budget.
  struct ToSend {
    uint64_t lag;  // How far behind the receiver is: most behind go first.
    const peer::v1::MemberState* state;
    bool heartbeat_only;  // The receiver holds its app_version.
  };
  // Queues `mine` for a receiver holding (gen, ver) of it (0, 0: nothing).
  static void Consider(const peer::v1::MemberState& mine, uint64_t gen, uint64_t ver,
                       std::vector<ToSend>* out);
  void AddStates(std::vector<ToSend> by_lag, peer::v1::GossipMessage* out) const;
  std::string ConflictWith(const peer::v1::GossipMessage& m) const;
  void NoteClock(uint64_t node_id, int64_t sent_ms, int64_t now_ms);
  // Our wall clock at `now_ms`, 0 before the first Tick.
  int64_t WallNow(int64_t now_ms) const;
  void AddDownHints(peer::v1::GossipMessage* out);
  void ApplyDownHints(const peer::v1::GossipMessage& m);
  void Event(GossipEvent::Kind kind, const Member& m, std::string detail = "");
  void Send(std::string to, peer::v1::GossipMessage message);
  bool IsSeedAddress(const std::string& address) const;
  uint64_t Rand();

  const GossipOptions options_;
  const LocalNode self_;
  std::vector<std::string> seeds_;  // Without our own address.
  std::mt19937_64 rng_;
  peer::v1::MemberState self_state_;
  std::map<uint64_t, Member> members_;  // Not self.
  int64_t last_tick_ms_ = -1;
  int64_t last_wall_ms_ = 0;  // The wall clock passed to the last Tick.
  int local_health_ = 0;
  uint64_t live_version_ = 0;
  bool active_ = true;
  absl::Status fatal_;
  std::vector<OutgoingGossip> outbox_;
  std::vector<GossipEvent> events_;
  GossipStats stats_;
};

// Transport for GossipDriver: delivers one message to a peer address, best
// effort (a lost message is just a lost message).
class GossipTransport {
 public:
  virtual ~GossipTransport() = default;
  virtual void Send(const std::string& to, const peer::v1::GossipMessage& message) = 0;
};

// The one driver of a Gossiper, used by the gRPC server and the simulator:
// feeds ticks and received messages to the core and hands its messages to
// the transport and its events to a listener. The caller provides the time
// and the application state and calls Tick about every
// GossipOptions::interval_ms.
//
// Thread safety: not thread-safe; the caller serializes calls.
class GossipDriver {
 public:
  using EventListener = std::function<void(const GossipEvent&)>;
  // `transport` must outlive the driver.
  GossipDriver(Gossiper* core, GossipTransport* transport, EventListener on_event);

  void Tick(int64_t now_ms, const AppState& app);
  absl::Status Receive(const peer::v1::GossipMessage& message, int64_t now_ms);
  void Leave(int64_t now_ms);
  absl::Status Remove(uint64_t node_id, int64_t now_ms);
  // True when the live peer list changed since the last call.
  bool TakeLivePeersChanged();

 private:
  void Flush();

  Gossiper* const core_;
  GossipTransport* const transport_;
  EventListener on_event_;
  uint64_t last_live_version_ = 0;
  bool live_changed_ = true;
};

}  // namespace kv::replication

#endif  // KV_REPLICATION_GOSSIP_H_
