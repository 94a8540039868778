#include "client/client.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"

namespace kv::client {

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  if (status.error_code() == grpc::StatusCode::CANCELLED) {
    // Not ours (see the header): gRPC on a node that began to shut down.
    return absl::UnavailableError(absl::StrCat(
        "the node ended the call without handling it (it is shutting down; gRPC "
        "said: ", status.error_message(), ")"));
  }
  // grpc::StatusCode and absl::StatusCode share their numeric values.
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

Version FromProto(const kv::v1::Version& v) { return {v.hlc(), v.node_id()}; }

void ToProto(const Version& v, kv::v1::Version* out) {
  out->set_hlc(v.hlc);
  out->set_node_id(v.node_id);
}

void ToProto(const Precondition& p, kv::v1::Precondition* out) {
  switch (p.kind) {
    case Precondition::Kind::kNone:
      break;
    case Precondition::Kind::kExpectedVersion:
      ToProto(p.expected, out->mutable_expected_version());
      break;
    case Precondition::Kind::kMustNotExist:
      out->set_must_not_exist(true);
      break;
  }
}

kv::v1::Consistency ToProto(Consistency c) {
  switch (c) {
    case Consistency::kQuorum:
      return kv::v1::QUORUM;
    case Consistency::kAll:
      return kv::v1::ALL;
    case Consistency::kOne:
      break;
  }
  return kv::v1::ONE;
}

absl::StatusOr<Consistency> ParseConsistency(absl::string_view name) {
  if (name == "one") return Consistency::kOne;
  if (name == "quorum") return Consistency::kQuorum;
  if (name == "all") return Consistency::kAll;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown consistency \"", name, "\" (one, quorum, all)"));
}

GetResult FromProto(const kv::v1::GetResponse& r) {
  return {r.found(), r.value(), FromProto(r.version())};
}

namespace {

Entry FromProto(const kv::v1::Entry& e) {
  return {e.key(), e.value(), kv::client::FromProto(e.version())};
}

}  // namespace

namespace {

absl::StatusOr<std::string> ReadPem(const char* what, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", what, " ", path, ": ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// SSL credentials from the tls_* files; null when none is set.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> TlsCredentialsFromFiles(
    const ClientOptions& o) {
  if (o.tls_ca_file.empty() && o.tls_cert_file.empty() && o.tls_key_file.empty()) {
    return nullptr;
  }
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    return absl::InvalidArgumentError(o.tls_cert_file.empty()
                                          ? "a client key (--key) needs its certificate (--cert)"
                                          : "a client certificate (--cert) needs its key (--key)");
  }
  grpc::SslCredentialsOptions ssl;
  if (!o.tls_ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPem("CA certificate (--cacert)", o.tls_ca_file);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
  }
  if (!o.tls_cert_file.empty()) {
    absl::StatusOr<std::string> cert = ReadPem("certificate (--cert)", o.tls_cert_file);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPem("key (--key)", o.tls_key_file);
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(cert);
    ssl.pem_private_key = *std::move(key);
  }
  return grpc::SslCredentials(ssl);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(std::string endpoint,
                                                        ClientOptions options) {
  if (endpoint.empty()) {
    return absl::InvalidArgumentError("endpoint is empty");
  }
  if (options.max_message_bytes <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_message_bytes must be positive, got ", options.max_message_bytes));
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  if (options.dedicated_connection) {
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  }
  std::shared_ptr<grpc::ChannelCredentials> creds = options.credentials;
  if (creds == nullptr) {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> tls =
        TlsCredentialsFromFiles(options);
    if (!tls.ok()) return tls.status();
    creds = *tls != nullptr ? *tls : grpc::InsecureChannelCredentials();
  }
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(endpoint, creds, args);
  if (options.connect_timeout > absl::ZeroDuration()) {
    auto deadline = std::chrono::system_clock::now() +
                    absl::ToChronoNanoseconds(options.connect_timeout);
    if (!channel->WaitForConnected(deadline)) {
      return absl::UnavailableError(
          absl::StrCat("cannot connect to ", endpoint, " within ",
                       absl::FormatDuration(options.connect_timeout)));
    }
  }
  return std::unique_ptr<Client>(
      new Client(std::move(endpoint), std::move(options), std::move(channel)));
}

Client::Client(std::string endpoint, ClientOptions options,
               std::shared_ptr<grpc::Channel> channel)
    : endpoint_(std::move(endpoint)),
      options_(std::move(options)),
      channel_(std::move(channel)),
      kv_stub_(kv::v1::KV::NewStub(channel_)),
      admin_stub_(kv::v1::Admin::NewStub(channel_)),
      health_stub_(grpc::health::v1::Health::NewStub(channel_)) {}

void Client::PrepareContext(grpc::ClientContext* context) const {
  if (!options_.token.empty()) {
    context->AddMetadata("authorization", "Bearer " + options_.token);
  }
  if (options_.timeout != absl::InfiniteDuration()) {
    context->set_deadline(std::chrono::system_clock::now() +
                          absl::ToChronoNanoseconds(options_.timeout));
  }
}

absl::StatusOr<GetResult> Client::Get(absl::string_view key) {
  kv::v1::GetRequest req;
  req.set_key(std::string(key));
  req.set_consistency(ToProto(options_.consistency));
  kv::v1::GetResponse resp;
  grpc::ClientContext ctx;
  PrepareContext(&ctx);
  absl::Status s = FromGrpcStatus(kv_stub_->Get(&ctx, req, &resp));
  if (!s.ok()) return s;
  return FromProto(resp);
}

absl::StatusOr<Version> Client::Put(absl::string_view key,
                                    absl::string_view value,
                                    Precondition precondition) {
  kv::v1::PutRequest req;
  req.set_key(std::string(key));
  req.set_consistency(ToProto(options_.consistency));
  req.set_value(std::string(value));
  if (precondition.kind != Precondition::Kind::kNone) {
    ToProto(precondition, req.mutable_precondition());
  }
  kv::v1::PutResponse resp;
  grpc::ClientContext ctx;
  PrepareContext(&ctx);
  absl::Status s = FromGrpcStatus(kv_stub_->Put(&ctx, req, &resp));
  if (!s.ok()) return s;
  return FromProto(resp.version());
}

absl::StatusOr<Version> Client::Delete(absl::string_view key,
                                       Precondition precondition) {
  kv::v1::DeleteRequest req;
  req.set_key(std::string(key));
  req.set_consistency(ToProto(options_.consistency));
  if (precondition.kind != Precondition::Kind::kNone) {
    ToProto(precondition, req.mutable_precondition());
  }
  kv::v1::DeleteResponse resp;
  grpc::ClientContext ctx;
  PrepareContext(&ctx);
  absl::Status s = FromGrpcStatus(kv_stub_->Delete(&ctx, req, &resp));
  if (!s.ok()) return s;
  return FromProto(resp.version());
}

absl::StatusOr<std::vector<Entry>> Client::Scan(const ScanOptions& options) {
  std::vector<Entry> entries;
  absl::Status s = Scan(options, [&](const Entry& e) {
    entries.push_back(e);
    return options.limit == 0 || entries.size() < options.limit;
  });
  if (!s.ok()) return s;
  return entries;
}

absl::Status Client::Scan(const ScanOptions& options,
                          absl::FunctionRef<bool(const Entry&)> fn) {
  kv::v1::ScanRequest req;
  req.set_prefix(options.prefix);
  req.set_start(options.start);
  req.set_end(options.end);
  req.set_limit(options.limit);
  grpc::ClientContext ctx;
  PrepareContext(&ctx);
  std::unique_ptr<grpc::ClientReader<kv::v1::ScanResponse>> reader =
      kv_stub_->Scan(&ctx, req);
  kv::v1::ScanResponse chunk;
  bool stopped = false;
  while (!stopped && reader->Read(&chunk)) {
    for (const kv::v1::Entry& e : chunk.entries()) {
      if (!fn(FromProto(e))) {
        stopped = true;
        ctx.TryCancel();
        break;
      }
    }
  }
  // Finish() requires the stream to be drained; after TryCancel this ends
  // promptly.
  while (stopped && reader->Read(&chunk)) {
  }
  grpc::Status status = reader->Finish();
  if (stopped) return absl::OkStatus();
  return FromGrpcStatus(status);
}

absl::StatusOr<std::vector<Version>> Client::BatchWrite(
    const std::vector<Mutation>& mutations) {
  kv::v1::BatchWriteRequest req;
  req.set_consistency(ToProto(options_.consistency));
  req.mutable_mutations()->Reserve(static_cast<int>(mutations.size()));
  for (const Mutation& m : mutations) {
    kv::v1::Mutation* pm = req.add_mutations();
    pm->set_key(m.key);
    if (!m.is_delete) pm->set_value(m.value);
    pm->set_delete_(m.is_delete);
    if (m.precondition.kind != Precondition::Kind::kNone) {
      ToProto(m.precondition, pm->mutable_precondition());
    }
  }
  kv::v1::BatchWriteResponse resp;
  grpc::ClientContext ctx;
  PrepareContext(&ctx);
  absl::Status s = FromGrpcStatus(kv_stub_->BatchWrite(&ctx, req, &resp));
  if (!s.ok()) return s;
  std::vector<Version> versions;
  versions.reserve(resp.versions_size());
  for (const kv::v1::Version& v : resp.versions()) {
    versions.push_back(FromProto(v));
  }
  return versions;
}

absl::StatusOr<std::vector<GetResult>> Client::BatchGet(
    const std::vector<std::string>& keys) {
  kv::v1::BatchGetRequest req;
  for (const std::string& k : keys) req.add_keys(k);
  kv::v1::BatchGetResponse resp;
  grpc::ClientContext ctx;
  PrepareContext(&ctx);
  absl::Status s = FromGrpcStatus(kv_stub_->BatchGet(&ctx, req, &resp));
  if (!s.ok()) return s;
  std::vector<GetResult> results;
  results.reserve(resp.results_size());
  for (const kv::v1::GetResponse& r : resp.results()) {
    results.push_back(FromProto(r));
  }
  return results;
}

absl::Status Client::Ping() {
  kv::v1::PingRequest req;
  kv::v1::PingResponse resp;
  grpc::ClientContext ctx;
  PrepareContext(&ctx);
  return FromGrpcStatus(kv_stub_->Ping(&ctx, req, &resp));
}

absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus>
Client::Health(const std::string& service) {
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  grpc::ClientContext ctx;
  PrepareContext(&ctx);
  absl::Status s = FromGrpcStatus(health_stub_->Check(&ctx, req, &resp));
  if (!s.ok()) return s;
  return resp.status();
}

absl::StatusOr<kv::v1::StatsResponse> Client::Stats() {
  kv::v1::StatsRequest req;
  kv::v1::StatsResponse resp;
  grpc::ClientContext ctx;
  PrepareContext(&ctx);
  absl::Status s = FromGrpcStatus(admin_stub_->Stats(&ctx, req, &resp));
  if (!s.ok()) return s;
  return resp;
}

absl::StatusOr<bool> Client::SetAntiEntropy(bool running) {
  kv::v1::SetAntiEntropyRequest req;
  req.set_running(running);
  kv::v1::SetAntiEntropyResponse resp;
  grpc::ClientContext ctx;
  PrepareContext(&ctx);
  absl::Status s =
      FromGrpcStatus(admin_stub_->SetAntiEntropy(&ctx, req, &resp));
  if (!s.ok()) return s;
  return resp.running();
}

absl::StatusOr<kv::v1::VerifyTreeResponse> Client::VerifyTree() {
  kv::v1::VerifyTreeRequest req;
  kv::v1::VerifyTreeResponse resp;
  grpc::ClientContext ctx;
  PrepareContext(&ctx);
  absl::Status s = FromGrpcStatus(admin_stub_->VerifyTree(&ctx, req, &resp));
  if (!s.ok()) return s;
  return resp;
}

absl::StatusOr<kv::v1::SnapshotResponse> Client::Snapshot(const std::string& dir) {
  kv::v1::SnapshotRequest req;
  req.set_dir(dir);
  kv::v1::SnapshotResponse resp;
  grpc::ClientContext ctx;
  PrepareContext(&ctx);
  ctx.set_deadline(std::chrono::system_clock::now() +
                   absl::ToChronoNanoseconds(std::max(options_.timeout, kSnapshotMinTimeout)));
  absl::Status s = FromGrpcStatus(admin_stub_->Snapshot(&ctx, req, &resp));
  if (!s.ok()) return s;
  return resp;
}

absl::StatusOr<kv::v1::MembersResponse> Client::Members() {
  kv::v1::MembersRequest req;
  kv::v1::MembersResponse resp;
  grpc::ClientContext ctx;
  PrepareContext(&ctx);
  absl::Status s = FromGrpcStatus(admin_stub_->Members(&ctx, req, &resp));
  if (!s.ok()) return s;
  return resp;
}

absl::Status Client::RemoveMember(uint64_t node_id) {
  kv::v1::RemoveMemberRequest req;
  req.set_node_id(node_id);
  kv::v1::RemoveMemberResponse resp;
  grpc::ClientContext ctx;
  PrepareContext(&ctx);
  return FromGrpcStatus(admin_stub_->RemoveMember(&ctx, req, &resp));
}

}  // namespace kv::client
