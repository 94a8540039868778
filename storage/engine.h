// The storage engine interface: a few ordered byte maps ("columns") written
// in atomic batches. The RocksDB engine persists them; the in-memory engine
// serves tests and the simulator. Store (store.h) holds all record, version
// and Merkle logic on top, so both engines behave the same by construction.
//
// Thread safety: every Engine method is thread-safe. An Iterator is used by
// one thread at a time.
#ifndef KV_STORAGE_ENGINE_H_
#define KV_STORAGE_ENGINE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kv::storage {

enum class Column : int {
  kData = 0,    // user key -> EncodeRecordValue
  kIndex = 1,   // EncodeIndexKey -> EncodeIndexValue
  kMeta = 2,    // small named values: node id, HLC mark, tree depth
  kMerkle = 3,  // EncodeLeafKey -> leaf value; supports Merge (XOR/add)
};
inline constexpr int kNumColumns = 4;

// An ordered list of writes, applied all-or-nothing by Engine::Write.
class WriteBatch {
 public:
  enum class OpKind { kPut, kDelete, kMerge };
  struct Op {
    OpKind kind;
    Column column;
    std::string key;
    std::string value;
  };

  void Put(Column c, std::string key, std::string value) {
    ops_.push_back({OpKind::kPut, c, std::move(key), std::move(value)});
  }
  void Delete(Column c, std::string key) {
    ops_.push_back({OpKind::kDelete, c, std::move(key), {}});
  }
  // REQUIRES: c == Column::kMerkle; `operand` is an encoded LeafValue.
  void Merge(Column c, std::string key, std::string operand) {
    ops_.push_back({OpKind::kMerge, c, std::move(key), std::move(operand)});
  }
  const std::vector<Op>& ops() const { return ops_; }
  bool empty() const { return ops_.empty(); }

 private:
  std::vector<Op> ops_;
};

// Iterates one column in key order over the state at the iterator's
// creation (a snapshot: later writes are not seen).
class Iterator {
 public:
  virtual ~Iterator() = default;
  virtual void Seek(absl::string_view target) = 0;  // First key >= target.
  virtual void SeekToFirst() = 0;
  virtual bool Valid() const = 0;
  // REQUIRES: Valid().
  virtual void Next() = 0;
  virtual absl::string_view key() const = 0;
  virtual absl::string_view value() const = 0;
  // Not OK when iteration stopped because of an error (then !Valid()).
  virtual absl::Status status() const = 0;
};

// What an engine reports about its own memory and files, for monitoring
// (kvd's /metrics). Zero where the engine has no such thing.
struct EngineStats {
  int64_t memtable_bytes = 0;  // Write buffers in memory, every column.
  int64_t sst_bytes = 0;       // Table files on disk, every column.
  // Estimated bytes compaction still has to rewrite to bring every level
  // within its target size; growing: compaction falls behind the writes.
  int64_t pending_compaction_bytes = 0;
};

// The background work waiting, the most of any one column: memtables full
// and waiting for their flush (writes stop when a column has
// max_write_buffer_number of them), and table files in level 0 (writes slow
// down, then stop, as they pile up).
struct EngineBacklog {
  int64_t max_immutable_memtables = 0;
  int64_t max_l0_files = 0;
};

class Engine {
 public:
  virtual ~Engine() = default;

  // The value under `key`, or nullopt when there is none.
  // Errors: INTERNAL / DATA_LOSS / UNAVAILABLE from the underlying store.
  virtual absl::StatusOr<std::optional<std::string>> Get(
      Column column, absl::string_view key) = 0;

  // Applies every op of `batch` atomically, in order. Durability is the
  // engine's (see its options). Errors: as Get; on error nothing is applied.
  virtual absl::Status Write(const WriteBatch& batch) = 0;

  virtual std::unique_ptr<Iterator> NewIterator(Column column) = 0;

  // As Get for each of `keys` (values[i] for keys[i]), in one call, which an
  // engine may batch (RocksDB's MultiGet probes the filters and blocks of
  // all the keys together). The default: Get for each. Errors: as Get (the
  // first one).
  virtual absl::Status MultiGet(Column column, const std::vector<std::string>& keys,
                                std::vector<std::optional<std::string>>* values) {
    values->clear();
    for (const std::string& key : keys) {
      absl::StatusOr<std::optional<std::string>> v = Get(column, key);
      if (!v.ok()) return v.status();
      values->push_back(*std::move(v));
    }
    return absl::OkStatus();
  }

  // Reads for a background scan (anti-entropy streaming a range): as Get
  // for each of `keys` (values[i] for keys[i]) and as NewIterator, but what
  // they read is not added to the block cache, so a full sync of a peer
  // neither grows this process by the cache's size nor evicts the
  // foreground's working set. The defaults: the plain calls (engines without
  // a cache). Errors: as Get (the first one).
  virtual absl::Status ScanGet(Column column, const std::vector<std::string>& keys,
                               std::vector<std::optional<std::string>>* values) {
    return MultiGet(column, keys, values);
  }
  virtual std::unique_ptr<Iterator> NewScanIterator(Column column) {
    return NewIterator(column);
  }

  // Writes a consistent copy of every column, as of one moment between
  // batches, into the new directory `dir` (it must not exist; its parent
  // must), without blocking writes for long. The copy opens as an engine of
  // the same kind. Errors: UNIMPLEMENTED (the default: engines without
  // files); FAILED_PRECONDITION when dir exists; INTERNAL for I/O errors.
  virtual absl::Status Checkpoint(const std::string& dir) {
    return absl::UnimplementedError("this engine cannot checkpoint");
  }

  // Sizes of the engine's memory and files right now (the default: zeros,
  // for engines without either). Cheap enough for every metrics scrape.
  virtual EngineStats Stats() { return {}; }
  // Read often (server/storage_priority.h): only these figures.
  virtual EngineBacklog Backlog() { return {}; }
};

}  // namespace kv::storage

#endif  // KV_STORAGE_ENGINE_H_
