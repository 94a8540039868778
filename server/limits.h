// Request size limits (the key and value limits are storage::RecordLimits,
// checked by storage::CheckKey and CheckValue), and the per-server
// connection limits (gRPC channel arguments) that keep many idle or slow
// clients from taking a node's memory or connections.
//
// Thread safety: plain values and pure functions.
#ifndef KV_SERVER_LIMITS_H_
#define KV_SERVER_LIMITS_H_

#include <cstddef>
#include <cstdint>

#include "storage/record.h"

namespace grpc {
class ServerBuilder;
}  // namespace grpc

namespace kv::server {

// The record limits (max_key_bytes, max_value_bytes; checked by
// storage::CheckKey and storage::CheckValue) and the server's own.
struct Limits : storage::RecordLimits {
  size_t max_batch = 1000;  // Mutations or keys per batch call.
  // gRPC's own limit on one message: sized so one maximal put fits, plus room
  // for framing. 0 = derive it from the key and value limits.
  size_t max_message_bytes = 0;

  // Per server (ApplyServerLimits):
  // Concurrent calls (HTTP/2 streams) one connection may open; more wait.
  int max_concurrent_streams = 1000;
  // gRPC ResourceQuota: the memory all connections and calls may take
  // (buffers); past it new calls and reads are refused or wait. 0 = none.
  int64_t server_memory_bytes = int64_t{1} << 30;
  // A connection with no call for this long is closed (0 = never).
  int64_t max_connection_idle_ms = 10 * 60 * 1000;
  // A connection that has not finished its HTTP/2 handshake this long after
  // it was accepted is closed (a socket that connects and sends nothing).
  int64_t handshake_timeout_ms = 10 * 1000;
  // The server pings a connection idle this long, and closes it when the
  // ping is not answered within keepalive_timeout_ms (a dead client).
  int64_t keepalive_ms = 60 * 1000;
  int64_t keepalive_timeout_ms = 20 * 1000;

  size_t EffectiveMaxMessageBytes() const {
    return max_message_bytes != 0 ? max_message_bytes
                                  : max_key_bytes + max_value_bytes + (64 << 10);
  }
};

// Sets the per-server limits of `limits` (streams, memory quota, idle,
// handshake and keepalive timeouts) on `builder`, before BuildAndStart.
void ApplyServerLimits(const Limits& limits, grpc::ServerBuilder* builder);

}  // namespace kv::server

#endif  // KV_SERVER_LIMITS_H_
