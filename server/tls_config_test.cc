// ValidateTlsConfig's flag rules and ClassifyHandshakeFailure. Real
// certificates and handshakes: tests/integration/tls_test.cc.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "server/tls.h"

namespace kv::server {
namespace {

using ::testing::HasSubstr;

absl::Status Check(TlsConfig c) { return ValidateTlsConfig(c); }

TEST(TlsConfigTest, OffIsValid) { EXPECT_TRUE(Check({}).ok()); }

TEST(TlsConfigTest, FlagsThatGoTogether) {
  TlsConfig c;
  c.client.cert_file = "/nonexistent/cert.pem";
  EXPECT_THAT(Check(c).message(), HasSubstr("--tls-cert needs --tls-key"));
  c = {};
  c.client.key_file = "k.pem";
  EXPECT_THAT(Check(c).message(), HasSubstr("--tls-key needs --tls-cert"));
  c = {};
  c.client.ca_file = "ca.pem";
  EXPECT_THAT(Check(c).message(), HasSubstr("--tls-ca needs --tls-cert and --tls-key"));
  c = {};
  c.client_cert_auth = true;
  EXPECT_THAT(Check(c).message(), HasSubstr("--client-cert-auth needs --tls-ca"));
  c = {};
  c.peer.cert_file = "c.pem";
  c.peer.key_file = "k.pem";
  c.has_peer_listen = true;
  EXPECT_THAT(Check(c).message(),
              HasSubstr("--peer-tls-cert, --peer-tls-key and --peer-tls-ca go together"));
  c.peer.ca_file = "ca.pem";
  c.has_peer_listen = false;
  EXPECT_THAT(Check(c).message(), HasSubstr("--peer-tls-cert needs --peer-listen"));
  EXPECT_EQ(Check(c).code(), absl::StatusCode::kInvalidArgument);
}

TEST(TlsConfigTest, UnreadableOrWrongFilesNameTheFlag) {
  const std::string dir = ::testing::TempDir();
  const std::string junk = dir + "/tls_config_test_junk.pem";
  std::ofstream(junk) << "not a certificate\n";
  TlsConfig c;
  c.client.cert_file = dir + "/tls_config_test_missing.pem";
  c.client.key_file = junk;
  absl::Status s = Check(c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("--tls-cert: cannot read " + c.client.cert_file));
  c.client.cert_file = junk;
  EXPECT_THAT(Check(c).message(), HasSubstr("--tls-cert: " + junk + " holds no PEM certificate"));
  c = {};
  c.peer = {junk, junk, junk};
  c.has_peer_listen = true;
  EXPECT_THAT(Check(c).message(), HasSubstr("--peer-tls-cert: " + junk));
  std::remove(junk.c_str());
}

TEST(TlsConfigTest, ClassifiesGrpcHandshakeLines) {
  EXPECT_EQ(ClassifyHandshakeFailure("Handshake failed with fatal error SSL_ERROR_SSL: "
                                     "error:0A0000C7:SSL routines::peer did not return a "
                                     "certificate."),
            HandshakeFailureReason::kNoCertificate);
  EXPECT_EQ(ClassifyHandshakeFailure("Handshake failed with fatal error SSL_ERROR_SSL: "
                                     "error:0A000086:SSL routines::certificate verify failed."),
            HandshakeFailureReason::kBadCertificate);
  EXPECT_EQ(ClassifyHandshakeFailure("Handshake failed with fatal error SSL_ERROR_SSL: "
                                     "error:0A000418:SSL routines::tlsv1 alert unknown ca."),
            HandshakeFailureReason::kRefusedByPeer);
  EXPECT_EQ(ClassifyHandshakeFailure("Handshake failed with fatal error SSL_ERROR_SSL: "
                                     "error:0A00010B:SSL routines::wrong version number."),
            HandshakeFailureReason::kNotTls);
  EXPECT_EQ(ClassifyHandshakeFailure("Handshake failed with fatal error SSL_ERROR_SYSCALL: x."),
            HandshakeFailureReason::kOther);
  EXPECT_EQ(ClassifyHandshakeFailure("Connect failed: connection refused"), std::nullopt);
  EXPECT_STREQ(HandshakeFailureReasonName(HandshakeFailureReason::kRefusedByPeer),
               "refused_by_peer");
}

}  // namespace
}  // namespace kv::server
