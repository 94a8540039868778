#include "storage/record.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kv::storage {
namespace {

TEST(RecordLimitsTest, KeyChecksNameTheLimitAndItsFlag) {
  RecordLimits l;
  EXPECT_EQ(l.max_key_bytes, config::kDefaultMaxKeyBytes);
  l.max_key_bytes = 8;
  EXPECT_TRUE(CheckKey(l, "12345678").ok());
  absl::Status s = CheckKey(l, "123456789");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "key is 9 bytes, over the limit of 8 bytes (--max-key-bytes)");
  s = CheckKey(l, "", "mutation 2: ");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "mutation 2: key is empty");
}

TEST(RecordLimitsTest, ValueChecksNameTheLimitAndItsFlag) {
  RecordLimits l;
  EXPECT_EQ(l.max_value_bytes, config::kDefaultMaxValueBytes);
  l.max_value_bytes = 4;
  EXPECT_TRUE(CheckValue(l, "").ok());
  EXPECT_TRUE(CheckValue(l, "1234").ok());
  absl::Status s = CheckValue(l, "12345", "record of key 'k': ");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "record of key 'k': value is 5 bytes, over the limit of 4 bytes (--max-value-bytes)");
}

TEST(RecordTest, ValueRoundTrip) {
  Record r{"key", Version{123456789, 42}, false, std::string("v\0al", 4)};
  auto decoded = DecodeRecordValue(r.key, EncodeRecordValue(r));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, r);
}

TEST(RecordTest, TombstoneRoundTripDropsValue) {
  Record r{"k", Version{7, 9}, true, ""};
  auto decoded = DecodeRecordValue(r.key, EncodeRecordValue(r));
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(decoded->tombstone);
  EXPECT_EQ(decoded->version, (Version{7, 9}));
}

TEST(RecordTest, CorruptValuesAreDataLoss) {
  EXPECT_EQ(DecodeRecordValue("k", "short").status().code(),
            absl::StatusCode::kDataLoss);
  std::string bad = EncodeRecordValue(Record{"k", Version{1, 1}, false, "x"});
  bad[16] = 0x7f;  // Unknown flags.
  EXPECT_EQ(DecodeRecordValue("k", bad).status().code(),
            absl::StatusCode::kDataLoss);
  std::string tomb = EncodeRecordValue(Record{"k", Version{1, 1}, true, ""});
  tomb.push_back('x');  // Tombstone with a value.
  EXPECT_EQ(DecodeRecordValue("k", tomb).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(RecordTest, VersionOrderIsHlcThenNode) {
  EXPECT_LT((Version{1, 9}), (Version{2, 1}));
  EXPECT_LT((Version{2, 1}), (Version{2, 2}));
  EXPECT_EQ((Version{3, 4}).ToString(), "3:4");
}

TEST(RecordTest, IndexEntryRoundTripAndOrder) {
  Digest d{0x1122334455667788, 0x99aabbccddeeff00};
  const std::string k1 = EncodeIndexKey(5, "zzz");
  const std::string k2 = EncodeIndexKey(6, "aaa");
  EXPECT_LT(k1, k2);  // Ordered by hash first (big-endian).
  EXPECT_LT(IndexSeekKey(6), k2);
  auto e = DecodeIndexEntry(k1, EncodeIndexValue(Version{10, 11}, d));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->hash, 5u);
  EXPECT_EQ(e->key, "zzz");
  EXPECT_EQ(e->version, (Version{10, 11}));
  EXPECT_EQ(e->digest, d);
  EXPECT_EQ(DecodeIndexEntry("short", "x").status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(RecordTest, DigestCoversEveryField) {
  Record base{"k", Version{1, 2}, false, "v"};
  const Digest d = EntryDigest(base);
  Record r = base;
  r.key = "k2";
  EXPECT_NE(EntryDigest(r), d);
  r = base;
  r.version.hlc = 3;
  EXPECT_NE(EntryDigest(r), d);
  r = base;
  r.version.node_id = 3;
  EXPECT_NE(EntryDigest(r), d);
  r = base;
  r.value = "w";
  EXPECT_NE(EntryDigest(r), d);
  r = base;
  r.tombstone = true;
  r.value = "";
  EXPECT_NE(EntryDigest(r), d);
  EXPECT_EQ(EntryDigest(base), d);
}

TEST(RecordTest, DigestCoversTheTombstoneFlagAlone) {
  // Same key, version and value hash (a tombstone's value is empty): only the
  // flag differs, and anti-entropy must still see two different entries.
  const Record live{"k", Version{1, 2}, false, ""};
  Record tombstone = live;
  tombstone.tombstone = true;
  EXPECT_NE(EntryDigest(live), EntryDigest(tombstone));
}

TEST(RecordTest, LeafMergeIsXorAndAdd) {
  LeafValue a{Digest{1, 2}, 3};
  LeafValue b{Digest{4, 8}, -1};
  auto m = DecodeLeafValue(MergeLeafValues(EncodeLeafValue(a), EncodeLeafValue(b)));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->digest, (Digest{5, 10}));
  EXPECT_EQ(m->count, 2);
  auto z = DecodeLeafValue(MergeLeafValues("", EncodeLeafValue(a)));
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(z->digest, a.digest);
  EXPECT_EQ(z->count, 3);
}

// A corrupt count near the limit wraps instead of overflowing (undefined
// behaviour, reported by UBSan in the sanitizer build; found by record_fuzz).
TEST(RecordTest, LeafMergeOfCorruptCountsWraps) {
  LeafValue a{Digest{1, 2}, INT64_MAX};
  LeafValue b{Digest{0, 0}, 2};
  auto m = DecodeLeafValue(MergeLeafValues(EncodeLeafValue(a), EncodeLeafValue(b)));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->count, INT64_MIN + 1);
}

}  // namespace
}  // namespace kv::storage
