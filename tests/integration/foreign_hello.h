// A valid anti-entropy Hello from a made-up replica whose store differs from
// any real node's: an in-memory store holding one key of its own. For tests
// that play a peer by hand over Peer.Exchange.
#ifndef KV_TESTS_INTEGRATION_FOREIGN_HELLO_H_
#define KV_TESTS_INTEGRATION_FOREIGN_HELLO_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "proto/peer.pb.h"
#include "replication/exchange.h"
#include "storage/hlc.h"
#include "storage/memory_engine.h"
#include "storage/status_macros.h"
#include "storage/store.h"

namespace kv::testing {

// Hello of replica `node_id` for a node run with --leaf-depth `leaf_depth`.
inline absl::StatusOr<peer::v1::ExchangeMessage> ForeignHello(uint64_t node_id,
                                                              uint32_t leaf_depth) {
  storage::ManualClock clock(1'700'000'000'000);
  storage::StoreOptions so;
  so.leaf_depth = leaf_depth;
  so.clock = &clock;
  so.node_id = node_id;
  KV_ASSIGN_OR_RETURN(std::unique_ptr<storage::Store> store,
                      storage::Store::Open(std::make_unique<storage::MemoryEngine>(), so));
  storage::Mutation m{"other", false, "x", {}};
  KV_RETURN_IF_ERROR(store->Write({&m, 1}).status());
  KV_ASSIGN_OR_RETURN(std::unique_ptr<replication::Exchange> initiator,
                      replication::Exchange::Initiator(store.get(), {}, 99));
  return initiator->TakeReady().messages.at(0);
}

}  // namespace kv::testing

#endif  // KV_TESTS_INTEGRATION_FOREIGN_HELLO_H_
