// The edge of a real kvd: separate client and peer ports (--peer-listen),
// the Prometheus /metrics endpoint (--metrics-listen, parsed with Debian's
// python3-prometheus-client), and client tokens (--auth-token-file) through
// the C++ client and kvctl.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
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

std::shared_ptr<grpc::Channel> Channel(const std::string& address) {
  return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
}

grpc::StatusCode GossipCode(const std::string& address) {
  auto stub = peer::v1::Gossip::NewStub(Channel(address));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  peer::v1::GossipMessage req;
  peer::v1::GossipReply resp;
  return stub->Gossip(&ctx, req, &resp).error_code();
}

grpc::StatusCode ExchangeCode(const std::string& address) {
  auto stub = peer::v1::Peer::NewStub(Channel(address));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  auto stream = stub->Exchange(&ctx);
  stream->WritesDone();
  peer::v1::ExchangeMessage m;
  while (stream->Read(&m)) {
  }
  return stream->Finish().error_code();
}

absl::StatusCode GetCode(const std::string& address, const std::string& token = "") {
  kv::client::ClientOptions options;
  options.timeout = absl::Seconds(5);
  options.token = token;
  auto c = kv::client::Client::Connect(address, options);
  if (!c.ok()) return c.status().code();
  return (*c)->Get("k").status().code();
}

TEST(PortsTest, PeerServicesOnlyOnThePeerPortAndReplicationUsesIt) {
  TempDir tmp;
  const std::string peer_a = absl::StrCat("127.0.0.1:", FreePort());
  const std::string peer_b = absl::StrCat("127.0.0.1:", FreePort());
  KvdProcess a(tmp.path() + "/a", {"--name", "a", "--peer-listen", peer_a, "--seeds",
                                   peer_a + "," + peer_b, "--gossip-interval-ms", "100",
                                   "--ae-interval-ms", "200"});
  KvdProcess b(tmp.path() + "/b", {"--name", "b", "--peer-listen", peer_b, "--seeds",
                                   peer_a + "," + peer_b, "--gossip-interval-ms", "100",
                                   "--ae-interval-ms", "200"});
  ASSERT_TRUE(a.Start().ok()) << a.LogTail();
  ASSERT_TRUE(b.Start().ok()) << b.LogTail();

  // A forged exchange or gossip message on the client port: not served.
  EXPECT_EQ(GossipCode(a.address()), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(ExchangeCode(a.address()), grpc::StatusCode::UNIMPLEMENTED);
  // Clients on the peer port: not served.
  EXPECT_EQ(GetCode(peer_a), absl::StatusCode::kUnimplemented);
  {
    auto c = kv::client::Client::Connect(peer_a);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ((*c)->Stats().status().code(), absl::StatusCode::kUnimplemented);
  }
  // Gossip is served on the peer port (an empty message is refused as
  // malformed, not as unknown).
  EXPECT_EQ(GossipCode(peer_a), grpc::StatusCode::INVALID_ARGUMENT);

  // A write on a reaches b through the peer port (fan-out or anti-entropy),
  // and both see each other with the peer address gossiped.
  auto ca = kv::client::Client::Connect(a.address());
  auto cb = kv::client::Client::Connect(b.address());
  ASSERT_TRUE(ca.ok() && cb.ok());
  ASSERT_TRUE((*ca)->Put("k", "v").ok());
  EXPECT_TRUE(WaitFor(
      [&] {
        auto r = (*cb)->Get("k");
        return r.ok() && r->found && r->value == "v";
      },
      absl::Seconds(10)))
      << b.LogTail();
  // The key can reach b (fan-out to the seed's peer port) before gossip has
  // shown b to a: wait for a's view to hold b with both of its addresses.
  std::string last_view;
  EXPECT_TRUE(WaitFor(
      [&] {
        auto members = (*ca)->Members();
        if (!members.ok()) {
          last_view = members.status().ToString();
          return false;
        }
        last_view = members->ShortDebugString();
        if (members->members_size() != 2) return false;
        for (const auto& m : members->members()) {
          if (m.name() == "b") {
            return m.peer_address() == peer_b && m.client_address() == b.address();
          }
        }
        return false;
      },
      absl::Seconds(15)))
      << "a's members: " << last_view << "\n" << a.LogTail();
}

// Scrapes http://ADDRESS/metrics with Python's prometheus_client parser
// (which fails on text that is not valid exposition format) and returns
// "name{k=v,...}" -> value, labels sorted.
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
  if (r.exit_code != 0) {
    return absl::InternalError(absl::StrCat("scrape failed: ", r.err));
  }
  std::map<std::string, double> out;
  for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
    const size_t sp = line.rfind(' ');
    double v = 0;
    if (!absl::SimpleAtod(line.substr(sp + 1), &v)) {
      if (line.substr(sp + 1) == "inf") v = INFINITY;
    }
    out[std::string(line.substr(0, sp))] = v;
  }
  return out;
}

TEST(MetricsEndpointTest, ScrapeParsesAndCountersMoveWithTraffic) {
  TempDir tmp;
  const std::string metrics = absl::StrCat("127.0.0.1:", FreePort());
  KvdProcess kvd(tmp.path() + "/m", {"--name", "m", "--metrics-listen", metrics});
  ASSERT_TRUE(kvd.Start().ok()) << kvd.LogTail();
  auto c = kv::client::Client::Connect(kvd.address());
  ASSERT_TRUE(c.ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE((*c)->Put(absl::StrCat("k", i), "v").ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*c)->Get("k1").ok());
  EXPECT_EQ((*c)->Put("", "v").status().code(), absl::StatusCode::kInvalidArgument);

  auto m = Scrape(metrics);
  ASSERT_TRUE(m.ok()) << m.status();
  const std::string put_ok =
      "kvd_grpc_server_handled_total{grpc_code=OK,grpc_method=Put,grpc_service=kv.v1.KV}";
  EXPECT_EQ((*m)[put_ok], 5);
  EXPECT_EQ((*m)["kvd_grpc_server_handled_total{grpc_code=OK,grpc_method=Get,"
                 "grpc_service=kv.v1.KV}"],
            3);
  EXPECT_EQ((*m)["kvd_grpc_server_handled_total{grpc_code=INVALID_ARGUMENT,"
                 "grpc_method=Put,grpc_service=kv.v1.KV}"],
            1);
  EXPECT_EQ((*m)["kvd_grpc_server_handling_seconds_count{grpc_code=OK,grpc_method=Put,"
                 "grpc_service=kv.v1.KV}"],
            5);
  EXPECT_EQ((*m)["kvd_grpc_server_handling_seconds_bucket{grpc_code=OK,grpc_method=Put,"
                 "grpc_service=kv.v1.KV,le=+Inf}"],
            5);
  EXPECT_EQ((*m)["kvd_store_keys{}"], 5);
  EXPECT_EQ((*m)["kvd_gossip_members{status=alive}"], 1);
  EXPECT_GT((*m)["kvd_process_resident_memory_bytes{}"], 0);
  EXPECT_TRUE(m->count("kvd_anti_entropy_exchanges_total{result=completed}"));
  EXPECT_TRUE(m->count("kvd_fanout_records_total{outcome=queued}"));

  for (int i = 0; i < 2; ++i) ASSERT_TRUE((*c)->Put("more", "v").ok());
  auto m2 = Scrape(metrics);
  ASSERT_TRUE(m2.ok()) << m2.status();
  EXPECT_EQ((*m2)[put_ok], 7);
  EXPECT_EQ((*m2)["kvd_store_keys{}"], 6);
}

class TokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string tokens = tmp_.path() + "/tokens";
    std::ofstream(tokens) << "# role per token\nr0 read\nrw0 readwrite\nadm0 admin\n";
    kvd_ = std::make_unique<KvdProcess>(tmp_.path() + "/t",
                                        std::vector<std::string>{"--auth-token-file", tokens});
    ASSERT_TRUE(kvd_->Start().ok()) << kvd_->LogTail();
  }
  std::unique_ptr<kv::client::Client> As(const std::string& token) {
    kv::client::ClientOptions options;
    options.token = token;
    auto c = kv::client::Client::Connect(kvd_->address(), options);
    EXPECT_TRUE(c.ok());
    return *std::move(c);
  }
  CommandResult Kvctl(std::vector<std::string> args, const std::string& env_token = "") {
    std::vector<std::string> argv = {"/usr/bin/env"};
    if (!env_token.empty()) argv.push_back("KVCTL_TOKEN=" + env_token);
    argv.insert(argv.end(), {KvctlPath(), "--endpoint", kvd_->address()});
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }
  TempDir tmp_;
  std::unique_ptr<KvdProcess> kvd_;
};

TEST_F(TokenTest, EachRoleAllowedAndRefusedPerService) {
  auto none = As(""), bad = As("nope"), r = As("r0"), rw = As("rw0"), adm = As("adm0");
  // KV reads.
  EXPECT_EQ(none->Get("k").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(bad->Get("k").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(r->Get("k").ok());
  EXPECT_TRUE(rw->Get("k").ok());
  EXPECT_TRUE(adm->Get("k").ok());
  EXPECT_EQ(none->Scan({}).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(r->Scan({}).ok());
  // KV writes.
  EXPECT_EQ(none->Put("k", "v").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(r->Put("k", "v").status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(r->Delete("k").status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(rw->Put("k", "v").ok());
  EXPECT_TRUE(adm->Put("k2", "v").ok());
  auto got = r->Get("k");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->value, "v");
  // Admin.
  EXPECT_EQ(none->Stats().status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(r->Stats().status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(rw->Stats().status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(rw->Members().status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(adm->Stats().ok());
  EXPECT_TRUE(adm->Members().ok());
  EXPECT_THAT(kvd_->Log(), HasSubstr("auth: 3 client tokens"));
}

TEST_F(TokenTest, KvctlTokenFlagAndEnvironment) {
  CommandResult no = Kvctl({"put", "a", "1"});
  EXPECT_EQ(no.exit_code, 2);
  EXPECT_THAT(no.err, HasSubstr("UNAUTHENTICATED"));
  CommandResult ro = Kvctl({"--token", "r0", "put", "a", "1"});
  EXPECT_EQ(ro.exit_code, 2);
  EXPECT_THAT(ro.err, HasSubstr("PERMISSION_DENIED"));
  EXPECT_EQ(Kvctl({"--token", "rw0", "put", "a", "1"}).exit_code, 0);
  CommandResult get = Kvctl({"get", "a"}, "r0");
  EXPECT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(get.out, "1");
  EXPECT_EQ(Kvctl({"stats"}, "rw0").exit_code, 2);
  EXPECT_EQ(Kvctl({"stats"}, "adm0").exit_code, 0);
  // A snapshot writes files on the node's machine: admin only, and it works
  // with auth on (it was UNIMPLEMENTED before the wrapper passed it on).
  const std::string snap = tmp_.path() + "/snap";
  CommandResult rw_snap = Kvctl({"snapshot", "save", snap}, "rw0");
  EXPECT_EQ(rw_snap.exit_code, 2);
  EXPECT_THAT(rw_snap.err, HasSubstr("PERMISSION_DENIED"));
  CommandResult adm_snap = Kvctl({"snapshot", "save", snap}, "adm0");
  EXPECT_EQ(adm_snap.exit_code, 0) << adm_snap.err;
  EXPECT_TRUE(std::filesystem::exists(snap + "/KVSNAPSHOT.json"));
}

TEST(AuthOffTest, LoudWarningAndStartRefusedWithABadTokenFile) {
  TempDir tmp;
  KvdProcess off(tmp.path() + "/off");
  ASSERT_TRUE(off.Start().ok());
  EXPECT_THAT(off.Log(), HasSubstr("auth: OFF"));
  EXPECT_EQ(GetCode(off.address()), absl::StatusCode::kOk);
  const std::string bad = tmp.path() + "/bad";
  std::ofstream(bad) << "t superuser\n";
  KvdProcess refused(tmp.path() + "/refused", {"--auth-token-file", bad});
  absl::Status s = refused.Start();
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(s.message(), HasSubstr("role must be read, readwrite or admin"));
}

}  // namespace
}  // namespace kv::testing
