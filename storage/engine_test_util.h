// Engine factories for typed tests: each makes a fresh engine and can
// "restart" it (reopen the same data).
#ifndef KV_STORAGE_ENGINE_TEST_UTIL_H_
#define KV_STORAGE_ENGINE_TEST_UTIL_H_

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "storage/memory_engine.h"
#include "storage/rocksdb_engine.h"

namespace kv::storage {

// The memory engine survives a "restart" by handing the same object back.
class MemoryEngineFactory {
 public:
  std::unique_ptr<Engine> Open() {
    if (saved_) return std::move(saved_);
    return std::make_unique<MemoryEngine>();
  }
  void Close(std::unique_ptr<Engine> e) { saved_ = std::move(e); }

 private:
  std::unique_ptr<Engine> saved_;
};

class RocksDbEngineFactory {
 public:
  RocksDbEngineFactory() {
    dir_ = std::filesystem::temp_directory_path() /
           ("kv_engine_test_" + std::to_string(getpid()) + "_" +
            std::to_string(counter_++));
    std::filesystem::remove_all(dir_);
  }
  ~RocksDbEngineFactory() { std::filesystem::remove_all(dir_); }
  std::unique_ptr<Engine> Open() {
    auto e = OpenRocksDbEngine(RocksDbOptions{.path = dir_.string()});
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? std::move(*e) : nullptr;
  }
  void Close(std::unique_ptr<Engine> e) { e.reset(); }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  static inline int counter_ = 0;
  std::filesystem::path dir_;
};

using EngineFactories = ::testing::Types<MemoryEngineFactory, RocksDbEngineFactory>;

}  // namespace kv::storage

#endif  // KV_STORAGE_ENGINE_TEST_UTIL_H_
