#include "replication/session.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "storage/status_macros.h"

namespace kv::replication {

bool CutByBudget(const ExchangeStats& stats) {
  return stats.skipped_leaves > 0 || stats.records_skipped > 0 ||
         stats.peer_cut_by_budget;
}

using peer::v1::ExchangeMessage;

absl::StatusOr<std::unique_ptr<ExchangeDriver>> ExchangeDriver::Initiate(
    storage::Store* store, const ExchangeOptions& options, uint64_t salt,
    ExchangeStream* stream) {
  KV_ASSIGN_OR_RETURN(std::unique_ptr<Exchange> ex,
                      Exchange::Initiator(store, options, salt));
  return std::unique_ptr<ExchangeDriver>(
      new ExchangeDriver(store, std::move(ex), stream, nullptr));
}

absl::StatusOr<std::unique_ptr<ExchangeDriver>> ExchangeDriver::Respond(
    storage::Store* store, const ExchangeOptions& options,
    ExchangeStream* stream, AdmitFn admit) {
  KV_ASSIGN_OR_RETURN(std::unique_ptr<Exchange> ex,
                      Exchange::Responder(store, options));
  return std::unique_ptr<ExchangeDriver>(
      new ExchangeDriver(store, std::move(ex), stream, std::move(admit)));
}

ExchangeDriver::ExchangeDriver(storage::Store* store,
                               std::unique_ptr<Exchange> exchange,
                               ExchangeStream* stream, AdmitFn admit)
    : store_(store),
      exchange_(std::move(exchange)),
      stream_(stream),
      admit_(std::move(admit)),
      admitted_(exchange_->is_initiator()) {
  // Records streamed for empty ranges go out a message at a time while the
  // rest is read (a responder's only once admitted: until then they wait in
  // Ready, in order, for the Flush after its Admit).
  exchange_->set_flush_hook(
      [this] { return admitted_ ? Flush() : absl::OkStatus(); });
}

absl::Status ExchangeDriver::Start() {
  if (!status_.ok()) return status_;
  status_ = Flush();
  if (!status_.ok()) ended_ = true;
  return status_;
}

absl::Status ExchangeDriver::OnMessage(const ExchangeMessage& msg) {
  if (ended_) {
    return status_.ok() ? absl::FailedPreconditionError(
                              "a message after the exchange finished")
                        : status_;
  }
  status_ = OnMessageImpl(msg);
  if (!status_.ok() || exchange_->done()) ended_ = true;
  return status_;
}

absl::Status ExchangeDriver::OnMessageImpl(const ExchangeMessage& msg) {
  if (!admitted_ && !msg.has_hello()) {
    return absl::InvalidArgumentError(
        "the first message of an exchange must be a Hello");
  }
  absl::Status stepped = exchange_->Step(msg);
  if (!stepped.ok()) {
    // Records of messages handled before are valid: keep them.
    Ready ready = exchange_->TakeReady();
    (void)ApplyRecords(ready.records_to_apply);
    return stepped;
  }
  if (!admitted_) {
    // A valid Hello: only now does the exchange take a serving slot.
    if (admit_) {
      absl::Status admitted = admit_(exchange_->peer_node_id());
      if (!admitted.ok()) return admitted;
    }
    admitted_ = true;
  }
  return Flush();
}

absl::Status ExchangeDriver::ApplyRecords(
    const std::vector<storage::Record>& records) {
  if (records.empty()) return absl::OkStatus();
  // Repair does not fill the key-state cache (storage::ApplyOptions).
  KV_ASSIGN_OR_RETURN(storage::ApplyResult result,
                      store_->ApplyBatch(records, {.cache_new_keys = false}));
  applied_ += result.applied;
  if (result.refused > 0) {
    if (refused_ == 0) first_refusal_ = result.first_refusal;
    refused_ += result.refused;
    if (refusals_ != nullptr) {
      for (size_t i : result.refused_index) refusals_->Add(records[i]);
    }
  }
  return absl::OkStatus();
}

absl::Status ExchangeDriver::Flush() {
  Ready ready = exchange_->TakeReady();
  KV_RETURN_IF_ERROR(ApplyRecords(ready.records_to_apply));
  for (const ExchangeMessage& m : ready.messages) {
    KV_RETURN_IF_ERROR(stream_->Write(m));
  }
  return absl::OkStatus();
}

Sessions::Sessions(uint64_t self_node_id, SessionOptions options)
    : self_(self_node_id), options_(options) {}

void Sessions::SetPeers(std::vector<std::string> peers) {
  peers_ = std::move(peers);
}

void Sessions::LearnPeerId(const std::string& address, uint64_t node_id) {
  if (node_id == 0) {
    peer_ids_.erase(address);
  } else {
    peer_ids_[address] = node_id;
  }
}

uint64_t Sessions::PeerId(const std::string& address) const {
  auto it = peer_ids_.find(address);
  return it == peer_ids_.end() ? 0 : it->second;
}

std::optional<std::string> Sessions::PickPeer(uint64_t draw) const {
  std::vector<const std::string*> eligible;
  for (const std::string& p : peers_) {
    if (CanInitiate(p)) eligible.push_back(&p);
  }
  if (eligible.empty()) return std::nullopt;
  // Modulo bias is below 2^-50 for any realistic list.
  return *eligible[draw % eligible.size()];
}

bool Sessions::FilledByOther(const std::string& address, uint64_t peer_id) const {
  for (const auto& [sid, s] : sessions_) {
    if (!s.filling) continue;
    const bool same = s.outgoing ? s.address == address || (peer_id != 0 && PeerId(s.address) == peer_id)
                                 : peer_id != 0 && s.peer_id == peer_id;
    if (!same) return true;
  }
  return false;
}

void Sessions::MarkFilling(Id id) {
  auto it = sessions_.find(id);
  if (it != sessions_.end()) it->second.filling = true;
}

bool Sessions::CanInitiate(const std::string& address) const {
  if (outgoing() >= options_.max_outgoing) return false;
  const uint64_t id = PeerId(address);
  if (FilledByOther(address, id)) return false;
  for (const auto& [sid, s] : sessions_) {
    if (s.outgoing && s.address == address) return false;
    // A peer of unknown id may be the one served: the two would stream the
    // same differences at once (the yield rule in Admit only covers
    // exchanges that start at the same moment).
    if (!s.outgoing && s.admitted && (id == 0 || s.peer_id == id)) return false;
  }
  return true;
}

absl::StatusOr<Sessions::Id> Sessions::BeginOutgoing(const std::string& address,
                                                     int64_t now_ms) {
  if (!CanInitiate(address)) {
    return absl::UnavailableError(absl::StrCat(
        "an exchange with ", address, " is already running on this node"));
  }
  const Id id = next_id_++;
  Session& s = sessions_[id];
  s.outgoing = true;
  s.address = address;
  s.started_ms = now_ms;
  s.last_ms = now_ms;
  return id;
}

Sessions::Id Sessions::BeginIncoming(int64_t now_ms) {
  const Id id = next_id_++;
  Session& s = sessions_[id];
  s.started_ms = now_ms;
  s.last_ms = now_ms;
  return id;
}

absl::Status Sessions::Admit(Id id, uint64_t peer_node_id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second.outgoing) {
    return absl::NotFoundError(absl::StrCat("no incoming exchange ", id));
  }
  Session& s = it->second;
  if (s.admitted) return absl::OkStatus();
  if (admitted_ >= options_.max_incoming) {
    return absl::UnavailableError(absl::StrCat(
        "this node is already serving ", options_.max_incoming, " exchanges"));
  }
  if (FilledByOther("", peer_node_id)) {
    // ABORTED, as a yield: the peer retries next round and logs it quietly
    // (a full sync may refuse every other peer for many rounds).
    return absl::AbortedError(
        "this node is being filled by another peer (retry later)");
  }
  // Two nodes that start exchanges with each other at the same moment would
  // stream every difference twice: the node with the lower id yields.
  if (self_ < peer_node_id) {
    for (const auto& [sid, o] : sessions_) {
      if (!o.outgoing) continue;
      const uint64_t to = PeerId(o.address);
      if (to == 0 || to == peer_node_id) {
        return absl::AbortedError(
            "this node is running an exchange of its own with that peer and "
            "has the lower node id; it yields (retry later)");
      }
    }
  }
  s.admitted = true;
  s.peer_id = peer_node_id;
  ++admitted_;
  return absl::OkStatus();
}

std::vector<Sessions::Id> Sessions::Supersede(Id id, uint64_t peer_node_id) {
  std::vector<Id> out;
  if (peer_node_id == 0) return out;
  for (auto& [sid, s] : sessions_) {
    if (sid == id || s.outgoing || !s.admitted || s.peer_id != peer_node_id) continue;
    s.admitted = false;
    s.filling = false;
    --admitted_;
    out.push_back(sid);
  }
  return out;
}

void Sessions::Touch(Id id, int64_t now_ms) {
  auto it = sessions_.find(id);
  if (it != sessions_.end()) it->second.last_ms = now_ms;
}

std::vector<Sessions::Id> Sessions::Expired(int64_t now_ms) const {
  std::vector<Id> out;
  for (const auto& [id, s] : sessions_) {
    if (now_ms - s.started_ms >= options_.deadline_ms ||
        now_ms - s.last_ms >= options_.idle_timeout_ms) {
      out.push_back(id);
    }
  }
  return out;
}

void Sessions::End(Id id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  if (it->second.admitted && !it->second.outgoing) --admitted_;
  sessions_.erase(it);
}

std::string Sessions::AddressOf(Id id) const {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? std::string() : it->second.address;
}

int Sessions::outgoing() const {
  int n = 0;
  for (const auto& [id, s] : sessions_) n += s.outgoing ? 1 : 0;
  return n;
}

}  // namespace kv::replication
