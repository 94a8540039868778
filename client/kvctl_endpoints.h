// kvctl's endpoint lists: --endpoints a,b,c (or KVCTL_ENDPOINTS) uses the
// first node that answers; --all runs health or stats on every one and
// prints one row (or one JSON object) per node.
//
// Thread safety: the functions are thread-safe (they share nothing).
#ifndef KV_CLIENT_KVCTL_ENDPOINTS_H_
#define KV_CLIENT_KVCTL_ENDPOINTS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/client.h"

namespace kv::client {

// "a:1, b:2,,c:3" -> {"a:1", "b:2", "c:3"} (trimmed, empty entries dropped).
std::vector<std::string> ParseEndpoints(absl::string_view list);

// Connects (with `options`) to the first of `endpoints`, in order, that
// answers Ping within `probe_timeout`. Errors: INVALID_ARGUMENT for an empty
// list or a malformed address; UNAVAILABLE when none answers (the message
// names each endpoint and its error).
absl::StatusOr<std::unique_ptr<Client>> ConnectFirst(
    const std::vector<std::string>& endpoints, const ClientOptions& options,
    absl::Duration probe_timeout);

// What --all found on one node.
struct EndpointReport {
  std::string endpoint;
  absl::Status status;  // The first failed call's, or OK.
  std::string health;   // SERVING, NOT_SERVING, ... ("" when it failed).
  // Stats (only when asked for and it answered).
  std::string node_name;
  uint64_t node_id = 0;
  int64_t key_count = 0;
  std::string root_digest;
};

// Health (and, with `stats`, Admin.Stats) of each endpoint, in order.
std::vector<EndpointReport> ReportAll(const std::vector<std::string>& endpoints,
                                      const ClientOptions& options, bool stats);

// A Table (client/kvctl_output.h): a header, then one row per endpoint
// (ENDPOINT STATUS, with stats also NAME NODE ID KEYS ROOT; a node that
// failed shows "CODE: message" in place of STATUS and the rest).
std::string FormatReportTable(const std::vector<EndpointReport>& reports, bool stats);
// One JSON object per line: {"endpoint","ok","health"[,"error"]
// [,"node_name","node_id","key_count","root_digest"]}; node_id as a hex
// string.
std::string FormatReportJson(const std::vector<EndpointReport>& reports, bool stats);

// Whether every report is OK and SERVING (kvctl's exit code 0).
bool AllServing(const std::vector<EndpointReport>& reports);

}  // namespace kv::client

#endif  // KV_CLIENT_KVCTL_ENDPOINTS_H_
