// The one driver of anti-entropy exchanges, shared by the gRPC server
// (server/anti_entropy.cc) and the simulator (tests/sim/simulator.cc).
//
// Two pieces, both pure (no threads, sockets, clocks or randomness inside:
// the time, the salt and every random draw are passed in):
//
//  - ExchangeDriver runs one side of one exchange over an ExchangeStream. The
//    transport feeds it each message read from the peer (OnMessage); it steps
//    the core (replication::Exchange), applies the records the core returns
//    with storage::Store::ApplyBatch (counting refusals) and writes the
//    core's messages to the stream. A responder is admitted only after a
//    valid Hello: it calls the Admit function it was given, before it sends
//    anything.
//
//  - Sessions holds a node's session rules: which exchanges run (to and from
//    whom, since when, last message when), the peer list and the choice of
//    the next peer. The rules:
//      * An incoming exchange takes a serving slot only after a valid Hello;
//        at most max_incoming are served at once (UNAVAILABLE beyond).
//      * A node does not initiate to a peer it is serving (that would stream
//        the same differences twice), nor run two exchanges to one peer; it
//        does initiate to other peers while it serves.
//      * When two nodes start exchanges with each other at once, the one
//        with the lower node id refuses the other's (ABORTED) and only its
//        own runs. A peer whose node id is not known yet counts as possibly
//        the same peer.
//      * Every exchange ends at an overall deadline, and after idle_timeout
//        without a message from the peer (Expired()).
//      * A node being filled (one of its exchanges declared ranges empty, so
//        the peer streams them: MarkFilling) neither starts nor admits an
//        exchange with another peer until that one ends: the other peer
//        would see the same ranges empty and stream them too.
//
// A transport drives them like this (the server blocks on a stream, the
// simulator delivers scheduled events; the calls are the same):
//   initiator: id = sessions.BeginOutgoing(peer, now); driver =
//     ExchangeDriver::Initiate(store, options, salt, stream); driver->Start();
//     for each message read: sessions.Touch(id, now); driver->OnMessage(m);
//     until driver->done(); then sessions.End(id).
//   responder: id = sessions.BeginIncoming(now); driver =
//     ExchangeDriver::Respond(store, options, stream,
//       [&](uint64_t peer) { return sessions.Admit(id, peer); });
//     for each message read: as above.
//   a timer: for each id in sessions.Expired(now), end that exchange.
//
// Thread safety: neither class is thread-safe. A Sessions is one node's
// table: a multi-threaded transport guards it with a mutex (never held while
// a driver runs). An ExchangeDriver is used by one thread at a time.
#ifndef KV_REPLICATION_SESSION_H_
#define KV_REPLICATION_SESSION_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/peer.pb.h"
#include "replication/exchange.h"
#include "storage/store.h"

namespace kv::replication {

// The sending half of one exchange's ordered, reliable message stream.
class ExchangeStream {
 public:
  virtual ~ExchangeStream() = default;
  // Sends `msg` after every message written before it. May block (a rate
  // limit, flow control).
  // Errors: UNAVAILABLE when the stream is closed or broken.
  virtual absl::Status Write(const peer::v1::ExchangeMessage& msg) = 0;
};

// Called once by a responder after the peer's valid Hello and before any
// answer is sent; a non-OK status refuses the exchange and is what
// OnMessage returns.
using AdmitFn = std::function<absl::Status(uint64_t peer_node_id)>;

class ExchangeDriver {
 public:
  // The side that opens the stream; Start() sends its Hello. `store` and
  // `stream` must outlive the driver. `salt` should be random per exchange.
  // Errors: as Exchange::Initiator (INVALID_ARGUMENT for bad options).
  static absl::StatusOr<std::unique_ptr<ExchangeDriver>> Initiate(
      storage::Store* store, const ExchangeOptions& options, uint64_t salt,
      ExchangeStream* stream);

  // The side that accepts the stream. `admit` may be empty (always admitted).
  // Errors: as Exchange::Responder.
  static absl::StatusOr<std::unique_ptr<ExchangeDriver>> Respond(
      storage::Store* store, const ExchangeOptions& options,
      ExchangeStream* stream, AdmitFn admit);

  ExchangeDriver(const ExchangeDriver&) = delete;
  ExchangeDriver& operator=(const ExchangeDriver&) = delete;

  // Sends what the core queued on creation (the initiator's Hello); a no-op
  // for a responder. Call once, before the first OnMessage.
  // Errors: the stream's Write error.
  absl::Status Start();

  // Handles one message read from the peer, in stream order: steps the
  // core, applies the records it returns and writes its messages.
  // Success: OK; done() says whether the exchange finished.
  // Errors (the exchange is then over; the transport closes the stream with
  // this status):
  //  - INVALID_ARGUMENT: the peer broke the protocol (Exchange::Step); a
  //    responder's first message that is not a Hello. Records of earlier
  //    valid messages of this call are still applied.
  //  - what Admit returned (refused: nothing was sent).
  //  - FAILED_PRECONDITION: OnMessage after the exchange ended.
  //  - the stream's Write error; Store errors (ApplyBatch, reads).
  absl::Status OnMessage(const peer::v1::ExchangeMessage& msg);

  // The exchange finished cleanly on this side (its last messages written).
  bool done() const { return exchange_->done() && status_.ok(); }
  // OnMessage or Start returned an error, kept here.
  const absl::Status& status() const { return status_; }
  bool is_initiator() const { return exchange_->is_initiator(); }
  // The exchange declared ranges of this node empty (Sessions::MarkFilling).
  bool declared_empty() const { return exchange_->declared_empty(); }
  // Responder: admitted after a valid Hello (holds a serving slot).
  bool admitted() const { return admitted_; }
  // Responder: the peer's node id from its Hello, else 0.
  uint64_t peer_node_id() const { return exchange_->peer_node_id(); }
  const ExchangeStats& stats() const { return exchange_->stats(); }
  // Records stored (newer than the local copy) and refused for their clock
  // (storage::ApplyResult), over the whole exchange.
  int64_t records_applied() const { return applied_; }
  int64_t records_refused() const { return refused_; }
  // Remembers in `refusals` what this node refuses from the peer for its
  // clock, and has the exchange use it (Exchange::set_refusals). May be
  // null. `refusals` must outlive the driver; set it before the peer's turn
  // after Hello (a responder: in its Admit function).
  void set_refusals(PeerRefusals* refusals) {
    refusals_ = refusals;
    exchange_->set_refusals(refusals);
  }
  // Why the first refused record was refused (OK when none was).
  const absl::Status& first_refusal() const { return first_refusal_; }
  // Why the first record over this node's limits was skipped (OK when none
  // was; the count is stats().records_over_limits).
  const absl::Status& first_over_limits() const {
    return exchange_->first_over_limits();
  }

 private:
  ExchangeDriver(storage::Store* store, std::unique_ptr<Exchange> exchange,
                 ExchangeStream* stream, AdmitFn admit);
  absl::Status OnMessageImpl(const peer::v1::ExchangeMessage& msg);
  absl::Status ApplyRecords(const std::vector<storage::Record>& records);
  absl::Status Flush();  // Applies and writes what the core queued.

  // Constant after construction.
  storage::Store* const store_;
  const std::unique_ptr<Exchange> exchange_;
  ExchangeStream* const stream_;
  const AdmitFn admit_;

  bool admitted_;        // Initiator: always; responder: after Admit.
  bool ended_ = false;   // Done or failed; no more OnMessage.
  absl::Status status_;  // First error.
  int64_t applied_ = 0;
  int64_t refused_ = 0;
  absl::Status first_refusal_;
  PeerRefusals* refusals_ = nullptr;  // Not owned; may be null.
};

// Whether an exchange that ended cleanly was cut short by a budget: this
// side left differing leaves or records for later
// (ExchangeOptions::max_differing_leaves, max_record_bytes_per_exchange), or
// the peer said it did (ExchangeMessage.cut_by_budget). A driver then starts
// the next exchange with the same peer at once (kvd does, a bounded number
// of times in a row) rather than after its interval.
bool CutByBudget(const ExchangeStats& stats);

struct SessionOptions {
  // Exchanges served at once (responder side), >= 1.
  int max_incoming = 4;
  // Exchanges this node runs as initiator at once, >= 1 (kvd starts one per
  // round from one thread).
  int max_outgoing = 1;
  // An exchange not finished this long after it began ends (both sides).
  int64_t deadline_ms = 30000;
  // An exchange that got no message from the peer for this long ends (both
  // sides; a responder also before its Hello).
  int64_t idle_timeout_ms = 10000;
};

// One node's table of running exchanges, its rules, and its peers.
class Sessions {
 public:
  using Id = uint64_t;

  // `self_node_id`: this node's id, for the yield rule.
  Sessions(uint64_t self_node_id, SessionOptions options);

  // Replaces the peer list (addresses; gossip feeds it the live members).
  // Node ids learned for addresses are kept.
  void SetPeers(std::vector<std::string> peers);
  const std::vector<std::string>& peers() const { return peers_; }

  // Records that `address` is node `node_id` (the transport learns it from
  // the responder; gossip knows it). 0 forgets it.
  void LearnPeerId(const std::string& address, uint64_t node_id);
  // The node id learned for `address`, else 0.
  uint64_t PeerId(const std::string& address) const;

  // The peer for the next round, chosen uniformly by `draw` (any 64-bit
  // random number) among the peers CanInitiate allows; nullopt when none.
  std::optional<std::string> PickPeer(uint64_t draw) const;

  // Whether this node may open an exchange to `address` now: not at
  // max_outgoing, nor while it already runs one to it, nor while it serves
  // that peer (by node id; while the address's id is unknown, while it
  // serves any peer).
  bool CanInitiate(const std::string& address) const;

  // Registers an exchange this node opens to `address` at `now_ms`.
  // Errors: UNAVAILABLE when CanInitiate(address) is false.
  absl::StatusOr<Id> BeginOutgoing(const std::string& address, int64_t now_ms);

  // Registers a stream a peer opened, at `now_ms`; it holds no serving slot
  // until Admit. Always succeeds: the idle timeout bounds its life.
  Id BeginIncoming(int64_t now_ms);

  // Called by the responder's driver after a valid Hello from `peer_node_id`.
  // Success: OK, the exchange holds a serving slot until End.
  // Errors: UNAVAILABLE at max_incoming; ABORTED when this node runs an
  // exchange of its own to that peer (or to a peer of unknown id) and has the
  // lower node id (it yields), or while another peer fills it (MarkFilling);
  // NOT_FOUND for an unknown or ended id.
  absl::Status Admit(Id id, uint64_t peer_node_id);

  // A valid Hello from `peer_node_id` arrived on incoming exchange `id`,
  // before Admit. A peer runs one exchange with this node at a time and
  // waits for the end of each, so its other incoming exchanges here were
  // given up on its side (its deadline passed, it restarted) and only hold
  // serving slots and stream what nobody reads: they lose their slot (and
  // stop counting as filling) now, and are returned for the caller to
  // cancel. None for peer_node_id 0 (unknown).
  std::vector<Id> Supersede(Id id, uint64_t peer_node_id);

  // A message arrived on exchange `id` at `now_ms` (resets its idle timer).
  // Unknown ids are ignored.
  void Touch(Id id, int64_t now_ms);

  // The exchanges past their deadline or idle timeout at `now_ms`, in id
  // order. They stay registered until End.
  std::vector<Id> Expired(int64_t now_ms) const;

  // Forgets exchange `id` (frees its slot). Unknown ids are ignored.
  void End(Id id);

  // Exchange `id` declared ranges of this node empty (the driver's
  // declared_empty()): see the rules above. Unknown ids are ignored.
  void MarkFilling(Id id);

  // The address an outgoing exchange was opened to ("" for incoming or
  // unknown ids).
  std::string AddressOf(Id id) const;

  int incoming_admitted() const { return admitted_; }
  int outgoing() const;
  size_t size() const { return sessions_.size(); }
  uint64_t self_node_id() const { return self_; }

 private:
  struct Session {
    bool outgoing = false;
    std::string address;   // Outgoing: the peer's address.
    uint64_t peer_id = 0;  // Incoming: from Hello, once admitted.
    bool admitted = false;
    bool filling = false;  // MarkFilling.
    int64_t started_ms = 0;
    int64_t last_ms = 0;
  };
  // Whether a filling exchange runs with a peer other than `address` (an
  // outgoing one) or `peer_id` (an incoming one), given as far as known.
  bool FilledByOther(const std::string& address, uint64_t peer_id) const;

  const uint64_t self_;
  const SessionOptions options_;
  std::vector<std::string> peers_;
  std::map<std::string, uint64_t> peer_ids_;  // Address -> node id learned.
  std::map<Id, Session> sessions_;
  Id next_id_ = 1;
  int admitted_ = 0;  // Incoming sessions holding a serving slot.
};

}  // namespace kv::replication

#endif  // KV_REPLICATION_SESSION_H_
