// Issue 12: a responder applies only the records it asked for. A peer that
// slips a record into an exchange (after a valid Hello, before anything was
// asked) ends the exchange with INVALID_ARGUMENT; the record is not stored
// and the refusal is counted in the Stats RPC (kvctl stats) and in /metrics.
#include <unistd.h>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "proto/peer.grpc.pb.h"
#include "storage/merkle.h"
#include "storage/record.h"
#include "tests/integration/foreign_hello.h"
#include "tests/integration/kvd_process.h"

namespace kv::testing {
namespace {

using peer::v1::ExchangeMessage;

TEST(AntiEntropyUnaskedTest, RecordNotAskedForEndsTheExchangeAndIsCounted) {
  TempDir dir;
  const int metrics_port = FreePort();
  KvdProcess kvd(dir.path() + "/node",
                 {"--leaf-depth", "8", "--metrics-listen",
                  absl::StrCat("127.0.0.1:", metrics_port)});
  ASSERT_TRUE(kvd.Start().ok()) << kvd.LogTail();
  auto c = client::Client::Connect(kvd.address());
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->Put("k", "v").ok());

  // A valid Hello from a store that differs from the node's.
  absl::StatusOr<ExchangeMessage> foreign = ForeignHello(0xbad, 8);
  ASSERT_TRUE(foreign.ok()) << foreign.status();
  const ExchangeMessage hello = *foreign;

  auto stub = peer::v1::Peer::NewStub(
      grpc::CreateChannel(kvd.address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto stream = stub->Exchange(&ctx);
  ASSERT_TRUE(stream->Write(hello));
  ExchangeMessage answer;
  ASSERT_TRUE(stream->Read(&answer));  // The Digests of the root.
  ASSERT_GT(answer.digests_size(), 0);
  // Instead of answering: a record nobody asked for. Its key is in the leaf
  // of "k", which the node holds, so no node above it was declared empty
  // (under an empty one any record would be taken).
  const storage::HashRange leaf_of_k =
      storage::RangeOf(8, storage::KeyHash("k") >> 56);
  std::string planted = "planted";
  for (int i = 0; !leaf_of_k.Contains(storage::KeyHash(planted)); ++i) {
    planted = absl::StrCat("planted-", i);
  }
  ExchangeMessage push;
  push.set_hlc_base(uint64_t{1'700'000'000'000} << 16);
  push.add_node_ids(0xbad);
  peer::v1::ExchangeRecord* r = push.add_records();
  r->set_key(planted);
  r->set_value("x");
  r->set_node(0);
  push.set_end_of_turn(true);
  ASSERT_TRUE(stream->Write(push));
  stream->WritesDone();
  while (stream->Read(&answer)) {
  }
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("'" + planted + "' was not asked for"),
            std::string::npos)
      << status.error_message();

  auto got = (*c)->Get(planted);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->found);
  auto stats = (*c)->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->records_not_asked(), 1);
  EXPECT_EQ(stats->exchanges_failed(), 1);
  // /metrics, with curl where there is one.
  if (access("/usr/bin/curl", X_OK) == 0) {
    CommandResult scrape = RunCommand({"/usr/bin/curl", "-sf",
                                       absl::StrCat("http://127.0.0.1:", metrics_port,
                                                    "/metrics")});
    EXPECT_EQ(scrape.exit_code, 0) << scrape.err;
    EXPECT_NE(scrape.out.find("kvd_anti_entropy_records_not_asked_total 1"),
              std::string::npos)
        << scrape.out;
  }
  CommandResult kvctl = RunCommand({KvctlPath(), "--endpoint", kvd.address(), "stats"});
  EXPECT_EQ(kvctl.exit_code, 0) << kvctl.err;
  EXPECT_NE(kvctl.out.find("refused (not asked)      1"), std::string::npos) << kvctl.out;
}

}  // namespace
}  // namespace kv::testing
