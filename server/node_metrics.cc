#include "server/node_metrics.h"

#include <limits>
#include <map>
#include <optional>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "proto/kv.pb.h"
#include "replication/gossip.h"

namespace kv::server {

double PeerSyncAgeSeconds(int64_t last_exchange_unix_ms, int64_t now_unix_ms) {
  if (last_exchange_unix_ms <= 0) return std::numeric_limits<double>::infinity();
  if (now_unix_ms <= last_exchange_unix_ms) return 0;
  return static_cast<double>(now_unix_ms - last_exchange_unix_ms) / 1000.0;
}

void AddNodeCollectors(MetricsRegistry* registry, storage::Store* store,
                       AntiEntropy* anti_entropy, GossipService* gossip,
                       Replicator* replicator) {
  registry->AddCollector([store](MetricsWriter& w) {
    w.Gauge("kvd_store_keys", "Entries on this node (live keys and tombstones)",
            static_cast<double>(store->tree().KeyCount()));
    if (const std::optional<int64_t> t = store->tombstones(); t.has_value()) {
      w.Gauge("kvd_store_tombstones",
              "Deleted keys' records (tombstones) held, counted once after the start",
              static_cast<double>(*t));
    }
    const storage::Store::CommitStats c = store->commit_stats();
    w.Counter("kvd_store_commit_groups_total",
              "Groups of local writes committed, one engine batch each",
              static_cast<double>(c.groups));
    w.Counter("kvd_store_commit_group_requests_total",
              "Write requests in committed groups", static_cast<double>(c.requests));
    w.Counter("kvd_store_commit_group_mutations_total",
              "Key mutations in committed groups", static_cast<double>(c.mutations));
    const storage::EngineStats e = store->engine_stats();
    w.Gauge("kvd_storage_memtable_bytes", "RocksDB write buffers in memory, every column",
            static_cast<double>(e.memtable_bytes));
    w.Gauge("kvd_storage_sst_bytes", "RocksDB table files on disk, every column",
            static_cast<double>(e.sst_bytes));
    w.Gauge("kvd_storage_pending_compaction_bytes",
            "Bytes RocksDB estimates compaction still has to rewrite",
            static_cast<double>(e.pending_compaction_bytes));
  });
  registry->AddCollector([anti_entropy](MetricsWriter& w) {
    kv::v1::StatsResponse s;
    anti_entropy->FillStats(&s);
    w.Gauge("kvd_anti_entropy_running", "1 when background anti-entropy runs, 0 when paused",
            s.anti_entropy_running() ? 1 : 0);
    w.Family("kvd_anti_entropy_exchanges_total", "counter",
             "Anti-entropy exchanges (this node as either side), by result");
    w.Sample("kvd_anti_entropy_exchanges_total", {{"result", "started"}},
             static_cast<double>(s.exchanges_started()));
    w.Sample("kvd_anti_entropy_exchanges_total", {{"result", "completed"}},
             static_cast<double>(s.exchanges_completed()));
    w.Sample("kvd_anti_entropy_exchanges_total", {{"result", "failed"}},
             static_cast<double>(s.exchanges_failed()));
    w.Sample("kvd_anti_entropy_exchanges_total", {{"result", "equal_roots"}},
             static_cast<double>(s.rounds_equal_roots()));
    w.Counter("kvd_anti_entropy_differing_leaves_total",
              "Merkle leaves found to differ in exchanges",
              static_cast<double>(s.differing_leaves()));
    w.Family("kvd_anti_entropy_keys_total", "counter", "Records repaired, by direction");
    w.Sample("kvd_anti_entropy_keys_total", {{"direction", "sent"}},
             static_cast<double>(s.keys_sent()));
    w.Sample("kvd_anti_entropy_keys_total", {{"direction", "received"}},
             static_cast<double>(s.keys_received()));
    w.Family("kvd_anti_entropy_bytes_total", "counter",
             "Serialized exchange message bytes, by direction");
    w.Sample("kvd_anti_entropy_bytes_total", {{"direction", "sent"}},
             static_cast<double>(s.bytes_sent()));
    w.Sample("kvd_anti_entropy_bytes_total", {{"direction", "received"}},
             static_cast<double>(s.bytes_received()));
    w.Family("kvd_anti_entropy_bytes_sent_by_part_total", "counter",
             "Serialized exchange bytes sent, by what they carried (the rest of "
             "kvd_anti_entropy_bytes_total{direction=\"sent\"} is message framing)");
    const kv::v1::AntiEntropyBytes& parts = s.bytes_sent_by_part();
    for (const auto& [part, bytes] :
         {std::pair<const char*, int64_t>{"digests", parts.digests()},
          {"fingerprints", parts.fingerprints()},
          {"diffs", parts.diffs()},
          {"wants", parts.wants()},
          {"records", parts.records()}}) {
      w.Sample("kvd_anti_entropy_bytes_sent_by_part_total", {{"part", part}},
               static_cast<double>(bytes));
    }
    w.Counter("kvd_anti_entropy_keys_streamed_total",
              "Records sent for ranges the peer holds nothing in (full sync), "
              "without fingerprints, Diffs or wants",
              static_cast<double>(s.keys_streamed()));
    w.Counter("kvd_anti_entropy_exchanges_yielded_total",
              "Of the failed exchanges, those the peer declined at once by the session "
              "rules (it was starting one with this node, or being filled): not faults",
              static_cast<double>(s.exchanges_yielded()));
    w.Counter("kvd_anti_entropy_exchanges_promoted_total",
              "Exchanges moved from idle to normal CPU priority after running "
              "longer than --ae-idle-promote-after-ms (the cores were busy)",
              static_cast<double>(s.exchanges_promoted()));
    w.Counter("kvd_anti_entropy_records_refused_clock_total",
              "Replicated records refused: versioned too far ahead of this node's clock",
              static_cast<double>(s.records_refused_clock()));
    w.Counter("kvd_anti_entropy_records_not_asked_total",
              "Records a peer sent in an exchange without being asked (each ended "
              "its exchange)",
              static_cast<double>(s.records_not_asked()));
    w.Family("kvd_anti_entropy_peer_last_exchange_timestamp_seconds", "gauge",
             "Unix time of the last completed exchange with each peer (0: never)");
    for (const kv::v1::PeerStats& p : s.peers()) {
      w.Sample("kvd_anti_entropy_peer_last_exchange_timestamp_seconds",
               {{"peer", p.address()}},
               static_cast<double>(p.last_exchange_unix_ms()) / 1000.0);
    }
    w.Family("kvd_anti_entropy_peer_sync_age_seconds", "gauge",
             "Seconds since the last completed exchange this node started with each "
             "peer (+Inf: never)");
    const int64_t now_ms = absl::ToUnixMillis(absl::Now());
    for (const kv::v1::PeerStats& p : s.peers()) {
      w.Sample("kvd_anti_entropy_peer_sync_age_seconds", {{"peer", p.address()}},
               PeerSyncAgeSeconds(p.last_exchange_unix_ms(), now_ms));
    }
  });
  registry->AddCollector([gossip](MetricsWriter& w) {
    std::map<std::string, int> by_status;
    for (replication::MemberHealth h :
         {replication::MemberHealth::kAlive, replication::MemberHealth::kSuspect,
          replication::MemberHealth::kDown, replication::MemberHealth::kLeft,
          replication::MemberHealth::kRemoved}) {
      by_status[replication::HealthName(h)] = 0;
    }
    for (const replication::MemberView& m : gossip->Members()) {
      ++by_status[replication::HealthName(m.health)];
    }
    w.Family("kvd_gossip_members", "gauge", "Members this node knows, self included, by status");
    for (const auto& [status, n] : by_status) {
      w.Sample("kvd_gossip_members", {{"status", status}}, n);
    }
    const replication::GossipStats g = gossip->stats();
    w.Counter("kvd_gossip_down_events_total", "Members this node marked down",
              static_cast<double>(g.down_events));
    w.Counter("kvd_gossip_suspect_events_total", "Members this node marked suspect",
              static_cast<double>(g.suspect_events));
    w.Family("kvd_gossip_recoveries_total", "counter",
             "Members heard from again in the same generation (no restart) after this "
             "node held them suspect or down, by that status");
    w.Sample("kvd_gossip_recoveries_total", {{"was", "suspect"}},
             static_cast<double>(g.recovered_from_suspect));
    w.Sample("kvd_gossip_recoveries_total", {{"was", "down"}},
             static_cast<double>(g.recovered_from_down));
    w.Counter("kvd_gossip_clock_skew_events_total",
              "Members found with a clock skewed beyond the limit",
              static_cast<double>(g.clock_skew_events));
    w.Counter("kvd_gossip_malformed_total", "Malformed gossip messages received",
              static_cast<double>(g.malformed));
    w.Family("kvd_gossip_messages_total", "counter", "Gossip messages, by direction");
    w.Sample("kvd_gossip_messages_total", {{"direction", "sent"}},
             static_cast<double>(g.messages_sent));
    w.Sample("kvd_gossip_messages_total", {{"direction", "received"}},
             static_cast<double>(g.messages_received));
    w.Family("kvd_gossip_bytes_total", "counter", "Gossip message bytes, by direction");
    w.Sample("kvd_gossip_bytes_total", {{"direction", "sent"}},
             static_cast<double>(g.bytes_sent));
    w.Sample("kvd_gossip_bytes_total", {{"direction", "received"}},
             static_cast<double>(g.bytes_received));
    const GossipTransportStats t = gossip->transport_stats();
    w.Counter("kvd_gossip_calls_failed_total", "Gossip calls that ended with an error",
              static_cast<double>(t.failed));
    w.Counter("kvd_gossip_calls_dropped_total",
              "Gossip messages not sent (too many in flight, or closing)",
              static_cast<double>(t.dropped));
  });
  registry->AddCollector([replicator](MetricsWriter& w) {
    const ReplicatorStats r = replicator->stats();
    w.Family("kvd_fanout_records_total", "counter",
             "Write fan-out record copies (one per peer), by outcome");
    w.Sample("kvd_fanout_records_total", {{"outcome", "queued"}},
             static_cast<double>(r.fanout.records_queued));
    w.Sample("kvd_fanout_records_total", {{"outcome", "coalesced"}},
             static_cast<double>(r.fanout.records_coalesced));
    w.Sample("kvd_fanout_records_total", {{"outcome", "dropped"}},
             static_cast<double>(r.fanout.records_dropped));
    w.Sample("kvd_fanout_records_total", {{"outcome", "acked"}},
             static_cast<double>(r.fanout.records_acked));
    w.Sample("kvd_fanout_records_total", {{"outcome", "retried"}},
             static_cast<double>(r.fanout.records_retried));
    w.Family("kvd_fanout_batches_total", "counter", "Push batches, by outcome");
    w.Sample("kvd_fanout_batches_total", {{"outcome", "sent"}},
             static_cast<double>(r.fanout.batches_sent));
    w.Sample("kvd_fanout_batches_total", {{"outcome", "failed"}},
             static_cast<double>(r.fanout.batches_failed));
    w.Family("kvd_fanout_writes_total", "counter",
             "QUORUM/ALL writes, by whether they reached their replica count");
    w.Sample("kvd_fanout_writes_total", {{"outcome", "ok"}},
             static_cast<double>(r.fanout.writes_ok));
    w.Sample("kvd_fanout_writes_total", {{"outcome", "failed"}},
             static_cast<double>(r.fanout.writes_failed));
    w.Counter("kvd_fanout_rumor_writes_total",
              "ONE writes pushed to --fanout random peers instead of every live peer",
              static_cast<double>(r.fanout.rumor_writes));
    w.Counter("kvd_fanout_records_forwarded_total",
              "Copies of pushed records this node forwarded (rumor mongering)",
              static_cast<double>(r.fanout.records_forwarded));
    w.Counter("kvd_fanout_reads_repaired_total",
              "Stale replicas sent the newest record by replica reads",
              static_cast<double>(r.reads_repaired));
  });
}

}  // namespace kv::server
