#include "server/auth.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/status_mapping.h"

namespace kv::server {
namespace {

constexpr absl::string_view kBearer = "Bearer ";

// Finishes a unary call with `status` when it is not OK; returns the reactor
// then, nullptr when the call may proceed.
grpc::ServerUnaryReactor* Deny(grpc::CallbackServerContext* ctx, const absl::Status& status) {
  if (status.ok()) return nullptr;
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// A server-streaming call refused before it starts.
template <typename Response>
class RefusedStream final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit RefusedStream(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kRead:
      return "read";
    case Role::kReadWrite:
      return "readwrite";
    case Role::kAdmin:
      return "admin";
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<TokenAuthenticator>> TokenAuthenticator::Parse(
    absl::string_view text) {
  std::unique_ptr<TokenAuthenticator> auth(new TokenAuthenticator());
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("token file line ", line_no, ": expected `TOKEN ROLE`"));
    }
    Role role;
    if (fields[1] == "read") {
      role = Role::kRead;
    } else if (fields[1] == "readwrite") {
      role = Role::kReadWrite;
    } else if (fields[1] == "admin") {
      role = Role::kAdmin;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "token file line ", line_no, ": role must be read, readwrite or admin, got '",
          fields[1], "'"));
    }
    if (!auth->tokens_.emplace(std::string(fields[0]), role).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("token file line ", line_no, ": the token is listed twice"));
    }
  }
  if (auth->tokens_.empty()) {
    return absl::InvalidArgumentError("token file has no tokens");
  }
  return auth;
}

absl::StatusOr<std::unique_ptr<TokenAuthenticator>> TokenAuthenticator::FromFile(
    const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read token file ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  absl::StatusOr<std::unique_ptr<TokenAuthenticator>> auth = Parse(ss.str());
  if (!auth.ok()) {
    return absl::Status(auth.status().code(),
                        absl::StrCat(path, ": ", auth.status().message()));
  }
  return auth;
}

absl::Status TokenAuthenticator::Check(const std::string* authorization, Role needed,
                                       absl::string_view method) const {
  if (authorization == nullptr) {
    return absl::UnauthenticatedError(
        absl::StrCat(method, " needs a token (metadata `authorization: Bearer TOKEN`)"));
  }
  if (!absl::StartsWith(*authorization, kBearer)) {
    return absl::UnauthenticatedError("the authorization metadata is not `Bearer TOKEN`");
  }
  auto it = tokens_.find(absl::string_view(*authorization).substr(kBearer.size()));
  if (it == tokens_.end()) return absl::UnauthenticatedError("invalid token");
  if (static_cast<int>(it->second) < static_cast<int>(needed)) {
    return absl::PermissionDeniedError(absl::StrCat("a ", RoleName(it->second),
                                                    " token may not call ", method,
                                                    " (it needs ", RoleName(needed), ")"));
  }
  return absl::OkStatus();
}

absl::Status TokenAuthenticator::Check(const grpc::CallbackServerContext& ctx, Role needed,
                                       absl::string_view method) const {
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return Check(nullptr, needed, method);
  const std::string value(it->second.data(), it->second.size());
  return Check(&value, needed, method);
}

#define KV_AUTH_UNARY(Class, Inner, Method, Req, Resp, role)                          \
  grpc::ServerUnaryReactor* Class::Method(grpc::CallbackServerContext* ctx,            \
                                          const Req* req, Resp* resp) {                \
    if (grpc::ServerUnaryReactor* r = Deny(ctx, auth_->Check(*ctx, role, #Method))) { \
      return r;                                                                        \
    }                                                                                  \
    return inner_->Method(ctx, req, resp);                                             \
  }

KV_AUTH_UNARY(AuthKvService, KV, Get, kv::v1::GetRequest, kv::v1::GetResponse, Role::kRead)
KV_AUTH_UNARY(AuthKvService, KV, Put, kv::v1::PutRequest, kv::v1::PutResponse,
              Role::kReadWrite)
KV_AUTH_UNARY(AuthKvService, KV, Delete, kv::v1::DeleteRequest, kv::v1::DeleteResponse,
              Role::kReadWrite)
KV_AUTH_UNARY(AuthKvService, KV, BatchWrite, kv::v1::BatchWriteRequest,
              kv::v1::BatchWriteResponse, Role::kReadWrite)
KV_AUTH_UNARY(AuthKvService, KV, BatchGet, kv::v1::BatchGetRequest,
              kv::v1::BatchGetResponse, Role::kRead)
KV_AUTH_UNARY(AuthKvService, KV, Ping, kv::v1::PingRequest, kv::v1::PingResponse,
              Role::kRead)
KV_AUTH_UNARY(AuthAdminService, Admin, Stats, kv::v1::StatsRequest, kv::v1::StatsResponse,
              Role::kAdmin)
KV_AUTH_UNARY(AuthAdminService, Admin, SetAntiEntropy, kv::v1::SetAntiEntropyRequest,
              kv::v1::SetAntiEntropyResponse, Role::kAdmin)
KV_AUTH_UNARY(AuthAdminService, Admin, VerifyTree, kv::v1::VerifyTreeRequest,
              kv::v1::VerifyTreeResponse, Role::kAdmin)
KV_AUTH_UNARY(AuthAdminService, Admin, Members, kv::v1::MembersRequest,
              kv::v1::MembersResponse, Role::kAdmin)
KV_AUTH_UNARY(AuthAdminService, Admin, RemoveMember, kv::v1::RemoveMemberRequest,
              kv::v1::RemoveMemberResponse, Role::kAdmin)
KV_AUTH_UNARY(AuthAdminService, Admin, Snapshot, kv::v1::SnapshotRequest,
              kv::v1::SnapshotResponse, Role::kAdmin)

#undef KV_AUTH_UNARY

grpc::ServerWriteReactor<kv::v1::ScanResponse>* AuthKvService::Scan(
    grpc::CallbackServerContext* ctx, const kv::v1::ScanRequest* req) {
  absl::Status s = auth_->Check(*ctx, Role::kRead, "Scan");
  if (!s.ok()) return new RefusedStream<kv::v1::ScanResponse>(ToGrpcStatus(s));
  return inner_->Scan(ctx, req);
}

}  // namespace kv::server
