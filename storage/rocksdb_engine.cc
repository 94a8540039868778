#include "storage/rocksdb_engine.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_buffer_manager.h>

#include <array>
#include <atomic>
#include <cstdarg>
#include <cstdio>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "storage/record.h"

namespace kv::storage {
namespace {

constexpr std::array<const char*, kNumColumns> kColumnNames = {
    "data", "hash_index", "meta", "merkle"};

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = absl::StrCat(what, ": ", s.ToString());
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsNoSpace()) {
    return absl::ResourceExhaustedError(absl::StrCat(msg, " (the disk is full)"));
  }
  if (s.IsBusy() || s.IsTryAgain() || s.IsTimedOut()) {
    return absl::UnavailableError(msg);
  }
  if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
    return absl::FailedPreconditionError(
        absl::StrCat(msg, " (is another kvd using this data directory?)"));
  }
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(msg);
  return absl::InternalError(msg);
}

// RocksDB's own log, warnings and errors only, to stderr (kvd's log) instead
// of a LOG file in the data directory: on a full disk RocksDB wrote its error
// report to a LOG file that had just failed, and Debian's build asserts on
// that (kvd aborted).
class StderrLogger final : public rocksdb::Logger {
 public:
  StderrLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    char line[2048];
    std::vsnprintf(line, sizeof(line), format, ap);
    std::fprintf(stderr, "rocksdb: %s\n", line);
  }
};

// Merkle leaves: XOR of digests, sum of counts (see record.h).
class LeafMergeOperator final : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice& /*key*/, const rocksdb::Slice* existing,
             const rocksdb::Slice& value, std::string* new_value,
             rocksdb::Logger* /*logger*/) const override {
    *new_value = MergeLeafValues(
        existing ? absl::string_view(existing->data(), existing->size())
                 : absl::string_view(),
        absl::string_view(value.data(), value.size()));
    return true;
  }
  const char* Name() const override { return "kv.MerkleLeafXor"; }
};

class RocksIterator final : public Iterator {
 public:
  explicit RocksIterator(std::unique_ptr<rocksdb::Iterator> it)
      : it_(std::move(it)) {}
  void Seek(absl::string_view target) override {
    it_->Seek(rocksdb::Slice(target.data(), target.size()));
  }
  void SeekToFirst() override { it_->SeekToFirst(); }
  bool Valid() const override { return it_->Valid(); }
  void Next() override { it_->Next(); }
  absl::string_view key() const override {
    rocksdb::Slice s = it_->key();
    return {s.data(), s.size()};
  }
  absl::string_view value() const override {
    rocksdb::Slice s = it_->value();
    return {s.data(), s.size()};
  }
  absl::Status status() const override {
    return FromRocks(it_->status(), "iterating");
  }

 private:
  std::unique_ptr<rocksdb::Iterator> it_;
};

class RocksDbEngine final : public Engine {
 public:
  RocksDbEngine(std::unique_ptr<rocksdb::DB> db,
                std::vector<rocksdb::ColumnFamilyHandle*> handles, bool sync)
      : db_(std::move(db)), handles_(std::move(handles)) {
    write_options_.sync = sync;
  }

  ~RocksDbEngine() override {
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
    db_->Close();
  }

  absl::StatusOr<std::optional<std::string>> Get(
      Column column, absl::string_view key) override {
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), Handle(column),
                                 rocksdb::Slice(key.data(), key.size()), &value);
    if (s.IsNotFound()) return std::nullopt;
    if (!s.ok()) return FromRocks(s, "reading");
    return value;
  }

  absl::Status MultiGet(Column column, const std::vector<std::string>& keys,
                        std::vector<std::optional<std::string>>* values) override {
    return BatchGet(column, keys, values, /*fill_cache=*/true);
  }

  absl::Status ScanGet(Column column, const std::vector<std::string>& keys,
                       std::vector<std::optional<std::string>>* values) override {
    return BatchGet(column, keys, values, /*fill_cache=*/false);
  }

  std::unique_ptr<Iterator> NewScanIterator(Column column) override {
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;
    return std::make_unique<RocksIterator>(
        std::unique_ptr<rocksdb::Iterator>(db_->NewIterator(ro, Handle(column))));
  }

  absl::Status Write(const WriteBatch& batch) override {
    rocksdb::WriteBatch wb;
    for (const WriteBatch::Op& op : batch.ops()) {
      rocksdb::ColumnFamilyHandle* h = Handle(op.column);
      rocksdb::Status s;
      switch (op.kind) {
        case WriteBatch::OpKind::kPut:
          s = wb.Put(h, op.key, op.value);
          break;
        case WriteBatch::OpKind::kDelete:
          s = wb.Delete(h, op.key);
          break;
        case WriteBatch::OpKind::kMerge:
          s = wb.Merge(h, op.key, op.value);
          break;
      }
      if (!s.ok()) return FromRocks(s, "building write batch");
    }
    if (write_failed_.load(std::memory_order_acquire)) {  // No lock per write.
      absl::MutexLock lock(&write_error_mu_);
      return write_error_;
    }
    rocksdb::Status s = db_->Write(write_options_, &wb);
    if (s.ok()) return absl::OkStatus();
    absl::Status status = FromRocks(s, "writing");
    if (s.IsIOError()) {
      // The log writer is left in an error state, and another append to it
      // trips an assertion in Debian's RocksDB build. Refuse every later
      // write until the restart, which replays the log up to the last good
      // write.
      absl::MutexLock lock(&write_error_mu_);
      if (write_error_.ok()) {
        write_error_ = absl::Status(
            status.code(),
            absl::StrCat(status.message(),
                         "; this node takes no more writes until it is restarted "
                         "(free space first if the disk is full)"));
        write_failed_.store(true, std::memory_order_release);
      }
      return write_error_;
    }
    return status;
  }

  EngineStats Stats() override {
    // Summed over the column families; RocksDB keeps these figures up to
    // date itself (no file or memtable scan). A property RocksDB cannot give
    // stays 0.
    auto sum = [this](const char* property) -> int64_t {
      uint64_t v = 0;
      return db_->GetAggregatedIntProperty(property, &v) ? static_cast<int64_t>(v) : 0;
    };
    EngineStats stats;
    stats.memtable_bytes = sum(rocksdb::DB::Properties::kCurSizeAllMemTables.c_str());
    stats.sst_bytes = sum(rocksdb::DB::Properties::kTotalSstFilesSize.c_str());
    stats.pending_compaction_bytes =
        sum(rocksdb::DB::Properties::kEstimatePendingCompactionBytes.c_str());
    return stats;
  }

  EngineBacklog Backlog() override {
    EngineBacklog backlog;
    for (rocksdb::ColumnFamilyHandle* cf : handles_) {
      uint64_t v = 0;
      if (db_->GetIntProperty(cf, rocksdb::DB::Properties::kNumImmutableMemTable, &v)) {
        backlog.max_immutable_memtables =
            std::max(backlog.max_immutable_memtables, static_cast<int64_t>(v));
      }
      std::string files;
      if (db_->GetProperty(cf, rocksdb::DB::Properties::kNumFilesAtLevelPrefix + "0",
                           &files)) {
        backlog.max_l0_files =
            std::max<int64_t>(backlog.max_l0_files, std::atoll(files.c_str()));
      }
    }
    return backlog;
  }

  std::unique_ptr<Iterator> NewIterator(Column column) override {
    return std::make_unique<RocksIterator>(std::unique_ptr<rocksdb::Iterator>(
        db_->NewIterator(rocksdb::ReadOptions(), Handle(column))));
  }

  absl::Status Checkpoint(const std::string& dir) override {
    rocksdb::Checkpoint* raw = nullptr;
    rocksdb::Status s = rocksdb::Checkpoint::Create(db_.get(), &raw);
    if (!s.ok()) return FromRocks(s, "starting a checkpoint");
    std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
    // The default log_size_for_flush (0) flushes the memtables first, so the
    // copy holds little write-ahead log; batches are atomic across columns
    // either way (the live WAL files are copied up to one batch boundary).
    s = checkpoint->CreateCheckpoint(dir);
    if (s.IsInvalidArgument()) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot checkpoint into ", dir, ": ", s.ToString()));
    }
    return FromRocks(s, absl::StrCat("checkpointing into ", dir));
  }

 private:
  // MultiGet and ScanGet: RocksDB's MultiGet, adding what it reads to the
  // block cache or not.
  absl::Status BatchGet(Column column, const std::vector<std::string>& keys,
                        std::vector<std::optional<std::string>>* values, bool fill_cache) {
    rocksdb::ReadOptions ro;
    ro.fill_cache = fill_cache;
    std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
    std::vector<rocksdb::PinnableSlice> pinned(keys.size());
    std::vector<rocksdb::Status> statuses(keys.size());
    db_->MultiGet(ro, Handle(column), keys.size(), slices.data(), pinned.data(),
                  statuses.data());
    values->assign(keys.size(), std::nullopt);
    for (size_t i = 0; i < keys.size(); ++i) {
      if (statuses[i].IsNotFound()) continue;
      if (!statuses[i].ok()) return FromRocks(statuses[i], "reading");
      (*values)[i] = pinned[i].ToString();
    }
    return absl::OkStatus();
  }

  rocksdb::ColumnFamilyHandle* Handle(Column c) {
    return handles_[static_cast<int>(c) + 1];  // [0] is "default".
  }

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::WriteOptions write_options_;
  // The first failed log write (an I/O error); OK while writes work.
  absl::Mutex write_error_mu_;
  absl::Status write_error_ ABSL_GUARDED_BY(write_error_mu_);
  std::atomic<bool> write_failed_{false};  // Set once write_error_ is.
};

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> OpenRocksDbEngine(
    const RocksDbOptions& options) {
  auto cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.cache_index_and_filter_blocks = true;

  rocksdb::DBOptions db_options;
  if (options.low_priority_background) {
    // Each thread lowers itself when it next takes a job (a flush, a
    // compaction).
    rocksdb::Env* env = rocksdb::Env::Default();
    env->LowerThreadPoolCPUPriority(rocksdb::Env::Priority::HIGH, rocksdb::CpuPriority::kLow);
    env->LowerThreadPoolCPUPriority(rocksdb::Env::Priority::LOW, rocksdb::CpuPriority::kLow);
  }
  db_options.create_if_missing = true;
  db_options.info_log = std::make_shared<StderrLogger>();
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  // Memtables are not charged to the block cache: the cache keeps data
  // blocks, the budget bounds memtables on their own.
  db_options.write_buffer_manager =
      std::make_shared<rocksdb::WriteBufferManager>(options.memtable_budget_bytes);
  db_options.keep_log_file_num = 3;
  // After a crash, replay the WAL into memtables and serve; flushing them is
  // left to the background (restart time is what a crashed node's peers and
  // clients wait for).
  db_options.avoid_flush_during_recovery = true;
  // The meta column is written about once a second and never fills its
  // memtable: without a cap, it would pin every WAL file since the first
  // start, and each restart would replay them all. Past the cap RocksDB
  // flushes the columns holding the oldest log.
  db_options.max_total_wal_size = 64 << 20;
  // Few cores: writers waiting for the write group block instead of
  // spinning with sched_yield, which starved the request threads.
  db_options.enable_write_thread_adaptive_yield = false;
  // Required by the vector memtable of the Merkle column; local writes come
  // from one committer thread anyway (Store::WriteAsync).
  db_options.allow_concurrent_memtable_write = false;

  rocksdb::ColumnFamilyOptions base;
  base.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  base.write_buffer_size = 32 << 20;
  base.max_write_buffer_number = 3;
  // Flushes and the first compactions stay uncompressed (cheap on CPU, the
  // scarce resource on small machines); older data is compressed with LZ4.
  base.compression_per_level = {rocksdb::kNoCompression, rocksdb::kNoCompression,
                                rocksdb::kLZ4Compression};

  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  cfs.emplace_back(rocksdb::kDefaultColumnFamilyName, base);
  for (const char* name : kColumnNames) {
    rocksdb::ColumnFamilyOptions cf = base;
    if (absl::string_view(name) == "merkle") {
      cf.merge_operator = std::make_shared<LeafMergeOperator>();
      cf.write_buffer_size = 4 << 20;
      // Written on every write, read only at start and by verification
      // (through iterators): an append-only vector memtable makes the
      // per-write insert O(1) instead of a skiplist search.
      cf.memtable_factory = std::make_shared<rocksdb::VectorRepFactory>();
    } else if (absl::string_view(name) == "hash_index") {
      // Every write inserts into the data and hash-index skiplists, and the
      // inserts' cache misses grow with the memtable: smaller memtables
      // cost fewer misses than their extra flushes cost (store_bench, 600k
      // rewrites of 100k keys: 20.7-21.1 us of CPU per write with 32 MiB
      // for both, 15.7-17.0 us with 16 and 8 MiB).
      cf.write_buffer_size = 8 << 20;
    } else if (absl::string_view(name) == "data") {
      cf.write_buffer_size = 16 << 20;
      // A bloom filter over whole keys lets a lookup of a key that is not in
      // the memtable (a new key, or one flushed) skip the skiplist search.
      cf.memtable_whole_key_filtering = true;
      cf.memtable_prefix_bloom_size_ratio = 0.05;
    } else if (absl::string_view(name) == "meta") {
      cf.write_buffer_size = 1 << 20;
    }
    cfs.emplace_back(name, cf);
  }

  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s =
      options.read_only
          ? rocksdb::DB::OpenForReadOnly(db_options, options.path, cfs, &handles, &raw)
          : rocksdb::DB::Open(db_options, options.path, cfs, &handles, &raw);
  if (!s.ok()) {
    return FromRocks(s, absl::StrCat("opening RocksDB at ", options.path));
  }
  return std::unique_ptr<Engine>(std::make_unique<RocksDbEngine>(
      std::unique_ptr<rocksdb::DB>(raw), std::move(handles), options.sync));
}

}  // namespace kv::storage
