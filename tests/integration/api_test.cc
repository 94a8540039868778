// Drives a real kvd process through the client library: every API call,
// conditional writes, and clean shutdown.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <thread>

#include "client/client.h"
#include "tests/integration/kvd_process.h"

namespace kv::testing {
namespace {

using ::testing::HasSubstr;
using client::Precondition;

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kvd_ = std::make_unique<KvdProcess>(dir_.path() + "/node");
    ASSERT_TRUE(kvd_->Start().ok());
    auto c = client::Client::Connect(kvd_->address());
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = std::move(*c);
  }

  TempDir dir_;
  std::unique_ptr<KvdProcess> kvd_;
  std::unique_ptr<client::Client> client_;
};

TEST_F(ApiTest, PutGetDelete) {
  auto missing = client_->Get("k");
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_FALSE(missing->found);
  EXPECT_FALSE(missing->version.IsSet());

  auto v1 = client_->Put("k", std::string("bin\0ary", 7));
  ASSERT_TRUE(v1.ok()) << v1.status();
  auto got = client_->Get("k");
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->found);
  EXPECT_EQ(got->value, std::string("bin\0ary", 7));
  EXPECT_EQ(got->version, *v1);

  auto v2 = client_->Delete("k");
  ASSERT_TRUE(v2.ok());
  EXPECT_GT(*v2, *v1);
  got = client_->Get("k");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->found);
  EXPECT_EQ(got->version, *v2);  // The tombstone's version.
  EXPECT_TRUE(client_->Ping().ok());
}

TEST_F(ApiTest, ConditionalWrites) {
  auto v1 = *client_->Put("c", "1", Precondition::MustNotExist());
  auto again = client_->Put("c", "2", Precondition::MustNotExist());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  auto stale = client_->Put("c", "3", Precondition::ExpectVersion({v1.hlc - 1, v1.node_id}));
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(stale.status().message(), HasSubstr("'c'"));
  EXPECT_EQ(client_->Get("c")->value, "1");  // Unchanged.
  auto v2 = client_->Put("c", "4", Precondition::ExpectVersion(v1));
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(client_->Delete("c", Precondition::ExpectVersion(v1)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(client_->Delete("c", Precondition::ExpectVersion(*v2)).ok());
  EXPECT_TRUE(client_->Put("c", "5", Precondition::MustNotExist()).ok());
}

TEST_F(ApiTest, ScanByPrefixRangeAndLimitHidesTombstones) {
  std::vector<client::Mutation> muts;
  for (int i = 0; i < 1000; ++i) {
    char key[16];
    snprintf(key, sizeof key, "p/%04d", i);
    muts.push_back({key, std::string(100, 'x'), false, {}});
  }
  ASSERT_TRUE(client_->BatchWrite(muts).ok());
  ASSERT_TRUE(client_->Put("q/1", "other").ok());
  ASSERT_TRUE(client_->Put("o/1", "other").ok());
  ASSERT_TRUE(client_->Delete("p/0005").ok());

  auto all = client_->Scan({.prefix = "p/"});
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 999u);  // Several stream chunks, one tombstone hidden.
  EXPECT_EQ(all->front().key, "p/0000");
  EXPECT_EQ((*all)[5].key, "p/0006");
  EXPECT_EQ(all->back().key, "p/0999");

  auto range = client_->Scan({.start = "p/0003", .end = "p/0008"});
  ASSERT_TRUE(range.ok());
  std::vector<std::string> keys;
  for (auto& e : *range) keys.push_back(e.key);
  EXPECT_THAT(keys, ::testing::ElementsAre("p/0003", "p/0004", "p/0006", "p/0007"));

  auto limited = client_->Scan({.start = "p/", .limit = 300});
  ASSERT_TRUE(limited.ok());
  EXPECT_EQ(limited->size(), 300u);
  auto everything = client_->Scan({});
  ASSERT_TRUE(everything.ok());
  EXPECT_EQ(everything->size(), 1001u);

  EXPECT_EQ(client_->Scan({.prefix = "p/", .start = "a"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->Scan({.start = "b", .end = "a"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ApiTest, BatchWriteIsAtomicAndBatchGetKeepsOrder) {
  auto v = client_->BatchWrite({{"a", "1", false, {}}, {"b", "2", false, {}}});
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->size(), 2u);
  // The second mutation's precondition fails: the first is not written.
  auto bad = client_->BatchWrite({{"c", "3", false, {}},
                                  {"a", "x", false, Precondition::MustNotExist()}});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kFailedPrecondition);
  auto gets = client_->BatchGet({"b", "c", "a"});
  ASSERT_TRUE(gets.ok());
  ASSERT_EQ(gets->size(), 3u);
  EXPECT_EQ((*gets)[0].value, "2");
  EXPECT_FALSE((*gets)[1].found);
  EXPECT_EQ((*gets)[2].value, "1");
  EXPECT_EQ((*gets)[2].version, (*v)[0]);
  // Deletes in a batch, and the same key twice is refused.
  ASSERT_TRUE(client_->BatchWrite({{"a", "", true, {}}}).ok());
  EXPECT_FALSE(client_->Get("a")->found);
  EXPECT_EQ(client_->BatchWrite({{"d", "1", false, {}}, {"d", "2", false, {}}})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(client_->Get("d")->found);
}

TEST_F(ApiTest, HealthAndStats) {
  auto h = client_->Health();
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(*h, grpc::health::v1::HealthCheckResponse::SERVING);
  ASSERT_TRUE(client_->Put("k1", "v").ok());
  ASSERT_TRUE(client_->Put("k2", "v").ok());
  auto stats = client_->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->key_count(), 2);
  EXPECT_EQ(stats->root_digest().size(), 32u);
  auto verify = client_->VerifyTree();
  ASSERT_TRUE(verify.ok());
  EXPECT_TRUE(verify->matched());
  EXPECT_EQ(verify->root_digest(), stats->root_digest());
}

TEST(ApiBackgroundTest, TreeVerificationRunsAtItsInterval) {
  TempDir dir;
  KvdProcess kvd(dir.path() + "/node", {"--verify-interval", "1"});
  ASSERT_TRUE(kvd.Start().ok());
  auto c = *client::Client::Connect(kvd.address());
  ASSERT_TRUE(c->Put("k", "v").ok());
  int64_t runs = 0;
  for (int i = 0; i < 100 && runs < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    runs = c->Stats()->tree_verifications();
  }
  EXPECT_GE(runs, 2);
  EXPECT_EQ(c->Stats()->tree_mismatches(), 0);
  EXPECT_THAT(kvd.Log(), HasSubstr("tree verification: ok (keys=1"));
}

TEST_F(ApiTest, SigtermShutsDownCleanlyAndDataStays) {
  ASSERT_TRUE(client_->Put("durable", "yes").ok());
  const absl::StatusOr<int> status = kvd_->Terminate();
  ASSERT_TRUE(status.ok()) << status.status() << kvd_->Log();
  ASSERT_TRUE(WIFEXITED(*status)) << kvd_->Log();
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  EXPECT_THAT(kvd_->Log(), HasSubstr("stopped"));
  ASSERT_TRUE(kvd_->Start().ok());
  auto c = *client::Client::Connect(kvd_->address());
  EXPECT_EQ(c->Get("durable")->value, "yes");
}

}  // namespace
}  // namespace kv::testing
