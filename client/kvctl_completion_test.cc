#include "client/kvctl_completion.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace kv::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A small tree shaped like kvctl's: global options (one with choices, one
// flag), subcommands, a nested subcommand, a positional with choices.
struct ToyApp {
  ToyApp() {
    app.add_option("--output,-o", output)->check(CLI::IsMember({"text", "json", "table"}));
    app.add_option("--endpoint,-e", endpoint);
    app.add_flag("--all", all);
    CLI::App* get = app.add_subcommand("get", "");
    get->add_option("KEY", key);
    get->add_option("--out", out);
    CLI::App* members = app.add_subcommand("members", "");
    members->add_subcommand("remove", "")->add_option("NODE", key);
    app.add_subcommand("ae", "")->add_option("ACTION", key)->check(
        CLI::IsMember({"pause", "resume"}));
  }
  CLI::App app{"toy"};
  std::string output, endpoint, key, out;
  bool all = false;
};

TEST(BashCompletionTest, ScriptHoldsTheTree) {
  ToyApp toy;
  const std::string s = BashCompletion(toy.app, "toy");
  EXPECT_THAT(s, HasSubstr("complete -o default -F _toy toy\n"));
  // Options that take a value (skipped when finding the path), not --all.
  EXPECT_THAT(s, HasSubstr("--endpoint|--out|--output|-e|-o) skip=1"));
  EXPECT_THAT(s, HasSubstr("--output) words=\"text json table\""));
  EXPECT_THAT(s, HasSubstr("-o) words=\"text json table\""));
  EXPECT_THAT(s, HasSubstr("\"toy get\"|\"toy members\"|\"toy members remove\"|\"toy ae\")"));
  EXPECT_THAT(s, HasSubstr("\"toy\") words=\"get members ae\""));
  EXPECT_THAT(s, HasSubstr("\"toy ae\") words=\"pause resume\""));
  // A subcommand's options come first, then its parents'.
  EXPECT_THAT(s, HasSubstr("\"toy get\") words=\"--help -h --out --output -o --endpoint -e --all\""));
  EXPECT_THAT(s, Not(HasSubstr("KEY")));
}

// Runs the script in bash with COMP_WORDS = `words` (the cursor on the last)
// and returns COMPREPLY joined by spaces.
std::string Complete(const std::string& script, const std::string& words) {
  const std::string dir = ::testing::TempDir();
  const std::string path = absl::StrCat(dir, "/completion_test.bash");
  std::ofstream(path) << script;
  const std::string cmd = absl::StrCat(
      "bash -c 'source ", path, " && COMP_WORDS=(", words,
      ") && COMP_CWORD=$((${#COMP_WORDS[@]} - 1)) && _toy && echo \"${COMPREPLY[*]}\"'");
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return "popen failed";
  std::string out;
  char buf[256];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  if (rc != 0) return absl::StrCat("bash exit ", rc, ": ", out);
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

TEST(BashCompletionTest, CompletesInBash) {
  if (std::system("bash -c true") != 0) GTEST_SKIP() << "no bash";
  ToyApp toy;
  const std::string s = BashCompletion(toy.app, "toy");
  EXPECT_EQ(Complete(s, "toy g"), "get");
  EXPECT_EQ(Complete(s, "toy \"\""), "get members ae");
  EXPECT_EQ(Complete(s, "toy members r"), "remove");
  EXPECT_EQ(Complete(s, "toy ae \"\""), "pause resume");
  EXPECT_EQ(Complete(s, "toy --output t"), "text table");
  EXPECT_EQ(Complete(s, "toy -o json g"), "get");     // The value is skipped.
  EXPECT_EQ(Complete(s, "toy -e members g"), "get");  // Even one named like a subcommand.
  EXPECT_EQ(Complete(s, "toy --all g"), "get");       // A flag takes no value.
  EXPECT_EQ(Complete(s, "toy get --o"), "--out --output");
  EXPECT_EQ(Complete(s, "toy get --out \"\""), "");  // Files: bash's default.
  EXPECT_EQ(Complete(s, "toy get key \"\""), "");
}

}  // namespace
}  // namespace kv::client
