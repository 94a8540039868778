// Token authentication for the client port (--auth-token-file).
//
// A token file has one token per line with its role, `TOKEN ROLE`, where ROLE
// is read, readwrite or admin; blank lines and lines starting with '#' are
// skipped. Roles nest: admin may do everything, readwrite may read and write,
// read may only read (Get, BatchGet, Scan, Ping). Every Admin call needs
// admin.
//
// Clients send `authorization: Bearer TOKEN` metadata. A call without it, or
// with a token not in the file, fails with UNAUTHENTICATED; a token whose role
// is too low fails with PERMISSION_DENIED. Nothing is read or changed then.
//
// AuthKvService and AuthAdminService wrap the real services and check before
// forwarding; they are registered instead of them when auth is on. A method
// the wrappers do not know is answered UNIMPLEMENTED (by the generated base
// class): a new RPC fails closed until it is given a role here.
//
// Thread safety: all classes are immutable after construction and
// thread-safe.
#ifndef KV_SERVER_AUTH_H_
#define KV_SERVER_AUTH_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/kv.grpc.pb.h"

namespace kv::server {

enum class Role { kRead = 1, kReadWrite = 2, kAdmin = 3 };
const char* RoleName(Role role);

class TokenAuthenticator {
 public:
  // Parses a token file's contents. Errors: INVALID_ARGUMENT (with the line
  // number) for a malformed line, an unknown role or a repeated token, and
  // when there is no token at all.
  static absl::StatusOr<std::unique_ptr<TokenAuthenticator>> Parse(absl::string_view text);
  // Reads and parses `path`. Errors: NOT_FOUND when it cannot be read; as
  // Parse.
  static absl::StatusOr<std::unique_ptr<TokenAuthenticator>> FromFile(const std::string& path);

  // Checks the value of the `authorization` header (nullptr when absent)
  // for a call to `method` that needs `needed`. Errors: UNAUTHENTICATED,
  // PERMISSION_DENIED as above.
  absl::Status Check(const std::string* authorization, Role needed,
                     absl::string_view method) const;
  // As above, reading the header from the call's metadata.
  absl::Status Check(const grpc::CallbackServerContext& ctx, Role needed,
                     absl::string_view method) const;

  size_t size() const { return tokens_.size(); }

 private:
  TokenAuthenticator() = default;
  absl::flat_hash_map<std::string, Role> tokens_;
};

// kv.v1.KV with token checks: Put, Delete and BatchWrite need readwrite; the
// rest needs read. `inner` and `auth` must outlive this object.
class AuthKvService final : public kv::v1::KV::CallbackService {
 public:
  AuthKvService(kv::v1::KV::CallbackService* inner, const TokenAuthenticator* auth)
      : inner_(inner), auth_(auth) {}

  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* ctx,
                                const kv::v1::GetRequest* req,
                                kv::v1::GetResponse* resp) override;
  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx,
                                const kv::v1::PutRequest* req,
                                kv::v1::PutResponse* resp) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* ctx,
                                   const kv::v1::DeleteRequest* req,
                                   kv::v1::DeleteResponse* resp) override;
  grpc::ServerWriteReactor<kv::v1::ScanResponse>* Scan(
      grpc::CallbackServerContext* ctx, const kv::v1::ScanRequest* req) override;
  grpc::ServerUnaryReactor* BatchWrite(grpc::CallbackServerContext* ctx,
                                       const kv::v1::BatchWriteRequest* req,
                                       kv::v1::BatchWriteResponse* resp) override;
  grpc::ServerUnaryReactor* BatchGet(grpc::CallbackServerContext* ctx,
                                     const kv::v1::BatchGetRequest* req,
                                     kv::v1::BatchGetResponse* resp) override;
  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext* ctx,
                                 const kv::v1::PingRequest* req,
                                 kv::v1::PingResponse* resp) override;

 private:
  kv::v1::KV::CallbackService* const inner_;
  const TokenAuthenticator* const auth_;
};

// kv.v1.Admin with token checks: every call needs admin.
class AuthAdminService final : public kv::v1::Admin::CallbackService {
 public:
  AuthAdminService(kv::v1::Admin::CallbackService* inner, const TokenAuthenticator* auth)
      : inner_(inner), auth_(auth) {}

  grpc::ServerUnaryReactor* Stats(grpc::CallbackServerContext* ctx,
                                  const kv::v1::StatsRequest* req,
                                  kv::v1::StatsResponse* resp) override;
  grpc::ServerUnaryReactor* SetAntiEntropy(grpc::CallbackServerContext* ctx,
                                           const kv::v1::SetAntiEntropyRequest* req,
                                           kv::v1::SetAntiEntropyResponse* resp) override;
  grpc::ServerUnaryReactor* VerifyTree(grpc::CallbackServerContext* ctx,
                                       const kv::v1::VerifyTreeRequest* req,
                                       kv::v1::VerifyTreeResponse* resp) override;
  grpc::ServerUnaryReactor* Members(grpc::CallbackServerContext* ctx,
                                    const kv::v1::MembersRequest* req,
                                    kv::v1::MembersResponse* resp) override;
  grpc::ServerUnaryReactor* RemoveMember(grpc::CallbackServerContext* ctx,
                                         const kv::v1::RemoveMemberRequest* req,
                                         kv::v1::RemoveMemberResponse* resp) override;
  // Writes a checkpoint on the node's machine: admin only.
  grpc::ServerUnaryReactor* Snapshot(grpc::CallbackServerContext* ctx,
                                     const kv::v1::SnapshotRequest* req,
                                     kv::v1::SnapshotResponse* resp) override;

 private:
  kv::v1::Admin::CallbackService* const inner_;
  const TokenAuthenticator* const auth_;
};

}  // namespace kv::server

#endif  // KV_SERVER_AUTH_H_
