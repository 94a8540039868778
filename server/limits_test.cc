#include "server/limits.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "server/status_mapping.h"

namespace kv::server {
namespace {

using ::testing::HasSubstr;

// The server's key and value limits are the record limits: one check
// (storage::CheckKey, CheckValue; tested in storage/record_test.cc).
TEST(LimitsTest, KeyAndValueLimitsAreTheRecordLimits) {
  Limits l;
  l.max_key_bytes = 8;
  l.max_value_bytes = 4;
  EXPECT_TRUE(storage::CheckKey(l, "12345678").ok());
  EXPECT_THAT(storage::CheckKey(l, "123456789").message(),
              HasSubstr("over the limit of 8 bytes (--max-key-bytes)"));
  EXPECT_THAT(storage::CheckValue(l, "12345").message(),
              HasSubstr("over the limit of 4 bytes (--max-value-bytes)"));
}

TEST(LimitsTest, MessageLimitFollowsKeyAndValueLimits) {
  Limits l;
  EXPECT_EQ(l.EffectiveMaxMessageBytes(), 4096u + (1u << 20) + (64u << 10));
  l.max_message_bytes = 1000;
  EXPECT_EQ(l.EffectiveMaxMessageBytes(), 1000u);
}

TEST(StatusMappingTest, KeepsCodeAndMessage) {
  grpc::Status g = ToGrpcStatus(absl::FailedPreconditionError("stale"));
  EXPECT_EQ(g.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(g.error_message(), "stale");
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_EQ(ToGrpcStatus(absl::UnavailableError("x")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  absl::Status back = FromGrpcStatus(ToGrpcStatus(absl::AbortedError("yield")));
  EXPECT_EQ(back.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(back.message(), "yield");
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
  EXPECT_EQ(FromGrpcStatus(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "late")).code(),
            absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace kv::server
