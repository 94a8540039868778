// FaultEngine: an Engine wrapper for tests that fails writes on command, in
// the spirit of LevelDB's fault_injection_test (an Env that stops writing
// when told to). It forwards everything to a base engine; a failed Write
// changes nothing in the base, as a real engine's failed write must not.
//
// The Engine interface has no separate sync: a Write is durable when the
// engine says so. A failing fsync (or a full disk, or RocksDB's background
// error state) shows up to the Store as a failing Write, which is what
// FailWrites models.
//
// Thread safety: thread-safe, like every Engine. Hooks run on the calling
// thread without the wrapper's lock held.
#ifndef KV_STORAGE_FAULT_ENGINE_H_
#define KV_STORAGE_FAULT_ENGINE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "storage/engine.h"

namespace kv::storage {

class FaultEngine final : public Engine {
 public:
  // `base` is owned; `base` may be a MemoryEngine or a RocksDB engine.
  explicit FaultEngine(std::unique_ptr<Engine> base) : base_(std::move(base)) {}

  // From now on, Write fails with `status` (which must not be OK), after
  // `after` more writes have succeeded. With `only_column`, only writes that
  // touch that column fail or count (e.g. Column::kMeta: the clock's
  // high-water mark); the others pass.
  void FailWrites(absl::Status status, int64_t after = 0,
                  std::optional<Column> only_column = std::nullopt) {
    absl::MutexLock lock(&mu_);
    fail_status_ = std::move(status);
    fail_after_ = after;
    only_column_ = only_column;
  }
  // Writes succeed again.
  void Heal() {
    absl::MutexLock lock(&mu_);
    fail_status_ = absl::OkStatus();
  }
  // Writes refused so far.
  int64_t failed_writes() const {
    absl::MutexLock lock(&mu_);
    return failed_writes_;
  }
  // Called at the start of every NewIterator / every Write that is not
  // failed (tests use them to line up concurrent callers). Empty: none.
  void SetIteratorHook(std::function<void(Column)> hook) {
    absl::MutexLock lock(&mu_);
    iterator_hook_ = std::move(hook);
  }
  void SetWriteHook(std::function<void(const WriteBatch&)> hook) {
    absl::MutexLock lock(&mu_);
    write_hook_ = std::move(hook);
  }

  absl::StatusOr<std::optional<std::string>> Get(
      Column column, absl::string_view key) override {
    return base_->Get(column, key);
  }

  absl::Status Write(const WriteBatch& batch) override {
    std::function<void(const WriteBatch&)> hook;
    {
      absl::MutexLock lock(&mu_);
      if (!fail_status_.ok() && Touches(batch)) {
        if (fail_after_ > 0) {
          --fail_after_;
        } else {
          ++failed_writes_;
          return fail_status_;
        }
      }
      hook = write_hook_;
    }
    if (hook) hook(batch);
    return base_->Write(batch);
  }

  EngineStats Stats() override { return base_->Stats(); }
  EngineBacklog Backlog() override { return base_->Backlog(); }

  std::unique_ptr<Iterator> NewIterator(Column column) override {
    std::function<void(Column)> hook;
    {
      absl::MutexLock lock(&mu_);
      hook = iterator_hook_;
    }
    if (hook) hook(column);
    return base_->NewIterator(column);
  }

 private:
  bool Touches(const WriteBatch& batch) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!only_column_.has_value()) return true;
    for (const WriteBatch::Op& op : batch.ops()) {
      if (op.column == *only_column_) return true;
    }
    return false;
  }

  const std::unique_ptr<Engine> base_;

  mutable absl::Mutex mu_;
  absl::Status fail_status_ ABSL_GUARDED_BY(mu_);  // OK: writes pass.
  int64_t fail_after_ ABSL_GUARDED_BY(mu_) = 0;    // Writes still let through.
  std::optional<Column> only_column_ ABSL_GUARDED_BY(mu_);
  int64_t failed_writes_ ABSL_GUARDED_BY(mu_) = 0;
  std::function<void(Column)> iterator_hook_ ABSL_GUARDED_BY(mu_);
  std::function<void(const WriteBatch&)> write_hook_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kv::storage

#endif  // KV_STORAGE_FAULT_ENGINE_H_
