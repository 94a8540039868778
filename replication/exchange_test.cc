#include "replication/exchange.h"

#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/base/internal/endian.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "replication/session.h"
#include "storage/memory_engine.h"
#include "storage/status_macros.h"

namespace kv::replication {
namespace {

using ::kv::peer::v1::ExchangeMessage;
using ::kv::storage::Record;
using ::kv::storage::Store;
using ::testing::HasSubstr;

// The exchange's reads of a store (StoreStorage), which fail on demand.
class FailingStorage final : public ExchangeStorage {
 public:
  explicit FailingStorage(Store* store) : reads_(store) {}
  uint64_t node_id() const override { return reads_.node_id(); }
  uint32_t leaf_depth() const override { return reads_.leaf_depth(); }
  storage::Digest NodeDigest(uint32_t depth, uint64_t index) const override {
    return reads_.NodeDigest(depth, index);
  }
  absl::Status ForEachIndexEntry(
      uint32_t depth, uint64_t index,
      absl::FunctionRef<bool(const storage::IndexEntry&)> fn) override {
    if (!fail.ok()) return fail;
    return reads_.ForEachIndexEntry(depth, index, fn);
  }
  absl::StatusOr<storage::RangeSummary> Summarize(uint32_t depth,
                                                  uint64_t index) override {
    if (!fail.ok()) return fail;
    return reads_.Summarize(depth, index);
  }
  absl::StatusOr<std::optional<Record>> Get(absl::string_view key) override {
    if (!fail.ok()) return fail;
    return reads_.Get(key);
  }

  absl::Status fail;  // While not OK, what the store reads return.

 private:
  StoreStorage reads_;
};

struct Node {
  Node(uint64_t node_id, uint32_t leaf_depth, int64_t max_clock_drift_ms = 0)
      : clock(1'700'000'000'000) {
    storage::StoreOptions o;
    o.max_clock_drift_ms = max_clock_drift_ms;
    o.leaf_depth = leaf_depth;
    o.clock = &clock;
    o.node_id = node_id;
    auto s = Store::Open(std::make_unique<storage::MemoryEngine>(), o);
    EXPECT_TRUE(s.ok()) << s.status();
    store = std::move(s).value();
  }
  void Put(const std::string& key, const std::string& value) {
    clock.Advance(1);
    storage::Mutation m{key, false, value, {}};
    ASSERT_TRUE(store->Write({&m, 1}).ok());
  }
  void Delete(const std::string& key) {
    clock.Advance(1);
    storage::Mutation m{key, true, "", {}};
    ASSERT_TRUE(store->Write({&m, 1}).ok());
  }
  // Every record, tombstones included, by key.
  std::map<std::string, Record> Contents() {
    std::map<std::string, Record> out;
    EXPECT_TRUE(store
                    ->ForEachIndexEntry(0, 0,
                                        [&](const storage::IndexEntry& e) {
                                          auto r = store->Get(e.key);
                                          EXPECT_TRUE(r.ok() && r->has_value());
                                          out[e.key] = **r;
                                          return true;
                                        })
                    .ok());
    return out;
  }

  storage::ManualClock clock;
  std::unique_ptr<Store> store;
};

// Copies every record of `from` into `to` (same versions).
void CopyAll(Node& from, Node& to) {
  for (auto& [k, r] : from.Contents()) ASSERT_TRUE(to.store->Apply(r).ok());
}

struct Result {
  ExchangeStats initiator;
  ExchangeStats responder;
  int64_t messages = 0;
  int64_t bytes = 0;
  int64_t records = 0;  // Records streamed in both directions.
  int64_t refused = 0;  // Refused for their clock, both sides.
};

// Queues what a driver writes, for the other side to read.
class QueueStream final : public ExchangeStream {
 public:
  absl::Status Write(const ExchangeMessage& msg) override {
    queue.push_back(msg);
    return absl::OkStatus();
  }
  std::deque<ExchangeMessage> queue;
};

// Drives one exchange between a (initiator) and b to its end with the
// production driver (replication/session.h), checking that every turn ends
// with exactly one end_of_turn message.
// `responder_options`, when given, are b's (else both use `options`).
Result RunExchange(Node& a, Node& b, const ExchangeOptions& options,
                   uint64_t salt = 42,
                   std::optional<ExchangeOptions> responder_options = {},
                   PeerRefusals* initiator_refusals = nullptr,
                   PeerRefusals* responder_refusals = nullptr) {
  Result res;
  QueueStream to[2];  // to[s]: messages for side s to read.
  auto ia = ExchangeDriver::Initiate(a.store.get(), options, salt, &to[1]);
  auto rb = ExchangeDriver::Respond(b.store.get(),
                                    responder_options.value_or(options),
                                    &to[0], nullptr);
  EXPECT_TRUE(ia.ok() && rb.ok());
  if (!ia.ok() || !rb.ok()) return res;
  ExchangeDriver* side[2] = {ia->get(), rb->get()};
  side[0]->set_refusals(initiator_refusals);
  side[1]->set_refusals(responder_refusals);
  // Of what one step wrote, only the last message may end the turn; a step
  // that ended the peer's turn wrote its whole answer, so its last message
  // does. (A step within the peer's turn may write records streamed for
  // empty ranges early, as messages of our next turn that do not end it.)
  auto check_turn = [&](const std::deque<ExchangeMessage>& q, size_t from,
                        bool answered_turn = true) {
    for (size_t i = from; i < q.size(); ++i) {
      if (i + 1 < q.size()) {
        EXPECT_FALSE(q[i].end_of_turn()) << i;
      } else if (answered_turn) {
        EXPECT_TRUE(q[i].end_of_turn()) << i;
      }
    }
  };
  EXPECT_TRUE(side[0]->Start().ok());
  check_turn(to[1].queue, 0);
  for (int guard = 0; guard < 100000; ++guard) {
    int s = !to[1].queue.empty() ? 1 : !to[0].queue.empty() ? 0 : -1;
    if (s < 0) break;
    ExchangeMessage m = std::move(to[s].queue.front());
    to[s].queue.pop_front();
    const size_t before = to[1 - s].queue.size();
    absl::Status st = side[s]->OnMessage(m);
    EXPECT_TRUE(st.ok()) << st;
    if (!st.ok()) return res;
    check_turn(to[1 - s].queue, before, m.end_of_turn());
  }
  EXPECT_TRUE(side[0]->done());
  EXPECT_TRUE(side[1]->done());
  res.initiator = side[0]->stats();
  res.responder = side[1]->stats();
  res.messages = res.initiator.messages_sent + res.responder.messages_sent;
  res.bytes = res.initiator.bytes_sent + res.responder.bytes_sent;
  res.records = res.initiator.records_sent + res.responder.records_sent;
  res.refused = side[0]->records_refused() + side[1]->records_refused();
  EXPECT_EQ(res.initiator.records_sent, res.responder.records_received +
                                           res.responder.records_over_limits);
  EXPECT_EQ(res.responder.records_sent, res.initiator.records_received +
                                           res.initiator.records_over_limits);
  EXPECT_EQ(res.initiator.messages_sent, res.responder.messages_received);
  EXPECT_EQ(res.responder.messages_sent, res.initiator.messages_received);
  return res;
}

void ExpectConverged(Node& a, Node& b) {
  EXPECT_EQ(a.store->tree().Root().Hex(), b.store->tree().Root().Hex());
  std::map<std::string, Record> ca = a.Contents(), cb = b.Contents();
  EXPECT_EQ(ca.size(), cb.size());
  int differing = 0;
  for (auto& [k, r] : ca) {
    auto it = cb.find(k);
    if (it == cb.end() || !(it->second == r)) {
      if (++differing <= 3) ADD_FAILURE() << "key '" << k << "' differs";
    }
  }
  EXPECT_EQ(differing, 0);
}

std::string Key(int i) { return absl::StrCat("key-", i); }

// Both nodes hold keys [0, n) with identical records.
void Shared(Node& a, Node& b, int n) {
  for (int i = 0; i < n; ++i) a.Put(Key(i), absl::StrCat("v", i));
  CopyAll(a, b);
}

TEST(ExchangeTest, EqualDataEndsAtRootsWithTwoMessages) {
  Node a(1, 16), b(2, 16);
  Shared(a, b, 1000);
  Result r = RunExchange(a, b, {});
  EXPECT_TRUE(r.responder.equal_roots);
  EXPECT_TRUE(r.initiator.equal_roots);
  EXPECT_EQ(r.messages, 2);
  EXPECT_EQ(r.records, 0);
  std::printf("[ measured ] d=0: %lld messages, %lld bytes\n",
              static_cast<long long>(r.messages),
              static_cast<long long>(r.bytes));
  EXPECT_LT(r.bytes, 64);
}

TEST(ExchangeTest, BothEmpty) {
  Node a(1, 4), b(2, 4);
  Result r = RunExchange(a, b, {});
  EXPECT_TRUE(r.responder.equal_roots);
  EXPECT_EQ(r.messages, 2);
}

TEST(ExchangeTest, OneKeyOnlyOnInitiator) {
  Node a(1, 16), b(2, 16);
  Shared(a, b, 1000);
  a.Put("extra", "x");
  Result r = RunExchange(a, b, {});
  EXPECT_FALSE(r.responder.equal_roots);
  EXPECT_FALSE(r.initiator.equal_roots);
  EXPECT_EQ(r.records, 1);
  EXPECT_EQ(r.initiator.records_sent, 1);
  // Its leaf is compared, or streamed when the responder holds nothing there.
  EXPECT_EQ(r.initiator.differing_leaves + r.responder.differing_leaves +
                r.initiator.ranges_streamed,
            1);
  std::printf("[ measured ] d=1 (16-bit leaves, 1000 keys): %lld messages, "
              "%lld bytes\n",
              static_cast<long long>(r.messages),
              static_cast<long long>(r.bytes));
  ExpectConverged(a, b);
  EXPECT_TRUE(RunExchange(a, b, {}).responder.equal_roots);
}

TEST(ExchangeTest, OneKeyOnlyOnResponder) {
  Node a(1, 16), b(2, 16);
  Shared(a, b, 1000);
  b.Put("extra", "x");
  Result r = RunExchange(a, b, {});
  EXPECT_EQ(r.records, 1);
  EXPECT_EQ(r.responder.records_sent, 1);
  ExpectConverged(a, b);
}

TEST(ExchangeTest, OneKeyNewerOnEitherSide) {
  for (int newer_on = 0; newer_on < 2; ++newer_on) {
    Node a(1, 8), b(2, 8);
    Shared(a, b, 300);
    (newer_on == 0 ? a : b).Put(Key(17), "newer");
    Result r = RunExchange(a, b, {});
    EXPECT_EQ(r.records, 1);
    EXPECT_EQ((newer_on == 0 ? r.initiator : r.responder).records_sent, 1);
    ExpectConverged(a, b);
    auto got = a.store->Get(Key(17));
    ASSERT_TRUE(got.ok() && got->has_value());
    EXPECT_EQ((*got)->value, "newer");
  }
}

TEST(ExchangeTest, EqualVersionsWithDifferentContentsConvergeInOneExchange) {
  // One key, one version, different contents on each side (a copied data
  // directory, a forged record), on either side of the comparison.
  for (bool tombstone : {false, true}) {
    SCOPED_TRACE(tombstone);
    Node a(1, 8), b(2, 8);
    Shared(a, b, 300);
    const storage::Version v{storage::HlcFromMillis(1'700'000'000'000), 7};
    ASSERT_TRUE(*a.store->Apply(Record{"twin", v, false, "a's"}));
    ASSERT_TRUE(*b.store->Apply(
        Record{"twin", v, tombstone, tombstone ? "" : "b's"}));
    ASSERT_NE(a.store->tree().Root(), b.store->tree().Root());
    RunExchange(a, b, {});
    ExpectConverged(a, b);
    EXPECT_TRUE(RunExchange(a, b, {}).responder.equal_roots);
  }
}

TEST(ExchangeTest, OneFingerprintMatchesOneEntryOnly) {
  // Two keys whose fingerprints collide under the exchange's salt: the
  // responder holds the first, the initiator both. The responder's one
  // fingerprint must not hide the initiator's second key.
  constexpr uint64_t kSalt = 42;
  const storage::Version v{storage::HlcFromMillis(1'700'000'000'000), 7};
  absl::flat_hash_map<uint32_t, Record> seen;
  Record shared, hidden;
  for (int i = 0;; ++i) {
    ASSERT_LT(i, 1 << 20) << "no 24-bit collision found";
    Record r{absl::StrCat("collide-", i), v, false, "v"};
    const uint32_t fp = Fingerprint(storage::EntryDigest(r), kSalt);
    auto [it, inserted] = seen.emplace(fp, r);
    if (inserted) continue;
    // The one the initiator meets first (hash order) is the shared one.
    const bool first_is_lower =
        storage::KeyHash(it->second.key) < storage::KeyHash(r.key);
    shared = first_is_lower ? it->second : r;
    hidden = first_is_lower ? r : it->second;
    break;
  }
  ASSERT_EQ(Fingerprint(storage::EntryDigest(shared), kSalt),
            Fingerprint(storage::EntryDigest(hidden), kSalt));
  // Leaf depth 0: the responder answers Hello with the root's fingerprints.
  Node a(1, 0), b(2, 0);
  ASSERT_TRUE(*a.store->Apply(shared));
  ASSERT_TRUE(*a.store->Apply(hidden));
  ASSERT_TRUE(*b.store->Apply(shared));
  Result r = RunExchange(a, b, {}, kSalt);
  EXPECT_EQ(r.responder.fingerprints_sent, 1);
  ExpectConverged(a, b);
  auto got = b.store->Get(hidden.key);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->has_value()) << "the colliding key was not sent";
}

TEST(ExchangeTest, DifferingKeysHalfOnEachSideStreamExactlyD) {
  for (int d : {2, 10, 100, 1000}) {
    SCOPED_TRACE(d);
    Node a(1, 10), b(2, 10);
    Shared(a, b, 2000);
    for (int i = 0; i < d; ++i) {
      Node& n = i % 2 == 0 ? a : b;
      if (i % 3 == 0) {
        n.Put(absl::StrCat("new-", i), "v");  // Only on one side.
      } else {
        n.Put(Key(i * 7 % 2000), absl::StrCat("upd", i));  // Newer on one side.
      }
    }
    Result r = RunExchange(a, b, {});
    EXPECT_EQ(r.records, d);
    EXPECT_EQ(r.initiator.records_sent, d / 2 + d % 2);
    std::printf("[ measured ] d=%d (10-bit leaves, 2000 keys): %lld messages, "
                "%lld bytes, %lld turns\n",
                d, static_cast<long long>(r.messages),
                static_cast<long long>(r.bytes),
                static_cast<long long>(r.initiator.turns_sent +
                                       r.responder.turns_sent));
    ExpectConverged(a, b);
  }
}

TEST(ExchangeTest, OneSideEmpty) {
  for (int empty_side = 0; empty_side < 2; ++empty_side) {
    Node a(1, 6), b(2, 6);
    Node& full = empty_side == 0 ? b : a;
    for (int i = 0; i < 700; ++i) full.Put(Key(i), "v");
    Result r = RunExchange(a, b, {});
    EXPECT_EQ(r.records, 700);
    ExpectConverged(a, b);
  }
}

TEST(ExchangeTest, FinerLevelsBelowCrowdedLeaves) {
  // 4 leaves of ~200 keys each, fingerprints only up to 8 entries: the
  // exchange must split leaves on the hash index to find the keys.
  ExchangeOptions o;
  o.max_fingerprints = 8;
  for (int d : {1, 5, 40}) {
    SCOPED_TRACE(d);
    Node a(1, 2), b(2, 2);
    Shared(a, b, 800);
    for (int i = 0; i < d; ++i) {
      (i % 2 == 0 ? a : b).Put(Key(i * 13 % 800), absl::StrCat("upd", i));
    }
    Result r = RunExchange(a, b, o);
    EXPECT_EQ(r.records, d);
    EXPECT_GT(r.initiator.fingerprints_sent + r.responder.fingerprints_sent, 0);
    std::printf("[ measured ] finer levels, d=%d (2-bit leaves, 800 keys): "
                "%lld messages, %lld bytes\n",
                d, static_cast<long long>(r.messages),
                static_cast<long long>(r.bytes));
    ExpectConverged(a, b);
  }
}

TEST(ExchangeTest, LeafDepthZero) {
  Node a(1, 0), b(2, 0);
  Shared(a, b, 50);
  a.Put("x", "1");
  b.Put("y", "2");
  Result r = RunExchange(a, b, {});
  EXPECT_EQ(r.records, 2);
  ExpectConverged(a, b);
}

TEST(ExchangeTest, TombstonesReplicate) {
  Node a(1, 8), b(2, 8);
  Shared(a, b, 100);
  a.Delete(Key(5));
  b.Delete(Key(6));
  a.Delete("never-written");
  Result r = RunExchange(a, b, {});
  EXPECT_EQ(r.records, 3);
  ExpectConverged(a, b);
  for (const char* k : {"key-5", "key-6", "never-written"}) {
    auto got = b.store->Get(k);
    ASSERT_TRUE(got.ok() && got->has_value()) << k;
    EXPECT_TRUE((*got)->tombstone) << k;
  }
  // A write after the delete wins over the tombstone.
  b.clock.Advance(10);
  b.Put(Key(5), "back");
  RunExchange(b, a, {});
  ExpectConverged(a, b);
  auto got = a.store->Get(Key(5));
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_FALSE((*got)->tombstone);
}

TEST(ExchangeTest, TurnsAreSplitIntoMessages) {
  ExchangeOptions o;
  o.max_records_per_message = 7;
  o.max_message_bytes = 256;
  Node a(1, 8), b(2, 8);
  Shared(a, b, 100);
  for (int i = 0; i < 60; ++i) a.Put(absl::StrCat("a-", i), std::string(50, 'a'));
  for (int i = 0; i < 60; ++i) b.Put(absl::StrCat("b-", i), "b");
  Result r = RunExchange(a, b, o);  // Checks end_of_turn placement.
  EXPECT_EQ(r.records, 120);
  EXPECT_GT(r.messages, 120 / 7);
  ExpectConverged(a, b);
}

// Runs exchanges until `first` and `second` hold equal roots, `first`
// starting the odd ones and `second` the even ones (salt: the count), and
// hands each result to `each`. Returns how many ran; fails the test (and
// stops) at `max`.
int AlternateUntilEqual(Node& first, Node& second, const ExchangeOptions& o,
                        int max, const std::function<void(const Result&)>& each) {
  int exchanges = 0;
  while (first.store->tree().Root() != second.store->tree().Root()) {
    if (++exchanges > max) {
      ADD_FAILURE() << "no equal roots after " << max << " exchanges";
      break;
    }
    each(exchanges % 2 ? RunExchange(first, second, o, exchanges)
                       : RunExchange(second, first, o, exchanges));
  }
  return exchanges;
}

TEST(ExchangeTest, BudgetLeavesWorkForLaterExchanges) {
  ExchangeOptions o;
  o.max_differing_leaves = 3;
  Node a(1, 6), b(2, 6);
  // Every leaf holds keys on both sides, so none is streamed as empty.
  Shared(a, b, 640);
  for (int i = 0; i < 500; ++i) a.Put(absl::StrCat("only-a-", i), "v");
  int64_t total = 0;
  const int exchanges = AlternateUntilEqual(a, b, o, 100, [&](const Result& r) {
    EXPECT_LT(r.records, 500);
    total += r.records;
  });
  EXPECT_GT(exchanges, 2);
  EXPECT_EQ(total, 500);
  ExpectConverged(a, b);
}

TEST(ExchangeTest, RecordByteBudgetLeavesWorkForLaterExchanges) {
  ExchangeOptions o;
  o.max_record_bytes_per_exchange = 1000;
  Node a(1, 4), b(2, 4);
  for (int i = 0; i < 50; ++i) a.Put(Key(i), std::string(100, 'v'));
  Result r = RunExchange(a, b, o);
  EXPECT_GT(r.initiator.records_skipped, 0);
  EXPECT_LE(r.records, 10);
  for (int i = 0; i < 20 && a.store->tree().Root() != b.store->tree().Root(); ++i) {
    RunExchange(a, b, o, i);
  }
  ExpectConverged(a, b);
}

TEST(ExchangeTest, RandomStoresConvergeStreamingExactlyTheDifference) {
  std::mt19937_64 rng(7);
  for (int iter = 0; iter < 30; ++iter) {
    SCOPED_TRACE(iter);
    const uint32_t depth = rng() % 9;
    Node a(1, depth), b(2, depth);
    ExchangeOptions o;
    o.fanout_bits = 1 + rng() % 8;
    o.finer_bits = 1 + rng() % 8;
    o.max_fingerprints = rng() % 20;
    o.max_records_per_message = 1 + rng() % 50;
    o.max_message_bytes = 64 + rng() % 4096;
    const int keys = 1 + rng() % 400;
    for (int i = 0; i < keys; ++i) {
      const int who = rng() % 4;  // a, b, both (same), both (different)
      const std::string k = Key(i);
      if (who == 0 || who == 2 || who == 3) a.Put(k, "a");
      if (who == 1 || who == 3) b.Put(k, "b");
      if (who == 2) {
        ASSERT_TRUE(b.store->Apply(*a.store->Get(k).value()).ok());
      }
      if (rng() % 10 == 0) (rng() % 2 ? a : b).Delete(k);
    }
    std::map<std::string, Record> ca = a.Contents(), cb = b.Contents();
    int64_t d = 0;
    for (auto& [k, r] : ca) d += !cb.contains(k) || !(cb[k] == r);
    for (auto& [k, r] : cb) d += !ca.contains(k);
    Result r = RunExchange(a, b, o, rng());
    EXPECT_EQ(r.records, d);
    ExpectConverged(a, b);
  }
}

// A rolling change of --max-key-bytes/--max-value-bytes: a records over the
// receiver's limits is skipped and counted; every other key converges, in
// either role, exchange after exchange.
TEST(ExchangeTest, RecordsOverTheReceiversLimitsAreSkipped) {
  ExchangeOptions large;
  ExchangeOptions small;
  small.max_key_bytes = 40;
  small.max_value_bytes = 50;
  for (bool small_initiates : {false, true}) {
    SCOPED_TRACE(small_initiates);
    Node a(1, 4), b(2, 4);  // a: large limits, b: small ones.
    for (int i = 0; i < 200; ++i) a.Put(Key(i), absl::StrCat("v", i));
    a.Put("big-value", std::string(51, 'v'));
    a.Put(std::string(41, 'k'), "long key");
    for (int round = 0; round < 2; ++round) {
      Result r = small_initiates ? RunExchange(b, a, small, 42 + round, large)
                                 : RunExchange(a, b, large, 42 + round, small);
      const ExchangeStats& at_b = small_initiates ? r.initiator : r.responder;
      EXPECT_LE(at_b.records_over_limits, 2);
    }
    std::map<std::string, Record> ca = a.Contents(), cb = b.Contents();
    EXPECT_EQ(cb.size(), 200u);
    for (int i = 0; i < 200; ++i) {
      ASSERT_TRUE(cb.contains(Key(i))) << Key(i);
      EXPECT_TRUE(cb[Key(i)] == ca[Key(i)]) << Key(i);
    }
    EXPECT_FALSE(cb.contains("big-value"));
  }
}

// A node whose clock jumped forward: what the peer refused for its clock is
// not asked for nor re-sent in later exchanges, in either role, until the
// peer's clock has caught up; then it converges.
TEST(ExchangeTest, RefusedRecordsAreNotResentUntilTheClockCatchesUp) {
  constexpr int64_t kDrift = 60'000;
  Node a(1, 4), b(2, 4, kDrift);
  Shared(a, b, 20);
  a.clock.Advance(3'600'000);  // An hour ahead.
  for (int i = 0; i < 10; ++i) a.Put(Key(100 + i), "ahead");
  PeerRefusals refused_from_a;  // b's memory of a.
  Result r = RunExchange(a, b, {}, 1, {}, nullptr, &refused_from_a);
  EXPECT_EQ(r.refused, 10);
  EXPECT_EQ(refused_from_a.size(), 10u);
  // Without the memory every exchange re-sends them (the defect).
  r = RunExchange(a, b, {}, 2);
  EXPECT_EQ(r.initiator.records_sent, 10);
  EXPECT_EQ(r.refused, 10);
  // With it: nothing is streamed, whoever starts.
  for (uint64_t salt = 3; salt < 9; ++salt) {
    SCOPED_TRACE(salt);
    r = salt % 2 ? RunExchange(a, b, {}, salt, {}, nullptr, &refused_from_a)
                 : RunExchange(b, a, {}, salt, {}, &refused_from_a, nullptr);
    EXPECT_EQ(r.records, 0);
    EXPECT_EQ(r.refused, 0);
    EXPECT_EQ((salt % 2 ? r.responder : r.initiator).refusals_remembered, 10);
  }
  // Not yet caught up: still remembered.
  refused_from_a.Expire(b.clock.NowMillis(), kDrift);
  EXPECT_EQ(refused_from_a.size(), 10u);
  // b's clock catches up: forgotten, asked for and taken.
  b.clock.Advance(3'600'000);
  refused_from_a.Expire(b.clock.NowMillis(), kDrift);
  EXPECT_EQ(refused_from_a.size(), 0u);
  r = RunExchange(b, a, {}, 9, {}, &refused_from_a, nullptr);
  EXPECT_EQ(r.refused, 0);
  ExpectConverged(a, b);
}

TEST(ExchangeTest, PeerRefusalsIsBounded) {
  PeerRefusals refusals(3);
  for (int i = 0; i < 5; ++i) {
    refusals.Add(Record{Key(i), {uint64_t{100} << 16, 1}, false, "v"});
  }
  EXPECT_EQ(refusals.size(), 3u);
  EXPECT_TRUE(refusals.Contains(Key(0), {uint64_t{100} << 16, 1}));
  EXPECT_FALSE(refusals.Contains(Key(0), {uint64_t{101} << 16, 1}));
  EXPECT_FALSE(refusals.Contains(Key(4), {uint64_t{100} << 16, 1}));
  refusals.Expire(0, 0);  // No drift limit: everything would be taken.
  EXPECT_EQ(refusals.size(), 0u);
}

TEST(ExchangeTest, StoreReadErrorFailsTheExchange) {
  Node a(1, 0), b(2, 0);
  a.Put("x", "1");
  b.Put("y", "2");
  FailingStorage a_reads(a.store.get());
  auto ia = Exchange::Initiator(&a_reads, {}, 9);
  auto rb = Exchange::Responder(b.store.get(), {});
  ASSERT_TRUE(ia.ok() && rb.ok());
  // Hello -> the responder sends Fingerprints(0, 0) -> the
  // initiator a Diff offering "x" -> the responder wants "x" -> the
  // initiator reads "x", which fails.
  ASSERT_TRUE((*rb)->Step((*ia)->TakeReady().messages.at(0)).ok());
  ASSERT_TRUE((*ia)->Step((*rb)->TakeReady().messages.at(0)).ok());
  ASSERT_TRUE((*rb)->Step((*ia)->TakeReady().messages.at(0)).ok());
  a_reads.fail = absl::UnavailableError("disk on fire");
  absl::Status s = (*ia)->Step((*rb)->TakeReady().messages.at(0));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE((*ia)->failed());
  EXPECT_TRUE((*ia)->TakeReady().messages.empty());
}

TEST(ExchangeTest, RejectsBadOptions) {
  Node a(1, 4);
  ExchangeOptions o;
  o.fanout_bits = 9;
  EXPECT_EQ(Exchange::Initiator(a.store.get(), o, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = {};
  o.finer_bits = 0;
  EXPECT_EQ(Exchange::Responder(a.store.get(), o).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Exchange::Responder(static_cast<Store*>(nullptr), {})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Exchange::Initiator(static_cast<ExchangeStorage*>(nullptr), {}, 1)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

// ---- Malformed and hostile input ----

class HostileTest : public ::testing::Test {
 protected:
  void ExpectInvalid(Exchange& e, const ExchangeMessage& m,
                     const std::string& needle) {
    absl::Status s = e.Step(m);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(needle));
    EXPECT_TRUE(e.failed());
    // Further input is refused, without crashing.
    EXPECT_EQ(e.Step(m).code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_TRUE(e.TakeReady().messages.empty());
  }

  static ExchangeMessage HelloFor(Node& n, uint64_t salt = 5) {
    auto e = Exchange::Initiator(n.store.get(), {}, salt);
    return (*e)->TakeReady().messages.at(0);
  }

  // A responder over `b` that has answered a Hello from `a` (roots differ).
  // The tests below address the root's children at depth 8: a fanout of 8
  // bits, whatever the default is.
  static ExchangeOptions Fanout8() {
    ExchangeOptions o;
    o.fanout_bits = 8;
    return o;
  }

  std::unique_ptr<Exchange> ResponderAfterHello(Node& a, Node& b,
                                                ExchangeOptions o = Fanout8()) {
    auto r = Exchange::Responder(b.store.get(), o);
    EXPECT_TRUE(r.ok());
    EXPECT_TRUE((*r)->Step(HelloFor(a)).ok());
    last_turn_ = (*r)->TakeReady().messages;
    return std::move(r).value();
  }

  // A responder over `b` (leaf depth 0, holding none of `keys`) that asked
  // the peer for `keys`: it answered Hello with the root's Fingerprints and
  // the peer's Diff offered `keys`, which it wants.
  std::unique_ptr<Exchange> ResponderWanting(Node& a, Node& b,
                                             const std::vector<std::string>& keys,
                                             ExchangeOptions o = Fanout8()) {
    // Holding nothing, b would ask for a stream (empty Digests) instead.
    if (b.Contents().empty()) b.Put("resident", "r");
    auto r = ResponderAfterHello(a, b, o);
    EXPECT_EQ(last_turn_.at(0).fingerprints_size(), 1);
    ExchangeMessage m;
    m.add_diffs();
    for (const std::string& key : keys) {
      AddDiffEntry(m, 0, 0, storage::KeyHash(key), 1);
    }
    m.set_end_of_turn(true);
    EXPECT_TRUE(r->Step(m).ok());
    std::vector<ExchangeMessage> out = r->TakeReady().messages;
    EXPECT_EQ(out.at(0).wants_size(), static_cast<int>(keys.size()));
    return r;
  }

  // A record of `key` at version (hlc, node id 0) in a message whose version
  // table is (hlc_base 0, node_ids {0}), so that records of two such
  // messages can be copied between them. hlc 0: no version.
  static ExchangeMessage WithRecord(const std::string& key, uint64_t hlc,
                                    bool tombstone, const std::string& value) {
    ExchangeMessage m;
    m.add_node_ids(0);
    peer::v1::ExchangeRecord* r = m.add_records();
    r->set_key(key);
    r->set_hlc(static_cast<int64_t>(hlc));
    r->set_node(0);
    r->set_tombstone(tombstone);
    r->set_value(value);
    return m;  // Not the end of the turn: records alone are fine mid-turn.
  }

  // Appends an entry (key_hash, version (hlc, node id 0)) to m's Diff
  // `diff` of a node at `depth`, through the version table (hlc_base 0,
  // node_ids {0}).
  static void AddDiffEntry(ExchangeMessage& m, int diff, uint32_t depth,
                           uint64_t key_hash, uint64_t hlc) {
    if (m.node_ids_size() == 0) m.add_node_ids(0);
    peer::v1::Diff* d = m.mutable_diffs(diff);
    std::string entries = d->entries();
    AppendDiffEntry(
        WireDiffEntry{key_hash, static_cast<int64_t>(hlc - m.hlc_base()), 0},
        depth, &entries);
    d->set_entries(entries);
  }

  std::vector<ExchangeMessage> last_turn_;
};

TEST_F(HostileTest, BadHello) {
  Node a(1, 8), b(2, 8), c(3, 6);
  a.Put("k", "v");
  ExchangeMessage hello = HelloFor(a);

  auto fresh = [&]() { return std::move(Exchange::Responder(b.store.get(), {})).value(); };
  ExchangeMessage m;
  m.set_end_of_turn(true);
  ExpectInvalid(*fresh(), m, "first message must be a Hello");

  m = hello;
  m.mutable_hello()->set_protocol_version(kProtocolVersion + 1);
  ExpectInvalid(*fresh(), m, absl::StrCat("protocol version ", kProtocolVersion + 1));

  ExpectInvalid(*fresh(), HelloFor(c), "leaf depth 6");

  m = hello;
  m.set_end_of_turn(false);
  ExpectInvalid(*fresh(), m, "turn of its own");

  m = hello;
  m.add_wants(0);
  ExpectInvalid(*fresh(), m, "turn of its own");

  // A second Hello, and a Hello sent to the initiator.
  auto r = fresh();
  ASSERT_TRUE(r->Step(hello).ok());
  ExpectInvalid(*r, hello, "Hello after the first message");
  auto i = std::move(Exchange::Initiator(a.store.get(), {}, 1)).value();
  ExpectInvalid(*i, hello, "Hello received by the initiator");
}

TEST_F(HostileTest, GarbageBytesNeverCrash) {
  Node a(1, 8), b(2, 8);
  for (int i = 0; i < 50; ++i) a.Put(Key(i), "v");
  std::mt19937_64 rng(1);
  int parsed = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string bytes(rng() % 64, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    ExchangeMessage m;
    if (!m.ParseFromString(bytes)) continue;
    ++parsed;
    auto r = ResponderAfterHello(a, b);
    absl::Status s = r->Step(m);
    EXPECT_TRUE(s.ok() || s.code() == absl::StatusCode::kInvalidArgument) << s;
  }
  EXPECT_GT(parsed, 20);
}

TEST_F(HostileTest, BadDigests) {
  Node a(1, 8), b(2, 8);
  a.Put("k", "v");
  // The responder sent Digests of the root (child_bits 8): the initiator may
  // address the nodes at depth 8.
  auto good = [&]() {
    ExchangeMessage m;
    peer::v1::Digests* d = m.add_digests();
    d->set_parent_depth(8);
    d->set_parent_index(3);
    d->set_child_bits(0);
    d->set_digests("");
    m.set_end_of_turn(true);
    return m;
  };
  ExchangeMessage m = good();
  m.mutable_digests(0)->set_parent_depth(99);
  ExpectInvalid(*ResponderAfterHello(a, b), m, "depth 99 is over 64");

  m = good();
  m.mutable_digests(0)->set_parent_index(256);
  ExpectInvalid(*ResponderAfterHello(a, b), m, "index 256 is out of range");

  m = good();
  ExpectInvalid(*ResponderAfterHello(a, b), m, "child_bits 0 is not in [1, 8]");

  m = good();
  m.mutable_digests(0)->set_child_bits(9);
  ExpectInvalid(*ResponderAfterHello(a, b), m, "child_bits 9");

  m = good();
  m.mutable_digests(0)->set_child_bits(1);
  m.mutable_digests(0)->set_digests(std::string(7, 'x'));
  ExpectInvalid(*ResponderAfterHello(a, b), m, "7 bytes of digests, not 4");

  m = good();
  m.mutable_digests(0)->set_child_bits(1);
  m.mutable_digests(0)->set_digests(std::string(4 << 10, 'x'));
  ExpectInvalid(*ResponderAfterHello(a, b), m, "not 4");

  // Crossing the leaf level, and a node that was not asked about.
  m = good();
  m.mutable_digests(0)->set_parent_depth(4);
  m.mutable_digests(0)->set_child_bits(8);
  m.mutable_digests(0)->set_digests(std::string(512, 'x'));
  ExpectInvalid(*ResponderAfterHello(a, b), m, "skip the leaf level");

  m = good();
  m.mutable_digests(0)->set_parent_depth(7);
  m.mutable_digests(0)->set_child_bits(1);
  m.mutable_digests(0)->set_digests(std::string(4, 'x'));
  ExpectInvalid(*ResponderAfterHello(a, b), m, "was not asked about");

  // The same node twice in one turn.
  m = good();
  m.mutable_digests(0)->set_parent_depth(0);
  m.mutable_digests(0)->set_parent_index(0);
  m.mutable_digests(0)->set_child_bits(8);
  m.mutable_digests(0)->set_digests(std::string(512, 'x'));
  ExpectInvalid(*ResponderAfterHello(a, b), m, "was not asked about");

  Node c(3, 12), d(4, 12);
  c.Put("k", "v");
  m = good();
  m.mutable_digests(0)->set_child_bits(1);
  m.mutable_digests(0)->set_digests(std::string(4, 'x'));
  *m.add_digests() = m.digests(0);
  ExpectInvalid(*ResponderAfterHello(c, d), m, "appears twice");

  // Parent depth + child_bits over 64 (finer levels, leaf depth 0).
  Node e(5, 0), f(6, 0);
  for (int i = 0; i < 100; ++i) e.Put(Key(i), "v");
  m = good();
  m.mutable_digests(0)->set_parent_depth(60);
  m.mutable_digests(0)->set_parent_index(0);
  m.mutable_digests(0)->set_child_bits(8);
  m.mutable_digests(0)->set_digests(std::string(512, 'x'));
  ExpectInvalid(*ResponderAfterHello(e, f), m, "is over 64");
}

TEST_F(HostileTest, BadFingerprints) {
  Node a(1, 8), b(2, 8);
  a.Put("k", "v");
  auto good = [&]() {
    ExchangeMessage m;
    peer::v1::Fingerprints* f = m.add_fingerprints();
    f->set_levels_below_leaves(0);  // Depth 8, the leaves.
    f->set_index_delta(3);
    f->set_fingerprints("ab");
    m.set_end_of_turn(true);
    return m;
  };
  ASSERT_TRUE(ResponderAfterHello(a, b)->Step(good()).ok());

  ExchangeMessage m = good();
  m.mutable_fingerprints(0)->set_fingerprints("abc");
  ExpectInvalid(*ResponderAfterHello(a, b), m, "not a multiple of 2");

  m = good();
  m.mutable_fingerprints(0)->set_levels_below_leaves(57);
  ExpectInvalid(*ResponderAfterHello(a, b), m, "depth 8 + 57 is over 64");

  m = good();
  m.mutable_fingerprints(0)->set_index_delta(1 << 8);
  ExpectInvalid(*ResponderAfterHello(a, b), m, "index 256 is out of range");

  m = good();
  m.mutable_fingerprints(0)->set_index_delta(-1);
  ExpectInvalid(*ResponderAfterHello(a, b), m, "out of range");

  // The index is relative to the message's previous Fingerprints: +2 after
  // 3 names (8, 5), 0 names (8, 3) again.
  m = good();
  *m.add_fingerprints() = m.fingerprints(0);
  m.mutable_fingerprints(1)->set_index_delta(2);
  ASSERT_TRUE(ResponderAfterHello(a, b)->Step(m).ok());
  m.mutable_fingerprints(1)->set_index_delta(0);
  ExpectInvalid(*ResponderAfterHello(a, b), m, "node (8, 3) appears twice");

  ExchangeOptions o = Fanout8();
  o.max_received_fingerprints = 100;
  m = good();
  m.mutable_fingerprints(0)->set_fingerprints(std::string(kFingerprintBytes * 101, 'x'));
  ExpectInvalid(*ResponderAfterHello(a, b, o), m, "101 entries is over the limit of 100");

  m = good();
  m.mutable_fingerprints(0)->set_levels_below_leaves(1);
  ExpectInvalid(*ResponderAfterHello(a, b), m, "node (9, 3) was not asked about");
}

// Leaf depth 0: the responder, holding little, answers Hello with the
// Fingerprints of the root, so the initiator's next turn must hold its Diff.
class DiffTest : public HostileTest {
 protected:
  DiffTest() : a_(1, 0), b_(2, 0) {
    for (int i = 0; i < 5; ++i) a_.Put(Key(i), "a");
    for (int i = 3; i < 8; ++i) b_.Put(Key(i), "b");
  }
  std::unique_ptr<Exchange> Responder() {
    auto r = ResponderAfterHello(a_, b_);
    EXPECT_EQ(last_turn_.size(), 1u);
    EXPECT_EQ(last_turn_[0].fingerprints_size(), 1);
    return r;
  }
  static ExchangeMessage GoodDiff() {
    ExchangeMessage m;
    m.add_diffs();
    m.set_end_of_turn(true);
    return m;
  }
  static void AddEntry(ExchangeMessage& m, const std::string& key,
                       uint64_t hlc) {
    AddDiffEntry(m, 0, 0, storage::KeyHash(key), hlc);
  }
  Node a_, b_;
};

TEST_F(DiffTest, WellFormedDiffIsAnswered) {
  auto r = Responder();
  ExchangeMessage m = GoodDiff();
  AddEntry(m, "zzz", 1);  // Older than nothing: wanted.
  m.mutable_diffs(0)->add_missing(0);
  ASSERT_TRUE(r->Step(m).ok());
  std::vector<ExchangeMessage> out = r->TakeReady().messages;
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].wants_size(), 1);
  EXPECT_EQ(out[0].records_size(), 1);  // The entry at position 0.
}

TEST_F(DiffTest, BadDiffs) {
  // One Fingerprints sent, so one Diff answers it.
  ExchangeMessage m = GoodDiff();
  *m.add_diffs() = m.diffs(0);
  ExpectInvalid(*Responder(), m, "more Diffs than the 1 Fingerprints we sent");

  // Entries must parse whole: 8 bytes of key hash at depth 0, then two
  // varints of at most 10 bytes.
  m = GoodDiff();
  AddEntry(m, "k", 1);
  m.mutable_diffs(0)->mutable_entries()->pop_back();
  ExpectInvalid(*Responder(), m, "entry 0 is cut short");
  m = GoodDiff();
  AddEntry(m, "k", 1);
  m.mutable_diffs(0)->mutable_entries()->append("1234567");
  ExpectInvalid(*Responder(), m, "entry 1 is cut short in its key hash");
  m = GoodDiff();
  m.mutable_diffs(0)->set_entries(std::string(8, 'h') + std::string(11, '\xff') + "\x01");
  ExpectInvalid(*Responder(), m, "varint over 10 bytes");

  // A version's node position must be within the message's node_ids.
  m = GoodDiff();
  AddEntry(m, "k", 1);
  m.mutable_diffs(0)->mutable_entries()->back() = '\x01';  // Node position 1.
  ExpectInvalid(*Responder(), m,
                "node position 1 is out of range of the message's 1 node_ids");
  m = GoodDiff();
  AddEntry(m, "k", 1);
  m.clear_node_ids();
  ExpectInvalid(*Responder(), m, "node position 0 is out of range");

  m = GoodDiff();
  m.mutable_diffs(0)->add_missing(5);
  ExpectInvalid(*Responder(), m, "missing position 5 is out of range");

  m = GoodDiff();
  m.mutable_diffs(0)->add_missing(1);
  m.mutable_diffs(0)->add_missing(1);
  ExpectInvalid(*Responder(), m, "repeats");

  m = GoodDiff();
  for (int i = 0; i < 6; ++i) m.mutable_diffs(0)->add_missing(i);
  ExpectInvalid(*Responder(), m, "6 missing positions for a list of 5");

  // Wants name Diff entries by position, counted over the Diffs of the
  // peer's turn: here the second entry, a key we lack; the first (a key we
  // hold newer) is answered with our record.
  m = GoodDiff();
  AddEntry(m, Key(3), 1);
  AddEntry(m, "zzz", 1);
  {
    auto r = Responder();
    ASSERT_TRUE(r->Step(m).ok());
    std::vector<ExchangeMessage> out = r->TakeReady().messages;
    ASSERT_EQ(out.size(), 1u);
    ASSERT_EQ(out[0].wants_size(), 1);
    EXPECT_EQ(out[0].wants(0), 1u);
    ASSERT_EQ(out[0].records_size(), 1);
    EXPECT_EQ(out[0].records(0).key(), Key(3));
  }

  m = GoodDiff();
  AddEntry(m, "k", 0);
  ExpectInvalid(*Responder(), m, "zero version");
  // hlc_base + delta is what counts (here 5 - 5).
  m = GoodDiff();
  m.set_hlc_base(5);
  AddEntry(m, "k", 0);  // Delta -5.
  ExpectInvalid(*Responder(), m, "zero version");

  m = GoodDiff();
  AddEntry(m, "k", 1);
  AddEntry(m, "k", 2);
  ExpectInvalid(*Responder(), m, "repeats");

  // A turn without the Diff that our Fingerprints asked for.
  m = GoodDiff();
  m.clear_diffs();
  ExpectInvalid(*Responder(), m, "without a Diff for node (0, 0)");
}

TEST_F(HostileTest, DiffEntryOutsideItsNode) {
  // Leaf depth 1, b holding other keys: b answers Hello with the Digests of
  // the root's two children, and the initiator, holding keys under both,
  // answers with the Fingerprints of both leaves.
  Node a(1, 1), b(2, 1);
  for (int i = 0; i < 40; ++i) a.Put(Key(i), "a");
  for (int i = 0; i < 10; ++i) b.Put(Key(500 + i), "b");
  auto r = ResponderAfterHello(a, b);
  auto i = std::move(Exchange::Initiator(a.store.get(), {}, 5)).value();
  (void)i->TakeReady();
  ASSERT_TRUE(i->Step(last_turn_.at(0)).ok());
  // Answer the first leaf's Fingerprints with a key of another node.
  std::vector<ExchangeMessage> turn = i->TakeReady().messages;
  ASSERT_FALSE(turn.empty());
  ASSERT_GT(turn[0].fingerprints_size(), 0);
  const auto& f = turn[0].fingerprints(0);
  // The first of its message: its index is its delta.
  ASSERT_EQ(f.levels_below_leaves(), 0u);
  const uint64_t index = static_cast<uint64_t>(f.index_delta());
  std::string outside;
  for (int k = 0; outside.empty(); ++k) {
    if (!storage::RangeOf(1, index).Contains(storage::KeyHash(Key(1000 + k)))) {
      outside = Key(1000 + k);
    }
  }
  // The node's index is implied: only bits set above the 64 - depth bits
  // sent can put a hash outside it. 8 bytes at depth 1: the top bit is above
  // the 63 bits below the node. Then hlc delta 1 (zigzag 2), node position 0.
  ASSERT_EQ(KeyHashBytes(1), 8u);
  const uint64_t top = uint64_t{1} << 63;
  std::string entry(8, '\0');
  absl::little_endian::Store64(entry.data(), storage::KeyHash(outside) | top);
  entry += std::string("\x02\x00", 2);
  ExchangeMessage m;
  m.set_hlc_base(0);
  m.add_node_ids(0);
  m.add_diffs()->set_entries(entry);
  m.set_end_of_turn(true);
  ExpectInvalid(*i, m, "not under the node");
  // Within the 63 bits, the same entry is taken (every Fingerprints of the
  // turn answered, the others by empty Diffs).
  absl::little_endian::Store64(entry.data(), storage::KeyHash(outside) & ~top);
  m.mutable_diffs(0)->set_entries(entry);
  for (int k = 1; k < turn[0].fingerprints_size(); ++k) m.add_diffs();
  auto i2 = std::move(Exchange::Initiator(a.store.get(), {}, 5)).value();
  (void)i2->TakeReady();
  ASSERT_TRUE(i2->Step(last_turn_.at(0)).ok());
  ASSERT_EQ(i2->TakeReady().messages.at(0).fingerprints_size(),
            turn[0].fingerprints_size());
  absl::Status taken = i2->Step(m);
  EXPECT_TRUE(taken.ok()) << taken;
}

TEST_F(DiffTest, WantsMustHaveBeenOffered) {
  // Drive a real initiator: it answers the responder's Fingerprints with a
  // Diff offering keys 0..2; then it may be asked for those only, once.
  auto r = Responder();
  auto make = [&]() {
    auto i = std::move(Exchange::Initiator(a_.store.get(), {}, 5)).value();
    (void)i->TakeReady();
    EXPECT_TRUE(i->Step(last_turn_.at(0)).ok());
    std::vector<ExchangeMessage> diff_turn = i->TakeReady().messages;
    EXPECT_EQ(diff_turn.at(0).diffs_size(), 1);
    return i;
  };
  ExchangeMessage m;
  m.add_wants(0);  // The first entry of the Diff.
  m.set_end_of_turn(true);
  {
    auto i = make();
    ASSERT_TRUE(i->Step(m).ok());
    std::vector<ExchangeMessage> out = i->TakeReady().messages;
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].records_size(), 1);
    EXPECT_TRUE(i->done());  // Records only: asks nothing.
    // A message after done.
    ExpectInvalid(*i, m, "after the exchange finished");
  }
  m.add_wants(0);
  ExpectInvalid(*make(), m, "wanted twice");
  m.clear_wants();
  m.add_wants(7);
  ExpectInvalid(*make(), m, "position 7 is not an entry of our last Diffs");
}

TEST_F(HostileTest, BadRecords) {
  Node a(1, 8), b(2, 8);
  a.Put("k", "v");
  // Leaf depth 0: the responder over d asks c for records by key.
  Node c(3, 0), d(4, 0);
  c.Put("k", "v");
  auto with_record = &HostileTest::WithRecord;
  {
    auto r = ResponderWanting(c, d, {"k"});
    ASSERT_TRUE(r->Step(with_record("k", 5, false, "v")).ok());
    EXPECT_EQ(r->TakeReady().records_to_apply.size(), 1u);
  }
  ExpectInvalid(*ResponderAfterHello(a, b), with_record("", 5, false, "v"),
                "empty key");
  ExpectInvalid(*ResponderAfterHello(a, b), with_record("k", 0, false, "v"),
                "has no version");
  ExpectInvalid(*ResponderAfterHello(a, b), with_record("k", 5, true, "v"),
                "carries a value");
  {
    ExchangeMessage m = with_record("k", 5, false, "v");
    m.mutable_records(0)->set_node(3);
    ExpectInvalid(*ResponderAfterHello(a, b), m,
                  "record of key 'k' has no version: node position 3 is out "
                  "of range of the message's 1 node_ids");
  }
  // Malformed and over the limits: still malformed.
  ExpectInvalid(*ResponderAfterHello(a, b),
                with_record(std::string(5000, 'k'), 0, false, "v"),
                "has no version");
  ExpectInvalid(*ResponderAfterHello(a, b),
                with_record("k", 5, true, std::string(2 << 20, 'v')),
                "carries a value");
  // Well formed but over our limits (the peer runs with larger ones):
  // skipped and counted, the rest of the message is taken.
  ExchangeOptions o = Fanout8();
  o.max_value_bytes = 10;
  for (const ExchangeMessage& m :
       {with_record(std::string(5000, 'k'), 5, false, "v"),
        with_record("k", 5, false, std::string(11, 'v'))}) {
    auto r = ResponderWanting(c, d, {"k2"}, o);
    ExchangeMessage two = m;
    *two.add_records() = with_record("k2", 5, false, "v").records(0);
    ASSERT_TRUE(r->Step(two).ok());
    Ready ready = r->TakeReady();
    ASSERT_EQ(ready.records_to_apply.size(), 1u);
    EXPECT_EQ(ready.records_to_apply[0].key, "k2");
    EXPECT_EQ(r->stats().records_over_limits, 1);
    EXPECT_THAT(std::string(r->first_over_limits().message()),
                HasSubstr("over the limit"));
    EXPECT_FALSE(r->failed());
  }
  // Records of a message that fails are not handed out; earlier ones stay.
  auto r = ResponderWanting(c, d, {"k1", "k2"});
  ASSERT_TRUE(r->Step(with_record("k1", 5, false, "v")).ok());
  ExchangeMessage bad = with_record("k2", 5, false, "v");
  *bad.add_records() = with_record("", 5, false, "v").records(0);
  EXPECT_EQ(r->Step(bad).code(), absl::StatusCode::kInvalidArgument);
  Ready ready = r->TakeReady();
  ASSERT_EQ(ready.records_to_apply.size(), 1u);
  EXPECT_EQ(ready.records_to_apply[0].key, "k1");
}

// A record is taken only if our last turn asked for it, once.
TEST_F(HostileTest, RecordsNotAskedForEndTheExchange) {
  Node a(1, 0), b(2, 0);
  a.Put("k", "v");
  // b holds a key of its own, so its answer to Hello lists fingerprints and
  // declares nothing empty: no record is asked for yet.
  b.Put("resident", "r");
  {
    auto r = ResponderAfterHello(a, b);
    ASSERT_EQ(last_turn_.at(0).fingerprints_size(), 1);
    absl::Status s = r->Step(WithRecord("k", 5, false, "v"));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("was not asked for"));
    EXPECT_TRUE(r->failed());
    EXPECT_EQ(r->stats().records_not_asked, 1);
    EXPECT_TRUE(r->TakeReady().records_to_apply.empty());
  }
  // Another key than the ones wanted; the wanted one before it in the same
  // message is not handed out either.
  {
    auto r = ResponderWanting(a, b, {"k"});
    ExchangeMessage m = WithRecord("k", 5, false, "v");
    *m.add_records() = WithRecord("x", 5, false, "v").records(0);
    absl::Status s = r->Step(m);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("key 'x' was not asked for"));
    EXPECT_EQ(r->stats().records_not_asked, 1);
    EXPECT_EQ(r->stats().records_received, 0);
    EXPECT_TRUE(r->TakeReady().records_to_apply.empty());
  }
  // A second copy of a wanted record, in a later message of the turn.
  {
    auto r = ResponderWanting(a, b, {"k"});
    ASSERT_TRUE(r->Step(WithRecord("k", 5, false, "v")).ok());
    ExpectInvalid(*r, WithRecord("k", 6, false, "w"), "sent twice");
    EXPECT_EQ(r->stats().records_not_asked, 1);
  }
}

// A node declared empty (digest 0) takes any record under it, once; a record
// under a node it did not declare empty is still refused.
TEST_F(HostileTest, StreamedRecordsOnlyUnderEmptyNodesAndOnce) {
  Node a(1, 1), b(2, 1);
  // b holds one key under leaf (1, 0) only; leaf (1, 1) is empty.
  // in_full: another key of leaf (1, 0); in_empty: a key of leaf (1, 1).
  std::vector<std::string> low, high;
  for (int i = 0; low.size() < 2 || high.empty(); ++i) {
    const bool is_high =
        storage::RangeOf(1, 1).Contains(storage::KeyHash(Key(i)));
    (is_high ? high : low).push_back(Key(i));
  }
  b.Put(low[0], "b");
  const std::string in_full = low[1], in_empty = high[0];
  a.Put("a-key", "a");
  {
    auto r = ResponderAfterHello(a, b);
    // The answer to Hello: the Digests of both leaves, (1, 1) as empty.
    ASSERT_EQ(last_turn_.at(0).digests_size(), 1);
    const std::string& d = last_turn_.at(0).digests(0).digests();
    ASSERT_EQ(d.size(), 2 * kChildDigestBytes);
    EXPECT_EQ(absl::little_endian::Load16(d.data() + kChildDigestBytes),
              kEmptyDigest);
    EXPECT_NE(absl::little_endian::Load16(d.data()), kEmptyDigest);
    ASSERT_TRUE(r->Step(WithRecord(in_empty, 5, false, "v")).ok());
    EXPECT_EQ(r->TakeReady().records_to_apply.size(), 1u);
    ExpectInvalid(*r, WithRecord(in_empty, 6, false, "w"), "sent twice");
  }
  {
    auto r = ResponderAfterHello(a, b);
    ExpectInvalid(*r, WithRecord(in_full, 5, false, "v"), "was not asked for");
    EXPECT_EQ(r->stats().records_not_asked, 1);
  }
}

// A full sync to an empty node streams the records alone: no fingerprints,
// Diffs or wants, whoever starts, and the bytes are the records' and little
// more.
// With a flush hook (as ExchangeDriver sets), the records streamed for
// empty ranges go out a message at a time while the rest is still being
// read, so the peer applies one message while this side reads the next.
TEST(ExchangeTest, RecordsForEmptyRangesGoOutAMessageAtATimeWithAFlushHook) {
  // split: the peer's turn comes as two messages, the Digests first and an
  // empty one ending the turn. Nothing goes out before the turn's last
  // message (the peer may still be writing it: two sides writing on full
  // windows would wait on each other), so all records leave at its end.
  for (bool split : {false, true}) {
    SCOPED_TRACE(split);
    Node a(1, 8), b(2, 8);
    for (int i = 0; i < 95; ++i) a.Put(Key(i), "v");
    ExchangeOptions o;
    o.max_records_per_message = 10;
    auto ini = Exchange::Initiator(a.store.get(), o, 42);
    auto res = Exchange::Responder(b.store.get(), o);
    ASSERT_TRUE(ini.ok() && res.ok());
    Exchange& x = **ini;
    Exchange& y = **res;
    std::vector<ExchangeMessage> to_b;  // In the order a sent them.
    std::vector<int64_t> read_at_flush;  // a's records read at each flush.
    x.set_flush_hook([&] {
      read_at_flush.push_back(x.stats().records_sent);
      for (ExchangeMessage& m : x.TakeReady().messages) to_b.push_back(std::move(m));
      return absl::OkStatus();
    });
    // a's Hello, b's answer (b holds nothing: every child is empty).
    for (const ExchangeMessage& m : x.TakeReady().messages) ASSERT_TRUE(y.Step(m).ok());
    std::vector<ExchangeMessage> answer = y.TakeReady().messages;
    ASSERT_EQ(answer.size(), 1u);
    if (split) {
      ExchangeMessage last;
      last.set_end_of_turn(true);
      answer[0].set_end_of_turn(false);
      answer.push_back(last);
    }
    for (size_t i = 0; i < answer.size(); ++i) {
      ASSERT_TRUE(x.Step(answer[i]).ok());
      if (i + 1 < answer.size()) EXPECT_TRUE(read_at_flush.empty());
    }
    std::vector<ExchangeMessage> rest = x.TakeReady().messages;
    ASSERT_FALSE(rest.empty());
    EXPECT_TRUE(rest.back().end_of_turn());
    int records_at_end = 0;
    for (const ExchangeMessage& m : rest) records_at_end += m.records_size();
    if (split) {
      EXPECT_TRUE(read_at_flush.empty());
      EXPECT_EQ(records_at_end, 95);
    } else {
      // Nine flushes of ten records, each before the next ten were read.
      EXPECT_EQ(read_at_flush,
                (std::vector<int64_t>{10, 20, 30, 40, 50, 60, 70, 80, 90}));
      ASSERT_EQ(to_b.size(), 9u);
      for (const ExchangeMessage& m : to_b) {
        EXPECT_EQ(m.records_size(), 10);
        EXPECT_FALSE(m.end_of_turn());
      }
      // The last five records and the end of the turn come out of the Step.
      EXPECT_EQ(records_at_end, 5);
    }
    EXPECT_EQ(x.stats().turns_sent, 2);  // Hello, then the records.
    for (ExchangeMessage& m : rest) to_b.push_back(std::move(m));
    for (const ExchangeMessage& m : to_b) ASSERT_TRUE(y.Step(m).ok());
    ASSERT_TRUE(b.store->ApplyBatch(y.TakeReady().records_to_apply).ok());
    EXPECT_TRUE(y.done());
    ExpectConverged(a, b);
  }
}

TEST(ExchangeTest, FullSyncToAnEmptyNodeStreamsOnlyRecords) {
  for (bool empty_starts : {true, false}) {
    SCOPED_TRACE(empty_starts);
    Node a(1, 8), b(2, 8);
    int64_t record_bytes = 0;  // Keys and values.
    for (int i = 0; i < 3000; ++i) a.Put(Key(i), std::string(100, 'v'));
    for (const auto& [key, record] : a.Contents()) {
      record_bytes += static_cast<int64_t>(key.size() + record.value.size());
    }
    Result r = empty_starts ? RunExchange(b, a, {}) : RunExchange(a, b, {});
    const ExchangeStats& full = empty_starts ? r.responder : r.initiator;
    const ExchangeStats& empty = empty_starts ? r.initiator : r.responder;
    EXPECT_EQ(r.records, 3000);
    EXPECT_EQ(full.records_streamed, 3000);
    EXPECT_EQ(full.fingerprints_sent + empty.fingerprints_sent, 0);
    EXPECT_EQ(empty.wants_sent, 0);
    EXPECT_EQ(full.bytes_sent_diffs + empty.bytes_sent_diffs, 0);
    // Keys and values plus at most 16 bytes each (measured 13-14: field
    // framing 6, hlc delta 6, node position 0-2; 27 with kv.v1.Version),
    // then at most a few digests.
    EXPECT_LE(full.bytes_sent_records, record_bytes + 16 * 3000);
    EXPECT_LE(r.bytes - full.bytes_sent_records, 4096);
    std::printf("[ measured ] full sync of 3000 records (%lld B of keys and "
                "values): %lld B on the wire, %lld messages\n",
                static_cast<long long>(record_bytes),
                static_cast<long long>(r.bytes),
                static_cast<long long>(r.messages));
    ExpectConverged(a, b);
  }
}

// As in kvd (leaves at depth 16, ~15 keys per leaf at 1M keys; here fewer):
// d keys updated, half on each side. The Diffs cost about one entry per
// differing key: its key hash below the leaf (6 bytes), a varint hlc delta
// and a node position through the message's version table, plus the Diff's
// framing and missing position; each record its key and value plus a few
// bytes. Measured: 18.4 B of Diffs per differing key and 9.7 B per record
// beyond key and value (protocol version 2: about 42 B per such Diff and 27
// per record; version 3 with parallel entry lists: 22.4 B per key).
TEST(ExchangeTest, DiffsAndRecordsCostFewBytesPerDifferingKey) {
  Node a(1, 16), b(2, 16);
  constexpr int kShared = 20000, kD = 400;
  Shared(a, b, kShared);
  int64_t key_value_bytes = 0;
  for (int i = 0; i < kD; ++i) {
    const std::string key = Key(i * 37 % kShared);
    (i % 2 == 0 ? a : b).Put(key, std::string(100, 'u'));
    key_value_bytes += static_cast<int64_t>(key.size() + 100);
  }
  Result r = RunExchange(a, b, {});
  EXPECT_EQ(r.records, kD);
  const int64_t diffs = r.initiator.bytes_sent_diffs + r.responder.bytes_sent_diffs;
  const int64_t records =
      r.initiator.bytes_sent_records + r.responder.bytes_sent_records;
  std::printf("[ measured ] d=%d of %d keys (16-bit leaves): Diffs %lld B "
              "(%.1f B per differing key), records %lld B (%.1f B per record "
              "beyond key and value), %lld B in all\n",
              kD, kShared, static_cast<long long>(diffs),
              static_cast<double>(diffs) / kD, static_cast<long long>(records),
              static_cast<double>(records - key_value_bytes) / kD,
              static_cast<long long>(r.bytes));
  EXPECT_LE(diffs, int64_t{21} * kD);
  EXPECT_LE(records - key_value_bytes, int64_t{12} * kD);
  // The parts add up to at most bytes_sent (the rest: Hello, end_of_turn,
  // wants' framing).
  for (const ExchangeStats* st : {&r.initiator, &r.responder}) {
    const int64_t parts = st->bytes_sent_digests + st->bytes_sent_fingerprints +
                          st->bytes_sent_diffs + st->bytes_sent_wants +
                          st->bytes_sent_records;
    EXPECT_LE(parts, st->bytes_sent);
    EXPECT_GE(parts, st->bytes_sent - 64 * st->messages_sent);
  }
  ExpectConverged(a, b);
}

// A full sync larger than the record budget: every exchange but the last is
// cut by the budget, which the initiator sees (CutByBudget) whichever side it
// is, so kvd starts the next one at once; together they move each record once.
TEST(ExchangeTest, FullSyncOverSeveralExchangesIsSeenAsCutByBudget) {
  for (bool empty_starts : {true, false}) {
    SCOPED_TRACE(empty_starts);
    ExchangeOptions o;
    o.max_record_bytes_per_exchange = 20000;
    Node a(1, 8), b(2, 8);
    for (int i = 0; i < 1000; ++i) a.Put(Key(i), std::string(100, 'v'));
    int exchanges = 0;
    int64_t records = 0;
    bool more = true;
    while (more) {
      ASSERT_LT(++exchanges, 100);
      Result r = empty_starts ? RunExchange(b, a, o, exchanges)
                              : RunExchange(a, b, o, exchanges);
      records += r.records;
      more = CutByBudget(r.initiator);
    }
    EXPECT_EQ(records, 1000);
    EXPECT_GE(exchanges, 1000 * 110 / 20000);
    ExpectConverged(a, b);
  }
}

// As kvd runs it: leaves at depth 16, either side starting each exchange.
TEST(ExchangeTest, FullSyncWithAlternatingInitiatorsMovesEachRecordOnce) {
  ExchangeOptions o;
  o.max_record_bytes_per_exchange = 200000;
  Node a(1, 16), b(2, 16);
  for (int i = 0; i < 20000; ++i) a.Put(Key(i), std::string(100, 'v'));
  int64_t records = 0;
  const int exchanges = AlternateUntilEqual(
      b, a, o, 200, [&](const Result& r) { records += r.records; });
  EXPECT_EQ(records, 20000);
  std::printf("[ measured ] 20000 records in %d exchanges\n", exchanges);
  ExpectConverged(a, b);
}

// Runs an exchange between a (initiator) and b with Exchange objects,
// applying the records each side hands out. `edit` sees every message before
// the side `to` (0: the initiator, 1: the responder) takes it, and may change
// it. Stops at the first Step error.
struct Driven {
  absl::Status status;
  int failed_side = -1;
  ExchangeStats stats[2];
};

Driven Drive(Node& a, Node& b, const ExchangeOptions& o,
             const std::function<void(int to, ExchangeMessage&)>& edit) {
  Driven out;
  auto i = std::move(Exchange::Initiator(a.store.get(), o, 99)).value();
  auto r = std::move(Exchange::Responder(b.store.get(), o)).value();
  Exchange* side[2] = {i.get(), r.get()};
  Node* node[2] = {&a, &b};
  std::deque<ExchangeMessage> inbox[2];
  for (auto& m : i->TakeReady().messages) inbox[1].push_back(std::move(m));
  for (int guard = 0; guard < 10000 && (!inbox[0].empty() || !inbox[1].empty());
       ++guard) {
    const int s = !inbox[1].empty() ? 1 : 0;
    ExchangeMessage m = std::move(inbox[s].front());
    inbox[s].pop_front();
    edit(s, m);
    out.status = side[s]->Step(m);
    Ready ready = side[s]->TakeReady();
    for (const Record& rec : ready.records_to_apply) {
      EXPECT_TRUE(node[s]->store->Apply(rec).ok());
    }
    if (!out.status.ok()) {
      out.failed_side = s;
      break;
    }
    for (auto& next : ready.messages) inbox[1 - s].push_back(std::move(next));
  }
  out.stats[0] = i->stats();
  out.stats[1] = r->stats();
  if (out.status.ok()) {
    EXPECT_TRUE(i->done());
    EXPECT_TRUE(r->done());
  }
  return out;
}

// In a real exchange (leaf depth 4): the initiator answers the root's
// Digests with the Fingerprints of the differing leaves; the responder's
// Diff names the initiator's entries it lacks as missing (their records are
// then taken by fingerprint) and offers its own, which the initiator wants
// (taken by key). A record slipped into either direction ends the exchange
// there, and nothing of its message is applied.
TEST(ExchangeTest, RecordsNotAskedForAreRefusedByEitherSide) {
  ExchangeOptions o;
  auto setup = [](Node& a, Node& b) {
    Shared(a, b, 50);
    for (int i = 100; i < 110; ++i) a.Put(Key(i), "only on a");
    for (int i = 200; i < 210; ++i) b.Put(Key(i), "only on b");
  };
  {
    // Sanity: untouched, it converges.
    Node a(1, 4), b(2, 4);
    setup(a, b);
    Driven d = Drive(a, b, o, [](int, ExchangeMessage&) {});
    ASSERT_TRUE(d.status.ok()) << d.status;
    EXPECT_EQ(d.stats[0].records_received, 10);
    EXPECT_EQ(d.stats[1].records_received, 10);
    ExpectConverged(a, b);
  }
  // `edit` changes the first message to side `to` that carries records.
  auto run = [&](int to, const std::function<void(ExchangeMessage&)>& edit,
                 const std::string& needle) {
    SCOPED_TRACE(needle);
    Node a(1, 4), b(2, 4);
    setup(a, b);
    Node* target = to == 0 ? &a : &b;
    const int64_t keys_before = target->store->tree().KeyCount();
    bool edited = false;
    Driven d = Drive(a, b, o, [&](int side, ExchangeMessage& m) {
      if (side != to || m.records_size() == 0 || edited) return;
      edited = true;
      edit(m);
    });
    ASSERT_TRUE(edited);
    EXPECT_EQ(d.failed_side, to);
    EXPECT_EQ(d.status.code(), absl::StatusCode::kInvalidArgument) << d.status;
    EXPECT_THAT(std::string(d.status.message()), HasSubstr(needle));
    EXPECT_EQ(d.stats[to].records_not_asked, 1);
    EXPECT_EQ(target->store->tree().KeyCount(), keys_before);
  };
  auto add_intruder = [](ExchangeMessage& m) {
    peer::v1::ExchangeRecord* r = m.add_records();
    *r = m.records(0);
    r->set_key("intruder");
  };
  // A key nobody asked about, to either side.
  run(1, add_intruder, "'intruder' was not asked for");
  run(0, add_intruder, "'intruder' was not asked for");
  // A missing entry with other contents than the fingerprint listed.
  run(1, [](ExchangeMessage& m) { m.mutable_records(0)->set_value("forged"); },
      "was not asked for");
  // A wanted record twice.
  run(0, [](ExchangeMessage& m) { *m.add_records() = m.records(0); }, "sent twice");
  run(1, [](ExchangeMessage& m) { *m.add_records() = m.records(0); }, "sent twice");
}

// An entry written over between its Fingerprints and the peer's Diff is not
// sent (the peer asked for the listed contents): the exchange completes and
// a later one repairs the key.
TEST(ExchangeTest, EntryChangedAfterItsFingerprintWaitsForTheNextExchange) {
  ExchangeOptions o;
  Node a(1, 4), b(2, 4);
  Shared(a, b, 50);
  for (int i = 100; i < 110; ++i) a.Put(Key(i), "only on a");
  bool written = false;
  Driven d = Drive(a, b, o, [&](int to, ExchangeMessage& m) {
    if (to != 1 || m.fingerprints_size() == 0 || written) return;
    written = true;  // a's Fingerprints are on their way to b.
    a.Put(Key(100), "written over");
  });
  ASSERT_TRUE(written);
  ASSERT_TRUE(d.status.ok()) << d.status;
  EXPECT_EQ(d.stats[0].records_changed, 1);
  EXPECT_EQ(d.stats[1].records_received, 9);
  EXPECT_FALSE(b.store->Get(Key(100))->has_value());
  RunExchange(a, b, o);
  ExpectConverged(a, b);
}

TEST_F(HostileTest, OversizedMessage) {
  Node a(1, 8), b(2, 8);
  a.Put("k", "v");
  ExchangeOptions o;
  o.max_message_bytes = 1000;
  o.max_key_bytes = 100;
  o.max_value_bytes = 100;
  o.max_received_fingerprints = 100;
  o.max_diff_bytes = 500;
  ExchangeMessage m;
  m.add_node_ids(7);
  for (int i = 0; i < 20; ++i) {
    peer::v1::ExchangeRecord* r = m.add_records();
    r->set_key(absl::StrCat("k", i));
    r->set_value(std::string(400, 'v'));
    r->set_hlc(1);
  }
  ExpectInvalid(*ResponderAfterHello(a, b, o), m, "bytes is over the limit");
}

TEST_F(HostileTest, MessageAfterEqualRootsDone) {
  Node a(1, 8), b(2, 8);
  auto r = std::move(Exchange::Responder(b.store.get(), {})).value();
  ASSERT_TRUE(r->Step(HelloFor(a)).ok());
  EXPECT_TRUE(r->done());
  EXPECT_TRUE(r->stats().equal_roots);
  ExchangeMessage m;
  m.set_end_of_turn(true);
  ExpectInvalid(*r, m, "after the exchange finished");
}

// Replays a real exchange and corrupts one message at a random point: the
// receiver either accepts it or returns INVALID_ARGUMENT, never crashes.
TEST_F(HostileTest, MutatedTranscriptsNeverCrash) {
  ExchangeOptions o;
  o.max_fingerprints = 4;
  Node a(1, 3), b(2, 3);
  Shared(a, b, 200);
  for (int i = 0; i < 30; ++i) (i % 2 ? a : b).Put(Key(i * 5), "x");
  std::mt19937_64 rng(3);
  int rejected = 0;
  for (int iter = 0; iter < 300; ++iter) {
    auto i = std::move(Exchange::Initiator(a.store.get(), o, 77)).value();
    auto r = std::move(Exchange::Responder(b.store.get(), o)).value();
    Exchange* side[2] = {i.get(), r.get()};
    std::deque<ExchangeMessage> inbox[2];
    for (auto& m : i->TakeReady().messages) inbox[1].push_back(std::move(m));
    const int corrupt_at = rng() % 8;
    int delivered = 0;
    while (!inbox[0].empty() || !inbox[1].empty()) {
      const int s = !inbox[1].empty() ? 1 : 0;
      ExchangeMessage m = std::move(inbox[s].front());
      inbox[s].pop_front();
      if (delivered++ == corrupt_at) {
        std::string bytes = m.SerializeAsString();
        const int flips = 1 + rng() % 4;
        for (int f = 0; f < flips && !bytes.empty(); ++f) {
          bytes[rng() % bytes.size()] ^= static_cast<char>(1 << (rng() % 8));
        }
        if (!m.ParseFromString(bytes)) break;
        absl::Status st = side[s]->Step(m);
        EXPECT_TRUE(st.ok() || st.code() == absl::StatusCode::kInvalidArgument)
            << st;
        rejected += !st.ok();
        break;
      }
      ASSERT_TRUE(side[s]->Step(m).ok());
      for (auto& out : side[s]->TakeReady().messages) {
        inbox[1 - s].push_back(std::move(out));
      }
    }
  }
  EXPECT_GT(rejected, 10);
}

}  // namespace
}  // namespace kv::replication
