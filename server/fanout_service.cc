#include "server/fanout_service.h"
#include "server/peer_channel.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/status_mapping.h"

namespace kv::server {
namespace {

int64_t MonotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

const char* LevelName(replication::ConsistencyLevel level) {
  switch (level) {
    case replication::ConsistencyLevel::kOne:
      return "ONE";
    case replication::ConsistencyLevel::kQuorum:
      return "QUORUM";
    case replication::ConsistencyLevel::kAll:
      return "ALL";
  }
  return "?";
}

// The core's options with its random choice seeded by this node's id, so
// that nodes draw different rumor targets.
replication::FanoutOptions Seeded(replication::FanoutOptions o, uint64_t node_id) {
  o.seed = o.seed * 0x9e3779b97f4a7c15ULL ^ node_id;
  return o;
}

}  // namespace

struct Replicator::PushCall {
  grpc::ClientContext context;
  peer::v1::PushRequest request;
  peer::v1::PushReply reply;
  std::string peer;
  uint64_t batch_id = 0;
  peer::v1::Replica::Stub* stub = nullptr;
};

struct Replicator::ReadState {
  ReadState(int needed, std::vector<std::string> asked,
            std::optional<storage::Record> local, ReadDone done_in,
            replication::ConsistencyLevel level_in, int members_in)
      : collector(needed, std::move(asked), std::move(local)),
        done(std::move(done_in)),
        level(level_in),
        members(members_in) {}
  absl::Mutex mu;
  replication::ReadCollector collector ABSL_GUARDED_BY(mu);
  ReadDone done ABSL_GUARDED_BY(mu);  // Null once called.
  bool deadline_hit ABSL_GUARDED_BY(mu) = false;
  const replication::ConsistencyLevel level;
  const int members;
};

struct Replicator::ReadCall {
  grpc::ClientContext context;
  peer::v1::ReadRequest request;
  peer::v1::ReadReply reply;
  std::string peer;
};

Replicator::Replicator(storage::Store* store, ReplicatorOptions options,
                       MembershipFn membership)
    : store_(store),
      options_(std::move(options)),
      membership_(std::move(membership)),
      core_(Seeded(options_.fanout, store->node_id())) {}

Replicator::~Replicator() { Stop(); }

void Replicator::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void Replicator::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  {
    absl::MutexLock lock(&mu_);
    wake_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
  std::vector<WriteDone> failed;
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    for (PushCall* c : pushes_) c->context.TryCancel();
    for (ReadCall* c : reads_) c->context.TryCancel();
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return pushes_.empty() && reads_.empty();
    };
    mu_.Await(absl::Condition(&idle));
    for (auto& [id, done] : waiting_) failed.push_back(std::move(done));
    waiting_.clear();
  }
  for (WriteDone& done : failed) {
    std::move(done)(absl::UnavailableError("the node is shutting down"));
  }
}

int64_t Replicator::DeadlineMs(absl::Time deadline) const {
  const absl::Time now = absl::Now();
  const absl::Time until = std::min(deadline, now + options_.ack_timeout);
  return MonotonicMs() + std::max<int64_t>(0, absl::ToInt64Milliseconds(until - now));
}

absl::StatusOr<Replicator::Plan> Replicator::PlanFor(replication::ConsistencyLevel level) {
  Plan plan;
  plan.level = level;
  if (level == replication::ConsistencyLevel::kOne) return plan;
  ClusterView view = membership_();
  plan.members = std::max(view.members, 1);
  plan.needed = replication::RequiredReplicas(level, plan.members);
  const int live = static_cast<int>(view.live_peers.size()) + 1;
  if (live < plan.needed) {
    return absl::UnavailableError(absl::StrCat(
        LevelName(level), " needs ", plan.needed, " replicas of ", plan.members,
        " members, but only ", live, " are live (this node included); nothing was "
        "done"));
  }
  plan.targets = std::move(view.live_peers);
  return plan;
}

std::vector<std::pair<Replicator::WriteDone, absl::Status>>
Replicator::TakeDoneLocked() {
  std::vector<std::pair<WriteDone, absl::Status>> out;
  for (const replication::WriteOutcome& o : core_.TakeOutcomes()) {
    auto it = waiting_.find(o.write_id);
    if (it == waiting_.end()) continue;
    absl::Status s;
    if (!o.ok) {
      const std::string msg = absl::StrCat(
          "acknowledged by ", o.acks, " of ", o.needed, " replicas needed",
          o.timed_out ? " before the deadline" : " (the others failed or are unreachable)",
          "; the write was applied on the replicas that acknowledged it and will spread");
      s = o.timed_out ? absl::DeadlineExceededError(msg) : absl::UnavailableError(msg);
    }
    out.emplace_back(std::move(it->second), std::move(s));
    waiting_.erase(it);
  }
  return out;
}

void Replicator::Replicate(std::vector<storage::Record> records, const Plan& plan,
                           absl::Time deadline, WriteDone done) {
  if (plan.needed <= 1) {
    if (options_.enabled) {
      absl::MutexLock lock(&mu_);
      if (!stopped_) core_.Write(records, 1, MonotonicMs(), 0);
    }
    Pump();
    std::move(done)(absl::OkStatus());
    return;
  }
  std::vector<std::pair<WriteDone, absl::Status>> ready;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) {
      ready.emplace_back(std::move(done),
                         absl::UnavailableError("the node is shutting down"));
    } else {
      const uint64_t id = core_.Write(records, plan.needed, MonotonicMs(),
                                      DeadlineMs(deadline), plan.targets);
      waiting_.emplace(id, std::move(done));
      ready = TakeDoneLocked();
    }
  }
  for (auto& [cb, status] : ready) std::move(cb)(status);
  Pump();
}

peer::v1::Replica::Stub* Replicator::StubForLocked(const std::string& peer) {
  auto& stub = stubs_[peer];
  if (stub == nullptr) {
    stub = peer::v1::Replica::NewStub(NewPeerChannel(
        peer, options_.max_message_bytes, options_.max_reconnect_backoff_ms));
  }
  return stub.get();
}

void Replicator::Pump() {
  std::vector<PushCall*> calls;
  std::vector<std::pair<WriteDone, absl::Status>> ready;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    const absl::Time deadline = absl::Now() + options_.push_deadline;
    for (replication::FanoutBatch& b : core_.TakeBatches()) {
      auto* call = new PushCall;
      call->peer = std::move(b.peer);
      call->batch_id = b.batch_id;
      call->stub = StubForLocked(call->peer);
      call->context.set_deadline(absl::ToChronoTime(deadline));
      call->request.mutable_records()->Reserve(static_cast<int>(b.records.size()));
      for (const storage::Record& r : b.records) {
        *call->request.add_records() = replication::RecordToProto(r);
      }
      // Hops only when some record carries any (rumor mongering).
      if (std::any_of(b.hops.begin(), b.hops.end(), [](uint32_t h) { return h > 0; })) {
        call->request.mutable_hops()->Add(b.hops.begin(), b.hops.end());
        call->request.set_sender(self_address_);
      }
      pushes_.insert(call);
      calls.push_back(call);
    }
    // A batch held back (FanoutOptions::min_push_interval_ms) that may go
    // before the tick thread's next wake: wake it then.
    if (std::optional<int64_t> next = core_.NextRetryMs();
        next.has_value() && *next < loop_wake_ms_) {
      loop_wake_ms_ = *next;
      wake_.Signal();
    }
    ready = TakeDoneLocked();
  }
  // Started outside mu_: a callback may run inline.
  for (PushCall* call : calls) {
    call->stub->async()->Push(&call->context, &call->request, &call->reply,
                              [this, call](grpc::Status s) { PushDone(call, s); });
  }
  for (auto& [cb, status] : ready) std::move(cb)(status);
}

void Replicator::PushDone(PushCall* call, const grpc::Status& status) {
  // A replica that refused or skipped a record (clock, limits) does not hold
  // the batch: no acknowledgement from it.
  const bool ok = status.ok() && call->reply.refused_clock() == 0 &&
                  call->reply.skipped_over_limits() == 0;
  if (!status.ok()) {
    spdlog::debug("fanout: push of {} records to {} failed: {} {}",
                  call->request.records_size(), call->peer,
                  static_cast<int>(status.error_code()), status.error_message());
  }
  std::vector<std::pair<WriteDone, absl::Status>> ready;
  {
    absl::MutexLock lock(&mu_);
    pushes_.erase(call);
    if (!ok) ++push_calls_failed_;
    core_.Tick(MonotonicMs());
    core_.OnBatchDone(call->peer, call->batch_id, ok);
    ready = TakeDoneLocked();
  }
  delete call;
  for (auto& [cb, s] : ready) std::move(cb)(s);
  Pump();
}

void Replicator::Loop() {
  int64_t next_refresh = 0;
  while (true) {
    const int64_t now = MonotonicMs();
    std::optional<ClusterView> view;
    if (now >= next_refresh) {
      view = membership_();
      next_refresh = now + absl::ToInt64Milliseconds(options_.peer_refresh);
    }
    std::vector<std::pair<WriteDone, absl::Status>> ready;
    {
      absl::MutexLock lock(&mu_);
      if (view.has_value()) {
        self_address_ = view->self_address;
        std::sort(view->live_peers.begin(), view->live_peers.end());
        std::sort(view->down_peers.begin(), view->down_peers.end());
        if (view->live_peers != core_.peers() || view->down_peers != down_peers_) {
          spdlog::info("fanout: pushing to [{}], holding for [{}]",
                       absl::StrJoin(view->live_peers, ","),
                       absl::StrJoin(view->down_peers, ","));
          down_peers_ = view->down_peers;
          core_.SetPeers(std::move(view->live_peers), std::move(view->down_peers));
        }
      }
      core_.Tick(now);
      ready = TakeDoneLocked();
    }
    for (auto& [cb, s] : ready) std::move(cb)(s);
    Pump();
    // A tick, or less when the core holds a batch back until a time (the
    // push interval, a backoff); Pump moves the wake earlier.
    absl::MutexLock lock(&mu_);
    const int64_t after = MonotonicMs();
    loop_wake_ms_ = after + absl::ToInt64Milliseconds(options_.tick);
    if (std::optional<int64_t> next = core_.NextRetryMs(); next.has_value()) {
      loop_wake_ms_ = std::min(loop_wake_ms_, *next);
    }
    while (!stop_.HasBeenNotified()) {
      const int64_t left = loop_wake_ms_ - MonotonicMs();
      if (left <= 0) break;
      wake_.WaitWithTimeout(&mu_, absl::Milliseconds(left));
    }
    if (stop_.HasBeenNotified()) return;
  }
}

void Replicator::Read(std::string key, replication::ConsistencyLevel level,
                      absl::Time deadline, ReadDone done) {
  absl::StatusOr<Plan> plan = PlanFor(level);
  if (!plan.ok()) {
    std::move(done)(plan.status());
    return;
  }
  absl::StatusOr<std::optional<storage::Record>> local = store_->Get(key);
  if (!local.ok() || plan->needed <= 1) {
    std::move(done)(std::move(local));
    return;
  }
  auto state = std::make_shared<ReadState>(plan->needed, plan->targets, *local,
                                           std::move(done), level, plan->members);
  std::vector<ReadCall*> calls;
  std::vector<peer::v1::Replica::Stub*> stubs;
  {
    absl::MutexLock lock(&mu_);
    if (!stopped_) {
      const absl::Time until =
          std::min(deadline, absl::Now() + options_.ack_timeout);
      for (const std::string& peer : plan->targets) {
        auto* call = new ReadCall;
        call->peer = peer;
        call->request.set_key(key);
        call->context.set_deadline(absl::ToChronoTime(until));
        reads_.insert(call);
        calls.push_back(call);
        stubs.push_back(StubForLocked(peer));
      }
    }
  }
  if (calls.empty()) {
    // Stopped: every asked peer fails.
    for (const std::string& peer : plan->targets) {
      absl::MutexLock lock(&state->mu);
      state->collector.OnFailure(peer);
    }
    ReadReplied(state, nullptr, grpc::Status(grpc::StatusCode::UNAVAILABLE, "stopped"));
    return;
  }
  for (size_t i = 0; i < calls.size(); ++i) {
    ReadCall* call = calls[i];
    stubs[i]->async()->Read(&call->context, &call->request, &call->reply,
                            [this, state, call](grpc::Status s) {
                              ReadReplied(state, call, s);
                            });
  }
}

void Replicator::ReadReplied(const std::shared_ptr<ReadState>& state, ReadCall* call,
                             const grpc::Status& status) {
  ReadDone done;
  absl::StatusOr<std::optional<storage::Record>> result;
  std::vector<std::string> stale;
  bool local_stale = false;
  std::optional<storage::Record> newest;
  {
    absl::MutexLock lock(&state->mu);
    if (call != nullptr) {
      if (status.ok()) {
        std::optional<storage::Record> rec;
        bool valid = true;
        if (call->reply.found()) {
          // A peer's record is checked as any pushed record.
          absl::StatusOr<storage::Record> r = replication::RecordFromProto(
              call->reply.record(), replication::RecordLimits{});
          if (r.ok() && r->key == call->request.key()) {
            rec = *std::move(r);
          } else {
            valid = false;
          }
        }
        if (valid) {
          state->collector.OnReply(call->peer, std::move(rec));
        } else {
          state->collector.OnFailure(call->peer);
        }
      } else {
        if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
          state->deadline_hit = true;
        }
        state->collector.OnFailure(call->peer);
      }
    }
    // Through state->collector each time (not an alias), so that clang
    // sees the accesses under state->mu.
    if (state->done != nullptr && state->collector.Ready()) {
      done = std::move(state->done);
      state->done = nullptr;
      if (state->collector.Succeeded()) {
        result = state->collector.newest();
      } else {
        const std::string msg = absl::StrCat(
            LevelName(state->level), " read: ", state->collector.answered(), " of ",
            state->collector.needed(), " replicas needed answered (", state->members,
            " members)");
        result = state->deadline_hit ? absl::DeadlineExceededError(msg)
                                     : absl::UnavailableError(msg);
      }
    }
    if (state->collector.AllDone() && state->collector.newest().has_value()) {
      stale = state->collector.StalePeers();
      local_stale = state->collector.LocalStale();
      if (!stale.empty() || local_stale) newest = state->collector.newest();
    }
  }
  if (call != nullptr) {
    absl::MutexLock lock(&mu_);
    reads_.erase(call);
  }
  delete call;
  if (done != nullptr) std::move(done)(std::move(result));
  if (newest.has_value()) {
    if (local_stale) {
      absl::StatusOr<storage::ApplyResult> r =
          store_->ApplyBatch(std::span<const storage::Record>(&*newest, 1));
      if (!r.ok()) spdlog::warn("read repair: local apply failed: {}", r.status().ToString());
    }
    if (!stale.empty()) Repair(stale, *newest);
  }
}

void Replicator::Repair(const std::vector<std::string>& peers,
                        const storage::Record& record) {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    for (const std::string& peer : peers) core_.Repair(peer, record);
    reads_repaired_ += static_cast<int64_t>(peers.size());
  }
  Pump();
}

void Replicator::Forward(std::span<const storage::Record> records,
                         std::span<const uint32_t> hops, const std::string& from) {
  if (!options_.enabled) return;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    if (core_.Forward(records, hops, from) == 0) return;
  }
  Pump();
}

ReplicatorStats Replicator::stats() const {
  absl::MutexLock lock(&mu_);
  ReplicatorStats s;
  s.fanout = core_.stats();
  s.push_calls_failed = push_calls_failed_;
  s.reads_repaired = reads_repaired_;
  return s;
}

void FillFanoutStats(const Replicator* replicator, const ReplicaService* replica,
                     kv::v1::FanoutStats* out) {
  if (replicator != nullptr) {
    const ReplicatorStats s = replicator->stats();
    out->set_records_queued(s.fanout.records_queued);
    out->set_records_coalesced(s.fanout.records_coalesced);
    out->set_records_dropped(s.fanout.records_dropped);
    out->set_records_acked(s.fanout.records_acked);
    out->set_pushes_sent(s.fanout.batches_sent);
    out->set_pushes_failed(s.fanout.batches_failed);
    out->set_writes_acked(s.fanout.writes_ok);
    out->set_writes_failed(s.fanout.writes_failed);
    out->set_rumor_writes(s.fanout.rumor_writes);
    out->set_records_forwarded(s.fanout.records_forwarded);
    out->set_reads_repaired(s.reads_repaired);
    out->set_records_retried(s.fanout.records_retried);
  }
  if (replica != nullptr) {
    out->set_received_applied(replica->records_applied());
    out->set_received_refused_clock(replica->records_refused_clock());
    out->set_received_over_limits(replica->records_over_limits());
  }
}

// ---------------------------------------------------------------------------
// ReplicaService

grpc::ServerUnaryReactor* ReplicaService::Push(grpc::CallbackServerContext* ctx,
                                               const peer::v1::PushRequest* req,
                                               peer::v1::PushReply* reply) {
  auto* reactor = ctx->DefaultReactor();
  std::vector<storage::Record> records;
  records.reserve(req->records_size());
  int64_t over_limits = 0;
  absl::Status first_over_limits;
  for (int i = 0; i < req->records_size(); ++i) {
    absl::StatusOr<storage::Record> r =
        replication::RecordFromProto(req->records(i), limits_);
    if (!r.ok()) {
      // Over this node's limits but well formed (the sender runs with larger
      // ones): skipped, so that the rest of the batch is stored.
      if (replication::OverLimits(req->records(i), limits_)) {
        if (over_limits++ == 0) first_over_limits = r.status();
        continue;
      }
      reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError(
          absl::StrCat("record ", i, ": ", r.status().message()))));
      return reactor;
    }
    records.push_back(*std::move(r));
  }
  if (over_limits > 0) {
    over_limits_ += over_limits;
    reply->set_skipped_over_limits(static_cast<uint32_t>(over_limits));
    spdlog::warn("fanout: skipped {} pushed records over this node's limits from {}: {}",
                 over_limits, ctx->peer(), first_over_limits.ToString());
  }
  // Rumor mongering: which records with hops left are new to this node,
  // read before the apply (ApplyBatch reports only a count). Records skipped
  // above are not in `records`, so hops are matched by key.
  std::vector<size_t> rumor;  // Indexes into `records`.
  std::vector<uint32_t> rumor_hops;
  if (forwarder_ != nullptr && req->hops_size() > 0) {
    absl::flat_hash_map<absl::string_view, uint32_t> hops_by_key;
    for (int i = 0; i < req->records_size() && i < req->hops_size(); ++i) {
      if (req->hops(i) > 0) hops_by_key[req->records(i).key()] = req->hops(i);
    }
    for (size_t i = 0; i < records.size() && !hops_by_key.empty(); ++i) {
      auto h = hops_by_key.find(records[i].key);
      if (h == hops_by_key.end()) continue;
      absl::StatusOr<std::optional<storage::Record>> held = store_->Get(records[i].key);
      if (!held.ok()) continue;  // The apply below reports storage errors.
      if (!held->has_value() || (*held)->version < records[i].version) {
        rumor.push_back(i);
        rumor_hops.push_back(h->second);
      }
    }
  }
  // The same path as anti-entropy: last writer wins, the clock-drift refusal.
  absl::StatusOr<storage::ApplyResult> applied = store_->ApplyBatch(records);
  if (!applied.ok()) {
    reactor->Finish(ToGrpcStatus(applied.status()));
    return reactor;
  }
  reply->set_applied(static_cast<uint32_t>(applied->applied));
  reply->set_refused_clock(static_cast<uint32_t>(applied->refused));
  applied_ += applied->applied;
  if (applied->refused > 0) {
    refused_clock_ += applied->refused;
    spdlog::warn("fanout: refused {} pushed records from {}: {}", applied->refused,
                 ctx->peer(), applied->first_refusal.ToString());
  }
  if (!rumor.empty() && applied->applied > 0) {
    // Forward what was stored (not refused for its clock) after the apply:
    // the forwarded copies are durable here.
    std::vector<bool> refused(records.size(), false);
    for (size_t i : applied->refused_index) {
      if (i < refused.size()) refused[i] = true;
    }
    std::vector<storage::Record> forward;
    std::vector<uint32_t> forward_hops;
    for (size_t j = 0; j < rumor.size(); ++j) {
      if (refused[rumor[j]]) continue;
      forward.push_back(records[rumor[j]]);
      forward_hops.push_back(rumor_hops[j]);
    }
    forwarder_->Forward(forward, forward_hops, req->sender());
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* ReplicaService::Read(grpc::CallbackServerContext* ctx,
                                               const peer::v1::ReadRequest* req,
                                               peer::v1::ReadReply* reply) {
  auto* reactor = ctx->DefaultReactor();
  absl::Status s = storage::CheckKey(limits_, req->key());
  if (s.ok()) {
    absl::StatusOr<std::optional<storage::Record>> rec = store_->Get(req->key());
    if (!rec.ok()) {
      s = rec.status();
    } else if (rec->has_value()) {
      reply->set_found(true);
      *reply->mutable_record() = replication::RecordToProto(**rec);
    }
  }
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

}  // namespace kv::server
