// An Engine held in memory: for unit tests and the simulator. Nothing is
// persisted; "restarting" a node in the simulator keeps the same object.
//
// Thread safety: thread-safe. Iterators are snapshots: each column is a
// copy-on-write map, copied only when a write meets a live iterator.
#ifndef KV_STORAGE_MEMORY_ENGINE_H_
#define KV_STORAGE_MEMORY_ENGINE_H_

#include <array>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "storage/engine.h"

namespace kv::storage {

class MemoryEngine final : public Engine {
 public:
  MemoryEngine();

  absl::StatusOr<std::optional<std::string>> Get(Column column,
                                                 absl::string_view key) override;
  absl::Status Write(const WriteBatch& batch) override;
  std::unique_ptr<Iterator> NewIterator(Column column) override;

  // Test hook: makes every later Write fail with `status` (OK to clear).
  void FailWrites(absl::Status status);

 private:
  using Map = std::map<std::string, std::string, std::less<>>;

  absl::Mutex mu_;
  std::array<std::shared_ptr<Map>, kNumColumns> columns_ ABSL_GUARDED_BY(mu_);
  absl::Status fail_writes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kv::storage

#endif  // KV_STORAGE_MEMORY_ENGINE_H_
