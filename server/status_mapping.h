// The one place in server/ where statuses cross between abseil and gRPC, in
// both directions (absl's codes are gRPC's, so the mapping is the identity on
// codes and messages). The client library, which links no server code, has
// its own FromGrpcStatus in client/client.cc: it also turns a CANCELLED from a
// node that is shutting down into UNAVAILABLE, a rule for callers of kv::client.
#ifndef KV_SERVER_STATUS_MAPPING_H_
#define KV_SERVER_STATUS_MAPPING_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace kv::server {

// Same code, same message.
grpc::Status ToGrpcStatus(const absl::Status& status);

// Same code, same message (what a peer's gRPC call ended with).
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace kv::server

#endif  // KV_SERVER_STATUS_MAPPING_H_
