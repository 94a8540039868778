#include "server/limits.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "server/status_mapping.h"

namespace kv::server {
namespace {

using ::testing::HasSubstr;

TEST(LimitsTest, KeyChecksNameTheLimit) {
  Limits l;
  l.max_key_bytes = 8;
  EXPECT_TRUE(CheckKey(l, "12345678").ok());
  absl::Status s = CheckKey(l, "123456789");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("9 bytes, over the limit of 8 bytes (--max-key-bytes)"));
  s = CheckKey(l, "", "mutation 2: ");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "mutation 2: key is empty");
}

TEST(LimitsTest, ValueChecksNameTheLimit) {
  Limits l;
  l.max_value_bytes = 4;
  EXPECT_TRUE(CheckValue(l, "").ok());
  EXPECT_TRUE(CheckValue(l, "1234").ok());
  EXPECT_THAT(CheckValue(l, "12345").message(), HasSubstr("(--max-value-bytes)"));
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
}

}  // namespace
}  // namespace kv::server
