#include "server/anti_entropy.h"
#include "server/peer_channel.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/status_mapping.h"
#include "storage/status_macros.h"

namespace kv::server {
namespace {

using peer::v1::ExchangeMessage;
using replication::ExchangeDriver;
using replication::Sessions;

// The metadata key in which a responder tells its node id.
constexpr char kNodeIdKey[] = "kv-node-id";
// At 4 MiB of records per exchange (the default budget), 1 GiB before the
// loop waits an interval again.
constexpr int kMaxBackToBackExchanges = 256;

// The driver's ExchangeStream over a gRPC stream (client or server side),
// paced by the node-wide rate limiter.
template <typename Stream>
class GrpcWriter final : public replication::ExchangeStream {
 public:
  GrpcWriter(Stream* stream, RateLimiter* limiter)
      : stream_(stream), limiter_(limiter) {}
  absl::Status Write(const ExchangeMessage& msg) override {
    // CANCELLED at shutdown: a low --ae-bandwidth does not hold it.
    absl::Status s = limiter_->Acquire(static_cast<int64_t>(msg.ByteSizeLong()));
    if (!s.ok()) return s;
    if (!stream_->Write(msg)) {
      return absl::UnavailableError("the peer closed the exchange stream");
    }
    return absl::OkStatus();
  }

 private:
  Stream* const stream_;
  RateLimiter* const limiter_;
};

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

replication::SessionOptions ToSessionOptions(const AntiEntropyOptions& o) {
  replication::SessionOptions so;
  so.max_incoming = o.max_incoming;
  so.max_outgoing = 1;  // One initiating thread.
  so.deadline_ms = absl::ToInt64Milliseconds(o.exchange_deadline);
  so.idle_timeout_ms = absl::ToInt64Milliseconds(o.idle_timeout);
  return so;
}

}  // namespace

AntiEntropy::AntiEntropy(storage::Store* store, AntiEntropyOptions options)
    : store_(store),
      options_(std::move(options)),
      running_(!options_.start_paused),
      limiter_(options_.bandwidth_bytes_per_s),
      sessions_(store->node_id(), ToSessionOptions(options_)),
      rng_(std::random_device{}()) {
  sessions_.SetPeers(options_.peers);
}

AntiEntropy::~AntiEntropy() { Stop(); }

void AntiEntropy::Start() {
  absl::MutexLock lock(&threads_mu_);
  if (thread_.joinable() || stop_.HasBeenNotified()) return;
  thread_ = std::thread([this] { Loop(); });
  watchdog_ = std::thread([this] { Watchdog(); });
}

void AntiEntropy::Stop() {
  // Under threads_mu_: one of racing Stops notifies, and a racing Start
  // either starts first (and its threads are joined here) or sees stop_.
  absl::MutexLock threads_lock(&threads_mu_);
  if (!stop_.HasBeenNotified()) stop_.Notify();
  limiter_.Cancel();
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, cancel] : cancel_) cancel();
  }
  if (thread_.joinable()) thread_.join();
  if (watchdog_.joinable()) watchdog_.join();
}

void AntiEntropy::SetPeers(std::vector<std::string> peers) {
  absl::MutexLock lock(&mu_);
  sessions_.SetPeers(std::move(peers));
}

void AntiEntropy::LearnPeerIds(
    const std::vector<std::pair<std::string, uint64_t>>& ids) {
  absl::MutexLock lock(&mu_);
  for (const auto& [address, id] : ids) sessions_.LearnPeerId(address, id);
}

void AntiEntropy::Loop() {
  while (true) {
    absl::Duration wait;
    {
      absl::MutexLock lock(&mu_);
      // Jitter of +-25% keeps nodes from exchanging in lockstep.
      const double jitter = 0.75 + 0.5 * std::uniform_real_distribution<>(0, 1)(rng_);
      wait = options_.interval * jitter;
    }
    if (stop_.WaitForNotificationWithTimeout(wait)) return;
    if (!running_.load()) continue;
    std::optional<std::string> peer;
    {
      absl::MutexLock lock(&mu_);
      // Among the peers the rules allow now (not one this node serves).
      peer = sessions_.PickPeer(rng_());
    }
    if (!peer.has_value()) continue;
    // An exchange cut short by its budgets (a full sync of a new or wiped
    // node moves max_record_bytes_per_exchange per exchange) is followed by
    // the next one with the same peer at once, a bounded number of times in
    // a row, instead of one per interval.
    bool more = false;
    (void)ExchangeWith(*peer, &more);
    for (int i = 0; more && i < kMaxBackToBackExchanges; ++i) {
      if (stop_.HasBeenNotified() || !running_.load()) break;
      {
        absl::MutexLock lock(&mu_);
        if (!sessions_.CanInitiate(*peer)) break;
      }
      (void)ExchangeWith(*peer, &more);
    }
  }
}

void AntiEntropy::Watchdog() {
  // Checks often enough that an idle timeout is kept within a tenth of it.
  const absl::Duration tick = std::clamp(
      std::min(options_.idle_timeout, options_.exchange_deadline) / 10,
      absl::Milliseconds(10), absl::Milliseconds(500));
  const int64_t promote_ms = absl::ToInt64Milliseconds(options_.idle_promote_after);
  while (!stop_.WaitForNotificationWithTimeout(tick)) {
    absl::MutexLock lock(&mu_);
    const int64_t now = NowMs();
    for (Sessions::Id id : sessions_.Expired(now)) {
      if (!cut_.emplace(id, Cut::kExpired).second) continue;
      auto it = cancel_.find(id);
      if (it != cancel_.end()) it->second();
    }
    for (auto it = idle_.begin(); it != idle_.end();) {
      if (now - it->second.since_ms < promote_ms) {
        ++it;
        continue;
      }
      // Restored anyway when it ends.
      if (PromoteToNormal(it->second.tid)) promoted_.fetch_add(1);
      it = idle_.erase(it);
    }
  }
}

void AntiEntropy::RegisterIdle(Sessions::Id id, const ScopedCpuPriority& priority) {
  if (priority.active()) idle_[id] = IdleExchange{priority.thread_id(), NowMs()};
}

void AntiEntropy::RegisterCancel(Sessions::Id id, std::function<void()> cancel) {
  cancel_[id] = std::move(cancel);
  if (stop_.HasBeenNotified()) cancel_[id]();  // Stop() has run its loop.
}

void AntiEntropy::MarkIfFilling(Sessions::Id id, const ExchangeDriver& driver,
                                bool* marked) {
  if (*marked || !driver.declared_empty()) return;
  *marked = true;
  absl::MutexLock lock(&mu_);
  sessions_.MarkFilling(id);
}

AntiEntropy::Cut AntiEntropy::EndSession(Sessions::Id id) {
  absl::MutexLock lock(&mu_);
  sessions_.End(id);
  cancel_.erase(id);
  idle_.erase(id);
  auto it = cut_.find(id);
  if (it == cut_.end()) return Cut::kNo;
  const Cut cut = it->second;
  cut_.erase(it);
  return cut;
}

template <typename Stream>
bool AntiEntropy::ReadMessage(Stream* stream, Sessions::Id id, ExchangeMessage* msg) {
  if (!stream->Read(msg)) return false;
  absl::MutexLock lock(&mu_);
  sessions_.Touch(id, NowMs());
  return true;
}

peer::v1::Peer::Stub* AntiEntropy::StubFor(const std::string& peer) {
  absl::MutexLock lock(&mu_);
  auto& stub = stubs_[peer];
  if (stub == nullptr) {
    // A peer that was down is tried again within about an interval.
    stub = peer::v1::Peer::NewStub(NewPeerChannel(
        peer, static_cast<int>(replication::MaxReceivedMessageBytes(options_.exchange)),
        static_cast<int>(absl::ToInt64Milliseconds(options_.interval))));
  }
  return stub.get();
}

absl::Status AntiEntropy::ExchangeWith(const std::string& peer, bool* more) {
  if (more != nullptr) *more = false;
  const ScopedCpuPriority priority(options_.cpu_priority);
  peer::v1::Peer::Stub* stub = StubFor(peer);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + options_.exchange_deadline));
  uint64_t salt;
  Sessions::Id id;
  {
    absl::MutexLock lock(&mu_);
    if (stop_.HasBeenNotified()) return absl::CancelledError("shutting down");
    absl::StatusOr<Sessions::Id> begun = sessions_.BeginOutgoing(peer, NowMs());
    if (!begun.ok()) return begun.status();
    id = *begun;
    salt = rng_();
    RegisterCancel(id, [&ctx] { ctx.TryCancel(); });
    RegisterIdle(id, priority);
  }
  started_.fetch_add(1);
  auto stream = stub->Exchange(&ctx);
  GrpcWriter<grpc::ClientReaderWriter<ExchangeMessage, ExchangeMessage>> writer(
      stream.get(), &limiter_);
  absl::StatusOr<std::unique_ptr<ExchangeDriver>> driver =
      ExchangeDriver::Initiate(store_, options_.exchange, salt, &writer);
  if (driver.ok()) {
    uint64_t peer_id;
    {
      absl::MutexLock lock(&mu_);
      peer_id = sessions_.PeerId(peer);
    }
    // Unknown before the first exchange with it: no memory that time.
    if (peer_id != 0) (*driver)->set_refusals(RefusalsFor(peer_id));
  }
  absl::Status s = driver.ok() ? (*driver)->Start() : driver.status();
  bool filling = false;
  if (s.ok()) MarkIfFilling(id, **driver, &filling);
  bool learned = false;
  while (s.ok() && !(*driver)->done()) {
    ExchangeMessage in;
    if (!ReadMessage(stream.get(), id, &in)) {
      s = absl::UnavailableError("the exchange stream ended before the exchange finished");
      break;
    }
    if (!learned) {
      // The responder's id, so that the rules know which node this
      // address is (no initiating to a peer this node serves; yields).
      learned = true;
      const auto& md = ctx.GetServerInitialMetadata();
      auto it = md.find(kNodeIdKey);
      uint64_t node_id = 0;
      if (it != md.end() &&
          absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()),
                           &node_id)) {
        absl::MutexLock lock(&mu_);
        sessions_.LearnPeerId(peer, node_id);
      }
    }
    s = (*driver)->OnMessage(in);
    MarkIfFilling(id, **driver, &filling);
  }
  if (s.ok()) {
    stream->WritesDone();
    s = FromGrpcStatus(stream->Finish());
  } else if (s.code() == absl::StatusCode::kUnavailable) {
    // The stream broke on the peer's side: its status (e.g. paused,
    // malformed message, deadline) says why better than "stream ended".
    absl::Status remote = FromGrpcStatus(stream->Finish());
    if (!remote.ok()) s = remote;
  } else {
    ctx.TryCancel();  // Our side failed (bad peer message, storage error).
    (void)stream->Finish();
  }
  if (EndSession(id) == Cut::kExpired) {
    s = absl::DeadlineExceededError(absl::StrCat(
        "the exchange passed its deadline or got no message for ",
        absl::FormatDuration(options_.idle_timeout)));
  }
  CountExchange(peer, driver.ok() ? driver->get() : nullptr, s);
  if (more != nullptr && s.ok()) {
    *more = replication::CutByBudget((*driver)->stats());
  }
  return s;
}

absl::Status AntiEntropy::Serve(
    grpc::ServerContext* ctx,
    grpc::ServerReaderWriter<ExchangeMessage, ExchangeMessage>* stream) {
  if (!running_.load()) {
    return absl::UnavailableError("anti-entropy is paused on this node");
  }
  // gRPC's thread serves this exchange alone until it returns.
  const ScopedCpuPriority priority(options_.cpu_priority);
  ctx->AddInitialMetadata(kNodeIdKey, std::to_string(store_->node_id()));
  Sessions::Id id;
  {
    // No serving slot yet: only a valid Hello takes one (Admit below).
    absl::MutexLock lock(&mu_);
    id = sessions_.BeginIncoming(NowMs());
    RegisterCancel(id, [ctx] { ctx->TryCancel(); });
    RegisterIdle(id, priority);
  }
  GrpcWriter<grpc::ServerReaderWriter<ExchangeMessage, ExchangeMessage>> writer(
      stream, &limiter_);
  ExchangeDriver* self = nullptr;  // Set below, before any message.
  absl::StatusOr<std::unique_ptr<ExchangeDriver>> driver = ExchangeDriver::Respond(
      store_, options_.exchange, &writer, [this, id, &self](uint64_t peer_node_id) {
        {
          absl::MutexLock lock(&mu_);
          // The peer's earlier exchanges still served here were given up on
          // its side: they stop at once instead of at their idle timeout.
          for (Sessions::Id old : sessions_.Supersede(id, peer_node_id)) {
            if (!cut_.emplace(old, Cut::kSuperseded).second) continue;
            if (auto c = cancel_.find(old); c != cancel_.end()) c->second();
          }
          KV_RETURN_IF_ERROR(sessions_.Admit(id, peer_node_id));
        }
        // Before the peer's next turn: what we refused from it before.
        if (self != nullptr && peer_node_id != 0) {
          self->set_refusals(RefusalsFor(peer_node_id));
        }
        return absl::OkStatus();
      });
  if (driver.ok()) self = driver->get();
  absl::Status s = driver.status();
  bool admitted = false;
  bool filling = false;
  while (s.ok() && !(*driver)->done()) {
    ExchangeMessage in;
    if (!ReadMessage(stream, id, &in)) {
      s = admitted ? absl::UnavailableError(
                         "the exchange stream ended before the exchange finished")
                   : absl::CancelledError("the peer closed the stream before its Hello");
      break;
    }
    s = (*driver)->OnMessage(in);
    if (!admitted && (*driver)->admitted()) {
      admitted = true;
      started_.fetch_add(1);
    }
    MarkIfFilling(id, **driver, &filling);
  }
  switch (EndSession(id)) {
    case Cut::kExpired:
      s = absl::DeadlineExceededError(absl::StrCat(
          admitted ? "the exchange passed its deadline or got no message for "
                   : "no Hello within ",
          absl::FormatDuration(options_.idle_timeout)));
      break;
    case Cut::kSuperseded:
      // CANCELLED, not ABORTED: ABORTED is a yield (CountExchange).
      s = absl::CancelledError(
          "the peer started a new exchange with this node, so it had given this one up");
      break;
    case Cut::kNo:
      break;
  }
  // Refusals (paused, full, a yield) and streams without a valid Hello are
  // not exchanges.
  if (admitted) CountExchange(ctx->peer(), driver->get(), s);
  return s;
}

void AntiEntropy::CountExchange(const std::string& peer, const ExchangeDriver* driver,
                                const absl::Status& status) {
  if (driver != nullptr) {
    const replication::ExchangeStats& st = driver->stats();
    if (st.equal_roots) equal_roots_.fetch_add(1);
    differing_leaves_.fetch_add(st.differing_leaves);
    keys_sent_.fetch_add(st.records_sent);
    keys_received_.fetch_add(st.records_received);
    bytes_sent_.fetch_add(st.bytes_sent);
    bytes_received_.fetch_add(st.bytes_received);
    keys_streamed_.fetch_add(st.records_streamed);
    bytes_digests_.fetch_add(st.bytes_sent_digests);
    bytes_fingerprints_.fetch_add(st.bytes_sent_fingerprints);
    bytes_diffs_.fetch_add(st.bytes_sent_diffs);
    bytes_wants_.fetch_add(st.bytes_sent_wants);
    bytes_records_.fetch_add(st.bytes_sent_records);
    if (driver->records_refused() > 0) {
      refused_clock_.fetch_add(driver->records_refused());
      // Clocks far ahead: those records are refused, the rest repaired.
      spdlog::warn("anti-entropy with {}: refused {} records, first: {}", peer,
                   driver->records_refused(),
                   std::string(driver->first_refusal().message()));
    }
    // The exchange failed on it (INVALID_ARGUMENT, logged below).
    not_asked_.fetch_add(st.records_not_asked);
    if (st.records_over_limits > 0) {
      over_limits_.fetch_add(st.records_over_limits);
      // One line per exchange: the peer runs with larger limits.
      spdlog::warn("anti-entropy with {}: skipped {} records over this node's limits, first: {}",
                   peer, st.records_over_limits,
                   std::string(driver->first_over_limits().message()));
    }
  }
  (status.ok() ? completed_ : failed_).fetch_add(1);
  // The peer's session rules declined it (a yield): failed, and counted apart.
  if (status.code() == absl::StatusCode::kAborted) yielded_.fetch_add(1);
  absl::MutexLock lock(&mu_);
  // Only configured peers are tracked: incoming exchanges come from
  // ephemeral ports.
  const std::vector<std::string>& peers = sessions_.peers();
  auto it = std::find(peers.begin(), peers.end(), peer);
  PeerState unused;
  PeerState& ps = it != peers.end() ? peer_state_[peer] : unused;
  if (driver != nullptr) ps.refused_clock += driver->records_refused();
  if (status.ok()) {
    ps.last_ok_ms = NowMs();
    if (driver != nullptr &&
        driver->stats().records_sent + driver->stats().records_received > 0) {
      spdlog::info("anti-entropy with {}: {} records sent, {} received, {} differing leaves",
                   peer, driver->stats().records_sent, driver->stats().records_received,
                   driver->stats().differing_leaves);
    }
  } else {
    ps.last_failure_ms = NowMs();
    ps.last_error = status.ToString();
    if (status.code() == absl::StatusCode::kAborted) {
      spdlog::debug("anti-entropy with {}: {}", peer, status.ToString());  // A yield.
    } else {
      spdlog::warn("anti-entropy with {} failed: {}", peer, status.ToString());
    }
  }
}

replication::PeerRefusals* AntiEntropy::RefusalsFor(uint64_t node_id) {
  replication::PeerRefusals* refusals;
  {
    absl::MutexLock lock(&mu_);
    std::unique_ptr<replication::PeerRefusals>& r = refusals_[node_id];
    if (r == nullptr) r = std::make_unique<replication::PeerRefusals>();
    refusals = r.get();
  }
  const int64_t now_ms =
      options_.clock != nullptr ? options_.clock->NowMillis() : NowMs();
  refusals->Expire(now_ms, options_.max_clock_drift_ms);
  return refusals;
}

void AntiEntropy::FillStats(kv::v1::StatsResponse* resp) const {
  resp->set_anti_entropy_running(running_.load());
  resp->set_exchanges_started(started_.load());
  resp->set_exchanges_completed(completed_.load());
  resp->set_exchanges_failed(failed_.load());
  resp->set_rounds_equal_roots(equal_roots_.load());
  resp->set_differing_leaves(differing_leaves_.load());
  resp->set_keys_sent(keys_sent_.load());
  resp->set_keys_received(keys_received_.load());
  resp->set_bytes_sent(bytes_sent_.load());
  resp->set_bytes_received(bytes_received_.load());
  resp->set_records_refused_clock(refused_clock_.load());
  resp->set_records_over_limits(over_limits_.load());
  resp->set_records_not_asked(not_asked_.load());
  resp->set_keys_streamed(keys_streamed_.load());
  resp->set_exchanges_promoted(promoted_.load());
  resp->set_exchanges_yielded(yielded_.load());
  kv::v1::AntiEntropyBytes* parts = resp->mutable_bytes_sent_by_part();
  parts->set_digests(bytes_digests_.load());
  parts->set_fingerprints(bytes_fingerprints_.load());
  parts->set_diffs(bytes_diffs_.load());
  parts->set_wants(bytes_wants_.load());
  parts->set_records(bytes_records_.load());
  absl::MutexLock lock(&mu_);
  // The current peers, then those gossip took out of the list (down, left,
  // removed) with their history: a down replica's staleness must keep
  // showing, not vanish.
  const std::vector<std::string>& peers = sessions_.peers();
  std::vector<std::pair<std::string, bool>> listed;  // Address, live.
  for (const std::string& p : peers) listed.emplace_back(p, true);
  for (const auto& [address, state] : peer_state_) {
    if (std::find(peers.begin(), peers.end(), address) == peers.end()) {
      listed.emplace_back(address, false);
    }
  }
  for (const auto& [address, live] : listed) {
    kv::v1::PeerStats* ps = resp->add_peers();
    ps->set_address(address);
    ps->set_live(live);
    auto it = peer_state_.find(address);
    if (it == peer_state_.end()) continue;
    ps->set_last_exchange_unix_ms(it->second.last_ok_ms);
    ps->set_last_failure_unix_ms(it->second.last_failure_ms);
    ps->set_last_error(it->second.last_error);
    ps->set_records_refused_clock(it->second.refused_clock);
  }
}

grpc::Status PeerService::Exchange(
    grpc::ServerContext* ctx,
    grpc::ServerReaderWriter<peer::v1::ExchangeMessage, peer::v1::ExchangeMessage>*
        stream) {
  return ToGrpcStatus(anti_entropy_->Serve(ctx, stream));
}

}  // namespace kv::server
