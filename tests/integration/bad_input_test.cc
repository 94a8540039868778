// Every bad input gets the right status code, a message naming the limit, and
// stores nothing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "client/client.h"
#include "tests/integration/kvd_process.h"

namespace kv::testing {
namespace {

using ::testing::HasSubstr;

class BadInputTest : public ::testing::Test {
 protected:
  void StartNode(std::vector<std::string> args = {}) {
    kvd_ = std::make_unique<KvdProcess>(dir_.path() + "/node", std::move(args));
    ASSERT_TRUE(kvd_->Start().ok());
    client_ = std::move(*client::Client::Connect(kvd_->address()));
  }
  // Nothing was stored by any refused call.
  void ExpectEmpty() {
    auto stats = client_->Stats();
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats->key_count(), 0);
    EXPECT_TRUE(client_->Scan({})->empty());
  }

  TempDir dir_;
  std::unique_ptr<KvdProcess> kvd_;
  std::unique_ptr<client::Client> client_;
};

TEST_F(BadInputTest, DefaultLimits) {
  StartNode();
  auto s = client_->Put("", "v").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("key is empty"));

  s = client_->Put(std::string(4097, 'k'), "v").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("4097 bytes, over the limit of 4096 bytes (--max-key-bytes)"));
  EXPECT_TRUE(client_->Put(std::string(4096, 'k'), "v").ok());
  ASSERT_TRUE(client_->Delete(std::string(4096, 'k')).ok());
  auto stats = client_->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->key_count(), 1);  // The tombstone of the accepted key.

  s = client_->Put("k", std::string((1 << 20) + 1, 'v')).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("over the limit of 1048576 bytes (--max-value-bytes)"));
  EXPECT_FALSE(client_->Get("k")->found);
  EXPECT_EQ(client_->Get("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->Delete("").status().code(), absl::StatusCode::kInvalidArgument);

  // Over gRPC's own message limit (key + value limit + 64 KiB): refused by
  // gRPC before the handler runs.
  s = client_->Put("k", std::string(2 << 20, 'v')).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_FALSE(client_->Get("k")->found);
}

TEST_F(BadInputTest, ConfiguredLimitsAndBatches) {
  StartNode({"--max-key-bytes", "8", "--max-value-bytes", "16", "--max-batch", "3"});
  auto s = client_->Put("123456789", "v").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("over the limit of 8 bytes"));
  s = client_->Put("k", std::string(17, 'v')).status();
  EXPECT_THAT(s.message(), HasSubstr("over the limit of 16 bytes"));

  // One bad mutation refuses the whole batch and names its index.
  s = client_->BatchWrite({{"a", "1", false, {}}, {"b", std::string(17, 'v'), false, {}}})
          .status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("mutation 1: value is 17 bytes"));
  s = client_->BatchWrite({{"a", "1", false, {}}, {"", "1", false, {}}}).status();
  EXPECT_THAT(s.message(), HasSubstr("mutation 1: key is empty"));
  s = client_->BatchWrite({{"a", "", false, {}}, {"b", "", false, {}}, {"c", "", false, {}},
                           {"d", "", false, {}}})
          .status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("over the limit of 3 (--max-batch)"));
  EXPECT_EQ(client_->BatchWrite({}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->BatchGet({"a", "123456789"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  ExpectEmpty();
}

TEST_F(BadInputTest, LimitsFromAConfigFile) {
  const std::string config = dir_.path() + "/kvd.conf";
  std::ofstream(config) << "# kvd options\nname = configured\nmax-key-bytes = 8\n";
  StartNode({"--config", config});
  auto s = client_->Put("123456789", "v").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("over the limit of 8 bytes"));
  EXPECT_EQ(client_->Stats()->node_name(), "configured");
  ExpectEmpty();
}

TEST_F(BadInputTest, UnusableDataDirectoryFailsClearly) {
  const std::string dir = dir_.path() + "/node";
  StartNode();
  // A second kvd on the same directory refuses to start and says why.
  KvdProcess second(dir);
  absl::Status s = second.Start();
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("another kvd"));
}

}  // namespace
}  // namespace kv::testing
