// The one place where absl::Status becomes grpc::Status.
#ifndef KV_SERVER_STATUS_MAPPING_H_
#define KV_SERVER_STATUS_MAPPING_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace kv::server {

// Same code (absl's codes are gRPC's), same message.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace kv::server

#endif  // KV_SERVER_STATUS_MAPPING_H_
