#include "server/tls.h"

#include <grpc/support/log.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace kv::server {
namespace {

using grpc::experimental::FileWatcherCertificateProvider;

std::array<std::atomic<int64_t>, kNumHandshakeFailureReasons> g_handshake_failures{};

absl::StatusOr<std::string> ReadFile(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": cannot read ", path, ": ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", path));
  }
  return text.str();
}

std::string OpenSslError() {
  const unsigned long e = ERR_get_error();  // NOLINT(runtime/int): OpenSSL's type.
  ERR_clear_error();
  if (e == 0) return "no PEM block of that kind";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::unique_ptr<BIO, BioDeleter> MemBio(const std::string& pem) {
  return std::unique_ptr<BIO, BioDeleter>(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// The first certificate of `pem`, or an error naming `flag` and `path`.
absl::StatusOr<std::unique_ptr<X509, X509Deleter>> FirstCertificate(const std::string& flag,
                                                                    const std::string& path,
                                                                    const std::string& pem) {
  ERR_clear_error();
  auto bio = MemBio(pem);
  std::unique_ptr<X509, X509Deleter> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": ", path, " holds no PEM certificate (", OpenSslError(), ")"));
  }
  return cert;
}

// Checks one port's files; `prefix` is "--tls" or "--peer-tls".
absl::Status ValidateFiles(const TlsFiles& f, const std::string& prefix) {
  const std::string cert_flag = prefix + "-cert";
  const std::string key_flag = prefix + "-key";
  const std::string ca_flag = prefix + "-ca";
  if (f.cert_file.empty() != f.key_file.empty()) {
    return absl::InvalidArgumentError(
        f.cert_file.empty() ? absl::StrCat(key_flag, " needs ", cert_flag)
                            : absl::StrCat(cert_flag, " needs ", key_flag));
  }
  if (!f.enabled()) {
    if (!f.ca_file.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(ca_flag, " needs ", cert_flag, " and ",
                                                     key_flag, " (TLS is off without them)"));
    }
    return absl::OkStatus();
  }
  auto cert_pem = ReadFile(cert_flag, f.cert_file);
  if (!cert_pem.ok()) return cert_pem.status();
  auto cert = FirstCertificate(cert_flag, f.cert_file, *cert_pem);
  if (!cert.ok()) return cert.status();
  auto key_pem = ReadFile(key_flag, f.key_file);
  if (!key_pem.ok()) return key_pem.status();
  ERR_clear_error();
  auto bio = MemBio(*key_pem);
  std::unique_ptr<EVP_PKEY, PkeyDeleter> key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        key_flag, ": ", f.key_file, " holds no PEM private key (", OpenSslError(), ")"));
  }
  if (X509_check_private_key(cert->get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(key_flag, ": ", f.key_file,
                                                   " is not the key of the certificate in ",
                                                   cert_flag, " ", f.cert_file));
  }
  if (!f.ca_file.empty()) {
    auto ca_pem = ReadFile(ca_flag, f.ca_file);
    if (!ca_pem.ok()) return ca_pem.status();
    auto ca = FirstCertificate(ca_flag, f.ca_file, *ca_pem);
    if (!ca.ok()) return ca.status();
  }
  return absl::OkStatus();
}

std::shared_ptr<FileWatcherCertificateProvider> Provider(const TlsFiles& f,
                                                         unsigned reload_interval_s) {
  return std::make_shared<FileWatcherCertificateProvider>(f.key_file, f.cert_file, f.ca_file,
                                                          reload_interval_s);
}

void GrpcLog(gpr_log_func_args* args) {
  const absl::string_view message = args->message;
  if (std::optional<HandshakeFailureReason> r = ClassifyHandshakeFailure(message)) {
    g_handshake_failures[static_cast<int>(*r)].fetch_add(1, std::memory_order_relaxed);
  }
  spdlog::level::level_enum level = spdlog::level::err;
  switch (args->severity) {
    case GPR_LOG_SEVERITY_DEBUG:
      level = spdlog::level::debug;
      break;
    case GPR_LOG_SEVERITY_INFO:
      level = spdlog::level::info;
      break;
    case GPR_LOG_SEVERITY_ERROR:
      level = spdlog::level::err;
      break;
  }
  const char* file = args->file != nullptr ? std::strrchr(args->file, '/') : nullptr;
  spdlog::log(level, "grpc: {} ({}:{})", args->message,
              file != nullptr ? file + 1 : (args->file != nullptr ? args->file : "?"),
              args->line);
}

}  // namespace

absl::Status ValidateTlsConfig(const TlsConfig& config) {
  if (absl::Status s = ValidateFiles(config.client, "--tls"); !s.ok()) return s;
  if (config.client_cert_auth && config.client.ca_file.empty()) {
    return absl::InvalidArgumentError(
        "--client-cert-auth needs --tls-ca (the CA client certificates must chain to) and "
        "--tls-cert/--tls-key");
  }
  const TlsFiles& p = config.peer;
  if (!p.cert_file.empty() || !p.key_file.empty() || !p.ca_file.empty()) {
    if (p.cert_file.empty() || p.key_file.empty() || p.ca_file.empty()) {
      return absl::InvalidArgumentError(
          "--peer-tls-cert, --peer-tls-key and --peer-tls-ca go together (mutual TLS "
          "between peers needs this node's certificate, its key and the cluster CA)");
    }
    if (!config.has_peer_listen) {
      return absl::InvalidArgumentError(
          "--peer-tls-cert needs --peer-listen (without it peers share the client port, "
          "which --tls-cert/--tls-key/--tls-ca secure)");
    }
  }
  if (absl::Status s = ValidateFiles(p, "--peer-tls"); !s.ok()) return s;
  if (config.reload_interval_s == 0) {
    return absl::InvalidArgumentError("--tls-reload-interval must be at least 1 second");
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::ServerCredentials> ClientPortCredentials(const TlsFiles& files,
                                                               bool require_client_cert,
                                                               unsigned reload_interval_s) {
  grpc::experimental::TlsServerCredentialsOptions options(Provider(files, reload_interval_s));
  options.watch_identity_key_cert_pairs();
  if (files.ca_file.empty()) {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    options.watch_root_certs();
    options.set_cert_request_type(require_client_cert
                                      ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                      : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

std::shared_ptr<grpc::ServerCredentials> PeerServerCredentials(const TlsFiles& files,
                                                               unsigned reload_interval_s) {
  return ClientPortCredentials(files, /*require_client_cert=*/true, reload_interval_s);
}

std::shared_ptr<grpc::ChannelCredentials> PeerChannelCredentials(const TlsFiles& files,
                                                                 unsigned reload_interval_s) {
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(Provider(files, reload_interval_s));
  options.watch_identity_key_cert_pairs();
  if (!files.ca_file.empty()) options.watch_root_certs();
  options.set_verify_server_certs(true);
  options.set_certificate_verifier(
      std::make_shared<grpc::experimental::HostNameCertificateVerifier>());
  return grpc::experimental::TlsCredentials(options);
}

const char* HandshakeFailureReasonName(HandshakeFailureReason reason) {
  switch (reason) {
    case HandshakeFailureReason::kNoCertificate:
      return "no_certificate";
    case HandshakeFailureReason::kBadCertificate:
      return "bad_certificate";
    case HandshakeFailureReason::kRefusedByPeer:
      return "refused_by_peer";
    case HandshakeFailureReason::kNotTls:
      return "not_tls";
    case HandshakeFailureReason::kOther:
      return "other";
  }
  return "other";
}

std::optional<HandshakeFailureReason> ClassifyHandshakeFailure(absl::string_view message) {
  if (!absl::StartsWith(message, "Handshake failed with fatal error")) return std::nullopt;
  // OpenSSL 3's reason strings, e.g. "error:0A0000C7:SSL routines::peer did
  // not return a certificate".
  if (absl::StrContains(message, "peer did not return a certificate")) {
    return HandshakeFailureReason::kNoCertificate;
  }
  if (absl::StrContains(message, "certificate verify failed")) {
    return HandshakeFailureReason::kBadCertificate;
  }
  if (absl::StrContains(message, "alert")) return HandshakeFailureReason::kRefusedByPeer;
  if (absl::StrContains(message, "wrong version number") ||
      absl::StrContains(message, "http request") ||
      absl::StrContains(message, "packet length too long") ||
      absl::StrContains(message, "record layer failure")) {
    return HandshakeFailureReason::kNotTls;
  }
  return HandshakeFailureReason::kOther;
}

void InstallGrpcLogSink() {
  static std::once_flag once;
  std::call_once(once, [] { gpr_set_log_function(GrpcLog); });
}

std::array<int64_t, kNumHandshakeFailureReasons> TlsHandshakeFailures() {
  std::array<int64_t, kNumHandshakeFailureReasons> out{};
  for (int i = 0; i < kNumHandshakeFailureReasons; ++i) {
    out[i] = g_handshake_failures[i].load(std::memory_order_relaxed);
  }
  return out;
}

}  // namespace kv::server
