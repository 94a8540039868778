#include "server/anti_entropy.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/status_mapping.h"
#include "storage/status_macros.h"

namespace kv::server {
namespace {

using peer::v1::ExchangeMessage;

// Feeds `stream`'s messages to `ex` until the exchange is done, applying the
// records it returns and sending its messages through `limiter`. Works for
// both sides: the client and server streams have the same Read/Write.
// `first`, when not null, is a message already read from the stream.
template <typename Stream>
absl::Status DriveExchange(Stream* stream, replication::Exchange* ex,
                           storage::Store* store, RateLimiter* limiter,
                           std::atomic<int64_t>* refused,
                           const ExchangeMessage* first = nullptr) {
  auto flush = [&](bool send) -> absl::Status {
    replication::Ready ready = ex->TakeReady();
    if (!ready.records_to_apply.empty()) {
      KV_ASSIGN_OR_RETURN(storage::ApplyResult applied,
                          store->ApplyBatch(ready.records_to_apply));
      if (applied.refused > 0) {
        refused->fetch_add(applied.refused);
        // Clocks far ahead: those records are refused, the rest repaired.
        spdlog::warn("anti-entropy: refused {} records, first: {}", applied.refused,
                     std::string(applied.first_refusal.message()));
      }
    }
    if (!send) return absl::OkStatus();
    for (const ExchangeMessage& m : ready.messages) {
      limiter->Acquire(static_cast<int64_t>(m.ByteSizeLong()));
      if (!stream->Write(m)) {
        return absl::UnavailableError("the peer closed the exchange stream");
      }
    }
    return absl::OkStatus();
  };
  KV_RETURN_IF_ERROR(flush(true));
  bool use_first = first != nullptr;
  while (!ex->done()) {
    ExchangeMessage read;
    if (!use_first && !stream->Read(&read)) {
      return absl::UnavailableError("the exchange stream ended before the exchange finished");
    }
    const ExchangeMessage& in = use_first ? *first : read;
    use_first = false;
    absl::Status s = ex->Step(in);
    if (!s.ok()) {
      (void)flush(false);  // Records already validated are still good.
      return s;
    }
    KV_RETURN_IF_ERROR(flush(true));
  }
  return absl::OkStatus();
}

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

}  // namespace

AntiEntropy::AntiEntropy(storage::Store* store, AntiEntropyOptions options)
    : store_(store),
      options_(std::move(options)),
      running_(!options_.start_paused),
      limiter_(options_.bandwidth_bytes_per_s),
      peers_(options_.peers),
      rng_(std::random_device{}()) {}

AntiEntropy::~AntiEntropy() { Stop(); }

void AntiEntropy::Start() { thread_ = std::thread([this] { Loop(); }); }

void AntiEntropy::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  {
    absl::MutexLock lock(&mu_);
    for (grpc::ClientContext* ctx : outgoing_) ctx->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

void AntiEntropy::SetPeers(std::vector<std::string> peers) {
  absl::MutexLock lock(&mu_);
  peers_ = std::move(peers);
}

void AntiEntropy::Loop() {
  while (true) {
    absl::Duration wait;
    std::string peer;
    {
      absl::MutexLock lock(&mu_);
      // Jitter of +-25% keeps nodes from exchanging in lockstep.
      const double jitter = 0.75 + 0.5 * std::uniform_real_distribution<>(0, 1)(rng_);
      wait = options_.interval * jitter;
      if (!peers_.empty()) peer = peers_[rng_() % peers_.size()];
    }
    if (stop_.WaitForNotificationWithTimeout(wait)) return;
    if (!running_.load() || peer.empty()) continue;
    // While a peer repairs us, starting our own exchange would stream the
    // same differences a second time (the peer may be the one we pick).
    if (incoming_.load() > 0) continue;
    (void)ExchangeWith(peer);
  }
}

peer::v1::Peer::Stub* AntiEntropy::StubFor(const std::string& peer) {
  absl::MutexLock lock(&mu_);
  auto& stub = stubs_[peer];
  if (stub == nullptr) {
    grpc::ChannelArguments args;
    const int max = static_cast<int>(replication::MaxReceivedMessageBytes(options_.exchange));
    args.SetMaxReceiveMessageSize(max);
    args.SetMaxSendMessageSize(max);
    // A peer that was down is tried again within about an interval, not
    // after gRPC's default backoff of up to two minutes.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
                static_cast<int>(absl::ToInt64Milliseconds(options_.interval)));
    stub = peer::v1::Peer::NewStub(
        grpc::CreateCustomChannel(peer, grpc::InsecureChannelCredentials(), args));
  }
  return stub.get();
}

absl::Status AntiEntropy::ExchangeWith(const std::string& peer) {
  peer::v1::Peer::Stub* stub = StubFor(peer);
  uint64_t salt;
  {
    absl::MutexLock lock(&mu_);
    salt = rng_();
  }
  auto ex = replication::Exchange::Initiator(store_, options_.exchange, salt);
  if (!ex.ok()) {  // Bad options: every exchange would fail the same way.
    started_.fetch_add(1);
    Record(peer, nullptr, ex.status());
    return ex.status();
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + options_.exchange_deadline));
  {
    absl::MutexLock lock(&mu_);
    if (stop_.HasBeenNotified()) return absl::CancelledError("shutting down");
    outgoing_.push_back(&ctx);
    outgoing_count_.store(static_cast<int>(outgoing_.size()));
  }
  started_.fetch_add(1);
  auto stream = stub->Exchange(&ctx);
  absl::Status s =
      DriveExchange(stream.get(), ex->get(), store_, &limiter_, &refused_clock_);
  if (s.ok()) {
    stream->WritesDone();
    s = FromGrpc(stream->Finish());
  } else if (s.code() == absl::StatusCode::kUnavailable) {
    // The stream broke on the peer's side: its status (e.g. paused,
    // malformed message, deadline) says why better than "stream ended".
    absl::Status remote = FromGrpc(stream->Finish());
    if (!remote.ok()) s = remote;
  } else {
    ctx.TryCancel();  // Our side failed (bad peer message, storage error).
    (void)stream->Finish();
  }
  {
    absl::MutexLock lock(&mu_);
    outgoing_.erase(std::find(outgoing_.begin(), outgoing_.end(), &ctx));
    outgoing_count_.store(static_cast<int>(outgoing_.size()));
  }
  Record(peer, ex->get(), s);
  return s;
}

absl::Status AntiEntropy::Serve(
    const std::string& peer,
    grpc::ServerReaderWriter<ExchangeMessage, ExchangeMessage>* stream) {
  if (!running_.load()) {
    return absl::UnavailableError("anti-entropy is paused on this node");
  }
  if (incoming_.fetch_add(1) >= options_.max_incoming) {
    incoming_.fetch_sub(1);
    return absl::UnavailableError(absl::StrCat(
        "this node is already serving ", options_.max_incoming, " exchanges"));
  }
  ExchangeMessage hello;
  if (!stream->Read(&hello)) {
    incoming_.fetch_sub(1);
    return absl::CancelledError("the peer closed the stream before its Hello");
  }
  // Two nodes that start exchanges with each other at the same moment would
  // stream every difference twice: the node with the lower id yields.
  if (outgoing_count_.load() > 0 && hello.has_hello() &&
      store_->node_id() < hello.hello().node_id()) {
    incoming_.fetch_sub(1);
    return absl::AbortedError(
        "this node is running an exchange of its own and has the lower node id; "
        "it yields (retry later)");
  }
  started_.fetch_add(1);
  auto ex = replication::Exchange::Responder(store_, options_.exchange);
  absl::Status s =
      ex.ok() ? DriveExchange(stream, ex->get(), store_, &limiter_, &refused_clock_, &hello)
              : ex.status();
  Record(peer, ex.ok() ? ex->get() : nullptr, s);
  incoming_.fetch_sub(1);
  return s;
}

void AntiEntropy::Record(const std::string& peer, const replication::Exchange* ex,
                         const absl::Status& status) {
  if (ex != nullptr) {
    const replication::ExchangeStats& st = ex->stats();
    if (st.equal_roots) equal_roots_.fetch_add(1);
    differing_leaves_.fetch_add(st.differing_leaves);
    keys_sent_.fetch_add(st.records_sent);
    keys_received_.fetch_add(st.records_received);
    bytes_sent_.fetch_add(st.bytes_sent);
    bytes_received_.fetch_add(st.bytes_received);
  }
  (status.ok() ? completed_ : failed_).fetch_add(1);
  absl::MutexLock lock(&mu_);
  // Only configured peers are tracked: incoming exchanges come from
  // ephemeral ports.
  auto it = std::find(peers_.begin(), peers_.end(), peer);
  PeerState unused;
  PeerState& ps = it != peers_.end() ? peer_state_[peer] : unused;
  if (status.ok()) {
    ps.last_ok_ms = NowMs();
    if (ex != nullptr && ex->stats().records_sent + ex->stats().records_received > 0) {
      spdlog::info("anti-entropy with {}: {} records sent, {} received, {} differing leaves",
                   peer, ex->stats().records_sent, ex->stats().records_received,
                   ex->stats().differing_leaves);
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
  absl::MutexLock lock(&mu_);
  for (const std::string& p : peers_) {
    kv::v1::PeerStats* ps = resp->add_peers();
    ps->set_address(p);
    auto it = peer_state_.find(p);
    if (it == peer_state_.end()) continue;
    ps->set_last_exchange_unix_ms(it->second.last_ok_ms);
    ps->set_last_failure_unix_ms(it->second.last_failure_ms);
    ps->set_last_error(it->second.last_error);
  }
}

grpc::Status PeerService::Exchange(
    grpc::ServerContext* ctx,
    grpc::ServerReaderWriter<peer::v1::ExchangeMessage, peer::v1::ExchangeMessage>*
        stream) {
  return ToGrpcStatus(anti_entropy_->Serve(ctx->peer(), stream));
}

}  // namespace kv::server
