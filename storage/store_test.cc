#include "storage/store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "storage/engine_test_util.h"
#include "storage/fault_engine.h"

namespace kv::storage {
namespace {

using ::testing::HasSubstr;

template <typename Factory>
class StoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> Open(uint32_t leaf_depth = 8) {
    StoreOptions o;
    o.leaf_depth = leaf_depth;
    o.clock = &clock_;
    auto s = Store::Open(factory_.Open(), o);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }

  // Simulates a restart: the store is closed and its engine reopened (by
  // path, for RocksDB). The memory engine cannot be reopened once the store
  // owns it: the same store is returned, so a test that restarts checks the
  // reopen on RocksDB only.
  std::unique_ptr<Store> Restart(std::unique_ptr<Store> s, uint32_t leaf_depth = 8) {
    if constexpr (std::is_same_v<Factory, MemoryEngineFactory>) {
      return s;
    } else {
      s.reset();
      return Open(leaf_depth);
    }
  }

  Factory factory_;
  ManualClock clock_{1'700'000'000'000};
};
TYPED_TEST_SUITE(StoreTest, EngineFactories);

Mutation Put(std::string key, std::string value) {
  return Mutation{std::move(key), false, std::move(value), {}};
}

Version V(int64_t ms, uint64_t node) { return Version{HlcFromMillis(ms), node}; }

// `n` keys `prefix` + i with their hashes, in hash order (as anti-entropy
// streams records).
std::vector<std::pair<uint64_t, std::string>> KeysInHashOrder(absl::string_view prefix, int n) {
  std::vector<std::pair<uint64_t, std::string>> keys;
  for (int i = 0; i < n; ++i) {
    std::string key = absl::StrCat(prefix, i);
    keys.emplace_back(KeyHash(key), std::move(key));
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

// The streaming scan: every record under a node, tombstones included, in
// hash order, read in batches (more records than one batch), as Get reads
// them; it stops when fn says so.
TYPED_TEST(StoreTest, ForEachRecordUnderReadsTheRangeInHashOrder) {
  auto s = this->Open();
  std::vector<Mutation> puts;
  for (int i = 0; i < 1200; ++i) {
    puts.push_back(Put(absl::StrCat("key-", i), absl::StrCat("value-", i)));
  }
  ASSERT_TRUE(s->Write(puts).ok());
  ASSERT_TRUE(s->Write(std::vector<Mutation>{Mutation{"key-7", true, "", {}}}).ok());
  for (uint64_t node = 0; node < 2; ++node) {
    int64_t n = 0;
    uint64_t prev = 0;
    bool saw_tombstone = false;
    ASSERT_TRUE(s->ForEachRecordUnder(1, node, [&](Record&& r) {
                   const uint64_t h = KeyHash(r.key);
                   EXPECT_EQ(h >> 63, node);
                   EXPECT_GE(h, prev);
                   prev = h;
                   auto got = s->Get(r.key);
                   EXPECT_TRUE(got.ok() && got->has_value() && **got == r) << r.key;
                   saw_tombstone = saw_tombstone || r.tombstone;
                   ++n;
                   return true;
                 }).ok());
    EXPECT_EQ(n, s->tree().NodeCount(1, node));
    EXPECT_EQ(saw_tombstone, (KeyHash("key-7") >> 63) == node);
  }
  int64_t seen = 0;
  ASSERT_TRUE(s->ForEachRecordUnder(0, 0, [&](Record&&) { return ++seen < 300; }).ok());
  EXPECT_EQ(seen, 300);
}

TYPED_TEST(StoreTest, PutGetDeleteAndVersionsIncrease) {
  auto s = this->Open();
  auto v1 = s->Write(std::vector<Mutation>{Put("k", "one")});
  ASSERT_TRUE(v1.ok()) << v1.status();
  auto got = s->Get("k");
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->value, "one");
  EXPECT_EQ((*got)->version, (*v1)[0]);
  EXPECT_EQ((*v1)[0].node_id, s->node_id());

  this->clock_.Advance(-5000);  // The wall clock steps back.
  auto v2 = s->Write(std::vector<Mutation>{Mutation{"k", true, "", {}}});
  ASSERT_TRUE(v2.ok());
  EXPECT_GT((*v2)[0], (*v1)[0]);
  got = s->Get("k");
  ASSERT_TRUE(got->has_value());
  EXPECT_TRUE((*got)->tombstone);
  EXPECT_EQ(s->tree().KeyCount(), 1);  // Tombstones are entries.
}

TYPED_TEST(StoreTest, PreconditionsAreCheckedAtomically) {
  auto s = this->Open();
  auto v1 = *s->Write(std::vector<Mutation>{Put("a", "1")});
  const Digest root = s->tree().Root();

  Mutation stale = Put("a", "2");
  stale.precondition = {Precondition::Kind::kVersion, Version{1, 1}};
  auto r = s->Write(std::vector<Mutation>{Put("b", "new"), stale});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("'a'"));
  EXPECT_FALSE(s->Get("b")->has_value());  // Nothing of the batch written.
  EXPECT_EQ(s->tree().Root(), root);

  Mutation absent = Put("a", "3");
  absent.precondition.kind = Precondition::Kind::kAbsent;
  EXPECT_EQ(s->Write(std::vector<Mutation>{absent}).status().code(),
            absl::StatusCode::kFailedPrecondition);

  Mutation ok = Put("a", "4");
  ok.precondition = {Precondition::Kind::kVersion, v1[0]};
  ASSERT_TRUE(s->Write(std::vector<Mutation>{ok}).ok());
  EXPECT_EQ((*s->Get("a"))->value, "4");

  // A deleted key counts as absent.
  ASSERT_TRUE(s->Write(std::vector<Mutation>{Mutation{"a", true, "", {}}}).ok());
  absent.value = "6";
  ASSERT_TRUE(s->Write(std::vector<Mutation>{absent}).ok());
  EXPECT_EQ((*s->Get("a"))->value, "6");
}

TYPED_TEST(StoreTest, ExpectedVersionMatchesTheVersionOfADelete) {
  // kv.proto: a not-found Get returns the delete's version "so a client can
  // make a conditional write against it".
  auto s = this->Open();
  ASSERT_TRUE(s->Write(std::vector<Mutation>{Put("a", "1")}).ok());
  auto deleted = s->Write(std::vector<Mutation>{Mutation{"a", true, "", {}}});
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  ASSERT_EQ((*s->Get("a"))->version, (*deleted)[0]);

  Mutation stale = Put("a", "stale");
  stale.precondition = {Precondition::Kind::kVersion, Version{1, 1}};
  auto r = s->Write(std::vector<Mutation>{stale});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("(deleted)"));

  Mutation by_version = Put("a", "5");
  by_version.precondition = {Precondition::Kind::kVersion, (*deleted)[0]};
  r = s->Write(std::vector<Mutation>{by_version});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*s->Get("a"))->value, "5");
  // The version is used up: the same condition fails the second time.
  EXPECT_EQ(s->Write(std::vector<Mutation>{by_version}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // A key never written has no version to match.
  Mutation never = Put("never", "x");
  never.precondition = {Precondition::Kind::kVersion, (*deleted)[0]};
  r = s->Write(std::vector<Mutation>{never});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("(absent)"));
}

TYPED_TEST(StoreTest, BadBatchesAreRefused) {
  auto s = this->Open();
  EXPECT_EQ(s->Write(std::vector<Mutation>{Put("x", "1"), Put("x", "2")})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s->Write(std::vector<Mutation>{Put("", "1")}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s->tree().KeyCount(), 0);
}

TYPED_TEST(StoreTest, ApplyIsLastWriterWins) {
  auto s = this->Open();
  Record newer{"k", Version{HlcFromMillis(1'800'000'000'000), 2}, false, "new"};
  Record older{"k", Version{HlcFromMillis(1'600'000'000'000), 9}, false, "old"};
  EXPECT_TRUE(*s->Apply(newer));
  EXPECT_FALSE(*s->Apply(older));
  EXPECT_FALSE(*s->Apply(newer));  // Same version again: no change.
  EXPECT_EQ((*s->Get("k"))->value, "new");
  // The clock moved past the remote version: a local write now wins.
  auto v = *s->Write(std::vector<Mutation>{Put("k", "local")});
  EXPECT_GT(v[0], newer.version);
  EXPECT_EQ(s->Apply(Record{"", Version{1, 1}, false, ""}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s->Apply(Record{"z", Version{}, false, ""}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Anti-entropy's applies (cache_new_keys false) add no key to the key-state
// cache but keep a cached key exact: a local write after them replaces the
// applied version, and the tree still matches the data.
TYPED_TEST(StoreTest, ApplyWithoutCachingNewKeysKeepsTheCacheExact) {
  auto s = this->Open();
  ASSERT_TRUE(s->Write(std::vector<Mutation>{Put("cached", "local")}).ok());
  const int64_t cached = s->key_cache_entries();
  EXPECT_GE(cached, 1);
  std::vector<Record> remote;
  for (int i = 0; i < 50; ++i) {
    remote.push_back(Record{absl::StrCat("remote-", i),
                            Version{HlcFromMillis(1'800'000'000'000), 2}, false, "r"});
  }
  remote.push_back(Record{"cached", Version{HlcFromMillis(1'800'000'000'000), 2}, false,
                          "remote"});
  auto r = s->ApplyBatch(remote, {.cache_new_keys = false});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->applied, 51);
  EXPECT_EQ(s->key_cache_entries(), cached);  // No key added.
  EXPECT_EQ((*s->Get("cached"))->value, "remote");
  // The cached state was updated: this write replaces the applied record.
  auto v = s->Write(std::vector<Mutation>{Put("cached", "local again")});
  ASSERT_TRUE(v.ok());
  EXPECT_GT((*v)[0], remote.back().version);
  EXPECT_EQ(s->tree().KeyCount(), 51);
  EXPECT_TRUE(s->VerifyTree()->matched);
  // The default caches what it applies.
  Record more{"more", Version{HlcFromMillis(1'800'000'000'000), 2}, false, "m"};
  ASSERT_TRUE(s->ApplyBatch(std::span<const Record>(&more, 1)).ok());
  EXPECT_EQ(s->key_cache_entries(), cached + 1);
}

TYPED_TEST(StoreTest, EqualVersionsWithDifferentContentsConvergeByDigest) {
  // A copied data directory or a forged record: one key, one version, two
  // contents. Whatever the order of arrival, both replicas keep the record
  // with the higher digest.
  const Version v{HlcFromMillis(1'700'000'000'000), 7};
  const std::vector<Record> rivals = {Record{"k", v, false, "one"},
                                      Record{"k", v, false, "two"},
                                      Record{"k", v, true, ""}};
  const Record* winner = &rivals[0];
  for (const Record& r : rivals) {
    if (EntryDigest(r) > EntryDigest(*winner)) winner = &r;
  }
  for (int first = 0; first < 3; ++first) {
    for (int second = 0; second < 3; ++second) {
      if (first == second) continue;
      SCOPED_TRACE(absl::StrCat(first, " then ", second));
      StoreOptions o;
      o.leaf_depth = 4;
      o.clock = &this->clock_;
      auto s = std::move(*Store::Open(std::make_unique<MemoryEngine>(), o));
      const bool second_wins =
          EntryDigest(rivals[second]) > EntryDigest(rivals[first]);
      ASSERT_TRUE(*s->Apply(rivals[first]));
      auto r = s->ApplyBatch(std::span<const Record>(&rivals[second], 1));
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->ties, 1);
      EXPECT_EQ(r->applied, second_wins ? 1 : 0);
      EXPECT_EQ(**s->Get("k"), rivals[second_wins ? second : first]);
      EXPECT_TRUE(s->VerifyTree()->matched);
    }
  }
  // Through this test's engine too, and within one batch.
  auto s = this->Open();
  auto r = s->ApplyBatch(rivals);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->ties, 2);
  EXPECT_EQ(r->applied, 1);
  EXPECT_EQ(**s->Get("k"), *winner);
  // The same record again is no tie.
  EXPECT_EQ(s->ApplyBatch(std::span<const Record>(winner, 1))->ties, 0);
  EXPECT_TRUE(s->VerifyTree()->matched);
}

TYPED_TEST(StoreTest, LocalWritesAfterApplyBatchAreNewerThanWhatItApplied) {
  // A remote record versioned ahead of this node's wall clock: a local write
  // made after it, to any key, must get a higher version, now and after a
  // restart (the persisted high-water mark covers the applied version).
  auto s = this->Open();
  const Record remote{"remote", Version{HlcFromMillis(1'700'000'005'000), 9},
                      false, "r"};
  ASSERT_TRUE(s->ApplyBatch(std::vector<Record>{remote})->applied == 1);
  auto v = s->Write(std::vector<Mutation>{Put("local", "l")});
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_GT((*v)[0].hlc, remote.version.hlc);
  s = this->Restart(std::move(s));
  v = s->Write(std::vector<Mutation>{Put("other", "o")});
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_GT((*v)[0].hlc, remote.version.hlc);
}

TYPED_TEST(StoreTest, ConcurrentAppliesInAnyOrderConverge) {
  // The same 4 versions of 50 keys, applied by 4 threads in different orders
  // into two stores, must give identical contents and roots.
  std::vector<Record> records;
  for (int k = 0; k < 50; ++k) {
    for (int v = 1; v <= 4; ++v) {
      records.push_back(Record{"key" + std::to_string(k),
                               Version{HlcFromMillis(1'700'000'000'000 + v * 7 + k), uint64_t(v)},
                               v == 3, v == 3 ? "" : "value" + std::to_string(v)});
    }
  }
  auto run = [&](Store* s, uint32_t seed) {
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        std::vector<Record> mine = records;
        std::mt19937 rng(seed * 10 + t);
        std::shuffle(mine.begin(), mine.end(), rng);
        for (const Record& r : mine) ASSERT_TRUE(s->Apply(r).ok());
      });
    }
    for (auto& th : threads) th.join();
  };
  auto a = this->Open();
  run(a.get(), 1);
  MemoryEngineFactory other;
  StoreOptions o;
  o.leaf_depth = 8;
  o.clock = &this->clock_;
  auto b = std::move(*Store::Open(other.Open(), o));
  run(b.get(), 2);
  EXPECT_EQ(a->tree().Root(), b->tree().Root());
  EXPECT_EQ(a->tree().KeyCount(), 50);
  for (int k = 0; k < 50; ++k) {
    auto ra = *a->Get("key" + std::to_string(k));
    auto rb = *b->Get("key" + std::to_string(k));
    ASSERT_TRUE(ra.has_value() && rb.has_value());
    EXPECT_EQ(*ra, *rb);
    EXPECT_EQ(ra->version.node_id, 4u);  // The highest version won.
  }
  auto verify = a->VerifyTree();
  ASSERT_TRUE(verify.ok());
  EXPECT_TRUE(verify->matched);
}

TYPED_TEST(StoreTest, ConcurrentLocalWritesToOneKeyKeepTreeConsistent) {
  auto s = this->Open();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        ASSERT_TRUE(s->Write(std::vector<Mutation>{Put("hot", std::to_string(t * 1000 + i)),
                                                   Put("k" + std::to_string(t), "x")})
                        .ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(s->tree().KeyCount(), 5);
  auto verify = s->VerifyTree();
  ASSERT_TRUE(verify.ok());
  EXPECT_TRUE(verify->matched);
  EXPECT_EQ(verify->root, s->tree().Root());
}

TYPED_TEST(StoreTest, ScanSkipsTombstonesAndHonorsBounds) {
  auto s = this->Open();
  ASSERT_TRUE(s->Write(std::vector<Mutation>{Put("a", "1"), Put("b", "2"),
                                             Put("c", "3"), Put("d", "4")})
                  .ok());
  ASSERT_TRUE(s->Write(std::vector<Mutation>{Mutation{"b", true, "", {}}}).ok());
  std::string seen;
  ASSERT_TRUE(s->Scan("a", "d", [&](const Record& r) {
                  seen += r.key;
                  return true;
                }).ok());
  EXPECT_EQ(seen, "ac");
  seen.clear();
  ASSERT_TRUE(s->Scan("", "", [&](const Record& r) {
                  seen += r.key;
                  return seen.size() < 2;
                }).ok());
  EXPECT_EQ(seen, "ac");
}

TYPED_TEST(StoreTest, HashRangesAndFinerLevels) {
  auto s = this->Open(/*leaf_depth=*/2);
  std::vector<Mutation> muts;
  for (int i = 0; i < 300; ++i) muts.push_back(Put("key" + std::to_string(i), "v"));
  ASSERT_TRUE(s->Write(muts).ok());
  int64_t total = 0;
  Digest all;
  for (uint64_t i = 0; i < 4; ++i) {
    auto leaf = *s->Summarize(2, i);
    // A leaf's finer children add up to the leaf.
    RangeSummary sum;
    for (uint64_t c = 0; c < 16; ++c) {
      auto child = *s->Summarize(6, i * 16 + c);
      sum.digest ^= child.digest;
      sum.count += child.count;
    }
    EXPECT_EQ(sum.digest, leaf.digest);
    EXPECT_EQ(sum.count, leaf.count);
    int64_t n = 0;
    uint64_t prev = 0;
    ASSERT_TRUE(s->ForEachIndexEntry(2, i, [&](const IndexEntry& e) {
                   EXPECT_EQ(e.hash >> 62, i);
                   EXPECT_GE(e.hash, prev);
                   prev = e.hash;
                   ++n;
                   return true;
                 }).ok());
    EXPECT_EQ(n, leaf.count);
    total += n;
    all ^= leaf.digest;
  }
  EXPECT_EQ(total, 300);
  EXPECT_EQ(all, s->tree().Root());
}

// The leaves written for a batch in hash order (a run of records per leaf
// merged once) are the ones a restart loads and a rebuild computes.
TYPED_TEST(StoreTest, LeavesOfAnApplyInHashOrderSurviveRestart) {
  auto s = this->Open(/*leaf_depth=*/4);
  std::vector<Record> batch;
  for (const auto& [hash, key] : KeysInHashOrder("key", 300)) {
    batch.push_back(Record{key, V(1'000, 9), false, "v"});
  }
  ASSERT_TRUE(s->ApplyBatch(batch, ApplyOptions{}).ok());
  ASSERT_TRUE(s->Write(std::vector<Mutation>{Put("key3", "local")}).ok());
  const Digest root = s->tree().Root();
  EXPECT_TRUE(s->VerifyTree()->matched);
  s = this->Restart(std::move(s), /*leaf_depth=*/4);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->tree().Root(), root);
  EXPECT_EQ(s->tree().KeyCount(), 300);
  EXPECT_TRUE(s->VerifyTree()->matched);
}

TYPED_TEST(StoreTest, VerifyTreeFindsAndRepairsACorruptInMemoryLeaf) {
  auto s = this->Open();
  ASSERT_TRUE(s->Write(std::vector<Mutation>{Put("a", "1"), Put("b", "2")}).ok());
  auto clean = *s->VerifyTree();
  EXPECT_TRUE(clean.matched);
  EXPECT_EQ(clean.key_count, 2);
  const Digest good_root = s->tree().Root();
  // A bug or bit flip in memory: the stored leaves are still right.
  const_cast<MerkleTree&>(s->tree()).Apply(7, Digest{1, 2}, 1);
  ASSERT_NE(s->tree().Root(), good_root);
  auto v = *s->VerifyTree();
  EXPECT_FALSE(v.matched);
  EXPECT_EQ(v.mismatched_leaves, 1);
  EXPECT_EQ(v.root, good_root);
  EXPECT_EQ(s->tree().Root(), good_root);  // Repaired.
  EXPECT_EQ(s->tree().KeyCount(), 2);
  EXPECT_TRUE(s->VerifyTree()->matched);
}

TEST(StoreRocksDbTest, RestartKeepsNodeIdTreeAndMonotonicVersions) {
  RocksDbEngineFactory f;
  ManualClock clock(1'700'000'000'000);
  StoreOptions o;
  o.clock = &clock;
  uint64_t node_id;
  Digest root;
  Version last;
  {
    auto s = std::move(*Store::Open(f.Open(), o));
    node_id = s->node_id();
    std::vector<Mutation> muts;
    for (int i = 0; i < 1000; ++i) muts.push_back(Put("k" + std::to_string(i), "v"));
    last = (*s->Write(muts)).back();
    root = s->tree().Root();
  }
  clock.Set(1'600'000'000'000);  // Restart with the wall clock far behind.
  auto s = std::move(*Store::Open(f.Open(), o));
  EXPECT_EQ(s->node_id(), node_id);
  EXPECT_EQ(s->tree().Root(), root);  // Loaded, not rescanned.
  EXPECT_EQ(s->tree().KeyCount(), 1000);
  auto v = *s->Write(std::vector<Mutation>{Put("k1", "again")});
  EXPECT_GT(v[0], last);
  EXPECT_TRUE(s->VerifyTree()->matched);
}

TEST(StoreRocksDbTest, TombstonesAreCountedAtOpenAndKeptExactByWrites) {
  RocksDbEngineFactory f;
  StoreOptions o;
  o.count_tombstones = true;
  auto wait_known = [](Store& s) {
    for (int i = 0; i < 2000 && !s.tombstones().has_value(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return s.tombstones();
  };
  {
    auto s = std::move(*Store::Open(f.Open(), o));
    ASSERT_EQ(wait_known(*s), 0);  // Empty store.
    std::vector<Mutation> muts;
    for (int i = 0; i < 100; ++i) muts.push_back(Put("k" + std::to_string(i), "v"));
    ASSERT_TRUE(s->Write(muts).ok());
    for (int i = 0; i < 10; ++i) {  // 10 deletes...
      ASSERT_TRUE(s->Write(std::vector<Mutation>{Mutation{"k" + std::to_string(i), true, "", {}}})
                      .ok());
    }
    ASSERT_TRUE(s->Write(std::vector<Mutation>{Put("k0", "back")}).ok());  // ...one undone,
    ASSERT_TRUE(s->Write(std::vector<Mutation>{Mutation{"k1", true, "", {}}}).ok());  // one again,
    // and a delete from a peer of a key never written here.
    ASSERT_TRUE(*s->Apply(Record{"remote", Version{s->clock().Last() + 1000, 7}, true, ""}));
    EXPECT_EQ(s->tombstones(), 10);
  }
  // Reopened: counted from the data, the same number.
  auto s = std::move(*Store::Open(f.Open(), o));
  EXPECT_EQ(wait_known(*s), 10);
  ASSERT_TRUE(s->Write(std::vector<Mutation>{Mutation{"k50", true, "", {}}}).ok());
  EXPECT_EQ(s->tombstones(), 11);
}

TEST(StoreRocksDbTest, LeafDepthMismatchIsRefused) {
  RocksDbEngineFactory f;
  StoreOptions o;
  { ASSERT_TRUE(Store::Open(f.Open(), o).ok()); }
  o.leaf_depth = 12;
  auto s = Store::Open(f.Open(), o);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("leaf depth 16"));
}

// An in-memory store on `clock` that refuses records further ahead of it.
std::unique_ptr<Store> OpenWithDriftLimit(ManualClock* clock, int64_t max_clock_drift_ms) {
  StoreOptions o;
  o.leaf_depth = 4;
  o.clock = clock;
  o.max_clock_drift_ms = max_clock_drift_ms;
  return std::move(*Store::Open(std::make_unique<MemoryEngine>(), o));
}

TEST(StoreMemoryTest, RecordsFarAheadOfTheClockAreRefused) {
  ManualClock clock(1'700'000'000'000);
  auto s = OpenWithDriftLimit(&clock, /*max_clock_drift_ms=*/60'000);
  Record near{"a", Version{HlcFromMillis(1'700'000'030'000), 7}, false, "ok"};
  EXPECT_TRUE(*s->Apply(near));
  Record far{"b", Version{HlcFromMillis(1'700'000'000'000 + 3'600'000), 7}, false, "no"};
  auto r = s->Apply(far);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(r.status().message(), HasSubstr("--max-clock-drift-ms"));
  EXPECT_FALSE(s->Get("b")->has_value());
  EXPECT_LT(s->clock().Last(), far.version.hlc);  // The clock did not follow.
}

TEST(StoreMemoryTest, ApplyBatchIsLastWriterWinsWithinTheBatchToo) {
  ManualClock clock(1'700'000'000'000);
  auto s = OpenWithDriftLimit(&clock, /*max_clock_drift_ms=*/60'000);
  ASSERT_TRUE(*s->Apply(Record{"a", V(1'600'000'000'000, 1), false, "old"}));
  std::vector<Record> batch = {
      Record{"a", V(1'650'000'000'000, 2), false, "newer"},
      Record{"b", V(1'650'000'000'000, 2), false, "b2"},
      Record{"b", V(1'640'000'000'000, 3), false, "b-older"},  // Loses to b2.
      Record{"a", V(1'660'000'000'000, 2), true, ""},          // Newest a: delete.
      Record{"c", V(1'700'000'000'000 + 3'600'000, 9), false, "future"},
      Record{"a", V(1'500'000'000'000, 5), false, "ancient"},
  };
  auto r = s->ApplyBatch(batch);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->applied, 2);  // a and b.
  EXPECT_EQ(r->refused, 1);  // c, from a clock an hour ahead.
  EXPECT_EQ(r->first_refusal.code(), absl::StatusCode::kOutOfRange);
  EXPECT_TRUE((*s->Get("a"))->tombstone);
  EXPECT_EQ((*s->Get("b"))->value, "b2");
  EXPECT_FALSE(s->Get("c")->has_value());
  EXPECT_TRUE(s->VerifyTree()->matched);
  EXPECT_EQ(s->tree().KeyCount(), 2);
  // The same batch again changes nothing.
  EXPECT_EQ(s->ApplyBatch(batch)->applied, 0);
  std::vector<Record> bad = {Record{"x", V(1'650'000'000'000, 2), false, "x"},
                             Record{"", V(1'650'000'000'000, 2), false, "y"}};
  EXPECT_EQ(s->ApplyBatch(bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(s->Get("x")->has_value());  // Nothing of a bad batch.
}

// Counts the point reads a store makes of its engine, and its Merkle leaf
// merges.
class CountingEngine final : public Engine {
 public:
  CountingEngine() : base_(std::make_unique<MemoryEngine>()) {}
  absl::StatusOr<std::optional<std::string>> Get(Column column,
                                                 absl::string_view key) override {
    if (column == Column::kData) ++gets;
    return base_->Get(column, key);
  }
  absl::Status MultiGet(Column column, const std::vector<std::string>& keys,
                        std::vector<std::optional<std::string>>* values) override {
    if (column == Column::kData) {
      ++multi_gets;
      multi_get_keys += static_cast<int>(keys.size());
    }
    return base_->MultiGet(column, keys, values);
  }
  absl::Status Write(const WriteBatch& batch) override {
    for (const WriteBatch::Op& op : batch.ops()) {
      if (op.column == Column::kMerkle && op.kind == WriteBatch::OpKind::kMerge) ++leaf_merges;
    }
    return base_->Write(batch);
  }
  std::unique_ptr<Iterator> NewIterator(Column column) override {
    return base_->NewIterator(column);
  }
  int gets = 0, multi_gets = 0, multi_get_keys = 0, leaf_merges = 0;

 private:
  std::unique_ptr<Engine> base_;
};

// A store (leaf depth 4) over a CountingEngine, and that engine.
struct CountedStore {
  std::unique_ptr<Store> store;
  CountingEngine* counts;
};
CountedStore OpenCounted() {
  auto engine = std::make_unique<CountingEngine>();
  CountingEngine* counts = engine.get();
  return {std::move(*Store::Open(std::move(engine), StoreOptions{.leaf_depth = 4})), counts};
}

// ApplyBatch and Write read the stored state of the keys they do not have
// cached in one MultiGet (a full sync applies 1 000 new keys a call, a bulk
// load writes as many), and decide on each as before: last writer wins, a
// key twice in the batch against its staged record, cached keys from the
// cache.
TEST(StoreMemoryTest, UncachedStatesAreReadInOneCall) {
  auto [s, counts] = OpenCounted();
  const ApplyOptions not_cached{.cache_new_keys = false};
  // Stored but not cached (as anti-entropy applies them), and one cached.
  ASSERT_TRUE(s->ApplyBatch(std::vector<Record>{Record{"a", V(2'000, 1), false, "a1"},
                                                Record{"b", V(2'000, 1), false, "b1"}},
                            not_cached)
                  .ok());
  ASSERT_TRUE(s->Write(std::vector<Mutation>{Put("w", "w1")}).ok());
  const Version w_version = (*s->Get("w"))->version;
  std::vector<Record> batch = {
      Record{"a", V(1'000, 2), false, "a-older"},        // Loses to a1.
      Record{"b", V(3'000, 2), false, "b-newer"},        // Replaces b1.
      Record{"w", V(1'000, 2), false, "w-older"},        // Loses to w1 (cached).
      Record{"n", V(1'000, 2), false, "n1"},             // New.
      Record{"n", V(1'500, 3), false, "n2"},             // Beats the staged n1.
  };
  for (int i = 0; i < 50; ++i) {
    batch.push_back(Record{absl::StrCat("new", i), V(1'000, 2), false, "x"});
  }
  counts->gets = counts->multi_gets = counts->multi_get_keys = 0;
  auto r = s->ApplyBatch(batch, not_cached);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(counts->gets, 0);
  EXPECT_EQ(counts->multi_gets, 1);
  EXPECT_EQ(counts->multi_get_keys, 54);  // All but the cached w (n twice).
  EXPECT_EQ(r->applied, 52);              // b, n, new0..new49.
  EXPECT_EQ((*s->Get("a"))->value, "a1");
  EXPECT_EQ((*s->Get("b"))->value, "b-newer");
  EXPECT_EQ((*s->Get("w"))->version, w_version);
  EXPECT_EQ((*s->Get("n"))->value, "n2");
  EXPECT_EQ(s->tree().KeyCount(), 54);  // a, b, w, n, new0..new49.
  EXPECT_TRUE(s->VerifyTree()->matched);

  // A write reads its keys the same way: a batch of new keys in one
  // MultiGet (a (cached) key already written is not read), a lone new key
  // with a Get.
  counts->gets = counts->multi_gets = counts->multi_get_keys = 0;
  std::vector<Mutation> muts = {Put("w", "w2")};
  for (int i = 0; i < 20; ++i) muts.push_back(Put(absl::StrCat("batch", i), "y"));
  ASSERT_TRUE(s->Write(muts).ok());
  EXPECT_EQ(counts->gets, 0);
  EXPECT_EQ(counts->multi_gets, 1);
  EXPECT_EQ(counts->multi_get_keys, 20);
  ASSERT_TRUE(s->Write(std::vector<Mutation>{Put("lone", "z")}).ok());
  EXPECT_EQ(counts->gets, 1);
  EXPECT_EQ(counts->multi_gets, 1);
  EXPECT_EQ((*s->Get("w"))->value, "w2");
  EXPECT_EQ(s->tree().KeyCount(), 75);
  EXPECT_TRUE(s->VerifyTree()->matched);
}

// Streamed records arrive in hash order, so a batch's records fall into
// each leaf in runs: one merge per run, not per record, with the same leaves.
TEST(StoreMemoryTest, ARunOfRecordsInOneLeafIsMergedOnce) {
  auto [s, counts] = OpenCounted();
  ASSERT_TRUE(s->Apply(Record{"old", V(5'000, 1), false, "kept"}).ok());
  std::vector<std::pair<uint64_t, std::string>> keys = KeysInHashOrder("k", 200);
  keys.emplace_back(KeyHash("old"), "old");
  std::sort(keys.begin(), keys.end());
  std::vector<Record> batch;
  std::set<uint32_t> leaves;
  for (const auto& [hash, key] : keys) {
    // "old" loses to the stored record; k7 is replaced within the batch.
    batch.push_back(Record{key, V(key == "old" ? 1'000 : 2'000, 2), false, "x"});
    if (key == "k7") batch.push_back(Record{key, V(3'000, 3), false, "y"});
    if (key != "old") leaves.insert(s->tree().LeafOf(hash));
  }
  counts->leaf_merges = 0;
  auto r = s->ApplyBatch(batch, ApplyOptions{});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->applied, 200);  // k0..k199 (k7 twice); not "old".
  EXPECT_EQ(counts->leaf_merges, static_cast<int>(leaves.size()));
  EXPECT_LE(leaves.size(), 16u);
  EXPECT_EQ((*s->Get("k7"))->value, "y");
  EXPECT_EQ((*s->Get("old"))->value, "kept");
  EXPECT_EQ(s->tree().KeyCount(), 201);
  EXPECT_TRUE(s->VerifyTree()->matched);
}

TEST(StoreMemoryTest, FailedWriteChangesNothing) {
  auto engine = std::make_unique<MemoryEngine>();
  MemoryEngine* raw = engine.get();
  auto s = std::move(*Store::Open(std::move(engine), StoreOptions{.leaf_depth = 4}));
  ASSERT_TRUE(s->Write(std::vector<Mutation>{Put("a", "1")}).ok());
  const Digest root = s->tree().Root();
  raw->FailWrites(absl::UnavailableError("disk full"));
  EXPECT_EQ(s->Write(std::vector<Mutation>{Put("a", "2")}).status().code(),
            absl::StatusCode::kUnavailable);
  raw->FailWrites(absl::OkStatus());
  EXPECT_EQ((*s->Get("a"))->value, "1");
  EXPECT_EQ(s->tree().Root(), root);
}

TEST(StoreMemoryTest, AFailedWriteOrApplyLeavesTheKeyCacheAsStored) {
  // A rewrite reads the old version and digest from the key cache: a failed
  // write must not leave its own state there, or the next write would check
  // its precondition, and compute its Merkle delta, against a record that
  // was never stored.
  auto engine = std::make_unique<FaultEngine>(std::make_unique<MemoryEngine>());
  FaultEngine* faults = engine.get();
  auto s = std::move(*Store::Open(std::move(engine), StoreOptions{.leaf_depth = 4}));
  const Version v1 = (*s->Write(std::vector<Mutation>{Put("a", "1")}))[0];
  faults->FailWrites(absl::UnavailableError("disk full"));
  EXPECT_FALSE(s->Write(std::vector<Mutation>{Put("a", "2")}).ok());
  const Record newer{"a", Version{v1.hlc + 10, 99}, false, "remote"};
  EXPECT_FALSE(s->Apply(newer).ok());
  faults->Heal();
  Mutation cas = Put("a", "3");
  cas.precondition = Precondition{Precondition::Kind::kVersion, v1};
  auto v3 = s->Write(std::vector<Mutation>{cas});
  ASSERT_TRUE(v3.ok()) << v3.status();
  EXPECT_EQ((*s->Get("a"))->value, "3");
  const VerifyResult verify = *s->VerifyTree();
  EXPECT_TRUE(verify.matched) << verify.mismatched_leaves << " leaves differ";
  EXPECT_EQ(verify.key_count, 1);
}

TEST(StoreMemoryTest, ATinyKeyCacheThatEvictsAllTheTimeKeepsWritesExact) {
  // About two entries per stripe: most rewrites miss the cache, many hit,
  // and evictions happen all the time; versions, preconditions and the
  // tree must be what an uncached store gives.
  StoreOptions o{.leaf_depth = 6};
  o.key_cache_bytes = 1024 * 2 * (KeyStateCache::kEntryOverhead + 8);
  auto s = std::move(*Store::Open(std::make_unique<MemoryEngine>(), o));
  std::mt19937_64 rng(7);
  std::map<std::string, Version> last;
  for (int i = 0; i < 20000; ++i) {
    const std::string key = absl::StrCat("key", rng() % 3000);
    const int op = rng() % 4;
    if (op == 0) {  // A remote record, newer than what is stored.
      const Version v{(last.count(key) ? last[key].hlc : 1'000'000'000'000 << 16) + 5,
                      12345};
      ASSERT_TRUE(*s->Apply(Record{key, v, false, "remote"}));
      last[key] = v;
      continue;
    }
    Mutation m = Put(key, absl::StrCat("v", i));
    m.tombstone = op == 1;
    if (last.count(key) && rng() % 2 == 0) {
      m.precondition = Precondition{Precondition::Kind::kVersion, last[key]};
    }
    auto v = s->Write(std::vector<Mutation>{m});
    ASSERT_TRUE(v.ok()) << key << ": " << v.status();
    EXPECT_GT((*v)[0], last[key]);
    last[key] = (*v)[0];
  }
  for (const auto& [key, version] : last) {
    ASSERT_EQ((*s->Get(key))->version, version) << key;
  }
  const VerifyResult verify = *s->VerifyTree();
  EXPECT_TRUE(verify.matched) << verify.mismatched_leaves << " leaves differ";
  EXPECT_EQ(verify.key_count, static_cast<int64_t>(last.size()));
}

TEST(StoreMemoryTest, VerifyTreeRepairsStoredLeaves) {
  auto engine = std::make_unique<MemoryEngine>();
  MemoryEngine* raw = engine.get();
  auto s = std::move(*Store::Open(std::move(engine), StoreOptions{.leaf_depth = 4}));
  ASSERT_TRUE(s->Write(std::vector<Mutation>{Put("a", "1"), Put("b", "2")}).ok());
  const Digest good = s->tree().Root();
  // Bit rot in a stored leaf (and in memory, as after a restart).
  WriteBatch rot;
  rot.Merge(Column::kMerkle, EncodeLeafKey(3), EncodeLeafValue({Digest{5, 5}, 1}));
  ASSERT_TRUE(raw->Write(rot).ok());
  const_cast<MerkleTree&>(s->tree()).Apply(3, Digest{5, 5}, 1);
  auto v = *s->VerifyTree();
  EXPECT_FALSE(v.matched);
  EXPECT_EQ(v.mismatched_leaves, 1);
  EXPECT_EQ(v.root, good);
  EXPECT_EQ(s->tree().Root(), good);  // Repaired in memory...
  EXPECT_TRUE(s->VerifyTree()->matched);  // ...and on disk.
}

TEST(StoreMemoryTest, ConcurrentVerificationsRepairOnce) {
  // Two verifications that both see a bad stored leaf must not both merge
  // the repair in (the second would undo the first). The first repair write
  // waits until a second verification has taken its snapshot, or 500 ms.
  auto engine = std::make_unique<FaultEngine>(std::make_unique<MemoryEngine>());
  FaultEngine* raw = engine.get();
  auto s = std::move(*Store::Open(std::move(engine), StoreOptions{.leaf_depth = 4}));
  ASSERT_TRUE(s->Write(std::vector<Mutation>{Put("a", "1"), Put("b", "2")}).ok());
  WriteBatch rot;
  rot.Merge(Column::kMerkle, EncodeLeafKey(3), EncodeLeafValue({Digest{5, 5}, 1}));
  ASSERT_TRUE(raw->Write(rot).ok());

  absl::Mutex mu;
  int snapshots = 0;
  bool first_repair = true;
  raw->SetIteratorHook([&](Column c) {
    if (c != Column::kData) return;
    absl::MutexLock lock(&mu);
    ++snapshots;
  });
  raw->SetWriteHook([&](const WriteBatch&) {
    absl::MutexLock lock(&mu);
    if (!first_repair) return;
    first_repair = false;
    mu.AwaitWithTimeout(
        absl::Condition(+[](int* n) { return *n >= 2; }, &snapshots),
        absl::Milliseconds(500));
  });
  absl::StatusOr<VerifyResult> results[2];
  std::thread t0([&] { results[0] = s->VerifyTree(); });
  std::thread t1([&] { results[1] = s->VerifyTree(); });
  t0.join();
  t1.join();
  raw->SetIteratorHook(nullptr);
  raw->SetWriteHook(nullptr);
  ASSERT_TRUE(results[0].ok() && results[1].ok());
  // One found the bad leaf and repaired it; the other found it repaired.
  EXPECT_EQ(results[0]->matched + results[1]->matched, 1);
  auto after = s->VerifyTree();
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->matched) << after->mismatched_leaves << " leaves bad again";
}

}  // namespace
}  // namespace kv::storage

namespace kv::storage {
namespace {

TEST(StoreCommitterTest, GroupsKeepOrderAndCheckPreconditionsWithinTheGroup) {
  StoreOptions o;
  o.leaf_depth = 6;
  o.committer_thread = true;
  auto s = std::move(*Store::Open(std::make_unique<MemoryEngine>(), o));
  constexpr int kRequests = 200;
  std::vector<absl::StatusOr<std::vector<Version>>> results(kRequests);
  absl::Mutex mu;
  int done = 0;
  for (int i = 0; i < kRequests; ++i) {
    Mutation m{"k", false, std::to_string(i), {}};
    // Only the first of these can succeed, whichever group each lands in.
    m.precondition.kind = Precondition::Kind::kAbsent;
    s->WriteAsync({m}, [&, i](absl::StatusOr<std::vector<Version>> r) {
      absl::MutexLock lock(&mu);
      results[i] = std::move(r);
      ++done;
    });
  }
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(+[](int* d) { return *d == kRequests; }, &done));
  }
  ASSERT_TRUE(results[0].ok()) << results[0].status();
  for (int i = 1; i < kRequests; ++i) {
    EXPECT_EQ(results[i].status().code(), absl::StatusCode::kFailedPrecondition) << i;
  }
  EXPECT_EQ((*s->Get("k"))->value, "0");
  EXPECT_EQ(s->tree().KeyCount(), 1);
}

// A physical clock that moves `step_ms` forward on every reading, so that
// with a 1 ms HLC window every timestamp needs a new high-water mark.
class SteppingClock : public PhysicalClock {
 public:
  SteppingClock(int64_t start_ms, int64_t step_ms)
      : now_ms_(start_ms), step_ms_(step_ms) {}
  int64_t NowMillis() override { return now_ms_.fetch_add(step_ms_); }

 private:
  std::atomic<int64_t> now_ms_;
  const int64_t step_ms_;
};

TEST(StoreCommitterTest, AFailedGroupFailsEveryRequestInIt) {
  // The clock's high-water mark cannot be saved in the middle of a group:
  // no request of the group may be acknowledged, since nothing is stored.
  SteppingClock clock(1'700'000'000'000, 10);
  auto engine = std::make_unique<FaultEngine>(std::make_unique<MemoryEngine>());
  FaultEngine* faults = engine.get();
  StoreOptions o;
  o.leaf_depth = 4;
  o.committer_thread = true;
  o.clock = &clock;
  o.hlc_window_ms = 1;
  auto s = std::move(*Store::Open(std::move(engine), o));
  ASSERT_TRUE(s->Write(std::vector<Mutation>{Put("taken", "0")}).ok());

  // Hold a commit in its callback so the requests below queue up and are
  // committed as one group. The store is idle, so that first write commits
  // on its caller's thread.
  absl::Notification in_callback, release;
  std::thread holder([&] {
    s->WriteAsync({Put("first", "0")}, [&](absl::StatusOr<std::vector<Version>> r) {
      EXPECT_TRUE(r.ok()) << r.status();
      in_callback.Notify();
      release.WaitForNotification();
    });
  });
  in_callback.WaitForNotification();

  // 0: refused on the stored state; 1: saves its mark; 2: refused on
  // request 1's record, which is never stored; 3: its mark cannot be saved;
  // 4: after the failure.
  constexpr int kRequests = 5;
  const std::vector<Mutation> requests = {
      Mutation{"taken", false, "v", {Precondition::Kind::kAbsent, {}}},
      Put("k1", "v"),
      Mutation{"k1", false, "again", {Precondition::Kind::kAbsent, {}}},
      Put("k3", "v"),
      Put("k4", "v"),
  };
  std::vector<absl::StatusOr<std::vector<Version>>> results(kRequests);
  absl::Mutex mu;
  int done = 0;
  for (int i = 0; i < kRequests; ++i) {
    s->WriteAsync({requests[i]}, [&, i](absl::StatusOr<std::vector<Version>> r) {
      absl::MutexLock lock(&mu);
      results[i] = std::move(r);
      ++done;
    });
  }
  faults->FailWrites(absl::UnavailableError("disk full"), /*after=*/1,
                     Column::kMeta);
  release.Notify();
  holder.join();
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(+[](int* d) { return *d == kRequests; }, &done));
  }
  EXPECT_EQ(faults->failed_writes(), 1);
  EXPECT_EQ(results[0].status().code(), absl::StatusCode::kFailedPrecondition);
  for (int i = 1; i < kRequests; ++i) {
    EXPECT_EQ(results[i].status().code(), absl::StatusCode::kUnavailable)
        << "request " << i << ": "
        << (results[i].ok()
                ? absl::StrCat("OK with ", results[i]->size(), " versions")
                : results[i].status().ToString());
    EXPECT_FALSE(s->Get(requests[i].key)->has_value()) << i;
  }
  EXPECT_EQ(s->tree().KeyCount(), 2);  // "taken" and "first".

  // Once the disk recovers, the same writes go through.
  faults->Heal();
  EXPECT_TRUE(s->Write(std::vector<Mutation>{requests[1], requests[3],
                                             requests[4]})
                  .ok());
  EXPECT_TRUE(s->VerifyTree()->matched);
}

TEST(StoreCommitterTest, CommitStatsCountGroupsRequestsAndMutations) {
  StoreOptions o;
  o.leaf_depth = 4;
  o.committer_thread = true;
  auto s = std::move(*Store::Open(std::make_unique<MemoryEngine>(), o));
  ASSERT_TRUE(s->Write(std::vector<Mutation>{Put("a", "1"), Put("b", "1")}).ok());
  Store::CommitStats c = s->commit_stats();
  EXPECT_EQ(c.groups, 1u);
  EXPECT_EQ(c.requests, 1u);
  EXPECT_EQ(c.mutations, 2u);

  // Hold a commit in its callback so the requests below queue up and are
  // committed as one group.
  absl::Notification in_callback, release;
  std::thread holder([&] {
    s->WriteAsync({Put("first", "0")}, [&](absl::StatusOr<std::vector<Version>> r) {
      in_callback.Notify();
      release.WaitForNotification();
    });
  });
  in_callback.WaitForNotification();
  absl::Mutex mu;
  int done = 0;
  for (int n = 1; n <= 3; ++n) {
    std::vector<Mutation> m;
    for (int i = 0; i < n; ++i) m.push_back(Put(absl::StrCat("k", n, "_", i), "v"));
    s->WriteAsync(std::move(m), [&](absl::StatusOr<std::vector<Version>> r) {
      EXPECT_TRUE(r.ok()) << r.status();
      absl::MutexLock lock(&mu);
      ++done;
    });
  }
  release.Notify();
  holder.join();
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(+[](int* d) { return *d == 3; }, &done));
  }
  c = s->commit_stats();
  EXPECT_EQ(c.groups, 3u);  // The Write, "first", then the three queued.
  EXPECT_EQ(c.requests, 5u);
  EXPECT_EQ(c.mutations, 2u + 1u + 6u);
}

TEST(StoreCommitterTest, ALoneWriteCommitsOnTheCallingThreadAndAQueuedOneOnTheCommitter) {
  StoreOptions o;
  o.leaf_depth = 4;
  o.committer_thread = true;
  auto s = std::move(*Store::Open(std::make_unique<MemoryEngine>(), o));
  // Idle store: committed and answered before WriteAsync returns, here.
  std::thread::id answered_on;
  bool answered = false;
  s->WriteAsync({Put("lone", "1")}, [&](absl::StatusOr<std::vector<Version>> r) {
    EXPECT_TRUE(r.ok()) << r.status();
    answered_on = std::this_thread::get_id();
    answered = true;
  });
  ASSERT_TRUE(answered);
  EXPECT_EQ(answered_on, std::this_thread::get_id());
  EXPECT_EQ((*s->Get("lone"))->value, "1");

  // While a commit is in its callback, a write queues and is answered on the
  // committer's thread, after that callback returns.
  absl::Notification in_callback, release, queued_done;
  std::thread::id holder_id;
  std::thread holder([&] {
    holder_id = std::this_thread::get_id();
    s->WriteAsync({Put("first", "0")}, [&](absl::StatusOr<std::vector<Version>> r) {
      in_callback.Notify();
      release.WaitForNotification();
    });
  });
  in_callback.WaitForNotification();
  std::thread::id queued_on;
  s->WriteAsync({Put("queued", "2")}, [&](absl::StatusOr<std::vector<Version>> r) {
    EXPECT_TRUE(r.ok()) << r.status();
    queued_on = std::this_thread::get_id();
    queued_done.Notify();
  });
  EXPECT_FALSE(queued_done.HasBeenNotified());
  EXPECT_FALSE((*s->Get("queued")).has_value());
  release.Notify();
  holder.join();
  queued_done.WaitForNotification();
  EXPECT_NE(queued_on, std::this_thread::get_id());
  EXPECT_NE(queued_on, holder_id);
  EXPECT_EQ((*s->Get("queued"))->value, "2");
  EXPECT_EQ(s->commit_stats().groups, 3u);
}

TEST(StoreCommitterTest, ConcurrentAsyncWritersKeepTreeConsistent) {
  StoreOptions o;
  o.leaf_depth = 6;
  o.committer_thread = true;
  o.max_group_mutations = 16;  // Many groups.
  auto s = std::move(*Store::Open(std::make_unique<MemoryEngine>(), o));
  absl::Mutex mu;
  int done = 0, failed = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        std::vector<Mutation> muts{Mutation{"k" + std::to_string(i % 50), i % 9 == 0, "v", {}},
                                   Mutation{"t" + std::to_string(t), false, "x", {}}};
        s->WriteAsync(std::move(muts), [&](absl::StatusOr<std::vector<Version>> r) {
          absl::MutexLock lock(&mu);
          ++done;
          if (!r.ok()) ++failed;
        });
      }
    });
  }
  for (auto& th : threads) th.join();
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(+[](int* d) { return *d == 2000; }, &done));
  }
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(s->tree().KeyCount(), 54);
  auto v = s->VerifyTree();
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->matched);
  // A bad request is refused at once, on the caller's thread.
  bool called = false;
  s->WriteAsync({Mutation{"", false, "", {}}}, [&](absl::StatusOr<std::vector<Version>> r) {
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    called = true;
  });
  EXPECT_TRUE(called);
}

}  // namespace
}  // namespace kv::storage
