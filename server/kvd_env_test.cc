#include "server/kvd_env.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kv::server {
namespace {

using ::testing::HasSubstr;

// An app like kvd's: a config file and a few options of each kind.
struct App {
  std::string listen = "default:1";
  std::string data_dir = "default-dir";
  std::vector<std::string> seeds;
  bool sync = false;
  CLI::App app{"test"};
  App() {
    app.set_version_flag("--version", "v1");
    app.set_config("--config", "", "config");
    app.add_option("--listen", listen);
    app.add_option("--data-dir", data_dir);
    app.add_option("--seeds,--peers", seeds)->delimiter(',');
    app.add_flag("--sync", sync);
    UseEnvironment(app, "KVDTEST_");
  }
  void Parse(std::vector<std::string> args) {
    std::vector<char*> argv = {const_cast<char*>("kvd")};
    for (std::string& a : args) argv.push_back(a.data());
    app.parse(static_cast<int>(argv.size()), argv.data());
  }
};

class KvdEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = ::testing::TempDir() + "/kvd_env_test_" + std::to_string(getpid()) + ".conf";
    std::ofstream(config_) << "listen = config:2\ndata-dir = config-dir\n";
  }
  void TearDown() override {
    for (const char* v : {"KVDTEST_LISTEN", "KVDTEST_DATA_DIR", "KVDTEST_SEEDS",
                          "KVDTEST_SYNC", "KVDTEST_CONFIG"}) {
      unsetenv(v);
    }
    std::remove(config_.c_str());
  }
  std::string config_;
};

TEST_F(KvdEnvTest, Names) {
  EXPECT_EQ(EnvName("KVD_", "data-dir"), "KVD_DATA_DIR");
  EXPECT_EQ(EnvName("KVD_", "listen"), "KVD_LISTEN");
  App a;
  EXPECT_THAT(a.app.help(), HasSubstr("KVDTEST_DATA_DIR"));
  EXPECT_THAT(a.app.help(), HasSubstr("KVDTEST_CONFIG"));
  EXPECT_THAT(a.app.help(), ::testing::Not(HasSubstr("KVDTEST_VERSION")));
}

TEST_F(KvdEnvTest, DefaultsWithNothingSet) {
  App a;
  a.Parse({});
  EXPECT_EQ(a.listen, "default:1");
  EXPECT_FALSE(a.sync);
}

TEST_F(KvdEnvTest, EnvironmentOverDefault) {
  setenv("KVDTEST_LISTEN", "env:3", 1);
  setenv("KVDTEST_SEEDS", "a:1,b:2", 1);
  setenv("KVDTEST_SYNC", "true", 1);
  App a;
  a.Parse({});
  EXPECT_EQ(a.listen, "env:3");
  EXPECT_EQ(a.seeds, (std::vector<std::string>{"a:1", "b:2"}));
  EXPECT_TRUE(a.sync);
}

TEST_F(KvdEnvTest, FlagOverEnvironmentOverConfigOverDefault) {
  setenv("KVDTEST_LISTEN", "env:3", 1);
  App a;
  a.Parse({"--config", config_});
  EXPECT_EQ(a.listen, "env:3");           // Env beats the config file.
  EXPECT_EQ(a.data_dir, "config-dir");    // Config beats the default.
  App b;
  b.Parse({"--config", config_, "--listen", "flag:4"});
  EXPECT_EQ(b.listen, "flag:4");          // The flag beats both.
}

TEST_F(KvdEnvTest, ConfigFileFromTheEnvironment) {
  setenv("KVDTEST_CONFIG", config_.c_str(), 1);
  App a;
  a.Parse({});
  EXPECT_EQ(a.listen, "config:2");
  setenv("KVDTEST_CONFIG", "/nonexistent/kvd.conf", 1);
  App b;
  EXPECT_THROW(b.Parse({}), CLI::FileError);
}

TEST_F(KvdEnvTest, EmptyVariableCountsAsUnset) {
  setenv("KVDTEST_LISTEN", "", 1);
  App a;
  a.Parse({"--config", config_});
  EXPECT_EQ(a.listen, "config:2");
}

}  // namespace
}  // namespace kv::server
