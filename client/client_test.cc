// Pure-logic tests of the client library: status and proto conversions.
// Calls against a real server are in tests/.
#include "client/client.h"

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace kv::client {
namespace {

TEST(FromGrpcStatusTest, KeepsCodeAndMessage) {
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
  const absl::Status s = FromGrpcStatus(
      grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "key too long"));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "key too long");
  // Every code maps to the absl code of the same name, but CANCELLED (the
  // client cancels none of the calls it reports): gRPC's answer for a call a
  // node shutting down had not handled.
  for (int c = 2; c <= 16; ++c) {
    const absl::Status t =
        FromGrpcStatus(grpc::Status(static_cast<grpc::StatusCode>(c), "m"));
    EXPECT_EQ(static_cast<int>(t.code()), c);
  }
  const absl::Status cancelled =
      FromGrpcStatus(grpc::Status(grpc::StatusCode::CANCELLED, "CANCELLED"));
  EXPECT_EQ(cancelled.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(cancelled.message().find("shutting down"), std::string::npos);
  EXPECT_EQ(
      FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "")).code(),
      absl::StatusCode::kUnavailable);
}

TEST(ConversionTest, Version) {
  kv::v1::Version p;
  ToProto(Version{5, 7}, &p);
  EXPECT_EQ(p.hlc(), 5u);
  EXPECT_EQ(p.node_id(), 7u);
  EXPECT_EQ(FromProto(p), (Version{5, 7}));
  EXPECT_LT((Version{5, 7}), (Version{5, 8}));
  EXPECT_LT((Version{5, 9}), (Version{6, 0}));
  EXPECT_FALSE(Version{}.IsSet());
}

TEST(ConversionTest, Precondition) {
  kv::v1::Precondition p;
  ToProto(Precondition::None(), &p);
  EXPECT_EQ(p.condition_case(), kv::v1::Precondition::CONDITION_NOT_SET);
  ToProto(Precondition::MustNotExist(), &p);
  EXPECT_EQ(p.condition_case(), kv::v1::Precondition::kMustNotExist);
  EXPECT_TRUE(p.must_not_exist());
  p.Clear();
  ToProto(Precondition::ExpectVersion({3, 4}), &p);
  ASSERT_EQ(p.condition_case(), kv::v1::Precondition::kExpectedVersion);
  EXPECT_EQ(FromProto(p.expected_version()), (Version{3, 4}));
}

TEST(ConversionTest, GetResponse) {
  kv::v1::GetResponse r;
  GetResult g = FromProto(r);
  EXPECT_FALSE(g.found);
  EXPECT_FALSE(g.version.IsSet());
  r.set_found(true);
  r.set_value(std::string("v\0w", 3));
  r.mutable_version()->set_hlc(9);
  g = FromProto(r);
  EXPECT_TRUE(g.found);
  EXPECT_EQ(g.value, std::string("v\0w", 3));
  EXPECT_EQ(g.version, (Version{9, 0}));
}

TEST(ConnectTest, RejectsBadOptionsWithoutNetwork) {
  EXPECT_EQ(Client::Connect("").status().code(),
            absl::StatusCode::kInvalidArgument);
  ClientOptions o;
  o.max_message_bytes = 0;
  EXPECT_EQ(Client::Connect("127.0.0.1:1", o).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Lazy connect succeeds without a server.
  EXPECT_TRUE(Client::Connect("127.0.0.1:1").ok());
}

}  // namespace
}  // namespace kv::client
