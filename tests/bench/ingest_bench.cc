// ingest_bench: what a full sync's receiver would save by ingesting table
// files instead of writing through memtables (the step #14 leaves next).
// RocksDB alone, no kvd: n records in hash order, as a full sync streams
// them, into a data column (key -> 116-byte record value) and a hash-index
// column (8-byte hash + key -> 32 bytes), with kvd's memtable sizes, either
//   writebatch: WriteBatch of 1 000 records each (what ApplyBatch does), or
//   ingest:     chunks of --chunk records, each written to two table files
//               (SstFileWriter; the data column's sorted by key) and
//               ingested into both columns at once (IngestExternalFiles).
// Prints the process CPU per record to store them, and again once flushes
// and compactions have settled. Run it pinned (taskset -c 0) for CPU figures.
// It measures a bound, not a design: the Merkle column, the read of each
// key's state and concurrent writes (which ingestion must not shadow) are
// left out.
//
//   ingest_bench [--n N] [--chunk C] [--rounds R] [--dir D]
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/table.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "storage/record.h"

namespace {

double CpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

bool Check(const rocksdb::Status& s, const char* what) {
  if (s.ok()) return true;
  std::fprintf(stderr, "ingest_bench: %s: %s\n", what, s.ToString().c_str());
  return false;
}

struct Result {
  double wall_s = 0, store_cpu_s = 0, settled_cpu_s = 0;
};

// Stores `keys` (hash, key; in hash order) into a new database in `dir`.
bool Run(const std::string& dir, bool ingest, int chunk,
         const std::vector<std::pair<uint64_t, std::string>>& keys, Result* r) {
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  rocksdb::Options db;
  db.create_if_missing = true;
  db.create_missing_column_families = true;
  db.max_background_jobs = 2;
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  rocksdb::ColumnFamilyOptions base;
  base.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  rocksdb::ColumnFamilyOptions data = base, index = base;
  data.write_buffer_size = 16 << 20;  // As kvd's (storage/rocksdb_engine.cc).
  index.write_buffer_size = 8 << 20;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, base}, {"data", data}, {"hash_index", index}};
  std::vector<rocksdb::ColumnFamilyHandle*> h;
  rocksdb::DB* raw = nullptr;
  if (!Check(rocksdb::DB::Open(rocksdb::DBOptions(db), dir + "/db", cfs, &h, &raw), "open")) {
    return false;
  }
  std::unique_ptr<rocksdb::DB> d(raw);
  const std::string value(116, 'v'), index_value(32, 'i');
  const int n = static_cast<int>(keys.size());
  const double c0 = CpuSeconds();
  const auto w0 = std::chrono::steady_clock::now();
  const int step = ingest ? chunk : 1000;
  bool ok = true;
  for (int b = 0; b < n && ok; b += step) {
    const int e = std::min(n, b + step);
    if (!ingest) {
      rocksdb::WriteBatch wb;
      for (int i = b; i < e; ++i) {
        (void)wb.Put(h[1], keys[i].second, value);
        (void)wb.Put(h[2], kv::storage::EncodeIndexKey(keys[i].first, keys[i].second),
                     index_value);
      }
      ok = Check(d->Write(rocksdb::WriteOptions(), &wb), "write");
      continue;
    }
    std::vector<std::string> sorted;
    for (int i = b; i < e; ++i) sorted.push_back(keys[i].second);
    std::sort(sorted.begin(), sorted.end());
    const std::string data_file = dir + "/data.sst", index_file = dir + "/index.sst";
    rocksdb::SstFileWriter wd(rocksdb::EnvOptions(), rocksdb::Options(rocksdb::DBOptions(db), data));
    rocksdb::SstFileWriter wi(rocksdb::EnvOptions(), rocksdb::Options(rocksdb::DBOptions(db), index));
    ok = Check(wd.Open(data_file), "open data file");
    for (size_t i = 0; ok && i < sorted.size(); ++i) ok = Check(wd.Put(sorted[i], value), "put");
    ok = ok && Check(wd.Finish(), "finish data file") && Check(wi.Open(index_file), "open index file");
    for (int i = b; ok && i < e; ++i) {
      ok = Check(wi.Put(kv::storage::EncodeIndexKey(keys[i].first, keys[i].second), index_value),
                 "put");
    }
    ok = ok && Check(wi.Finish(), "finish index file");
    rocksdb::IngestExternalFileArg a, i;
    a.column_family = h[1];
    a.external_files = {data_file};
    a.options.move_files = true;
    i.column_family = h[2];
    i.external_files = {index_file};
    i.options.move_files = true;
    ok = ok && Check(d->IngestExternalFiles({a, i}), "ingest");
  }
  if (!ok) return false;
  r->wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
  r->store_cpu_s = CpuSeconds() - c0;
  (void)d->Flush(rocksdb::FlushOptions(), {h[1], h[2]});
  while (true) {
    uint64_t busy = 0;
    for (auto* c : {h[1], h[2]}) {
      uint64_t v = 0;
      if (d->GetIntProperty(c, "rocksdb.estimate-pending-compaction-bytes", &v)) busy += v;
      if (d->GetIntProperty(c, "rocksdb.num-running-compactions", &v)) busy += v;
      if (d->GetIntProperty(c, "rocksdb.num-running-flushes", &v)) busy += v;
    }
    if (busy == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  r->settled_cpu_s = CpuSeconds() - c0;
  for (auto* c : h) (void)d->DestroyColumnFamilyHandle(c);
  return Check(d->Close(), "close");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ingest_bench: memtable writes vs table-file ingestion for a full sync's records"};
  int n = 1000000, chunk = 32768, rounds = 2;
  std::string dir = "/tmp/ingest_bench";
  app.add_option("--n", n, "Records")->check(CLI::Range(1, 100000000))->capture_default_str();
  app.add_option("--chunk", chunk, "Records per ingested pair of files (32 768: one 4 MiB turn)")
      ->check(CLI::Range(1, 10000000))
      ->capture_default_str();
  app.add_option("--rounds", rounds, "Times each way runs, alternated")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app.add_option("--dir", dir, "Scratch directory (emptied)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::vector<std::pair<uint64_t, std::string>> keys;
  keys.reserve(n);
  for (int i = 0; i < n; ++i) {
    char k[32];
    std::snprintf(k, sizeof(k), "key%010d", i);
    keys.emplace_back(kv::storage::KeyHash(k), k);
  }
  std::sort(keys.begin(), keys.end());  // Hash order, as streamed.
  for (int round = 1; round <= rounds; ++round) {
    for (const bool ingest : {false, true}) {
      Result r;
      if (!Run(dir, ingest, chunk, keys, &r)) return 1;
      std::printf("round %d %-10s %d records: %.2f s wall, %.2f us CPU per record to store, "
                  "%.2f us with flushes and compactions settled\n",
                  round, ingest ? "ingest" : "writebatch", n, r.wall_s, r.store_cpu_s * 1e6 / n,
                  r.settled_cpu_s * 1e6 / n);
    }
  }
  std::filesystem::remove_all(dir);
  return 0;
}
