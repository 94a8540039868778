#include "replication/wire.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kv::replication {
namespace {

using ::testing::HasSubstr;

TEST(SaltedDigestTest, DependsOnSaltAndDigest) {
  const storage::Digest d{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  EXPECT_EQ(SaltedDigest(d, 1), SaltedDigest(d, 1));
  EXPECT_NE(SaltedDigest(d, 1), SaltedDigest(d, 2));
  EXPECT_NE(SaltedDigest(d, 1), SaltedDigest(storage::Digest{d.hi, d.lo ^ 1}, 1));
}

// 0 is the digest of an empty node, whatever the salt, and of nothing else.
TEST(SaltedDigestTest, ZeroMeansEmptyOnly) {
  for (uint64_t salt = 0; salt < 1000; ++salt) {
    EXPECT_EQ(SaltedDigest(storage::Digest{}, salt), kEmptyDigest);
    EXPECT_NE(SaltedDigest(storage::Digest{salt + 1, salt}, salt), kEmptyDigest);
    EXPECT_NE(SaltedDigest(storage::Digest{0, salt + 1}, salt), kEmptyDigest);
  }
}

TEST(WireTest, RecordRoundTrip) {
  storage::Record r{"key", storage::Version{77, 5}, false, "value"};
  absl::StatusOr<storage::Record> back = RecordFromProto(RecordToProto(r), {});
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, r);

  storage::Record t{"gone", storage::Version{78, 6}, true, ""};
  back = RecordFromProto(RecordToProto(t), {});
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, t);
}

TEST(WireTest, RejectsBadRecords) {
  const RecordLimits limits{8, 16};
  auto check = [&](const peer::v1::Record& r, const std::string& needle) {
    absl::StatusOr<storage::Record> got = RecordFromProto(r, limits);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(got.status().message()), HasSubstr(needle));
  };
  peer::v1::Record good = RecordToProto({"k", {1, 1}, false, "v"});
  ASSERT_TRUE(RecordFromProto(good, limits).ok());

  peer::v1::Record r = good;
  r.clear_key();
  check(r, "empty key");
  r = good;
  r.set_key("123456789");
  check(r, "record: key is 9 bytes, over the limit of 8 bytes (--max-key-bytes)");
  r = good;
  r.clear_version();
  check(r, "no version");
  r = good;
  r.mutable_version()->set_hlc(0);
  check(r, "no version");
  r = good;
  r.set_tombstone(true);
  check(r, "carries a value");
  r = good;
  r.set_value(std::string(17, 'x'));
  check(r, "record of key 'k': value is 17 bytes, over the limit of 16 bytes (--max-value-bytes)");
}

TEST(WireTest, KeyForMessageEscapesAndCuts) {
  EXPECT_EQ(KeyForMessage(std::string("a\0b", 3)), "a\\x00\\x62");
  EXPECT_EQ(KeyForMessage(std::string(100, 'x')), std::string(64, 'x') + "...");
}

}  // namespace
}  // namespace kv::replication

namespace kv::replication {
namespace {

TEST(FingerprintTest, ThreeBytesRoundTrip) {
  const storage::Digest d{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  const uint32_t fp = Fingerprint(d, 42);
  EXPECT_EQ(fp, SaltedDigest(d, 42) & 0xFFFFFF);
  std::string wire;
  AppendFingerprint(fp, &wire);
  AppendFingerprint(0xABCDEF, &wire);
  ASSERT_EQ(wire.size(), 2 * kFingerprintBytes);
  EXPECT_EQ(ReadFingerprint(wire.data()), fp);
  EXPECT_EQ(ReadFingerprint(wire.data() + kFingerprintBytes), 0xABCDEFu);
  EXPECT_NE(Fingerprint(d, 43), fp);  // Another salt, another fingerprint.
}

}  // namespace
}  // namespace kv::replication
