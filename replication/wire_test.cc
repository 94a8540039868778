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

// 0 is the digest of an empty node, whatever the salt, and of nothing else,
// in 32 bits (the root) and in 16 (below it).
TEST(SaltedDigestTest, ZeroMeansEmptyOnly) {
  int low_bits_zero = 0;
  for (uint64_t salt = 0; salt < 200000; ++salt) {
    const storage::Digest d{salt * 0x9E3779B97F4A7C15ULL + 1, salt};
    EXPECT_EQ(ChildDigest(storage::Digest{}, salt), kEmptyDigest);
    const uint32_t child = ChildDigest(d, salt);
    ASSERT_NE(child, kEmptyDigest);
    ASSERT_LE(child, 0xFFFFu);
    if ((SaltedDigest(d, salt) & 0xFFFF) == 0) {
      ++low_bits_zero;
      EXPECT_EQ(child, 1u);
    }
  }
  EXPECT_GT(low_bits_zero, 0);  // The case was met (about 3 in 200 000).
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

TEST(FingerprintTest, TwoBytesRoundTrip) {
  const storage::Digest d{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  const uint32_t fp = Fingerprint(d, 42);
  EXPECT_EQ(fp, SaltedDigest(d, 42) & 0xFFFF);
  std::string wire;
  AppendFingerprint(fp, &wire);
  AppendFingerprint(0xABCD, &wire);
  ASSERT_EQ(wire.size(), 2 * kFingerprintBytes);
  EXPECT_EQ(ReadFingerprint(wire.data()), fp);
  EXPECT_EQ(ReadFingerprint(wire.data() + kFingerprintBytes), 0xABCDu);
  EXPECT_NE(Fingerprint(d, 43), fp);  // Another salt, another fingerprint.
}

}  // namespace
}  // namespace kv::replication
