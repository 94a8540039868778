#include "server/gossip_service.h"
#include "server/peer_channel.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <optional>

#include "absl/strings/escaping.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "server/status_mapping.h"

namespace kv::server {
namespace {

// The core's time: monotonic, so that a wall clock step does not look like
// silence (or a burst) to the failure detector.
int64_t MonotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void PutBigEndian64(uint64_t v, std::string* out) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

}  // namespace

std::string RootBytes(const storage::Digest& root) {
  std::string out;
  out.reserve(16);
  PutBigEndian64(root.hi, &out);
  PutBigEndian64(root.lo, &out);
  return out;
}

std::string RootHex(const std::string& root_bytes) {
  if (root_bytes.size() != 16) return "";
  return absl::BytesToHexString(root_bytes);
}

// ---------------------------------------------------------------------------
// GrpcGossipTransport

struct GrpcGossipTransport::Call {
  grpc::ClientContext context;
  peer::v1::GossipMessage request;
  peer::v1::GossipReply reply;
  std::string to;
};

GrpcGossipTransport::GrpcGossipTransport(GossipTransportOptions options)
    : options_(options) {}

GrpcGossipTransport::~GrpcGossipTransport() { Close(absl::ZeroDuration()); }

peer::v1::Gossip::Stub* GrpcGossipTransport::StubForLocked(const std::string& to) {
  auto& stub = stubs_[to];
  if (stub == nullptr) {
    stub = peer::v1::Gossip::NewStub(NewPeerChannel(
        to, options_.max_message_bytes, options_.max_reconnect_backoff_ms));
  }
  return stub.get();
}

void GrpcGossipTransport::Send(const std::string& to,
                               const peer::v1::GossipMessage& message) {
  Call* call;
  peer::v1::Gossip::Stub* stub;
  {
    absl::MutexLock lock(&mu_);
    if (closed_ || static_cast<int>(in_flight_.size()) >= options_.max_in_flight) {
      ++stats_.dropped;
      return;
    }
    stub = StubForLocked(to);
    call = new Call;
    call->to = to;
    call->request = message;
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + options_.deadline));
    in_flight_.insert(call);
    ++stats_.sent;
  }
  // The call is started outside mu_: its callback may run inline.
  stub->async()->Gossip(&call->context, &call->request, &call->reply,
                        [this, call](grpc::Status s) { Done(call, s); });
}

void GrpcGossipTransport::Done(Call* call, const grpc::Status& status) {
  if (!status.ok()) {
    // Peers that are down fail every call: debug, not warn.
    spdlog::debug("gossip to {} failed: {} {}", call->to,
                  static_cast<int>(status.error_code()), status.error_message());
  }
  absl::MutexLock lock(&mu_);
  if (!status.ok()) ++stats_.failed;
  in_flight_.erase(call);
  delete call;
}

void GrpcGossipTransport::Close(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  auto none_in_flight = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return in_flight_.empty();
  };
  if (mu_.AwaitWithTimeout(absl::Condition(&none_in_flight), timeout)) return;
  for (Call* call : in_flight_) call->context.TryCancel();
  mu_.Await(absl::Condition(&none_in_flight));
}

GossipTransportStats GrpcGossipTransport::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

// ---------------------------------------------------------------------------
// GossipService

GossipService::GossipService(GossipServiceOptions options, storage::Store* store,
                             AntiEntropy* anti_entropy, storage::PhysicalClock* clock,
                             FatalCallback on_fatal)
    : options_(std::move(options)),
      store_(store),
      anti_entropy_(anti_entropy),
      clock_(clock),
      on_fatal_(std::move(on_fatal)),
      transport_(options_.transport),
      rng_(std::random_device{}()) {}

GossipService::~GossipService() { Shutdown(); }

replication::AppState GossipService::CurrentAppState() const {
  replication::AppState app;
  app.merkle_root = RootBytes(store_->tree().Root());
  app.key_count = store_->tree().KeyCount();
  app.wall_clock_ms = clock_->NowMillis();
  return app;
}

void GossipService::Start(replication::LocalNode self) {
  spdlog::info("gossip: node {:016x} as {} (generation {}), seeds [{}], every {} ms",
               self.node_id, self.peer_address, self.generation,
               absl::StrJoin(options_.seeds, ","), options_.gossip.interval_ms);
  {
    absl::MutexLock lock(&mu_);
    core_ = std::make_unique<replication::Gossiper>(std::move(self), options_.seeds,
                                                    options_.gossip, rng_());
    driver_ = std::make_unique<replication::GossipDriver>(
        core_.get(), &transport_,
        [this](const replication::GossipEvent& e) { OnEvent(e); });
    active_ = true;
  }
  thread_ = std::thread([this] { Loop(); });
}

void GossipService::OnEvent(const replication::GossipEvent& e) {
  using Kind = replication::GossipEvent::Kind;
  const char* what = replication::EventName(e.kind);
  const std::string detail = e.detail.empty() ? "" : ": " + e.detail;
  switch (e.kind) {
    case Kind::kSuspect:
    case Kind::kDown:
    case Kind::kClockSkew:
    case Kind::kConflict:
      spdlog::warn("gossip: member {} ({:016x}) {}{}", e.name, e.node_id, what, detail);
      break;
    default:
      spdlog::info("gossip: member {} ({:016x}) {}{}", e.name, e.node_id, what, detail);
      break;
  }
}

void GossipService::Loop() {
  const double interval_ms = static_cast<double>(options_.gossip.interval_ms);
  while (true) {
    double jitter;
    {
      absl::MutexLock lock(&mu_);
      jitter = std::uniform_real_distribution<>(0.9, 1.1)(rng_);
    }
    if (stop_.WaitForNotificationWithTimeout(absl::Milliseconds(interval_ms * jitter))) {
      return;
    }
    const replication::AppState app = CurrentAppState();
    std::optional<std::vector<std::string>> new_peers;
    std::vector<std::pair<std::string, uint64_t>> ids;  // Peer address, node id.
    absl::Status fatal;
    {
      absl::MutexLock lock(&mu_);
      if (!active_) return;
      driver_->Tick(MonotonicMs(), app);
      if (driver_->TakeLivePeersChanged()) {
        std::vector<std::string> live = core_->LivePeers();
        // Until some member is seen alive, anti-entropy keeps the seeds it
        // started with (so a node never has fewer peers than --peers gave).
        if (!live.empty()) seen_live_ = true;
        if (seen_live_) new_peers = std::move(live);
        for (const replication::MemberView& m : core_->Members(MonotonicMs())) {
          if (!m.is_self && !m.state.peer_address().empty()) {
            ids.emplace_back(m.state.peer_address(), m.state.node_id());
          }
        }
      }
      fatal = core_->fatal_error();
      if (!fatal.ok()) active_ = false;
    }
    if (new_peers.has_value()) {
      spdlog::info("gossip: live peers now [{}]", absl::StrJoin(*new_peers, ","));
      anti_entropy_->SetPeers(std::move(*new_peers));
    }
    // Anti-entropy's rules need to know which node an address is (it does
    // not initiate to a peer it serves) before their first exchange.
    if (!ids.empty()) anti_entropy_->LearnPeerIds(ids);
    if (!fatal.ok()) {
      spdlog::critical("gossip: this node cannot join the cluster: {}", std::string(fatal.message()));
      if (on_fatal_) on_fatal_(fatal);
      return;
    }
  }
}

void GossipService::Shutdown() {
  if (shut_down_.exchange(true)) return;
  bool left = false;
  {
    absl::MutexLock lock(&mu_);
    if (active_) {
      driver_->Leave(MonotonicMs());
      left = true;
    }
    active_ = false;
  }
  if (left) spdlog::info("gossip: announced that this node leaves");
  stop_.Notify();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) {
    thread_.join();
  }
  // The announcement is a handful of one-way calls: let them go out.
  transport_.Close(left ? options_.leave_grace : absl::ZeroDuration());
}

grpc::ServerUnaryReactor* GossipService::Gossip(grpc::CallbackServerContext* ctx,
                                                const peer::v1::GossipMessage* request,
                                                peer::v1::GossipReply*) {
  absl::Status s;
  {
    absl::MutexLock lock(&mu_);
    if (!active_) {
      s = absl::UnavailableError("gossip is not running on this node");
    } else {
      s = driver_->Receive(*request, MonotonicMs());
    }
  }
  if (!s.ok() && s.code() == absl::StatusCode::kInvalidArgument) {
    spdlog::warn("gossip: malformed message from {}: {}", ctx->peer(), std::string(s.message()));
  }
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

std::vector<replication::MemberView> GossipService::Members() const {
  absl::MutexLock lock(&mu_);
  if (core_ == nullptr) return {};
  return core_->Members(MonotonicMs());
}

absl::Status GossipService::Remove(uint64_t node_id) {
  absl::Status s;
  {
    absl::MutexLock lock(&mu_);
    if (!active_) return absl::UnavailableError("gossip is not running on this node");
    s = driver_->Remove(node_id, MonotonicMs());
  }
  if (s.ok()) spdlog::info("gossip: removed member {:016x} for good", node_id);
  return s;
}

replication::GossipStats GossipService::stats() const {
  absl::MutexLock lock(&mu_);
  if (core_ == nullptr) return {};
  return core_->stats();
}

}  // namespace kv::server
