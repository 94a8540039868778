// Conversions between kv.v1 protos and storage types, used by the services.
#ifndef KV_SERVER_PROTO_CONVERT_H_
#define KV_SERVER_PROTO_CONVERT_H_

#include "proto/kv.pb.h"
#include "storage/record.h"

namespace kv::server {

inline storage::Version FromProto(const kv::v1::Version& v) {
  return storage::Version{v.hlc(), v.node_id()};
}
inline void ToProto(const storage::Version& v, kv::v1::Version* out) {
  out->set_hlc(v.hlc);
  out->set_node_id(v.node_id);
}

}  // namespace kv::server

#endif  // KV_SERVER_PROTO_CONVERT_H_
