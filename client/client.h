// kv::client::Client: a small synchronous C++ client for kvd (kv.v1.KV,
// kv.v1.Admin and grpc.health.v1.Health), plus access to the generated stubs
// for callers that want gRPC's callback (async) API.
//
// Errors: every call returns the server's gRPC status converted to an
// absl::Status with the same code and message (see FromGrpcStatus). The codes
// each RPC can return, and what "nothing changed" guarantees they carry, are
// documented in proto/kv.proto; the ones a caller usually handles are:
//   INVALID_ARGUMENT     the request broke a limit (the message names it).
//   FAILED_PRECONDITION  a write's precondition did not hold; nothing changed.
//   UNAVAILABLE          the node cannot be reached or is shutting down; the
//                        call may be retried.
//   DEADLINE_EXCEEDED    the call took longer than ClientOptions::timeout; a
//                        write may or may not have been applied.
//   RESOURCE_EXHAUSTED   a message was over ClientOptions::max_message_bytes
//                        (client side) or the node's limit.
//
// Thread safety: a Client is thread-safe; all methods may be called
// concurrently from any thread. Each call is independent (there is no session
// state) and blocks the calling thread until the call ends or its deadline
// passes.
#ifndef KV_CLIENT_CLIENT_H_
#define KV_CLIENT_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "proto/health.grpc.pb.h"
#include "proto/kv.grpc.pb.h"
#include "proto/kv.pb.h"

namespace kv::client {

// Converts a gRPC status to an absl::Status with the same code and message,
// except CANCELLED, which becomes UNAVAILABLE: this client reports no call it
// cancelled itself (a scan it stops ends OK), so a CANCELLED comes from the
// node, where gRPC ends so the calls it had not yet handed to kvd when kvd
// began to shut down (none of them was applied; kv.proto).
// This is the only place the client converts statuses.
absl::Status FromGrpcStatus(const grpc::Status& status);

// The version of one write: (hlc, node_id), ordered lexicographically.
// hlc == 0 means "no version" (a key that was never written).
struct Version {
  uint64_t hlc = 0;      // Hybrid logical clock (48-bit ms, 16-bit counter).
  uint64_t node_id = 0;  // Id of the node that made the write.

  bool IsSet() const { return hlc != 0; }
  friend bool operator==(const Version&, const Version&) = default;
  friend auto operator<=>(const Version&, const Version&) = default;
};

// A condition a write must meet, checked by the node atomically with the
// write. When it does not hold the write fails with FAILED_PRECONDITION.
struct Precondition {
  enum class Kind {
    kNone,             // Unconditional write.
    kExpectedVersion,  // The key's current version must equal `expected`.
    kMustNotExist,     // The key must not exist (never written, or deleted).
  };
  Kind kind = Kind::kNone;
  Version expected;  // Used only when kind == kExpectedVersion.

  static Precondition None() { return {}; }
  static Precondition ExpectVersion(Version v) {
    return {Kind::kExpectedVersion, v};
  }
  static Precondition MustNotExist() { return {Kind::kMustNotExist, {}}; }
};

struct GetResult {
  bool found = false;  // False: never written, or the newest write is a delete.
  std::string value;   // Empty when !found.
  // The newest version; for a deleted key the delete's version, unset
  // (hlc == 0) for a key that was never written.
  Version version;
};

struct Entry {
  std::string key;
  std::string value;
  Version version;
};

// The range of a Scan. Exactly one form is used: when `prefix` is non-empty,
// all keys starting with it (start and end must then be empty); otherwise
// [start, end), where an empty `end` means "to the last key".
struct ScanOptions {
  std::string prefix;
  std::string start;
  std::string end;
  uint32_t limit = 0;  // At most this many entries; 0 = no limit.
};

// One mutation of a BatchWrite.
struct Mutation {
  std::string key;
  std::string value;       // Ignored when is_delete.
  bool is_delete = false;  // True: write a tombstone.
  Precondition precondition;
};

// How many replicas a call involves (kv.proto's Consistency): kOne is the
// node called; kQuorum and kAll wait for (writes) or ask (reads) that many
// replicas of the cluster, and fail with UNAVAILABLE or DEADLINE_EXCEEDED
// naming the counts when they cannot.
enum class Consistency { kOne, kQuorum, kAll };

// "one", "quorum", "all". INVALID_ARGUMENT otherwise.
absl::StatusOr<Consistency> ParseConsistency(absl::string_view name);

struct ClientOptions {
  // Of Get, Put, Delete and BatchWrite (and kvctl bench's calls).
  Consistency consistency = Consistency::kOne;
  // Deadline of each call, measured from its start. For Scan it covers the
  // whole stream. absl::InfiniteDuration() = no deadline.
  absl::Duration timeout = absl::Seconds(10);
  // Largest message the client sends or accepts. Values are at most 1 MiB by
  // default on the server; the default leaves room for batches.
  int max_message_bytes = 64 << 20;
  // When > 0, Connect waits up to this long for the connection and fails with
  // UNAVAILABLE if it is not up by then. 0: connect lazily on the first call.
  absl::Duration connect_timeout = absl::ZeroDuration();
  // True: this client gets its own TCP connection even when another channel
  // in the process talks to the same endpoint (gRPC shares by default).
  bool dedicated_connection = false;
  // Null: plaintext, or TLS from the files below when any is set.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // TLS from PEM files, used when `credentials` is null and any is set
  // (kvctl --cacert/--cert/--key): the node's certificate is verified
  // against tls_ca_file (gRPC's default roots when "") and the endpoint's
  // host name; tls_cert_file and tls_key_file (both or neither) are the
  // client certificate for a node with --client-cert-auth. The files are read
  // once, by Connect.
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  // Non-empty: sent with every call as `authorization: Bearer <token>` (for
  // a kvd started with --auth-token-file).
  std::string token;
};

class Client {
 public:
  // Creates a client for `endpoint` ("host:port", or any gRPC target URI).
  // Errors: INVALID_ARGUMENT for an empty endpoint, a non-positive
  // max_message_bytes, a TLS file that cannot be read, or a certificate
  // without its key (the message names the file); UNAVAILABLE when
  // connect_timeout > 0 and the connection is not up within it (a TLS
  // handshake the node refuses also ends as UNAVAILABLE).
  static absl::StatusOr<std::unique_ptr<Client>> Connect(
      std::string endpoint, ClientOptions options = {});

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Reads the newest local version of `key`. A missing key is OK with
  // found == false (never NOT_FOUND).
  absl::StatusOr<GetResult> Get(absl::string_view key);

  // Writes `value` under `key`; returns the version the node gave the write.
  // FAILED_PRECONDITION when `precondition` does not hold (nothing changed).
  absl::StatusOr<Version> Put(absl::string_view key, absl::string_view value,
                              Precondition precondition = {});

  // Writes a tombstone for `key` (also when the key is missing); returns its
  // version. Errors as Put.
  absl::StatusOr<Version> Delete(absl::string_view key,
                                 Precondition precondition = {});

  // Collects up to options.limit live entries of the range, in key order.
  // On error nothing is returned (use the callback form for partial results).
  absl::StatusOr<std::vector<Entry>> Scan(const ScanOptions& options);

  // Calls `fn` for each live entry of the range, in key order, as the chunks
  // arrive. When `fn` returns false the scan is cancelled and Scan returns OK.
  // On error, `fn` may already have seen some entries.
  absl::Status Scan(const ScanOptions& options,
                    absl::FunctionRef<bool(const Entry&)> fn);

  // Applies all mutations atomically on the node; returns one version per
  // mutation, in order. INVALID_ARGUMENT names the bad mutation's index;
  // FAILED_PRECONDITION names the key whose precondition failed.
  absl::StatusOr<std::vector<Version>> BatchWrite(
      const std::vector<Mutation>& mutations);

  // Reads several keys; one result per key, in order.
  absl::StatusOr<std::vector<GetResult>> BatchGet(
      const std::vector<std::string>& keys);

  // Round trip that does nothing on the server.
  absl::Status Ping();

  // grpc.health.v1.Health/Check for `service` ("" = the whole server).
  // NOT_FOUND when the server does not know `service`.
  absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> Health(
      const std::string& service = "");

  // kv.v1.Admin.
  absl::StatusOr<kv::v1::StatsResponse> Stats();
  // Pauses (false) or resumes (true) anti-entropy; returns the new state.
  absl::StatusOr<bool> SetAntiEntropy(bool running);
  // Rebuilds the node's Merkle tree from its data and compares. INTERNAL when
  // the rebuild fails.
  absl::StatusOr<kv::v1::VerifyTreeResponse> VerifyTree();
  // The node's view of the cluster membership (gossip).
  absl::StatusOr<kv::v1::MembersResponse> Members();
  // Admin.Snapshot: a snapshot of the node's data into the new directory
  // `dir` on the node's machine (relative: from kvd's working directory).
  // Waits at least kSnapshotMinTimeout (a large store takes a while to
  // flush). Errors: the RPC's (ALREADY_EXISTS, FAILED_PRECONDITION, ...).
  static constexpr absl::Duration kSnapshotMinTimeout = absl::Minutes(10);
  absl::StatusOr<kv::v1::SnapshotResponse> Snapshot(const std::string& dir);
  // Forgets a member for good. NOT_FOUND for an unknown id;
  // FAILED_PRECONDITION when it is alive or suspect, or is the node asked.
  absl::Status RemoveMember(uint64_t node_id);

  // --- Raw access, for gRPC's callback API (e.g. the benchmark) -----------
  // Usage: PrepareContext(&ctx); kv_stub()->async()->Get(&ctx, &req, &resp,
  // [](grpc::Status s) {...}); ctx, req and resp must outlive the callback,
  // which runs on a gRPC thread. The stubs live as long as the Client.
  kv::v1::KV::Stub* kv_stub() const { return kv_stub_.get(); }
  kv::v1::Admin::Stub* admin_stub() const { return admin_stub_.get(); }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  // Applies the per-call deadline of ClientOptions::timeout to `context`.
  void PrepareContext(grpc::ClientContext* context) const;

  const std::string& endpoint() const { return endpoint_; }

 private:
  Client(std::string endpoint, ClientOptions options,
         std::shared_ptr<grpc::Channel> channel);

  // Constant after construction.
  const std::string endpoint_;
  const ClientOptions options_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<kv::v1::KV::Stub> kv_stub_;
  const std::unique_ptr<kv::v1::Admin::Stub> admin_stub_;
  const std::unique_ptr<grpc::health::v1::Health::Stub> health_stub_;
};

// Conversions between the plain structs above and the proto messages.
Version FromProto(const kv::v1::Version& v);
void ToProto(const Version& v, kv::v1::Version* out);
// Leaves `out` untouched (unset) for Kind::kNone.
void ToProto(const Precondition& p, kv::v1::Precondition* out);
GetResult FromProto(const kv::v1::GetResponse& r);
kv::v1::Consistency ToProto(Consistency c);

}  // namespace kv::client

#endif  // KV_CLIENT_CLIENT_H_
