// Transport security for kvd's two gRPC ports (--tls-* and --peer-tls-*).
//
// The client port (--listen) serves TLS with --tls-cert/--tls-key; a client
// certificate is verified against --tls-ca when the client presents one, and
// required with --client-cert-auth. The peer port (--peer-listen) speaks
// mutual TLS with --peer-tls-cert/--peer-tls-key/--peer-tls-ca: the peer
// server requires a client certificate the CA signed, and this node's peer
// channels present the node certificate and verify the other node's
// certificate (chain to the CA, and the address dialled among its subject
// alternative names).
//
// Certificates and keys are read by gRPC's FileWatcherCertificateProvider,
// which rereads the files every `reload_interval_s` seconds: replacing them on
// disk (key and certificate together, e.g. by rename) rotates them without a
// restart; connections already open keep the old ones.
//
// Refused handshakes: gRPC 1.51 has no hook for a failed TLS handshake (a
// CertificateVerifier is only asked after OpenSSL has accepted the chain), so
// InstallGrpcLogSink routes gRPC's own log lines through spdlog and counts
// the "Handshake failed" lines gRPC writes for every failed TLS handshake, on
// either side of a connection of this process, by reason (see
// HandshakeFailureReason).
//
// Thread safety: all functions are thread-safe.
#ifndef KV_SERVER_TLS_H_
#define KV_SERVER_TLS_H_

#include <grpcpp/grpcpp.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace kv::server {

// The PEM files of one port; "" = not given. TLS is on when cert_file is set.
struct TlsFiles {
  std::string cert_file;  // Certificate chain, leaf first.
  std::string key_file;   // Private key of the leaf certificate.
  std::string ca_file;    // CA certificate(s) the other side must chain to.

  bool enabled() const { return !cert_file.empty(); }
};

// Everything NodeOptions says about transport security.
struct TlsConfig {
  TlsFiles client;                 // --tls-cert, --tls-key, --tls-ca.
  bool client_cert_auth = false;   // --client-cert-auth.
  TlsFiles peer;                   // --peer-tls-cert, --peer-tls-key, --peer-tls-ca.
  bool has_peer_listen = false;    // --peer-listen was given.
  unsigned reload_interval_s = 10;  // --tls-reload-interval.
};

// Checks `config` before anything starts: the flags that go together are
// given together (cert and key; a CA or --client-cert-auth only with them;
// all three peer files; peer TLS only with --peer-listen), and each file can
// be read and holds what it should (a certificate; a private key matching
// the certificate; CA certificates).
// Errors: INVALID_ARGUMENT whose message names the flag (and the file).
absl::Status ValidateTlsConfig(const TlsConfig& config);

// Server credentials of the client port: TLS with files.cert/key; a client
// certificate is requested and verified against files.ca when ca is set,
// and required when `require_client_cert`.
// REQUIRES: files.enabled(); ca set when require_client_cert (as checked by
// ValidateTlsConfig).
std::shared_ptr<grpc::ServerCredentials> ClientPortCredentials(const TlsFiles& files,
                                                               bool require_client_cert,
                                                               unsigned reload_interval_s);

// Server credentials of the peer port: mutual TLS (a client certificate the
// CA signed is required). REQUIRES: all three files set.
std::shared_ptr<grpc::ServerCredentials> PeerServerCredentials(const TlsFiles& files,
                                                               unsigned reload_interval_s);

// Channel credentials for dialling a peer: presents files.cert/key, verifies
// the server against files.ca (the system roots when ca is "") and its name.
// REQUIRES: files.enabled().
std::shared_ptr<grpc::ChannelCredentials> PeerChannelCredentials(const TlsFiles& files,
                                                                 unsigned reload_interval_s);

// Why a TLS handshake failed, from gRPC's log line.
enum class HandshakeFailureReason {
  kNoCertificate,   // This side required a certificate the other did not send.
  kBadCertificate,  // This side refused the other's certificate (unknown CA,
                    // expired, wrong name, ...).
  kRefusedByPeer,   // The other side sent a TLS alert: it refused this side.
  kNotTls,          // The other side does not speak TLS (e.g. plaintext).
  kOther,
};
inline constexpr int kNumHandshakeFailureReasons = 5;
// "no_certificate", "bad_certificate", "refused_by_peer", "not_tls", "other".
const char* HandshakeFailureReasonName(HandshakeFailureReason reason);

// The reason of a failed handshake when `message` is gRPC's log line for one
// ("Handshake failed with fatal error SSL_ERROR_SSL: error:...: <reason>.",
// or a hostname mismatch); nullopt for any other line. Pure.
std::optional<HandshakeFailureReason> ClassifyHandshakeFailure(absl::string_view message);

// From now on gRPC's log lines (at gRPC's verbosity, errors by default) go to
// spdlog's default logger, and failed handshakes are counted. Idempotent.
void InstallGrpcLogSink();

// Failed handshakes counted since InstallGrpcLogSink, indexed by reason.
std::array<int64_t, kNumHandshakeFailureReasons> TlsHandshakeFailures();

}  // namespace kv::server

#endif  // KV_SERVER_TLS_H_
