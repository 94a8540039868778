#include "replication/wire.h"

#include <string>
#include <vector>

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

namespace kv::replication {
namespace {

using ::testing::HasSubstr;

// Versions written through a message's version table read back exactly,
// hlcs below the base included; each node id is in the table once.
TEST(VersionTableTest, MessageRoundTrip) {
  const std::vector<storage::Record> records = {
      {"a", storage::Version{uint64_t{1'700'000'000'000} << 16, 0xfeed}, false, "va"},
      {"b", storage::Version{(uint64_t{1'700'000'000'000} << 16) - 12345, 0xbeef}, true, ""},
      {"c", storage::Version{~uint64_t{0}, 0xfeed}, false, ""},
      {"d", storage::Version{1, 0}, false, std::string(300, 'v')},
  };
  VersionTableWriter table;
  peer::v1::ExchangeMessage m;
  for (const storage::Record& r : records) {
    *m.add_records() = ExchangeRecordToProto(r, &table);
  }
  table.WriteTo(&m);
  EXPECT_EQ(m.node_ids_size(), 3);
  const int64_t without_table = [&] {
    peer::v1::ExchangeMessage bare = m;
    bare.clear_node_ids();
    bare.clear_hlc_base();
    return static_cast<int64_t>(bare.ByteSizeLong());
  }();
  EXPECT_EQ(table.ByteSize(),
            static_cast<int64_t>(m.ByteSizeLong()) - without_table);

  peer::v1::ExchangeMessage parsed;
  ASSERT_TRUE(parsed.ParseFromString(m.SerializeAsString()));
  const VersionTableReader versions(parsed);
  for (int i = 0; i < parsed.records_size(); ++i) {
    absl::StatusOr<storage::Record> back =
        ExchangeRecordFromProto(parsed.records(i), versions, {});
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, records[i]);
  }
}

TEST(VersionTableTest, RollbackForgetsWhatAnItemAdded) {
  VersionTableWriter table;
  table.HlcDelta(100);
  EXPECT_EQ(table.NodePosition(7), 0u);
  const VersionTableWriter::Mark mark = table.mark();
  const int64_t bytes = table.ByteSize();
  EXPECT_EQ(table.NodePosition(8), 1u);
  EXPECT_GT(table.ByteSize(), bytes);
  table.Rollback(mark);
  EXPECT_EQ(table.ByteSize(), bytes);
  EXPECT_EQ(table.NodePosition(9), 1u);
  VersionTableWriter fresh;
  fresh.Rollback(fresh.mark());
  EXPECT_EQ(fresh.ByteSize(), 0);
}

TEST(VersionTableTest, RejectsPositionsOutOfRangeAndZeroHlcs) {
  peer::v1::ExchangeMessage m;
  m.set_hlc_base(10);
  m.add_node_ids(5);
  const VersionTableReader versions(m);
  absl::StatusOr<storage::Version> v = versions.Read(-3, 0, "x");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, (storage::Version{7, 5}));
  v = versions.Read(0, 1, "Diff entry");
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(v.status().message()),
              HasSubstr("Diff entry: node position 1 is out of range of the "
                        "message's 1 node_ids"));
  v = versions.Read(-10, 0, "x");
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("zero version"));

  peer::v1::ExchangeRecord r;
  r.set_key("k");
  r.set_hlc(1);
  r.set_node(2);
  absl::StatusOr<storage::Record> got = ExchangeRecordFromProto(r, versions, {});
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("record of key 'k' has no version: node position 2"));
  r.set_node(0);
  r.set_tombstone(true);
  r.set_value("v");
  got = ExchangeRecordFromProto(r, versions, {});
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("carries a value"));
  // Over the limits but well formed: OverLimits says so; malformed: not.
  r.set_tombstone(false);
  r.set_value(std::string(20, 'v'));
  EXPECT_TRUE(OverLimits(r, versions, RecordLimits{8, 16}));
  r.set_node(1);
  EXPECT_FALSE(OverLimits(r, versions, RecordLimits{8, 16}));
}

// A Diff entry's key hash: the bits below its node, the node's index above.
TEST(KeyHashTest, BitsBelowTheNodeRoundTrip) {
  const uint64_t hash = 0xA5C3'0123'4567'89ABULL;
  for (uint32_t depth : {0u, 1u, 7u, 8u, 16u, 33u, 63u, 64u}) {
    SCOPED_TRACE(depth);
    const uint64_t index = depth == 0 ? 0 : hash >> (64 - depth);
    std::string wire;
    AppendKeyHash(hash, depth, &wire);
    ASSERT_EQ(wire.size(), KeyHashBytes(depth));
    absl::StatusOr<uint64_t> back = ReadKeyHash(wire.data(), depth, index);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, hash);
  }
  EXPECT_EQ(KeyHashBytes(16), 6u);
  // A bit above the 64 - depth sent puts the hash outside the node.
  std::string wire(KeyHashBytes(10), '\0');
  wire.back() = 0x40;  // Bit 54 of 56: above the 54 bits below depth 10.
  absl::StatusOr<uint64_t> bad = ReadKeyHash(wire.data(), 10, 3);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("not under the node"));
  wire.back() = 0x20;  // Bit 53: within them.
  ASSERT_TRUE(ReadKeyHash(wire.data(), 10, 3).ok());
  EXPECT_EQ(*ReadKeyHash(wire.data(), 10, 3), (uint64_t{3} << 54) | (uint64_t{1} << 53));
}

// Diff entries: key hash below the node, zigzag hlc delta, node position.
TEST(KeyHashTest, DiffEntriesRoundTrip) {
  const std::vector<WireDiffEntry> entries = {
      {0x1234'5678'9ABC'DEF0ULL, 0, 0},
      {0x1234'FFFF'FFFF'FFFFULL, -1, 3},
      {0x1234'0000'0000'0001ULL, INT64_MIN, UINT32_MAX},
      {0x1234'5555'5555'5555ULL, INT64_MAX, 127},
  };
  std::string wire;
  for (const WireDiffEntry& e : entries) AppendDiffEntry(e, 16, &wire);
  // 6 + 1 + 1 bytes for the first: about 12 for a typical entry.
  absl::StatusOr<std::vector<WireDiffEntry>> back =
      ParseDiffEntries(wire, 16, 0x1234, 10);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    EXPECT_EQ((*back)[i].key_hash, entries[i].key_hash) << i;
    EXPECT_EQ((*back)[i].hlc_delta, entries[i].hlc_delta) << i;
    EXPECT_EQ((*back)[i].node, entries[i].node) << i;
  }
  std::string one;
  AppendDiffEntry(entries[0], 16, &one);
  EXPECT_EQ(one.size(), 8u);
  EXPECT_THAT(std::string(ParseDiffEntries(wire, 16, 0x1234, 3).status().message()),
              HasSubstr("more than 3 entries"));
  // The node's index gives the top bits (at depth 16 the 48 bits below fill
  // 6 bytes: no hash can reach out of its node).
  EXPECT_EQ(ParseDiffEntries(wire, 16, 0x1235, 10)->at(0).key_hash,
            0x1235'5678'9ABC'DEF0ULL);
  std::string at_depth_10;
  AppendDiffEntry(entries[0], 10, &at_depth_10);
  at_depth_10[6] = '\x40';  // Bit 54: above the 54 bits below depth 10.
  EXPECT_THAT(std::string(ParseDiffEntries(at_depth_10, 10, 0, 10).status().message()),
              HasSubstr("entry 0: key hash bits"));
  // A node position over 32 bits.
  std::string big = std::string(7, '\0') + "\x80\x80\x80\x80\x10";
  EXPECT_THAT(std::string(ParseDiffEntries(big, 16, 0, 10).status().message()),
              HasSubstr("node position 4294967296 is over 32 bits"));
}

}  // namespace
}  // namespace kv::replication
