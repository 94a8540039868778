// Transport security of a real kvd, with certificates from
// scripts/gen-certs.sh: TLS on the client port (client certificates
// optional or required), mutual TLS between peers on the peer port, refused
// handshakes counted on /metrics, certificates replaced on disk picked up,
// the start-time checks of the TLS flags, and kvctl --cacert/--cert/--key.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/client.h"
#include "proto/peer.grpc.pb.h"
#include "tests/integration/kvd_process.h"

namespace kv::testing {
namespace {

using ::testing::HasSubstr;

// "name{k=v,...}" -> value from /metrics, parsed by Python's prometheus_client.
absl::StatusOr<std::map<std::string, double>> Scrape(const std::string& address) {
  const std::string script = R"PY(
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
text = urllib.request.urlopen("http://" + sys.argv[1] + "/metrics", timeout=10).read().decode()
for fam in text_string_to_metric_families(text):
    for s in fam.samples:
        labels = ",".join("%s=%s" % kv for kv in sorted(s.labels.items()))
        print("%s{%s} %r" % (s.name, labels, s.value))
)PY";
  CommandResult r = RunCommand({"/usr/bin/python3", "-c", script, address});
  if (r.exit_code != 0) return absl::InternalError(absl::StrCat("scrape failed: ", r.err));
  std::map<std::string, double> out;
  for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
    const size_t sp = line.rfind(' ');
    double v = 0;
    if (!absl::SimpleAtod(line.substr(sp + 1), &v) && line.substr(sp + 1) == "inf") v = INFINITY;
    out[std::string(line.substr(0, sp))] = v;
  }
  return out;
}

double HandshakeFailures(const std::string& metrics, const std::string& reason) {
  auto m = Scrape(metrics);
  if (!m.ok()) return -1;
  auto it = m->find("kvd_tls_handshake_failures_total{reason=" + reason + "}");
  return it == m->end() ? -1 : it->second;
}

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_ = new TempDir();
    CommandResult r = RunCommand({KV_SOURCE_DIR "/scripts/gen-certs.sh", certs_->path()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
  }
  static std::string Cert(const std::string& name) {
    return certs_->path() + "/" + name + ".pem";
  }
  static std::string Key(const std::string& name) {
    return certs_->path() + "/" + name + "-key.pem";
  }

  // A client of `address` over TLS trusting `ca` ("" = plaintext), with the
  // client certificate `cert` ("" = none), on its own connection.
  static absl::StatusOr<std::unique_ptr<kv::client::Client>> Connect(
      const std::string& address, const std::string& ca, const std::string& cert = "") {
    kv::client::ClientOptions o;
    o.timeout = absl::Seconds(5);
    o.dedicated_connection = true;
    if (!ca.empty()) o.tls_ca_file = Cert(ca);
    if (!cert.empty()) {
      o.tls_cert_file = Cert(cert);
      o.tls_key_file = Key(cert);
    }
    return kv::client::Client::Connect(address, o);
  }
  static absl::StatusCode PutCode(const std::string& address, const std::string& ca,
                                  const std::string& cert = "") {
    auto c = Connect(address, ca, cert);
    if (!c.ok()) return c.status().code();
    return (*c)->Put("k", "v").status().code();
  }

  CommandResult Kvctl(const std::string& address, std::vector<std::string> env,
                      std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/env"};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.insert(argv.end(), {KvctlPath(), "--endpoint", address, "--timeout", "5s"});
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }

  static TempDir* certs_;
  TempDir tmp_;
};

TempDir* TlsTest::certs_ = nullptr;

TEST_F(TlsTest, RequiredClientCertificatesRefuseOthersAndCountThem) {
  const std::string metrics = absl::StrCat("127.0.0.1:", FreePort());
  KvdProcess kvd(tmp_.path() + "/a",
                 {"--name", "a", "--tls-cert", Cert("node1"), "--tls-key", Key("node1"),
                  "--tls-ca", Cert("ca"), "--client-cert-auth", "--metrics-listen", metrics});
  ASSERT_TRUE(kvd.Start().ok()) << kvd.LogTail();
  const std::string a = kvd.address();

  EXPECT_EQ(PutCode(a, ""), absl::StatusCode::kUnavailable);                // Plaintext.
  EXPECT_EQ(PutCode(a, "ca"), absl::StatusCode::kUnavailable);              // No certificate.
  EXPECT_EQ(PutCode(a, "ca", "other-client"), absl::StatusCode::kUnavailable);  // Other CA.
  // The client does not trust the node (it checks the node's certificate).
  EXPECT_EQ(PutCode(a, "other-ca", "client"), absl::StatusCode::kUnavailable);
  EXPECT_EQ(PutCode(a, "ca", "client"), absl::StatusCode::kOk);
  auto c = Connect(a, "ca", "client");
  ASSERT_TRUE(c.ok());
  auto got = (*c)->Get("k");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->value, "v");

  // Each refusal is counted by the node, by reason. The client can see its
  // failure before the node has logged (and so counted) the handshake: wait.
  for (const char* reason : {"no_certificate", "bad_certificate", "not_tls"}) {
    EXPECT_TRUE(WaitFor([&] { return HandshakeFailures(metrics, reason) >= 1; },
                        absl::Seconds(10)))
        << reason << ": " << HandshakeFailures(metrics, reason) << "\n" << kvd.LogTail();
  }

  // kvctl: flags, then the environment; refused without them.
  CommandResult r = Kvctl(a, {}, {"--cacert", Cert("ca"), "--cert", Cert("client"), "--key",
                                  Key("client"), "put", "kk", "vv"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = Kvctl(a, {"KVCTL_CACERT=" + Cert("ca"), "KVCTL_CERT=" + Cert("client"),
                "KVCTL_KEY=" + Key("client")},
            {"get", "kk"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("vv"));
  r = Kvctl(a, {"KVCTL_CACERT=" + Cert("ca")}, {"get", "kk"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("UNAVAILABLE"));
  r = Kvctl(a, {}, {"get", "kk"});
  EXPECT_EQ(r.exit_code, 2);
  r = Kvctl(a, {}, {"--cacert", Cert("ca"), "--cert", Cert("client"), "get", "kk"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("needs its key (--key)"));
  // bench over TLS.
  r = Kvctl(a, {"KVCTL_CACERT=" + Cert("ca"), "KVCTL_CERT=" + Cert("client"),
                "KVCTL_KEY=" + Key("client")},
            {"bench", "-w", "put", "-d", "1", "-c", "4", "-k", "100"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

TEST_F(TlsTest, OptionalClientCertificatesAreVerifiedWhenPresented) {
  KvdProcess kvd(tmp_.path() + "/a", {"--tls-cert", Cert("node1"), "--tls-key", Key("node1"),
                                      "--tls-ca", Cert("ca")});
  ASSERT_TRUE(kvd.Start().ok()) << kvd.LogTail();
  EXPECT_EQ(PutCode(kvd.address(), "ca"), absl::StatusCode::kOk);
  EXPECT_EQ(PutCode(kvd.address(), "ca", "client"), absl::StatusCode::kOk);
  EXPECT_EQ(PutCode(kvd.address(), "ca", "other-client"), absl::StatusCode::kUnavailable);
  EXPECT_EQ(PutCode(kvd.address(), ""), absl::StatusCode::kUnavailable);
}

TEST_F(TlsTest, PlaintextWhenTlsIsOff) {
  KvdProcess kvd(tmp_.path() + "/a");
  ASSERT_TRUE(kvd.Start().ok()) << kvd.LogTail();
  EXPECT_EQ(PutCode(kvd.address(), ""), absl::StatusCode::kOk);
  EXPECT_EQ(PutCode(kvd.address(), "ca"), absl::StatusCode::kUnavailable);
}

TEST_F(TlsTest, BadTlsFlagsStopTheStartNamingTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::string missing = tmp_.path() + "/missing.pem";
  const std::vector<Case> cases = {
      {{"--tls-cert", missing, "--tls-key", Key("node1")}, "--tls-cert: cannot read " + missing},
      {{"--tls-cert", Cert("node1")}, "--tls-cert needs --tls-key"},
      {{"--tls-cert", Cert("node1"), "--tls-key", Key("node2")},
       "is not the key of the certificate in --tls-cert"},
      {{"--tls-cert", Cert("node1"), "--tls-key", Key("node1"), "--client-cert-auth"},
       "--client-cert-auth needs --tls-ca"},
      {{"--peer-tls-cert", Cert("node1"), "--peer-tls-key", Key("node1"), "--peer-tls-ca",
        Cert("ca")},
       "--peer-tls-cert needs --peer-listen"},
      {{"--peer-listen", "127.0.0.1:0", "--peer-tls-cert", Cert("node1"), "--peer-tls-key",
        Key("node1"), "--peer-tls-ca", missing},
       "--peer-tls-ca: cannot read " + missing},
      {{"--log-format", "jsno"}, "--log-format"},
  };
  int i = 0;
  for (const Case& c : cases) {
    KvdProcess kvd(absl::StrCat(tmp_.path(), "/bad", i++), c.args);
    absl::Status s = kvd.Start(absl::Seconds(20));
    EXPECT_FALSE(s.ok()) << c.message;
    EXPECT_THAT(kvd.Log(), HasSubstr(c.message));
  }
}

TEST_F(TlsTest, JsonLogLinesParse) {
  KvdProcess kvd(tmp_.path() + "/j", {"--name", "jn", "--log-format", "json"});
  ASSERT_TRUE(kvd.Start().ok()) << kvd.LogTail();
  ASSERT_TRUE(kvd.Terminate().ok());
  // Every line is a JSON object with time, level, node and message.
  CommandResult r = RunCommand(
      {"/usr/bin/python3", "-c",
       "import json,sys\n"
       "n=0\n"
       "for line in open(sys.argv[1]):\n"
       "  o=json.loads(line); assert set(o)=={'time','level','node','message'}, o\n"
       "  assert o['node']=='jn', o; n+=1\n"
       "assert n>=3, n\nprint(n)\n",
       kvd.log_path()});
  EXPECT_EQ(r.exit_code, 0) << r.err << kvd.Log();
}

TEST_F(TlsTest, PeersReplicateOverMutualTlsAndRefuseAnotherCa) {
  const std::string pa = absl::StrCat("127.0.0.1:", FreePort());
  const std::string pb = absl::StrCat("127.0.0.1:", FreePort());
  const std::string pc = absl::StrCat("127.0.0.1:", FreePort());
  const std::string metrics_a = absl::StrCat("127.0.0.1:", FreePort());
  auto args = [&](const std::string& name, const std::string& peer, const std::string& cert,
                  std::vector<std::string> more) {
    std::vector<std::string> v = {"--name", name, "--peer-listen", peer, "--seeds",
                                  pa + "," + pb, "--gossip-interval-ms", "100",
                                  "--ae-interval-ms", "200", "--peer-tls-cert", Cert(cert),
                                  "--peer-tls-key", Key(cert), "--peer-tls-ca", Cert("ca")};
    v.insert(v.end(), more.begin(), more.end());
    return v;
  };
  KvdProcess a(tmp_.path() + "/a", args("a", pa, "node1", {"--metrics-listen", metrics_a}));
  KvdProcess b(tmp_.path() + "/b", args("b", pb, "node2", {}));
  // c trusts the cluster CA but holds a certificate another CA signed.
  KvdProcess c(tmp_.path() + "/c", args("c", pc, "other-node", {}));
  ASSERT_TRUE(a.Start().ok()) << a.LogTail();
  ASSERT_TRUE(b.Start().ok()) << b.LogTail();
  ASSERT_TRUE(c.Start().ok()) << c.LogTail();

  auto ca = Connect(a.address(), ""), cb = Connect(b.address(), ""),
       cc = Connect(c.address(), "");
  ASSERT_TRUE(ca.ok() && cb.ok() && cc.ok());
  ASSERT_TRUE((*cc)->Put("from-c", "x").ok());
  ASSERT_TRUE((*ca)->Put("from-a", "y").ok());
  EXPECT_TRUE(WaitFor(
      [&] {
        auto r = (*cb)->Get("from-a");
        return r.ok() && r->found && r->value == "y";
      },
      absl::Seconds(15)))
      << b.LogTail();
  // c keeps trying (gossip every 100 ms, anti-entropy every 200 ms) and a
  // refuses each handshake; once a has refused several, c's write would have
  // arrived if it could.
  EXPECT_TRUE(WaitFor([&] { return HandshakeFailures(metrics_a, "bad_certificate") >= 5; },
                      absl::Seconds(15)))
      << a.LogTail();
  for (kv::client::Client* client : {ca->get(), cb->get()}) {
    auto r = client->Get("from-c");
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->found);
  }
  auto members = (*ca)->Members();
  ASSERT_TRUE(members.ok());
  for (const auto& m : members->members()) EXPECT_NE(m.name(), "c");

  // A plaintext peer on the peer port: refused before any call.
  auto stub = peer::v1::Gossip::NewStub(grpc::CreateChannel(pa, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  peer::v1::GossipMessage req;
  peer::v1::GossipReply resp;
  EXPECT_EQ(stub->Gossip(&ctx, req, &resp).error_code(), grpc::StatusCode::UNAVAILABLE);
}

// Without --peer-listen peers share the client port: --tls-* secure it for
// both, and the nodes dial each other with their --tls-cert.
TEST_F(TlsTest, OnePortServesClientsAndPeersOverTls) {
  const std::string la = absl::StrCat("127.0.0.1:", FreePort());
  const std::string lb = absl::StrCat("127.0.0.1:", FreePort());
  auto args = [&](const std::string& name, const std::string& cert) {
    return std::vector<std::string>{
        "--name", name, "--seeds", la + "," + lb, "--gossip-interval-ms", "100",
        "--ae-interval-ms", "200", "--tls-cert", Cert(cert), "--tls-key", Key(cert),
        "--tls-ca", Cert("ca"), "--client-cert-auth"};
  };
  KvdProcess a(KvdProcessOptions{.data_dir = tmp_.path() + "/a", .listen = la,
                                 .args = args("a", "node1")});
  KvdProcess b(KvdProcessOptions{.data_dir = tmp_.path() + "/b", .listen = lb,
                                 .args = args("b", "node2")});
  ASSERT_TRUE(a.Start().ok()) << a.LogTail();
  ASSERT_TRUE(b.Start().ok()) << b.LogTail();
  auto ca = Connect(la, "ca", "client"), cb = Connect(lb, "ca", "client");
  ASSERT_TRUE(ca.ok() && cb.ok());
  ASSERT_TRUE((*ca)->Put("one-port", "z").ok());
  EXPECT_TRUE(WaitFor(
      [&] {
        auto r = (*cb)->Get("one-port");
        return r.ok() && r->found && r->value == "z";
      },
      absl::Seconds(15)))
      << b.LogTail();
  EXPECT_EQ(PutCode(la, "ca"), absl::StatusCode::kUnavailable);  // Clients still need one.
}

TEST_F(TlsTest, CertificateReplacedOnDiskIsUsedWithoutRestart) {
  // The node starts with a certificate from the other CA, which clients
  // trusting the cluster CA refuse; then its files are replaced.
  const std::string cert = tmp_.path() + "/served.pem", key = tmp_.path() + "/served-key.pem";
  std::filesystem::copy_file(Cert("other-node"), cert);
  std::filesystem::copy_file(Key("other-node"), key);
  KvdProcess kvd(tmp_.path() + "/r",
                 {"--tls-cert", cert, "--tls-key", key, "--tls-reload-interval", "1"});
  ASSERT_TRUE(kvd.Start().ok()) << kvd.LogTail();
  EXPECT_EQ(PutCode(kvd.address(), "ca"), absl::StatusCode::kUnavailable);
  EXPECT_EQ(PutCode(kvd.address(), "other-ca"), absl::StatusCode::kOk);

  // Replace both files (each by rename, so never half-written).
  std::filesystem::copy_file(Key("node1"), key + ".new");
  std::filesystem::copy_file(Cert("node1"), cert + ".new");
  std::filesystem::rename(key + ".new", key);
  std::filesystem::rename(cert + ".new", cert);
  EXPECT_TRUE(WaitFor([&] { return PutCode(kvd.address(), "ca") == absl::StatusCode::kOk; },
                      absl::Seconds(15)))
      << kvd.LogTail();
  EXPECT_EQ(PutCode(kvd.address(), "other-ca"), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace kv::testing
