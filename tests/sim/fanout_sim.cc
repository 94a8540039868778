#include "tests/sim/fanout_sim.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace kv::sim {

using replication::ConsistencyLevel;
using replication::Fanout;
using replication::FanoutBatch;
using replication::ReadCollector;
using storage::Record;
using storage::Version;

struct FanoutSimulation::Tracked {
  std::vector<Record> records;
  ConsistencyLevel level = ConsistencyLevel::kOne;
  int needed = 1;
};

struct FanoutSimulation::Node {
  int index = 0;
  bool up = true;
  uint64_t incarnation = 1;
  uint64_t clock = 0;                     // Hybrid clock: ms << 16 | logical.
  std::map<std::string, Record> data;     // Durable: survives a crash.
  std::unique_ptr<Fanout> core;           // Volatile.
  std::vector<std::string> view;          // Live peers as this node sees them.
  std::map<uint64_t, Tracked> tracked;    // QUORUM/ALL writes by write id.
  int64_t wake_at = -1;                   // A Pump scheduled for a retry.
};

namespace {

void Add(replication::FanoutStats& sum, const replication::FanoutStats& s) {
  sum.records_queued += s.records_queued;
  sum.records_coalesced += s.records_coalesced;
  sum.records_dropped += s.records_dropped;
  sum.records_acked += s.records_acked;
  sum.batches_sent += s.batches_sent;
  sum.batches_failed += s.batches_failed;
  sum.writes_ok += s.writes_ok;
  sum.writes_failed += s.writes_failed;
  sum.rumor_writes += s.rumor_writes;
  sum.records_forwarded += s.records_forwarded;
}

int LevelIndex(ConsistencyLevel level) {
  switch (level) {
    case ConsistencyLevel::kOne:
      return 0;
    case ConsistencyLevel::kQuorum:
      return 1;
    case ConsistencyLevel::kAll:
      return 2;
  }
  return 0;
}

}  // namespace

std::string FanoutSimResult::Summary() const {
  return absl::StrCat(
      ok ? "ok" : "FAILED: " + failure, "; converge ", converge_ms, " ms; writes ",
      writes_attempted, " (acked ONE ", writes_acked[0], ", QUORUM ", writes_acked[1],
      ", ALL ", writes_acked[2], "; refused ", writes_refused, ", failed ", writes_failed,
      "); QUORUM reads ok ", reads_ok, " (checked ", reads_checked, "), failed ",
      reads_failed, "; pushes ", push_calls, " (failed ", push_failed, "), forwarded ",
      fanout.records_forwarded, ", dropped ", fanout.records_dropped, "; ae syncs ",
      ae_syncs, "; crashes ", crashes, "; trace ", trace_hash);
}

FanoutSimulation::FanoutSimulation(const FanoutSimOptions& options)
    : options_(options), rng_(options.seed) {}

FanoutSimulation::~FanoutSimulation() = default;

void FanoutSimulation::At(int64_t time, std::function<void()> fn) {
  events_.At(time, std::move(fn));
}

int64_t FanoutSimulation::Delay() {
  return static_cast<int64_t>(rng_.Uniform(static_cast<uint64_t>(options_.min_delay_ms),
                                           static_cast<uint64_t>(options_.max_delay_ms)));
}

void FanoutSimulation::Trace(uint64_t v) {
  // FNV-1a over the 8 bytes.
  for (int i = 0; i < 8; ++i) {
    result_.trace_hash ^= (v >> (8 * i)) & 0xff;
    result_.trace_hash *= 0x100000001b3ULL;
  }
}

void FanoutSimulation::Trace(const std::string& s) {
  for (unsigned char c : s) {
    result_.trace_hash ^= c;
    result_.trace_hash *= 0x100000001b3ULL;
  }
}

void FanoutSimulation::Fail(const std::string& why) {
  if (result_.failure.empty()) result_.failure = absl::StrCat("at ", now_, " ms: ", why);
}

bool FanoutSimulation::Connected(int a, int b) const {
  return !partitioned_ || group_[a] == group_[b];
}

bool FanoutSimulation::Up(int n) const { return nodes_[n]->up; }

std::string FanoutSimulation::Address(int n) { return absl::StrCat("n", n); }

int FanoutSimulation::Index(const std::string& address) {
  return std::atoi(address.c_str() + 1);
}

Version FanoutSimulation::NextVersion(Node& n) {
  n.clock = std::max(n.clock + 1, static_cast<uint64_t>(now_) << 16);
  return Version{n.clock, static_cast<uint64_t>(n.index) + 1};
}

bool FanoutSimulation::Apply(Node& n, const Record& r) {
  n.clock = std::max(n.clock, r.version.hlc);
  auto it = n.data.find(r.key);
  if (it != n.data.end() && it->second.version >= r.version) return false;
  n.data[r.key] = r;
  auto s = spread_index_.find(r.key);
  if (s != spread_index_.end()) {
    WriteSpread& sp = result_.spreads[s->second];
    if (++sp.holders == static_cast<int>(nodes_.size())) sp.all_ms = now_ - sp.start_ms;
  }
  return true;
}

void FanoutSimulation::MakeCore(int n) {
  Node& node = *nodes_[n];
  if (node.core != nullptr) Add(result_.fanout, node.core->stats());
  replication::FanoutOptions o = options_.fanout;
  o.seed = rng_();
  node.core = std::make_unique<Fanout>(o);
  node.core->SetPeers(node.view, DownPeers(n));
}

std::vector<std::string> FanoutSimulation::ComputeView(int n) const {
  std::vector<std::string> out;
  for (int j = 0; j < static_cast<int>(nodes_.size()); ++j) {
    if (j != n && Up(j) && Connected(n, j)) out.push_back(Address(j));
  }
  return out;
}

std::vector<std::string> FanoutSimulation::DownPeers(int n) const {
  if (!options_.hinted_handoff) return {};
  std::vector<std::string> out;
  for (int j = 0; j < static_cast<int>(nodes_.size()); ++j) {
    if (j != n && !(Up(j) && Connected(n, j))) out.push_back(Address(j));
  }
  return out;
}

void FanoutSimulation::Pump(int n) {
  Node& node = *nodes_[n];
  if (!node.up) return;
  node.core->Tick(now_);  // Ends backoffs (and fails expired writes).
  TakeOutcomes(n);
  std::vector<FanoutBatch> batches = node.core->TakeBatches();
  // A peer backing off after a failed push: wake up when it may be retried.
  if (std::optional<int64_t> wake = node.core->NextRetryMs();
      wake.has_value() && *wake > now_ && node.wake_at != *wake) {
    node.wake_at = *wake;
    const uint64_t inc = node.incarnation;
    At(*wake, [this, n, inc] {
      if (nodes_[n]->up && nodes_[n]->incarnation == inc) Pump(n);
    });
  }
  for (FanoutBatch& b : batches) {
    ++result_.push_calls;
    const int to = Index(b.peer);
    Trace(absl::StrCat("push ", n, ">", to, " #", b.batch_id, " x", b.records.size()));
    for (const Record& r : b.records) {
      auto s = spread_index_.find(r.key);
      if (s == spread_index_.end()) continue;
      WriteSpread& sp = result_.spreads[s->second];
      ++sp.push_calls;
      ++sp.copies;
      if (sp.hops[n] == 0) ++sp.writer_copies;
    }
    const int64_t deadline = now_ + options_.push_deadline_ms;
    const bool lost = loss_ > 0 && rng_.Chance(loss_);
    const uint64_t inc = node.incarnation;
    const uint64_t batch_id = b.batch_id;
    At(now_ + Delay(), [this, n, inc, to, batch_id, deadline, lost,
                        records = std::move(b.records), hops = std::move(b.hops)]() mutable {
      if (lost || !Connected(n, to)) {
        At(deadline, [this, n, inc, to, batch_id] {
          PushDone(n, inc, Address(to), batch_id, false);
        });
        return;
      }
      if (!Up(to)) {  // Connection refused: the sender learns it fast.
        At(now_ + Delay(), [this, n, inc, to, batch_id] {
          PushDone(n, inc, Address(to), batch_id, false);
        });
        return;
      }
      DeliverPush(n, inc, to, batch_id, std::move(records), std::move(hops));
      const bool reply_lost = loss_ > 0 && rng_.Chance(loss_);
      At(reply_lost ? std::max(deadline, now_ + 1) : now_ + Delay(),
         [this, n, inc, to, batch_id, reply_lost] {
           PushDone(n, inc, Address(to), batch_id, !reply_lost);
         });
    });
  }
}

void FanoutSimulation::DeliverPush(int from, uint64_t from_inc, int to, uint64_t batch_id,
                                   std::vector<Record> records,
                                   std::vector<uint32_t> hops) {
  (void)from_inc;
  (void)batch_id;
  Node& node = *nodes_[to];
  std::vector<Record> changed;
  std::vector<uint32_t> changed_hops;
  for (size_t i = 0; i < records.size(); ++i) {
    if (!Apply(node, records[i])) continue;
    Trace(absl::StrCat("apply ", to, " ", records[i].key, " ", records[i].version.hlc));
    auto s = spread_index_.find(records[i].key);
    if (s != spread_index_.end()) {
      WriteSpread& sp = result_.spreads[s->second];
      if (sp.hops[from] >= 0 && sp.hops[to] < 0) {
        sp.hops[to] = sp.hops[from] + 1;
        ++sp.reached;
        sp.max_hop = std::max(sp.max_hop, sp.hops[to]);
      }
    }
    changed.push_back(std::move(records[i]));
    changed_hops.push_back(i < hops.size() ? hops[i] : 0);
  }
  // As ReplicaService::Push: what changed this node's data goes on.
  if (!changed.empty()) node.core->Forward(changed, changed_hops, Address(from));
  Pump(to);
}

void FanoutSimulation::PushDone(int from, uint64_t from_inc, const std::string& to,
                                uint64_t batch_id, bool ok) {
  Node& node = *nodes_[from];
  if (!node.up || node.incarnation != from_inc) return;
  Trace(absl::StrCat("done ", from, ">", to, " #", batch_id, ok ? " ok" : " failed"));
  if (!ok) ++result_.push_failed;
  node.core->OnBatchDone(to, batch_id, ok);
  Pump(from);
}

void FanoutSimulation::TakeOutcomes(int n) {
  Node& node = *nodes_[n];
  for (const replication::WriteOutcome& o : node.core->TakeOutcomes()) {
    auto it = node.tracked.find(o.write_id);
    if (it == node.tracked.end()) continue;
    const Tracked t = std::move(it->second);
    node.tracked.erase(it);
    Trace(absl::StrCat("outcome ", n, " ", o.write_id, o.ok ? " ok" : " failed"));
    if (!o.ok) {
      ++result_.writes_failed;
      continue;
    }
    ++result_.writes_acked[LevelIndex(t.level)];
    for (const Record& r : t.records) {
      int holding = 0;
      for (const auto& m : nodes_) {
        auto d = m->data.find(r.key);
        if (d != m->data.end() && d->second.version >= r.version) ++holding;
      }
      if (holding < t.needed) {
        Fail(absl::StrCat("write of ", r.key, " at ", r.version.ToString(), " acknowledged at ",
                          t.level == ConsistencyLevel::kAll ? "ALL" : "QUORUM", " by node ", n,
                          " is on ", holding, " nodes, needed ", t.needed));
      }
      Version& q = quorum_acked_[r.key];
      q = std::max(q, r.version);
      Version& a = newest_acked_[r.key];
      a = std::max(a, r.version);
    }
  }
}

void FanoutSimulation::Write(int n) {
  Node& node = *nodes_[n];
  ++result_.writes_attempted;
  ConsistencyLevel level = ConsistencyLevel::kOne;
  if (rng_.Chance(options_.all_fraction)) {
    level = ConsistencyLevel::kAll;
  } else if (rng_.Chance(options_.quorum_fraction /
                         std::max(1e-9, 1.0 - options_.all_fraction))) {
    level = ConsistencyLevel::kQuorum;
  }
  const int members = static_cast<int>(nodes_.size());
  const int needed = replication::RequiredReplicas(level, members);
  if (static_cast<int>(node.view.size()) + 1 < needed) {
    ++result_.writes_refused;  // UNAVAILABLE before anything is written.
    return;
  }
  std::vector<std::string> keys;
  if (options_.key_space == 0) {
    keys.push_back(absl::StrCat("w", result_.spreads.size()));
    WriteSpread sp;
    sp.hops.assign(nodes_.size(), -1);
    sp.hops[n] = 0;
    sp.start_ms = now_;
    spread_index_[keys[0]] = result_.spreads.size();
    result_.spreads.push_back(std::move(sp));
  } else {
    const int count = rng_.Chance(0.1) ? 2 : 1;
    while (static_cast<int>(keys.size()) < std::min(count, options_.key_space)) {
      std::string k = absl::StrCat(
          "k", rng_.Uniform(0, static_cast<uint64_t>(options_.key_space) - 1));
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
    }
  }
  std::vector<Record> records;
  for (const std::string& k : keys) {
    Record r;
    r.key = k;
    r.version = NextVersion(node);
    r.tombstone = options_.key_space > 0 && rng_.Chance(0.1);
    if (!r.tombstone) r.value = absl::StrCat("v", r.version.hlc, "@", n);
    Apply(node, r);
    records.push_back(std::move(r));
  }
  Trace(absl::StrCat("write ", n, " ", keys[0], " level ", LevelIndex(level)));
  if (level == ConsistencyLevel::kOne) {
    node.core->Write(records, 1, now_, 0);
    ++result_.writes_acked[0];
    for (const Record& r : records) {
      Version& a = newest_acked_[r.key];
      a = std::max(a, r.version);
    }
  } else {
    const uint64_t id = node.core->Write(records, needed, now_,
                                         now_ + options_.ack_timeout_ms, node.view);
    node.tracked[id] = Tracked{records, level, needed};
    const uint64_t inc = node.incarnation;
    At(now_ + options_.ack_timeout_ms, [this, n, inc] {
      Node& m = *nodes_[n];
      if (!m.up || m.incarnation != inc) return;
      m.core->Tick(now_);
      TakeOutcomes(n);
    });
  }
  Pump(n);
}

void FanoutSimulation::Read(int n) {
  Node& node = *nodes_[n];
  const int members = static_cast<int>(nodes_.size());
  const int needed = replication::RequiredReplicas(ConsistencyLevel::kQuorum, members);
  if (static_cast<int>(node.view.size()) + 1 < needed) {
    ++result_.reads_failed;
    return;
  }
  const std::string key =
      absl::StrCat("k", rng_.Uniform(0, static_cast<uint64_t>(options_.key_space) - 1));
  std::optional<Version> floor;
  if (auto q = quorum_acked_.find(key); q != quorum_acked_.end()) floor = q->second;
  std::optional<Record> local;
  if (auto d = node.data.find(key); d != node.data.end()) local = d->second;
  struct State {
    explicit State(int needed, std::vector<std::string> asked, std::optional<Record> local)
        : collector(needed, std::move(asked), std::move(local)) {}
    ReadCollector collector;
    bool done = false;
    bool repaired = false;
  };
  auto state = std::make_shared<State>(needed, node.view, local);
  const uint64_t inc = node.incarnation;
  const int64_t deadline = now_ + options_.ack_timeout_ms;
  auto settle = [this, n, inc, key, floor, state] {
    Node& c = *nodes_[n];
    if (!c.up || c.incarnation != inc) return;
    if (!state->done && state->collector.Ready()) {
      state->done = true;
      if (!state->collector.Succeeded()) {
        ++result_.reads_failed;
      } else {
        ++result_.reads_ok;
        const std::optional<Record>& got = state->collector.newest();
        Trace(absl::StrCat("read ", n, " ", key, " ",
                           got.has_value() ? got->version.hlc : 0));
        if (floor.has_value()) {
          ++result_.reads_checked;
          if (!got.has_value() || got->version < *floor) {
            Fail(absl::StrCat("QUORUM read of ", key, " at node ", n, " returned ",
                              got.has_value() ? got->version.ToString() : "nothing",
                              ", below ", floor->ToString(),
                              " acknowledged at QUORUM/ALL before the read"));
          }
        }
      }
    }
    if (!state->repaired && state->collector.AllDone() &&
        state->collector.newest().has_value()) {
      state->repaired = true;  // Read repair, as Replicator::ReadReplied.
      const Record& newest = *state->collector.newest();
      if (state->collector.LocalStale()) Apply(c, newest);
      for (const std::string& p : state->collector.StalePeers()) c.core->Repair(p, newest);
      Pump(n);
    }
  };
  for (const std::string& peer : node.view) {
    const int to = Index(peer);
    const bool lost = loss_ > 0 && rng_.Chance(loss_);
    At(now_ + Delay(), [this, n, to, peer, key, lost, deadline, state, settle] {
      auto fail_at = [this, peer, state, settle](int64_t t) {
        At(t, [peer, state, settle] {
          state->collector.OnFailure(peer);
          settle();
        });
      };
      if (lost || !Connected(n, to)) return fail_at(deadline);
      if (!Up(to)) return fail_at(now_ + Delay());
      std::optional<Record> rec;
      if (auto d = nodes_[to]->data.find(key); d != nodes_[to]->data.end()) rec = d->second;
      if (loss_ > 0 && rng_.Chance(loss_)) return fail_at(deadline);
      At(now_ + Delay(), [peer, rec, state, settle] {
        state->collector.OnReply(peer, rec);
        settle();
      });
    });
  }
  settle();  // No peers asked (a 1-node quorum).
}

void FanoutSimulation::AntiEntropyTick(int n, uint64_t inc) {
  Node& node = *nodes_[n];
  if (!node.up || node.incarnation != inc) return;
  if (!node.view.empty()) {
    const int peer = Index(node.view[rng_.Uniform(0, node.view.size() - 1)]);
    const bool lost = loss_ > 0 && rng_.Chance(loss_);
    At(now_ + Delay(), [this, n, peer, lost] {
      if (lost || !Up(n) || !Up(peer) || !Connected(n, peer)) return;
      Sync(n, peer);
    });
  }
  const int64_t half = options_.ae_interval_ms / 2;
  At(now_ + half + static_cast<int64_t>(rng_.Uniform(0, static_cast<uint64_t>(2 * half))),
     [this, n, inc] { AntiEntropyTick(n, inc); });
}

void FanoutSimulation::Sync(int a, int b) {
  ++result_.ae_syncs;
  Trace(absl::StrCat("sync ", a, " ", b));
  Node& x = *nodes_[a];
  Node& y = *nodes_[b];
  for (const auto& [k, r] : x.data) Apply(y, r);
  for (const auto& [k, r] : y.data) Apply(x, r);
}

void FanoutSimulation::Crash(int n) {
  Node& node = *nodes_[n];
  if (!node.up) return;
  int live = 0;
  for (const auto& m : nodes_) live += m->up ? 1 : 0;
  if (live <= 1) return;
  Trace(absl::StrCat("crash ", n));
  ++result_.crashes;
  Add(result_.fanout, node.core->stats());
  node.core.reset();
  node.tracked.clear();  // Their clients get no answer: not acknowledged.
  node.up = false;
  ScheduleViews();
  At(now_ + 500 + static_cast<int64_t>(rng_.Uniform(0, static_cast<uint64_t>(std::max<int64_t>(
                                                            0, options_.max_down_ms - 500)))),
     [this, n] { Restart(n); });
}

void FanoutSimulation::Restart(int n) {
  Node& node = *nodes_[n];
  if (node.up) return;
  Trace(absl::StrCat("restart ", n));
  node.up = true;
  ++node.incarnation;
  node.view = ComputeView(n);
  MakeCore(n);
  if (options_.anti_entropy) {
    const uint64_t inc = node.incarnation;
    At(now_ + Delay(), [this, n, inc] { AntiEntropyTick(n, inc); });
  }
  ScheduleViews();
}

void FanoutSimulation::Partition() {
  if (partitioned_) return;
  const int n = static_cast<int>(nodes_.size());
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  for (int i = n - 1; i > 0; --i) std::swap(order[i], order[rng_.Uniform(0, i)]);
  const int side = 1 + static_cast<int>(rng_.Uniform(0, static_cast<uint64_t>(n - 2)));
  group_.assign(n, 0);
  for (int i = 0; i < side; ++i) group_[order[i]] = 1;
  partitioned_ = true;
  Trace(absl::StrCat("partition ", side));
  ScheduleViews();
  At(now_ + 500 + static_cast<int64_t>(rng_.Uniform(
                      0, static_cast<uint64_t>(std::max<int64_t>(
                             0, options_.max_partition_ms - 500)))),
     [this] { Heal(); });
}

void FanoutSimulation::Heal() {
  if (!partitioned_) return;
  Trace("heal");
  partitioned_ = false;
  ScheduleViews();
}

void FanoutSimulation::ScheduleViews() {
  const int64_t half = options_.detect_ms / 2;
  for (int m = 0; m < static_cast<int>(nodes_.size()); ++m) {
    const int64_t t =
        now_ + half + static_cast<int64_t>(rng_.Uniform(0, static_cast<uint64_t>(2 * half)));
    At(t, [this, m] { UpdateView(m); });
  }
}

void FanoutSimulation::UpdateView(int n) {
  Node& node = *nodes_[n];
  if (!node.up) return;
  node.core->SetPeers(ComputeView(n), DownPeers(n));
  node.view = node.core->peers();
  Pump(n);
}

std::string FanoutSimulation::CheckConverged() const {
  const auto& first = nodes_[0]->data;
  for (size_t i = 1; i < nodes_.size(); ++i) {
    if (nodes_[i]->data != first) {
      return absl::StrCat("node ", i, " holds ", nodes_[i]->data.size(), " keys, node 0 ",
                          first.size(), " (or other versions)");
    }
  }
  for (const auto& [key, version] : newest_acked_) {
    auto it = first.find(key);
    if (it == first.end() || it->second.version < version) {
      return absl::StrCat("acknowledged ", key, " at ", version.ToString(), " is lost");
    }
  }
  return "";
}

void FanoutSimulation::RunUntil(int64_t until) {
  while (!events_.empty() && events_.next_time() <= until) {
    std::function<void()> fn = events_.Pop(&now_);
    fn();
  }
  now_ = until;
}

FanoutSimResult FanoutSimulation::Run() {
  const int n = options_.num_nodes;
  for (int i = 0; i < n; ++i) {
    auto node = std::make_unique<Node>();
    node->index = i;
    for (int j = 0; j < n; ++j) {
      if (j != i) node->view.push_back(Address(j));
    }
    nodes_.push_back(std::move(node));
  }
  for (int i = 0; i < n; ++i) MakeCore(i);
  group_.assign(n, 0);
  loss_ = options_.loss;
  if (options_.anti_entropy) {
    for (int i = 0; i < n; ++i) {
      // First tick one jittered interval in, as the later ones.
      At(options_.ae_interval_ms / 2 +
             static_cast<int64_t>(rng_.Uniform(0, static_cast<uint64_t>(options_.ae_interval_ms))),
         [this, i] { AntiEntropyTick(i, 1); });
    }
  }
  const int64_t phase = options_.write_phase_ms;
  auto random_live = [this]() -> int {
    std::vector<int> live;
    for (const auto& m : nodes_) {
      if (m->up) live.push_back(m->index);
    }
    return live.empty() ? -1 : live[rng_.Uniform(0, live.size() - 1)];
  };
  for (int w = 0; w < options_.writes; ++w) {
    At(phase * (w + 1) / (options_.writes + 1), [this, random_live] {
      const int at = random_live();
      if (at >= 0) Write(at);
    });
  }
  if (options_.key_space > 0) {
    for (int r = 0; r < options_.quorum_reads; ++r) {
      At(phase * (r + 1) / (options_.quorum_reads + 1) + 3, [this, random_live] {
        const int at = random_live();
        if (at >= 0) Read(at);
      });
    }
  }
  for (int c = 0; c < options_.crashes; ++c) {
    At(static_cast<int64_t>(rng_.Uniform(static_cast<uint64_t>(phase / 10),
                                          static_cast<uint64_t>(phase * 8 / 10))),
       [this, random_live] {
         const int at = random_live();
         if (at >= 0) Crash(at);
       });
  }
  if (n >= 2) {
    for (int p = 0; p < options_.partitions; ++p) {
      At(static_cast<int64_t>(rng_.Uniform(static_cast<uint64_t>(phase / 10),
                                            static_cast<uint64_t>(phase * 8 / 10))),
         [this] { Partition(); });
    }
  }
  RunUntil(phase);

  // Healing: no more loss, partitions healed, crashed nodes back.
  loss_ = 0;
  Heal();
  for (int i = 0; i < n; ++i) Restart(i);
  const int64_t healed = now_;
  if (options_.anti_entropy) {
    std::string why;
    for (int64_t t = healed; t <= healed + options_.converge_bound_ms;
         t += options_.check_interval_ms) {
      RunUntil(t);
      why = CheckConverged();
      if (why.empty()) {
        result_.converge_ms = t - healed;
        break;
      }
    }
    if (!why.empty()) Fail(absl::StrCat("not converged within the bound: ", why));
  } else {
    // The fast path alone: let every push and its reply finish.
    RunUntil(healed + options_.push_deadline_ms + 4 * options_.max_delay_ms +
             options_.ack_timeout_ms);
  }
  for (const auto& node : nodes_) {
    if (node->core != nullptr) Add(result_.fanout, node->core->stats());
  }
  result_.ok = result_.failure.empty();
  return std::move(result_);
}

}  // namespace kv::sim
