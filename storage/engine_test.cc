#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "absl/time/time.h"

#include "storage/engine.h"
#include "storage/engine_test_util.h"
#include "storage/record.h"

namespace kv::storage {
namespace {

template <typename Factory>
class EngineTest : public ::testing::Test {
 protected:
  Factory factory_;
};
TYPED_TEST_SUITE(EngineTest, EngineFactories);

std::vector<std::pair<std::string, std::string>> Dump(Engine& e, Column c) {
  std::vector<std::pair<std::string, std::string>> out;
  auto it = e.NewIterator(c);
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    out.emplace_back(std::string(it->key()), std::string(it->value()));
  }
  EXPECT_TRUE(it->status().ok());
  return out;
}

TYPED_TEST(EngineTest, GetMissingIsNullopt) {
  auto e = this->factory_.Open();
  auto v = e->Get(Column::kData, "nope");
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->has_value());
}

// The scan reads (which bypass a block cache) read what Get and NewIterator
// read.
TYPED_TEST(EngineTest, ScanReadsReadAsGetAndIterator) {
  auto e = this->factory_.Open();
  WriteBatch b;
  b.Put(Column::kData, "a", "1");
  b.Put(Column::kData, "c", "3");
  b.Put(Column::kIndex, "b", "index");
  ASSERT_TRUE(e->Write(b).ok());
  std::vector<std::optional<std::string>> values;
  ASSERT_TRUE(e->ScanGet(Column::kData, {"a", "b", "c"}, &values).ok());
  ASSERT_EQ(values.size(), 3u);
  EXPECT_EQ(values[0], std::optional<std::string>("1"));
  EXPECT_FALSE(values[1].has_value());
  EXPECT_EQ(values[2], std::optional<std::string>("3"));
  ASSERT_TRUE(e->ScanGet(Column::kData, {}, &values).ok());
  EXPECT_TRUE(values.empty());
  // MultiGet reads the same (through the cache, where there is one); a key
  // asked twice is answered twice.
  ASSERT_TRUE(e->MultiGet(Column::kData, {"c", "b", "a", "c"}, &values).ok());
  EXPECT_EQ(values, (std::vector<std::optional<std::string>>{"3", std::nullopt, "1", "3"}));
  auto it = e->NewScanIterator(Column::kData);
  std::vector<std::string> keys;
  for (it->SeekToFirst(); it->Valid(); it->Next()) keys.emplace_back(it->key());
  EXPECT_TRUE(it->status().ok());
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "c"}));
}

TYPED_TEST(EngineTest, BatchWritesAllColumnsAndColumnsAreSeparate) {
  auto e = this->factory_.Open();
  WriteBatch b;
  b.Put(Column::kData, "k", "data");
  b.Put(Column::kIndex, "k", "index");
  b.Put(Column::kMeta, "k", "meta");
  ASSERT_TRUE(e->Write(b).ok());
  EXPECT_EQ(**e->Get(Column::kData, "k"), "data");
  EXPECT_EQ(**e->Get(Column::kIndex, "k"), "index");
  EXPECT_EQ(**e->Get(Column::kMeta, "k"), "meta");
  EXPECT_FALSE(e->Get(Column::kMerkle, "k")->has_value());
  WriteBatch d;
  d.Delete(Column::kData, "k");
  ASSERT_TRUE(e->Write(d).ok());
  EXPECT_FALSE(e->Get(Column::kData, "k")->has_value());
  EXPECT_TRUE(e->Get(Column::kIndex, "k")->has_value());
}

TYPED_TEST(EngineTest, OpsInOneBatchApplyInOrder) {
  auto e = this->factory_.Open();
  WriteBatch b;
  b.Put(Column::kData, "k", "1");
  b.Delete(Column::kData, "k");
  b.Put(Column::kData, "k", "2");
  ASSERT_TRUE(e->Write(b).ok());
  EXPECT_EQ(**e->Get(Column::kData, "k"), "2");
}

TYPED_TEST(EngineTest, MerkleMergeXorsAndAdds) {
  auto e = this->factory_.Open();
  WriteBatch b;
  b.Merge(Column::kMerkle, EncodeLeafKey(3), EncodeLeafValue({Digest{1, 1}, 1}));
  b.Merge(Column::kMerkle, EncodeLeafKey(3), EncodeLeafValue({Digest{3, 0}, 1}));
  ASSERT_TRUE(e->Write(b).ok());
  WriteBatch c;
  c.Merge(Column::kMerkle, EncodeLeafKey(3), EncodeLeafValue({Digest{0, 1}, -1}));
  ASSERT_TRUE(e->Write(c).ok());
  auto leaf = DecodeLeafValue(**e->Get(Column::kMerkle, EncodeLeafKey(3)));
  ASSERT_TRUE(leaf.ok());
  EXPECT_EQ(leaf->digest, (Digest{2, 0}));
  EXPECT_EQ(leaf->count, 1);
}

TYPED_TEST(EngineTest, IteratorIsOrderedAndASnapshot) {
  auto e = this->factory_.Open();
  WriteBatch b;
  for (const char* k : {"b", "a", "d", "c"}) b.Put(Column::kData, k, k);
  ASSERT_TRUE(e->Write(b).ok());
  auto it = e->NewIterator(Column::kData);
  WriteBatch later;
  later.Put(Column::kData, "bb", "x");
  later.Delete(Column::kData, "c");
  ASSERT_TRUE(e->Write(later).ok());
  std::string seen;
  for (it->Seek("b"); it->Valid(); it->Next()) seen += std::string(it->key()) + ",";
  EXPECT_EQ(seen, "b,c,d,");  // Neither "bb" nor the delete of "c".
  auto dump = Dump(*e, Column::kData);
  ASSERT_EQ(dump.size(), 4u);
  EXPECT_EQ(dump[1].first, "b");
  EXPECT_EQ(dump[2].first, "bb");
}

TYPED_TEST(EngineTest, SurvivesRestart) {
  auto e = this->factory_.Open();
  WriteBatch b;
  b.Put(Column::kData, "k", "v");
  b.Merge(Column::kMerkle, EncodeLeafKey(1), EncodeLeafValue({Digest{9, 9}, 1}));
  ASSERT_TRUE(e->Write(b).ok());
  this->factory_.Close(std::move(e));
  e = this->factory_.Open();
  EXPECT_EQ(**e->Get(Column::kData, "k"), "v");
  auto leaf = DecodeLeafValue(**e->Get(Column::kMerkle, EncodeLeafKey(1)));
  ASSERT_TRUE(leaf.ok());
  EXPECT_EQ(leaf->digest, (Digest{9, 9}));
}

TEST(RocksDbEngineTest, SecondOpenOfTheSameDirectoryIsRefused) {
  RocksDbEngineFactory f;
  auto first = f.Open();
  auto second = OpenRocksDbEngine(RocksDbOptions{.path = f.dir().string()});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition)
      << second.status();
}

TEST(RocksDbEngineTest, StatsReportMemtableBytesThenTableFileBytes) {
  RocksDbEngineFactory f;  // Only its directory: opened with a small budget.
  auto opened = OpenRocksDbEngine(
      RocksDbOptions{.path = f.dir().string(), .memtable_budget_bytes = 256 << 10});
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<Engine> e = std::move(*opened);
  const EngineStats empty = e->Stats();
  EXPECT_EQ(empty.sst_bytes, 0);
  WriteBatch b;
  for (int i = 0; i < 100; ++i) {
    b.Put(Column::kData, "key" + std::to_string(i), std::string(1000, 'v'));
  }
  ASSERT_TRUE(e->Write(b).ok());
  const EngineStats written = e->Stats();
  EXPECT_GT(written.memtable_bytes, empty.memtable_bytes);
  EXPECT_EQ(written.sst_bytes, 0);
  EXPECT_GE(written.pending_compaction_bytes, 0);
  // Past the memtable budget RocksDB flushes (in the background) into a
  // table file.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  for (int i = 0; e->Stats().sst_bytes == 0 && absl::Now() < deadline; ++i) {
    WriteBatch more;
    more.Put(Column::kData, "more" + std::to_string(i), std::string(64 << 10, 'w'));
    ASSERT_TRUE(e->Write(more).ok());
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_GT(e->Stats().sst_bytes, 0);
}

// Level-0 files as flushes make them (a checkpoint flushes first); the
// monitor of server/storage_priority.h reads this.
TEST(RocksDbEngineTest, BacklogCountsLevelZeroFilesPerColumn) {
  RocksDbEngineFactory f;
  std::unique_ptr<Engine> e = f.Open();
  EXPECT_EQ(e->Backlog().max_l0_files, 0);
  EXPECT_EQ(e->Backlog().max_immutable_memtables, 0);
  for (int i = 0; i < 2; ++i) {
    WriteBatch b;
    b.Put(Column::kData, "key" + std::to_string(i), "v");
    ASSERT_TRUE(e->Write(b).ok());
    ASSERT_TRUE(e->Checkpoint((f.dir() / ("snap" + std::to_string(i))).string()).ok());
  }
  // Two flushes of the data column: two files there, none elsewhere more.
  EXPECT_EQ(e->Backlog().max_l0_files, 2);
}

}  // namespace
}  // namespace kv::storage
