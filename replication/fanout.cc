#include "replication/fanout.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

namespace kv::replication {
namespace {

// What a record adds to a Push message beyond its key and value (tags,
// lengths, the version); an upper bound.
constexpr size_t kRecordOverheadBytes = 40;

size_t RecordBytes(const storage::Record& r) {
  return r.key.size() + r.value.size() + kRecordOverheadBytes;
}

}  // namespace

int RequiredReplicas(ConsistencyLevel level, int members) {
  members = std::max(members, 1);
  switch (level) {
    case ConsistencyLevel::kOne:
      return 1;
    case ConsistencyLevel::kQuorum:
      return members / 2 + 1;
    case ConsistencyLevel::kAll:
      return members;
  }
  return 1;
}

int RumorHops(int members, int fanout) {
  fanout = std::max(fanout, 2);
  members = std::max(members, 1);
  // ceil(log_fanout(members)) by integer steps (no floating-point edge).
  int hops = 0;
  for (int64_t reach = 1; reach < members; reach *= fanout) ++hops;
  return hops + static_cast<int>(std::ceil(std::log(static_cast<double>(members)))) + 2;
}

Fanout::Fanout(FanoutOptions options) : options_(options), rng_(options.seed) {}

std::vector<std::string> Fanout::ChoosePeers(size_t k, const std::string& exclude) {
  std::vector<std::string> pool;
  pool.reserve(peers_.size());
  for (const std::string& p : peers_) {
    if (p != exclude) pool.push_back(p);
  }
  k = std::min(k, pool.size());
  // Partial Fisher-Yates with our own draws (std distributions differ
  // between standard libraries; the simulator replays by seed).
  for (size_t i = 0; i < k; ++i) {
    const size_t j = i + static_cast<size_t>(rng_() % (pool.size() - i));
    std::swap(pool[i], pool[j]);
  }
  pool.resize(k);
  return pool;
}

void Fanout::SetPeers(std::vector<std::string> peers, std::vector<std::string> down) {
  auto normalize = [](std::vector<std::string>& v) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
  };
  normalize(peers);
  normalize(down);
  peers_ = std::move(peers);
  down_.clear();
  for (std::string& d : down) {
    if (!std::binary_search(peers_.begin(), peers_.end(), d)) down_.push_back(std::move(d));
  }
  for (auto it = queues_.begin(); it != queues_.end();) {
    if (std::binary_search(peers_.begin(), peers_.end(), it->first)) {
      it->second.held = false;
      ++it;
      continue;
    }
    if (std::binary_search(down_.begin(), down_.end(), it->first)) {
      if (!it->second.held) Hold(it->first, it->second);
      ++it;
      continue;
    }
    const std::string peer = it->first;
    PeerQueue q = std::move(it->second);
    it = queues_.erase(it);
    ready_.erase(peer);
    DropQueue(peer, q);
  }
}

void Fanout::Hold(const std::string& peer, PeerQueue& q) {
  q.held = true;
  // Its tracked writes fail for it now (it is down); the records stay.
  for (auto& [key, item] : q.items) {
    Resolve(peer, item.write_ids, false);
    item.write_ids.clear();
  }
  for (auto& [id, items] : q.in_flight) {
    for (Item& item : items) {
      Resolve(peer, item.write_ids, false);
      item.write_ids.clear();
    }
  }
}

void Fanout::DropQueue(const std::string& peer, PeerQueue& q) {
  for (auto& [key, item] : q.items) {
    ++stats_.records_dropped;
    Resolve(peer, item.write_ids, false);
  }
  for (auto& [id, items] : q.in_flight) {
    for (Item& item : items) {
      ++stats_.records_dropped;
      Resolve(peer, item.write_ids, false);
    }
  }
}

uint64_t Fanout::Write(std::span<const storage::Record> records, int needed,
                       int64_t now_ms, int64_t deadline_ms,
                       const std::optional<std::vector<std::string>>& targets) {
  now_ms_ = std::max(now_ms_, now_ms);
  // Rumor mongering: an untracked write without targets, with more peers
  // than the fanout, goes to `fanout` random peers.
  const bool rumor = !targets.has_value() && needed <= 1 && options_.fanout > 0 &&
                     peers_.size() > static_cast<size_t>(options_.fanout);
  std::vector<std::string> rumor_targets;
  uint32_t hops = 0;
  if (rumor) {
    rumor_targets = ChoosePeers(static_cast<size_t>(options_.fanout), "");
    // The writer's push is the first hop: its records may be forwarded
    // budget - 1 more times.
    const int budget = options_.rumor_hops > 0
                           ? options_.rumor_hops
                           : RumorHops(static_cast<int>(peers_.size()) + 1, options_.fanout);
    hops = static_cast<uint32_t>(std::max(budget - 1, 0));
    ++stats_.rumor_writes;
  }
  const std::vector<std::string>& to =
      targets.has_value() ? *targets : (rumor ? rumor_targets : peers_);
  uint64_t id = 0;
  if (needed > 1) {
    id = next_write_id_++;
    Pending& p = writes_[id];
    p.needed_peers = needed - 1;
    p.targets = static_cast<int>(to.size());
    p.deadline_ms = deadline_ms;
    for (const std::string& peer : to) {
      if (!records.empty()) p.outstanding[peer] = static_cast<int>(records.size());
    }
    if (records.empty()) p.acked = p.targets;  // Nothing to wait for.
  }
  for (const std::string& peer : to) {
    PeerQueue& q = queues_[peer];
    for (const storage::Record& r : records) Enqueue(q, peer, r, id, hops);
  }
  // Hinted handoff: a direct write is kept for the members that are down,
  // to be pushed when they are back.
  if (!rumor) {
    for (const std::string& peer : down_) {
      PeerQueue& q = queues_[peer];
      q.held = true;
      for (const storage::Record& r : records) Enqueue(q, peer, r, 0, 0);
    }
  }
  if (id != 0) MaybeComplete(id);
  return id;
}

size_t Fanout::Forward(std::span<const storage::Record> records,
                       std::span<const uint32_t> hops, const std::string& from) {
  size_t queued = 0;
  // One draw of targets per hop count (normally one per incoming push), so
  // that records that arrived together travel together.
  std::map<uint32_t, std::vector<std::string>> targets;
  for (size_t i = 0; i < records.size() && i < hops.size(); ++i) {
    if (hops[i] == 0) continue;
    auto it = targets.find(hops[i]);
    if (it == targets.end()) {
      it = targets
               .emplace(hops[i], ChoosePeers(static_cast<size_t>(std::max(
                                                 options_.fanout, 1)),
                                             from))
               .first;
    }
    for (const std::string& peer : it->second) {
      Enqueue(queues_[peer], peer, records[i], 0, hops[i] - 1);
      ++queued;
    }
  }
  stats_.records_forwarded += static_cast<int64_t>(queued);
  return queued;
}

void Fanout::Repair(const std::string& peer, const storage::Record& record) {
  Enqueue(queues_[peer], peer, record, 0);
}

void Fanout::Enqueue(PeerQueue& q, const std::string& peer,
                     const storage::Record& r, uint64_t write_id, uint32_t hops) {
  auto it = q.items.find(r.key);
  if (it != q.items.end()) {
    Item& item = it->second;
    ++stats_.records_coalesced;
    if (r.version > item.record.version) {
      const size_t bytes = RecordBytes(r);
      q.bytes = q.bytes - item.bytes + bytes;
      item.record = r;
      item.bytes = bytes;
      item.hops = hops;
    } else if (r.version == item.record.version) {
      item.hops = std::max(item.hops, hops);
    }
    // Either way the queued record is the newer: it supersedes this write.
    if (write_id != 0) item.write_ids.push_back(write_id);
    return;
  }
  const size_t bytes = RecordBytes(r);
  if (q.items.size() >= options_.max_queue_records ||
      q.bytes + bytes > options_.max_queue_bytes) {
    ++stats_.records_dropped;
    if (write_id != 0) Resolve(peer, {write_id}, false);
    return;
  }
  ++stats_.records_queued;
  Item item{r, bytes, {}, hops};
  if (write_id != 0) item.write_ids.push_back(write_id);
  q.items.emplace(r.key, std::move(item));
  q.order.push_back(r.key);
  q.bytes += bytes;
  ready_.insert(peer);
}

std::vector<FanoutBatch> Fanout::TakeBatches() {
  std::vector<FanoutBatch> out;
  // Only peers with records queued: a Pump per answer must not cost O(N).
  for (auto rit = ready_.begin(); rit != ready_.end();) {
    const std::string& peer = *rit;
    PeerQueue& q = queues_[peer];
    if (q.held || q.retry_at_ms > now_ms_) {  // Down, or backing off.
      ++rit;
      continue;
    }
    while (static_cast<int>(q.in_flight.size()) < options_.max_in_flight_per_peer &&
           !q.order.empty()) {
      // Not full: wait for the batch in flight and the interval, and go
      // with what arrives meanwhile.
      if (!Full(q) && (!q.in_flight.empty() || now_ms_ < SendableAtMs(q))) break;
      q.last_send_ms = now_ms_;
      FanoutBatch batch;
      batch.peer = peer;
      batch.batch_id = q.next_batch_id++;
      std::vector<Item> items;
      while (!q.order.empty() && batch.records.size() < options_.max_batch_records) {
        auto it = q.items.find(q.order.front());
        const size_t bytes = it->second.bytes;
        if (!batch.records.empty() && batch.bytes + bytes > options_.max_batch_bytes) {
          break;
        }
        q.order.pop_front();
        q.bytes -= bytes;
        batch.bytes += bytes;
        Item item = std::move(it->second);
        q.items.erase(it);
        batch.records.push_back(item.record);  // Kept: a failed batch is retried.
        batch.hops.push_back(item.hops);
        items.push_back(std::move(item));
      }
      q.in_flight.emplace(batch.batch_id, std::move(items));
      ++stats_.batches_sent;
      out.push_back(std::move(batch));
    }
    rit = q.order.empty() ? ready_.erase(rit) : std::next(rit);
  }
  return out;
}

void Fanout::OnBatchDone(const std::string& peer, uint64_t batch_id, bool ok) {
  auto qit = queues_.find(peer);
  if (qit == queues_.end()) return;
  auto bit = qit->second.in_flight.find(batch_id);
  if (bit == qit->second.in_flight.end()) return;
  PeerQueue& q = qit->second;
  std::vector<Item> items = std::move(bit->second);
  q.in_flight.erase(bit);
  if (ok) {
    q.backoff_ms = 0;
    q.retry_at_ms = 0;
  } else {
    ++stats_.batches_failed;
    q.backoff_ms = q.backoff_ms == 0
                       ? options_.retry_min_ms
                       : std::min(q.backoff_ms * 2, options_.retry_max_ms);
    q.retry_at_ms = now_ms_ + q.backoff_ms;
  }
  for (const Item& item : items) {
    if (ok) ++stats_.records_acked;
    Resolve(peer, item.write_ids, ok);
    if (!ok) {
      // Queued again, untracked (its writes failed for this peer), unless a
      // newer version is queued meanwhile or the queue is full (dropped).
      ++stats_.records_retried;
      Enqueue(q, peer, item.record, 0, item.hops);
    }
  }
}

bool Fanout::Full(const PeerQueue& q) const {
  return q.order.size() >= options_.max_batch_records ||
         q.bytes >= options_.max_batch_bytes;
}

int64_t Fanout::SendableAtMs(const PeerQueue& q) const {
  return q.last_send_ms + options_.min_push_interval_ms;
}

std::optional<int64_t> Fanout::NextRetryMs() const {
  std::optional<int64_t> next;
  for (const std::string& peer : ready_) {
    auto it = queues_.find(peer);
    if (it == queues_.end() || it->second.held) continue;
    const PeerQueue& q = it->second;
    int64_t at = q.retry_at_ms;
    // A partial batch waiting only for the interval (one waiting for an
    // answer is sent from OnBatchDone's TakeBatches).
    if (!Full(q) && q.in_flight.empty()) at = std::max(at, SendableAtMs(q));
    if (at <= now_ms_) continue;
    if (!next.has_value() || at < *next) next = at;
  }
  return next;
}

void Fanout::Resolve(const std::string& peer, const std::vector<uint64_t>& write_ids,
                     bool ok) {
  for (uint64_t id : write_ids) {
    auto wit = writes_.find(id);
    if (wit == writes_.end()) continue;
    Pending& p = wit->second;
    auto oit = p.outstanding.find(peer);
    if (oit == p.outstanding.end()) continue;
    if (ok) {
      if (--oit->second > 0) continue;
      p.outstanding.erase(oit);
      ++p.acked;
    } else {
      p.outstanding.erase(oit);
      ++p.failed;
    }
    MaybeComplete(id);
  }
}

void Fanout::MaybeComplete(uint64_t write_id) {
  auto it = writes_.find(write_id);
  if (it == writes_.end()) return;
  const Pending& p = it->second;
  if (p.acked >= p.needed_peers || p.targets - p.failed < p.needed_peers) {
    Complete(write_id, false);
  }
}

void Fanout::Complete(uint64_t write_id, bool timed_out) {
  auto it = writes_.find(write_id);
  const Pending& p = it->second;
  WriteOutcome o;
  o.write_id = write_id;
  o.ok = p.acked >= p.needed_peers;
  o.acks = p.acked + 1;
  o.needed = p.needed_peers + 1;
  o.timed_out = timed_out && !o.ok;
  (o.ok ? stats_.writes_ok : stats_.writes_failed)++;
  outcomes_.push_back(o);
  writes_.erase(it);
}

void Fanout::Tick(int64_t now_ms) {
  now_ms_ = std::max(now_ms_, now_ms);
  std::vector<uint64_t> expired;
  for (const auto& [id, p] : writes_) {
    if (p.deadline_ms <= now_ms) expired.push_back(id);
  }
  for (uint64_t id : expired) Complete(id, true);
}

std::vector<WriteOutcome> Fanout::TakeOutcomes() {
  std::vector<WriteOutcome> out;
  out.swap(outcomes_);
  return out;
}

size_t Fanout::QueuedRecords(const std::string& peer) const {
  auto it = queues_.find(peer);
  return it == queues_.end() ? 0 : it->second.items.size();
}

size_t Fanout::QueuedBytes(const std::string& peer) const {
  auto it = queues_.find(peer);
  return it == queues_.end() ? 0 : it->second.bytes;
}

size_t Fanout::InFlight(const std::string& peer) const {
  auto it = queues_.find(peer);
  return it == queues_.end() ? 0 : it->second.in_flight.size();
}

// ---------------------------------------------------------------------------
// ReadCollector

ReadCollector::ReadCollector(int needed, std::vector<std::string> asked,
                             std::optional<storage::Record> local)
    : needed_(needed), local_(std::move(local)), newest_(local_) {
  for (std::string& peer : asked) {
    if (asked_.emplace(std::move(peer), true).second) ++pending_;
  }
}

void ReadCollector::OnReply(const std::string& peer,
                            std::optional<storage::Record> record) {
  auto it = asked_.find(peer);
  if (it == asked_.end() || !it->second) return;
  it->second = false;
  --pending_;
  ++answered_;
  replies_[peer] = record.has_value() ? std::optional(record->version) : std::nullopt;
  if (record.has_value() &&
      (!newest_.has_value() || record->version > newest_->version)) {
    newest_ = std::move(record);
  }
}

void ReadCollector::OnFailure(const std::string& peer) {
  auto it = asked_.find(peer);
  if (it == asked_.end() || !it->second) return;
  it->second = false;
  --pending_;
}

std::vector<std::string> ReadCollector::StalePeers() const {
  std::vector<std::string> out;
  if (!newest_.has_value()) return out;
  for (const auto& [peer, version] : replies_) {
    if (!version.has_value() || *version < newest_->version) out.push_back(peer);
  }
  return out;
}

bool ReadCollector::LocalStale() const {
  if (!newest_.has_value()) return false;
  return !local_.has_value() || local_->version < newest_->version;
}

}  // namespace kv::replication
