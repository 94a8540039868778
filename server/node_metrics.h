// The collectors that export a node's own counters as Prometheus metrics
// (see docs/metrics.md): anti-entropy, gossip membership, write fan-out and
// the store.
#ifndef KV_SERVER_NODE_METRICS_H_
#define KV_SERVER_NODE_METRICS_H_

#include <cstdint>

#include "server/anti_entropy.h"
#include "server/fanout_service.h"
#include "server/gossip_service.h"
#include "server/metrics.h"
#include "storage/store.h"

namespace kv::server {

// Seconds from a peer's last completed exchange (Unix ms, 0: never) to
// `now_unix_ms`: +Inf for a peer never synced, 0 when the wall clock went
// back since.
double PeerSyncAgeSeconds(int64_t last_exchange_unix_ms, int64_t now_unix_ms);

// Adds collectors reading the given objects at every scrape. All must
// outlive the registry's HTTP server; their accessors are thread-safe.
void AddNodeCollectors(MetricsRegistry* registry, storage::Store* store,
                       AntiEntropy* anti_entropy, GossipService* gossip,
                       Replicator* replicator);

}  // namespace kv::server

#endif  // KV_SERVER_NODE_METRICS_H_
