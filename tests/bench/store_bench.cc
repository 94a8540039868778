// store_bench: the CPU cost of one local write in the storage layer alone
// (Store::Write over RocksDB: read the old record, write data, hash index and
// Merkle leaf in one batch), single-threaded, no gRPC.
//
//   store_bench [--writes N] [--keys K] [--group G] [--value-size B] [--dir D]
//               [--mode write|apply]
//
// write (the default): keys are drawn uniformly from K keys ("key%010u"), G
// distinct keys per Store::Write call. apply: what a full sync costs the
// node receiving it in the store: N new keys from another node, in hash
// order as anti-entropy streams them, G per Store::ApplyBatch call (as
// anti-entropy applies them: not added to the key-state cache) into an empty
// store. Prints writes/s and microseconds per write (or per record).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/str_format.h"
#include "storage/rocksdb_engine.h"
#include "storage/store.h"

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: store_bench [--writes N] [--keys K] [--group G] "
               "[--value-size B] [--dir D] [--mode write|apply]\n");
  return 3;
}

// --mode apply: `n` new records from another node, in hash order, `group`
// per ApplyBatch, into `store` (empty).
int Apply(kv::storage::Store& store, uint64_t n, uint64_t group, const std::string& value) {
  std::vector<std::pair<uint64_t, std::string>> keys;
  keys.reserve(n);
  for (uint64_t k = 0; k < n; ++k) {
    std::string key = absl::StrFormat("key%010u", k);
    keys.emplace_back(kv::storage::KeyHash(key), std::move(key));
  }
  std::sort(keys.begin(), keys.end());
  const kv::storage::Version version{kv::storage::HlcFromMillis(1'700'000'000'000), 42};
  kv::storage::ApplyOptions options;
  options.cache_new_keys = false;
  const auto start = std::chrono::steady_clock::now();
  std::vector<kv::storage::Record> batch;
  for (uint64_t b = 0; b < n; b += group) {
    batch.clear();
    for (uint64_t i = b; i < std::min(n, b + group); ++i) {
      batch.push_back(kv::storage::Record{keys[i].second, version, false, value});
    }
    auto r = store.ApplyBatch(batch, options);
    if (!r.ok() || r->applied != static_cast<int64_t>(batch.size())) {
      std::fprintf(stderr, "store_bench: apply: %s\n",
                   r.ok() ? "not every record applied" : r.status().ToString().c_str());
      return 2;
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("store_bench: applied %llu new records (%llu per call, %zu-byte values): "
              "%.0f records/s, %.2f us per record\n",
              static_cast<unsigned long long>(n), static_cast<unsigned long long>(group),
              value.size(), n / secs, secs * 1e6 / n);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t writes = 300000, keys = 100000, group = 1, value_size = 100;
  std::string dir, mode = "write";
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) return Usage();
    const char* v = argv[++i];
    bool ok = true;
    if (flag == "--writes") ok = absl::SimpleAtoi(v, &writes);
    else if (flag == "--keys") ok = absl::SimpleAtoi(v, &keys);
    else if (flag == "--group") ok = absl::SimpleAtoi(v, &group);
    else if (flag == "--value-size") ok = absl::SimpleAtoi(v, &value_size);
    else if (flag == "--dir") dir = v;
    else if (flag == "--mode") ok = (mode = v) == "write" || mode == "apply";
    else ok = false;
    if (!ok || keys == 0 || group == 0 || group > keys) return Usage();
  }
  // As kvd does (server/kvd_main.cc): the deadlock detector's bookkeeping
  // costs every lock.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const bool temp = dir.empty();
  if (temp) {
    dir = (std::filesystem::temp_directory_path() /
           absl::StrFormat("store_bench_%d", getpid()))
              .string();
  }
  std::filesystem::remove_all(dir);
  auto engine = kv::storage::OpenRocksDbEngine(kv::storage::RocksDbOptions{.path = dir});
  if (!engine.ok()) {
    std::fprintf(stderr, "store_bench: %s\n", engine.status().ToString().c_str());
    return 2;
  }
  auto store = kv::storage::Store::Open(std::move(*engine), kv::storage::StoreOptions{});
  if (!store.ok()) {
    std::fprintf(stderr, "store_bench: %s\n", store.status().ToString().c_str());
    return 2;
  }
  std::mt19937_64 rng(1);
  const std::string value(value_size, 'x');
  if (mode == "apply") {
    const int rc = Apply(**store, writes, group, value);
    store->reset();
    if (temp) std::filesystem::remove_all(dir);
    return rc;
  }
  uint64_t done = 0;
  const auto start = std::chrono::steady_clock::now();
  while (done < writes) {
    std::set<uint64_t> picked;
    while (picked.size() < group) picked.insert(rng() % keys);
    std::vector<kv::storage::Mutation> muts;
    for (uint64_t k : picked) {
      muts.push_back({absl::StrFormat("key%010u", k), false, value, {}});
    }
    auto r = (*store)->Write(muts);
    if (!r.ok()) {
      std::fprintf(stderr, "store_bench: %s\n", r.status().ToString().c_str());
      return 2;
    }
    done += muts.size();
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("store_bench: %llu writes (%llu keys, %llu per call, %llu-byte values): "
              "%.0f writes/s, %.2f us per write\n",
              static_cast<unsigned long long>(done), static_cast<unsigned long long>(keys),
              static_cast<unsigned long long>(group),
              static_cast<unsigned long long>(value_size), done / secs, secs * 1e6 / done);
  store->reset();
  if (temp) std::filesystem::remove_all(dir);
  return 0;
}
