#include "server/gossip_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace kv::server {
namespace {

TEST(RootBytesTest, HexIsTheDigestsHex) {
  const storage::Digest d{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  const std::string bytes = RootBytes(d);
  ASSERT_EQ(bytes.size(), 16u);
  EXPECT_EQ(RootHex(bytes), d.Hex());
  EXPECT_EQ(RootHex(RootBytes(storage::Digest{})), std::string(32, '0'));
  EXPECT_EQ(RootHex("short"), "");
}

// A Gossip service that records what it receives.
class RecordingGossip final : public peer::v1::Gossip::CallbackService {
 public:
  grpc::ServerUnaryReactor* Gossip(grpc::CallbackServerContext* ctx,
                                   const peer::v1::GossipMessage* request,
                                   peer::v1::GossipReply*) override {
    {
      absl::MutexLock lock(&mu_);
      received_.push_back(*request);
    }
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  std::vector<peer::v1::GossipMessage> received() {
    absl::MutexLock lock(&mu_);
    return received_;
  }

 private:
  absl::Mutex mu_;
  std::vector<peer::v1::GossipMessage> received_ ABSL_GUARDED_BY(mu_);
};

TEST(GrpcGossipTransportTest, DeliversAndCounts) {
  RecordingGossip service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(port, 0);

  GrpcGossipTransport transport;
  peer::v1::GossipMessage m;
  m.set_kind(peer::v1::GossipMessage::SYN);
  m.set_from_node_id(42);
  for (int i = 0; i < 3; ++i) transport.Send("127.0.0.1:" + std::to_string(port), m);
  transport.Close(absl::Seconds(5));  // Waits for the three calls.
  const std::vector<peer::v1::GossipMessage> got = service.received();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].from_node_id(), 42u);
  const GossipTransportStats stats = transport.stats();
  EXPECT_EQ(stats.sent, 3);
  EXPECT_EQ(stats.failed, 0);
  EXPECT_EQ(stats.dropped, 0);

  transport.Send("127.0.0.1:" + std::to_string(port), m);  // Closed: dropped.
  EXPECT_EQ(transport.stats().dropped, 1);
  server->Shutdown();
}

TEST(GrpcGossipTransportTest, UnreachablePeerFailsWithoutBlocking) {
  GrpcGossipTransport transport;
  const absl::Time start = absl::Now();
  transport.Send("127.0.0.1:1", peer::v1::GossipMessage());
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(200));  // Send is async.
  transport.Close(absl::Seconds(5));
  EXPECT_EQ(transport.stats().sent, 1);
  EXPECT_EQ(transport.stats().failed, 1);
}

TEST(GrpcGossipTransportTest, DropsBeyondMaxInFlight) {
  GrpcGossipTransport transport(GossipTransportOptions{.max_in_flight = 0});
  transport.Send("127.0.0.1:1", peer::v1::GossipMessage());
  EXPECT_EQ(transport.stats().sent, 0);
  EXPECT_EQ(transport.stats().dropped, 1);
}

}  // namespace
}  // namespace kv::server
