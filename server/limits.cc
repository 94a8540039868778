#include "server/limits.h"

#include <grpcpp/resource_quota.h>
#include <grpcpp/server_builder.h>

#include <algorithm>
#include <climits>

namespace kv::server {

namespace {
int ClampToInt(int64_t v) {
  return static_cast<int>(std::clamp<int64_t>(v, 0, INT_MAX));
}
}  // namespace

void ApplyServerLimits(const Limits& limits, grpc::ServerBuilder* builder) {
  builder->AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                              std::max(1, limits.max_concurrent_streams));
  if (limits.server_memory_bytes > 0) {
    grpc::ResourceQuota quota("kvd-server");
    quota.Resize(static_cast<size_t>(limits.server_memory_bytes));
    builder->SetResourceQuota(quota);
  }
  if (limits.max_connection_idle_ms > 0) {
    builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                                ClampToInt(limits.max_connection_idle_ms));
  }
  if (limits.handshake_timeout_ms > 0) {
    builder->AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                                ClampToInt(limits.handshake_timeout_ms));
  }
  if (limits.keepalive_ms > 0) {
    builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, ClampToInt(limits.keepalive_ms));
    builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                                ClampToInt(limits.keepalive_timeout_ms));
    // Clients (kvctl, peers) may ping as often as every 10 s without being
    // told off.
    builder->AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
    builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  }
}

}  // namespace kv::server
