// The persistent Engine: one RocksDB database with a column family per
// Column. rocksdb::Status never leaves this file's implementation.
//
// Durability: every write goes through the write-ahead log, so an acknowledged
// write survives a crash of the process (kill -9). With `sync`, Write returns
// only after the log is fsynced (survives power loss); RocksDB groups
// concurrent writers into one fsync (group commit).
//
// Thread safety: thread-safe.
#ifndef KV_STORAGE_ROCKSDB_ENGINE_H_
#define KV_STORAGE_ROCKSDB_ENGINE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "storage/engine.h"

namespace kv::storage {

struct RocksDbOptions {
  std::string path;                           // Created when missing.
  bool sync = false;                          // fsync before acknowledging.
  size_t block_cache_bytes = 64 << 20;        // Shared by all columns.
  size_t memtable_budget_bytes = 128 << 20;   // All memtables together.
  // Open without writing anything (the directory must hold a database);
  // Write fails (INTERNAL). Used to inspect a snapshot.
  bool read_only = false;
  // RocksDB's flush and compaction threads at the lowest CPU priority (nice
  // 19): a foreground thread that wakes preempts them at once, and they
  // still get every cycle nothing else wants, but requests that keep the
  // cores busy starve them: memtables wait for their flush, and writes stop
  // until it ends. They belong to the process's default Env, so this holds
  // for every engine of the process from the first open that asks for it
  // on (RocksDB only lowers).
  bool low_priority_background = false;
};

// Opens (creating when missing, unless read_only) the database at
// options.path. Its Checkpoint is RocksDB's: SST files are hard-linked when
// dir is on the same file system (copied otherwise), the rest is copied.
// Errors: FAILED_PRECONDITION when another process holds the directory's
// lock; INTERNAL / DATA_LOSS for other RocksDB failures (the message says
// which path and what RocksDB reported).
absl::StatusOr<std::unique_ptr<Engine>> OpenRocksDbEngine(
    const RocksDbOptions& options);

}  // namespace kv::storage

#endif  // KV_STORAGE_ROCKSDB_ENGINE_H_
