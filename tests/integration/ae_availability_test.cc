// Issue 13 item 6: idle Peer streams cannot stop anti-entropy on a node.
// Streams that send nothing take no serving slot; streams that sent a valid
// Hello hold one only until the idle timeout; and a node that serves still
// initiates to others, so a returning node is repaired meanwhile.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "proto/peer.grpc.pb.h"
#include "tests/integration/foreign_hello.h"
#include "tests/integration/kvd_process.h"

namespace kv::testing {
namespace {

using peer::v1::ExchangeMessage;
using Clock = std::chrono::steady_clock;

constexpr int kMaxIncoming = 2;
constexpr int kIdleTimeoutMs = 10000;

// One Peer.Exchange stream held open by the test.
struct HeldStream {
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReaderWriter<ExchangeMessage, ExchangeMessage>> stream;
};

std::vector<client::Mutation> Puts(int n) {
  std::vector<client::Mutation> m;
  for (int i = 0; i < n; ++i) m.push_back({absl::StrCat("k", i), "v", false, {}});
  return m;
}

TEST(AntiEntropyAvailabilityTest, IdleStreamsDoNotStopRepair) {
  TempDir dir;
  const std::string up_addr = absl::StrCat("127.0.0.1:", FreePort());
  const std::string back_addr = absl::StrCat("127.0.0.1:", FreePort());
  auto args = [](const std::string& name, const std::string& peer) {
    return std::vector<std::string>{
        "--name", name, "--peers", peer, "--ae-interval-ms", "100",
        "--ae-max-incoming", absl::StrCat(kMaxIncoming), "--ae-idle-timeout-ms",
        absl::StrCat(kIdleTimeoutMs), "--leaf-depth", "8"};
  };
  KvdProcess up(dir.path() + "/up", args("up", back_addr));
  up.set_listen(up_addr);
  KvdProcess back(dir.path() + "/back", args("back", up_addr));
  back.set_listen(back_addr);
  ASSERT_TRUE(up.Start().ok());
  auto up_client = client::Client::Connect(up.address());
  ASSERT_TRUE(up_client.ok());
  ASSERT_TRUE((*up_client)->BatchWrite(Puts(200)).ok());

  // Valid Hellos from stores that differ from `up`'s, each from its own
  // node (a second exchange from one node would supersede its first).
  std::vector<ExchangeMessage> hellos;
  for (int i = 0; i < kMaxIncoming; ++i) {
    absl::StatusOr<ExchangeMessage> foreign = ForeignHello(0xfeed + i, 8);
    ASSERT_TRUE(foreign.ok()) << foreign.status();
    hellos.push_back(*foreign);
  }

  auto channel = grpc::CreateChannel(up.address(), grpc::InsecureChannelCredentials());
  auto stub = peer::v1::Peer::NewStub(channel);
  std::vector<std::unique_ptr<HeldStream>> held;
  auto open = [&] {
    auto h = std::make_unique<HeldStream>();
    h->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    h->stream = stub->Exchange(&h->ctx);
    held.push_back(std::move(h));
    return held.back().get();
  };
  // Every serving slot taken by a stream that sent its Hello, got the answer
  // and then stays idle.
  for (int i = 0; i < kMaxIncoming; ++i) {
    HeldStream* h = open();
    ASSERT_TRUE(h->stream->Write(hellos[i]));
    ExchangeMessage answer;
    ASSERT_TRUE(h->stream->Read(&answer));  // Admitted: it holds a slot.
    EXPECT_GT(answer.digests_size(), 0);
  }
  // Four times as many streams that never send anything.
  for (int i = 0; i < 4 * kMaxIncoming; ++i) open();
  const auto held_since = Clock::now();

  // The returning node is repaired although every slot of `up` is held:
  // `up` initiates to it while it serves.
  ASSERT_TRUE(back.Start().ok());
  auto back_client = client::Client::Connect(back.address());
  ASSERT_TRUE(back_client.ok());
  const std::string want = (*up_client)->Stats()->root_digest();
  bool repaired = false;
  while (!repaired && Clock::now() < held_since + std::chrono::milliseconds(kIdleTimeoutMs / 2)) {
    auto s = (*back_client)->Stats();
    repaired = s.ok() && s->root_digest() == want;
    if (!repaired) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(repaired) << "the returning node was not repaired while idle streams "
                           "held the up-to-date node's slots";
  EXPECT_EQ((*back_client)->Stats()->key_count(), 200);

  // The idle timeout ends every held stream, with or without a Hello.
  for (auto& h : held) {
    ExchangeMessage msg;
    EXPECT_FALSE(h->stream->Read(&msg));
    EXPECT_FALSE(h->stream->Finish().ok());
  }
  const auto ended_after = std::chrono::duration_cast<std::chrono::milliseconds>(
                               Clock::now() - held_since)
                               .count();
  EXPECT_GE(ended_after, kIdleTimeoutMs - 1000);
  EXPECT_LT(ended_after, kIdleTimeoutMs + 5000);
}

// A peer runs one exchange with a node at a time and waits for its end, so
// its new exchange means it gave up the one still served: that one stops at
// once, not at the idle timeout, and does not hold the slot the new one
// needs.
TEST(AntiEntropyAvailabilityTest, ANewExchangeFromAPeerEndsItsAbandonedOne) {
  TempDir dir;
  KvdProcess node(dir.path() + "/node",
                  {"--ae-max-incoming", "1", "--ae-idle-timeout-ms",
                   absl::StrCat(kIdleTimeoutMs), "--leaf-depth", "8"});
  ASSERT_TRUE(node.Start().ok());
  auto c = client::Client::Connect(node.address());
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->BatchWrite(Puts(200)).ok());
  absl::StatusOr<ExchangeMessage> hello = ForeignHello(0xfeed, 8);
  ASSERT_TRUE(hello.ok()) << hello.status();
  auto channel = grpc::CreateChannel(node.address(), grpc::InsecureChannelCredentials());
  auto stub = peer::v1::Peer::NewStub(channel);
  HeldStream abandoned, next;
  for (HeldStream* h : {&abandoned, &next}) {
    h->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    h->stream = stub->Exchange(&h->ctx);
  }
  ExchangeMessage answer;
  ASSERT_TRUE(abandoned.stream->Write(*hello));
  ASSERT_TRUE(abandoned.stream->Read(&answer));  // Admitted: the only slot.
  const auto superseded_at = Clock::now();
  ASSERT_TRUE(next.stream->Write(*hello));
  ASSERT_TRUE(next.stream->Read(&answer)) << "the new exchange was not admitted";
  EXPECT_GT(answer.digests_size(), 0);
  EXPECT_FALSE(abandoned.stream->Read(&answer));
  EXPECT_FALSE(abandoned.stream->Finish().ok());
  const auto ended_after = std::chrono::duration_cast<std::chrono::milliseconds>(
                               Clock::now() - superseded_at)
                               .count();
  EXPECT_LT(ended_after, kIdleTimeoutMs / 2);
  next.ctx.TryCancel();
  (void)next.stream->Finish();
  // Both count as failed on the node; neither is a yield (ABORTED is kept
  // for those).
  absl::StatusOr<kv::v1::StatsResponse> stats = (*c)->Stats();
  for (const auto until = Clock::now() + std::chrono::seconds(10);
       Clock::now() < until && (!stats.ok() || stats->exchanges_failed() < 2);
       stats = (*c)->Stats()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->exchanges_failed(), 2);
  EXPECT_EQ(stats->exchanges_yielded(), 0);
}

}  // namespace
}  // namespace kv::testing
