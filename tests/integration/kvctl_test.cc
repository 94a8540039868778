// kvctl against a real kvd: commands, output formats and exit codes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/integration/kvd_process.h"

namespace kv::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

class KvctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kvd_ = std::make_unique<KvdProcess>(dir_.path() + "/node");
    ASSERT_TRUE(kvd_->Start().ok());
  }
  CommandResult Kvctl(std::vector<std::string> args, const std::string& in = "") {
    std::vector<std::string> argv = {KvctlPath(), "--endpoint", kvd_->address()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, in);
  }

  TempDir dir_;
  std::unique_ptr<KvdProcess> kvd_;
};

TEST_F(KvctlTest, PutGetDeleteWithExitCodes) {
  auto put = Kvctl({"put", "greeting", "hello"});
  EXPECT_EQ(put.exit_code, 0) << put.err;
  EXPECT_THAT(put.out, MatchesRegex("[0-9]+:[0-9]+\n"));

  auto get = Kvctl({"get", "greeting"});
  EXPECT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(get.out, "hello");  // Raw bytes when stdout is not a terminal.

  auto json = Kvctl({"--output", "json", "get", "greeting"});
  EXPECT_EQ(json.exit_code, 0);
  EXPECT_THAT(json.out, HasSubstr("\"found\":true"));
  EXPECT_THAT(json.out, HasSubstr("\"value\":\"hello\""));

  EXPECT_EQ(Kvctl({"delete", "greeting"}).exit_code, 0);
  auto gone = Kvctl({"get", "greeting"});
  EXPECT_EQ(gone.exit_code, 1);  // Not found.
  EXPECT_EQ(gone.out, "");
}

TEST_F(KvctlTest, ValueFromStdinAndFile) {
  std::string binary("a\0b\xff", 4);
  EXPECT_EQ(Kvctl({"put", "stdin-key"}, binary).exit_code, 0);
  EXPECT_EQ(Kvctl({"get", "stdin-key"}).out, binary);
  const std::string path = dir_.path() + "/value.bin";
  std::ofstream(path, std::ios::binary) << "from a file";
  EXPECT_EQ(Kvctl({"put", "file-key", "--file", path}).exit_code, 0);
  EXPECT_EQ(Kvctl({"get", "file-key"}).out, "from a file");
  auto json = Kvctl({"--output", "json", "get", "stdin-key"});
  EXPECT_THAT(json.out, HasSubstr("\"value_encoding\":\"base64\""));
}

TEST_F(KvctlTest, ConditionalPutAndScan) {
  auto v1 = Kvctl({"put", "c", "1", "--if-absent"});
  ASSERT_EQ(v1.exit_code, 0) << v1.err;
  auto again = Kvctl({"put", "c", "2", "--if-absent"});
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_THAT(again.err, HasSubstr("FAILED_PRECONDITION"));
  std::string version = v1.out.substr(0, v1.out.find('\n'));
  EXPECT_EQ(Kvctl({"put", "c", "3", "--if-version", version}).exit_code, 0);
  EXPECT_EQ(Kvctl({"put", "c", "4", "--if-version", version}).exit_code, 2);

  for (const char* k : {"s/a", "s/b", "s/c", "t/a"}) {
    ASSERT_EQ(Kvctl({"put", k, "v"}).exit_code, 0);
  }
  auto scan = Kvctl({"scan", "--prefix", "s/"});
  EXPECT_EQ(scan.exit_code, 0) << scan.err;
  EXPECT_THAT(scan.out, MatchesRegex("s/a\tv\t[0-9:]+\ns/b\tv\t[0-9:]+\ns/c\tv\t[0-9:]+\n"));
  auto limited = Kvctl({"--output", "json", "scan", "--start", "s/b", "--limit", "2"});
  EXPECT_THAT(limited.out, HasSubstr("\"count\":2"));
}

TEST_F(KvctlTest, ErrorsCarryTheServersMessage) {
  auto big = Kvctl({"put", std::string(5000, 'k'), "v"});
  EXPECT_EQ(big.exit_code, 2);
  EXPECT_THAT(big.err, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_THAT(big.err, HasSubstr("over the limit of 4096 bytes (--max-key-bytes)"));
  auto usage = Kvctl({"get"});
  EXPECT_EQ(usage.exit_code, 3);
  auto down = RunCommand({KvctlPath(), "--endpoint", "127.0.0.1:1", "--timeout", "2",
                          "get", "k"});
  EXPECT_EQ(down.exit_code, 2);
  EXPECT_THAT(down.err, HasSubstr("UNAVAILABLE"));
}

TEST_F(KvctlTest, HealthStatsAndBench) {
  auto health = Kvctl({"health"});
  EXPECT_EQ(health.exit_code, 0);
  EXPECT_THAT(health.out, HasSubstr("SERVING"));
  EXPECT_EQ(Kvctl({"put", "k", "v"}).exit_code, 0);
  auto stats = Kvctl({"stats"});
  EXPECT_EQ(stats.exit_code, 0) << stats.err;
  EXPECT_THAT(stats.out, MatchesRegex("(.|\n)*keys \\(incl. tombstones\\) +1\n(.|\n)*"));
  EXPECT_THAT(stats.out, MatchesRegex("(.|\n)*skipped \\(over limits\\) +0\n(.|\n)*"));
  auto bench = Kvctl({"bench", "--workload", "put", "--duration", "1", "--concurrency", "8",
                      "--keys", "1000", "--value-size", "100"});
  EXPECT_EQ(bench.exit_code, 0) << bench.err;
  EXPECT_THAT(bench.out, MatchesRegex("(.|\n)*[0-9.]+ ops/s(.|\n)*p99.9(.|\n)*"));
  auto json = Kvctl({"--output", "json", "bench", "--workload", "ping", "--duration", "1"});
  EXPECT_EQ(json.exit_code, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr("\"ops_per_sec\""));
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST_F(KvctlTest, GetOutWritesTheValueToAFile) {
  std::string binary("\x00\x01 binary\n\xff\xfe", 12);
  const std::string in = dir_.path() + "/in.bin";
  std::ofstream(in, std::ios::binary) << binary;
  ASSERT_EQ(Kvctl({"put", "blob", "--file", in}).exit_code, 0);

  const std::string out = dir_.path() + "/out.bin";
  auto get = Kvctl({"get", "blob", "--out", out});
  EXPECT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(get.out, "");
  EXPECT_EQ(ReadFile(out), binary);
  // Replaced whole; no temporary left behind.
  ASSERT_EQ(Kvctl({"put", "blob", "x"}).exit_code, 0);
  EXPECT_EQ(Kvctl({"get", "blob", "--out", out}).exit_code, 0);
  EXPECT_EQ(ReadFile(out), "x");
  for (const auto& e : std::filesystem::directory_iterator(dir_.path())) {
    EXPECT_THAT(e.path().string(), ::testing::Not(HasSubstr("kvctl-tmp")));
  }

  auto json = Kvctl({"--output", "json", "get", "blob", "--out", out});
  EXPECT_THAT(json.out, HasSubstr(",\"found\":true,\"out\":\"" + out + "\",\"bytes\":1,"));
  auto stdout_raw = Kvctl({"get", "blob", "--out", "-"});
  EXPECT_EQ(stdout_raw.out, "x");
  EXPECT_EQ(Kvctl({"--output", "json", "get", "blob", "--out", "-"}).exit_code, 3);

  // Not found: exit 1 and no file.
  const std::string missing = dir_.path() + "/missing.bin";
  EXPECT_EQ(Kvctl({"get", "nope", "--out", missing}).exit_code, 1);
  EXPECT_FALSE(std::filesystem::exists(missing));
  // A directory that does not exist: a usage error naming --out.
  auto bad = Kvctl({"get", "blob", "--out", dir_.path() + "/no/such/dir/f"});
  EXPECT_EQ(bad.exit_code, 3);
  EXPECT_THAT(bad.err, HasSubstr("cannot write --out"));
}

TEST_F(KvctlTest, OutputTable) {
  ASSERT_EQ(Kvctl({"put", "t/a", "short"}).exit_code, 0);
  ASSERT_EQ(Kvctl({"put", "t/longer-key", "a value\twith a tab"}).exit_code, 0);
  auto scan = Kvctl({"--output", "table", "scan", "--prefix", "t/"});
  EXPECT_EQ(scan.exit_code, 0) << scan.err;
  // Aligned columns (the tab escaped as in text): KEY 12 wide, VALUE 19.
  EXPECT_THAT(scan.out, MatchesRegex("KEY {11}VALUE {16}VERSION\n"
                                     "t/a {11}short {16}[0-9]+:[0-9]+\n"
                                     "t/longer-key  a value\\\\twith a tab  [0-9]+:[0-9]+\n"));
  auto get = Kvctl({"-o", "table", "get", "t/a"});
  EXPECT_THAT(get.out, MatchesRegex("KEY  VALUE  VERSION\nt/a  short  [0-9]+:[0-9]+\n"));
  auto put = Kvctl({"-o", "table", "put", "t/b", "v"});
  EXPECT_THAT(put.out, MatchesRegex("KEY  VERSION\nt/b  [0-9]+:[0-9]+\n"));
  auto health = Kvctl({"-o", "table", "health"});
  EXPECT_EQ(health.out, "ENDPOINT" + std::string(kvd_->address().size() - 6, ' ') +
                            "STATUS\n" + kvd_->address() + "  SERVING\n");
  auto stats = Kvctl({"-o", "table", "stats"});
  EXPECT_THAT(stats.out, MatchesRegex("FIELD +VALUE\n(.|\n)*keys \\(incl. tombstones\\) +3\n"
                                      "(.|\n)*\nPEER +LAST EXCHANGE +LAST FAILURE +"
                                      "REFUSED \\(CLOCK\\) +LAST ERROR\n"));
  auto verify = Kvctl({"-o", "table", "verify"});
  EXPECT_THAT(verify.out, MatchesRegex("MATCHED  KEYS  ROOT\nyes         3  [0-9a-f]+\n"));

  auto bad = Kvctl({"--output", "yaml", "health"});
  EXPECT_EQ(bad.exit_code, 3);
  EXPECT_THAT(bad.err, HasSubstr("--output"));
  EXPECT_THAT(bad.err, HasSubstr("yaml"));
}

// The script `kvctl completion bash` prints, sourced in bash: it registers
// itself and completes kvctl's real subcommands and option values.
TEST(KvctlCompletionTest, SourcedInBashItCompletes) {
  auto complete = [](const std::string& words) {
    return RunCommand(
        {"/bin/bash", "-c",
         "source <(\"$0\" completion bash) && complete -p kvctl && COMP_WORDS=(" + words +
             ") && COMP_CWORD=$((${#COMP_WORDS[@]} - 1)) && _kvctl && "
             "echo \"${COMPREPLY[*]}\"",
         KvctlPath()});
  };
  auto sn = complete("kvctl sn");
  ASSERT_EQ(sn.exit_code, 0) << sn.err;
  EXPECT_EQ(sn.out, "complete -o default -F _kvctl kvctl\nsnapshot\n");
  EXPECT_THAT(complete("kvctl snapshot ''").out, HasSubstr("\nsave\n"));
  EXPECT_THAT(complete("kvctl --output t").out, HasSubstr("\ntext table\n"));
  EXPECT_THAT(complete("kvctl -o json members r").out, HasSubstr("\nremove\n"));
  EXPECT_THAT(complete("kvctl ae ''").out, HasSubstr("\npause resume\n"));
  EXPECT_THAT(complete("kvctl get --o").out, HasSubstr("\n--out --output\n"));
  EXPECT_THAT(complete("kvctl bench --w").out, HasSubstr("\n--workload\n"));
  auto bad = RunCommand({KvctlPath(), "completion", "zsh"});
  EXPECT_EQ(bad.exit_code, 3);
}

}  // namespace
}  // namespace kv::testing
