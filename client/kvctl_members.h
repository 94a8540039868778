// Pure helpers of `kvctl members` and `kvctl cluster status`: naming a
// member, the members table and the convergence verdict, all computed from
// one node's Admin.Members answer. No I/O. All functions are thread-safe.
#ifndef KV_CLIENT_KVCTL_MEMBERS_H_
#define KV_CLIENT_KVCTL_MEMBERS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/kv.pb.h"

namespace kv::client {

// The node id `ref` names: the id of the one member whose name is `ref`;
// else `ref` as a node id, in hex when it has 16 hex digits or a 0x prefix
// (the form the table prints), otherwise in decimal.
// Errors: INVALID_ARGUMENT when `ref` is neither a member's name nor a
// number; FAILED_PRECONDITION when several members have that name.
absl::StatusOr<uint64_t> ResolveMember(absl::string_view ref,
                                       const kv::v1::MembersResponse& members);

// 16 lowercase hex digits.
std::string NodeIdHex(uint64_t node_id);

// The members table: a header line, then one line per member (name with `*`
// for the node asked, node id hex, address, status, generation, heartbeat
// age, phi, root (first 8 hex digits), key count, build version (gossiped;
// kvd --version's commit), clock offset, with
// `(skewed)` past --max-clock-drift-ms), then one line of counters.
std::string FormatMembersTable(const kv::v1::MembersResponse& members);

// Whether the cluster, as one node sees it, holds the same data everywhere.
struct ClusterVerdict {
  // Every member alive or suspect has the same root, and none is suspect or
  // down (left and removed members do not count).
  bool converged = false;
  std::string root_digest;  // Of the largest group of live members.
  int64_t key_count = 0;    // Of that group.
  int live = 0;             // Members alive or suspect.
  std::vector<std::string> differ;   // Live members with another root.
  std::vector<std::string> suspect;  // Names.
  std::vector<std::string> down;     // Names.
};
ClusterVerdict JudgeCluster(const kv::v1::MembersResponse& members);

// `kvctl cluster status`: the live members' roots and key counts, then one
// line: "converged ..." or what differs and what is down.
std::string FormatClusterText(const kv::v1::MembersResponse& members,
                              const ClusterVerdict& verdict);
// {"converged":bool,"root_digest","key_count","members":[{"name","node_id",
// "address","status","root_digest","key_count"}],"differ":[..],
// "suspect":[..],"down":[..]} (node_id as 16 hex digits).
std::string FormatClusterJson(const kv::v1::MembersResponse& members,
                              const ClusterVerdict& verdict);

}  // namespace kv::client

#endif  // KV_CLIENT_KVCTL_MEMBERS_H_
