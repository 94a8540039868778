#include "server/generation.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace kv::server {
namespace {

class GenerationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("generation_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(GenerationTest, FirstStartTakesTheClock) {
  auto g = NextGeneration(dir_.string(), 1'700'000'000'000);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(*g, 1'700'000'000'000u);
}

TEST_F(GenerationTest, RestartIsHigherEvenWhenTheClockSteppedBack) {
  ASSERT_TRUE(NextGeneration(dir_.string(), 5000).ok());
  auto same_ms = NextGeneration(dir_.string(), 5000);
  ASSERT_TRUE(same_ms.ok());
  EXPECT_EQ(*same_ms, 5001u);
  auto back = NextGeneration(dir_.string(), 100);  // The clock went back.
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, 5002u);
  auto later = NextGeneration(dir_.string(), 9000);
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(*later, 9000u);
}

TEST_F(GenerationTest, GarbageIsDataLossNamingTheFile) {
  std::ofstream(dir_ / "GENERATION") << "not a number\n";
  auto g = NextGeneration(dir_.string(), 1);
  EXPECT_EQ(g.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(g.status().message().find("GENERATION"), std::string::npos);
}

}  // namespace
}  // namespace kv::server
