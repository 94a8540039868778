// Replies stay within the node's own gRPC message limit, and their size is
// bounded before they are built (issue 13, item 7): a scan over values near
// the chunk budget returns them all, and a BatchGet cannot make the node
// build a reply far larger than the request allows.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "client/client.h"
#include "tests/integration/kvd_process.h"

namespace kv::testing {
namespace {

using ::testing::HasSubstr;

// kvd's peak resident set (VmHWM) in KiB, or -1 when unreadable.
int64_t PeakRssKib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) != 0) continue;
    std::string digits;
    for (char c : line) {
      if (c >= '0' && c <= '9') digits.push_back(c);
    }
    int64_t kib = -1;
    if (absl::SimpleAtoi(digits, &kib)) return kib;
  }
  return -1;
}

class ReplyLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kvd_ = std::make_unique<KvdProcess>(dir_.path() + "/node");
    ASSERT_TRUE(kvd_->Start().ok()) << kvd_->LogTail();
    client_ = std::move(*client::Client::Connect(kvd_->address()));
  }

  TempDir dir_;
  std::unique_ptr<KvdProcess> kvd_;
  std::unique_ptr<client::Client> client_;
};

// Two 600 KiB values fit no single chunk under the node's send limit
// (1 MiB + 68 KiB by default): each goes in its own chunk.
TEST_F(ReplyLimitsTest, ScanOverTwoLargeValuesReturnsBoth) {
  const std::string big(600 << 10, 'v');
  ASSERT_TRUE(client_->Put("p/a", big).ok());
  ASSERT_TRUE(client_->Put("p/b", big).ok());
  ASSERT_TRUE(client_->Put("p/c", "small").ok());

  client::ScanOptions prefix;
  prefix.prefix = "p/";
  auto entries = client_->Scan(prefix);
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 3u);
  EXPECT_EQ((*entries)[0].key, "p/a");
  EXPECT_EQ((*entries)[0].value, big);
  EXPECT_EQ((*entries)[1].key, "p/b");
  EXPECT_EQ((*entries)[1].value, big);
  EXPECT_EQ((*entries)[2].value, "small");

  // The same through a range scan and through kvctl, as an operator would.
  auto all = client_->Scan({});
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), 3u);
  CommandResult r = RunCommand(
      {KvctlPath(), "--endpoint", kvd_->address(), "scan", "--prefix", "p/"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("p/c\tsmall\t"));
}

// A value at the value limit is larger than the chunk budget on its own; it
// is still sent, alone, within the message limit.
TEST_F(ReplyLimitsTest, ScanSendsAnEntryLargerThanTheChunkBudget) {
  const std::string largest(1 << 20, 'x');  // --max-value-bytes' default.
  ASSERT_TRUE(client_->Put("a", "before").ok());
  ASSERT_TRUE(client_->Put("b", largest).ok());
  ASSERT_TRUE(client_->Put("c", largest).ok());
  ASSERT_TRUE(client_->Put("d", "after").ok());
  auto entries = client_->Scan({});
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 4u);
  EXPECT_EQ((*entries)[1].value, largest);
  EXPECT_EQ((*entries)[2].value, largest);
  EXPECT_EQ((*entries)[3].value, "after");
}

// A request of a few KB naming one 1 MiB key a thousand times must not make
// the node build a gigabyte: it is refused at once, naming the key.
TEST_F(ReplyLimitsTest, BatchGetRefusesRepeatedKeysWithoutBuildingTheReply) {
  ASSERT_TRUE(client_->Put("dup", std::string(1 << 20, 'v')).ok());
  ASSERT_TRUE(client_->Put("other", "o").ok());
  const int64_t rss_before = PeakRssKib(kvd_->pid());
  ASSERT_GT(rss_before, 0);

  std::vector<std::string> keys(1000, "dup");
  auto r = client_->BatchGet(keys);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("key 1: repeats key 0 (\"dup\")"));

  r = client_->BatchGet({"other", "dup", "other"});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("key 2: repeats key 0 (\"other\")"));

  // Not even a transient gigabyte: the peak grew by far less than the reply
  // the request asked for.
  const int64_t rss_after = PeakRssKib(kvd_->pid());
  EXPECT_LT(rss_after - rss_before, 128 << 10)
      << "peak RSS grew from " << rss_before << " KiB to " << rss_after << " KiB";

  // Distinct keys are answered as before.
  r = client_->BatchGet({"other", "dup", "missing"});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].value, "o");
  EXPECT_EQ((*r)[1].value.size(), size_t{1} << 20);
  EXPECT_FALSE((*r)[2].found);
}

// Distinct keys whose values together are over the node's message limit are
// refused before the reply grows past it, naming the limit.
TEST_F(ReplyLimitsTest, BatchGetOverTheMessageLimitIsRefused) {
  const std::string big(600 << 10, 'v');
  ASSERT_TRUE(client_->Put("a", big).ok());
  ASSERT_TRUE(client_->Put("b", big).ok());
  auto r = client_->BatchGet({"a", "b"});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("--max-message-bytes"));
  r = client_->BatchGet({"a"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)[0].value, big);
}

}  // namespace
}  // namespace kv::testing
