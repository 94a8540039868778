#include "client/bench.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "client/kvctl_util.h"
#include "client/latency_histogram.h"

namespace kv::client {

absl::StatusOr<Workload> ParseWorkload(absl::string_view name) {
  if (name == "ping") return Workload::kPing;
  if (name == "get") return Workload::kGet;
  if (name == "put") return Workload::kPut;
  if (name == "mixed") return Workload::kMixed;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown workload \"", name, "\": want ping|get|put|mixed"));
}

const char* WorkloadName(Workload w) {
  switch (w) {
    case Workload::kPing:
      return "ping";
    case Workload::kGet:
      return "get";
    case Workload::kPut:
      return "put";
    case Workload::kMixed:
      return "mixed";
  }
  return "?";
}

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kHistogramShards = 16;
constexpr int kMaxPreloadSlots = 8;

void SetKey(uint64_t k, std::string* out) {
  char buf[32];
  const int n = std::snprintf(buf, sizeof(buf), "key%010llu",
                              static_cast<unsigned long long>(k));
  out->assign(buf, n);
}

// Drives `slots` calls in flight. One Runner per RunBench; Preload() and
// Run() are called one after the other from the same thread.
class Runner {
 public:
  Runner(std::vector<std::unique_ptr<Client>> clients,
         const BenchOptions& options)
      : options_(options), clients_(std::move(clients)) {
    std::mt19937_64 rng(options.seed);
    value_.resize(options.value_size);
    for (char& c : value_) c = static_cast<char>('!' + rng() % 94);
    slots_.reserve(options.concurrency);
    for (int i = 0; i < options.concurrency; ++i) {
      auto slot = std::make_unique<Slot>();
      slot->index = i;
      slot->client = clients_[i % clients_.size()].get();
      std::seed_seq seq{options.seed, static_cast<uint64_t>(i)};
      slot->rng.seed(seq);
      slot->put_req.set_value(value_);
      slot->put_req.set_consistency(ToProto(options.consistency));
      slot->get_req.set_consistency(ToProto(options.consistency));
      slots_.push_back(std::move(slot));
    }
    const uint64_t per_key = options.value_size + 32;
    batch_size_ = std::clamp<uint64_t>((256 << 10) / per_key, 1, 1000);
  }

  absl::Status Preload() {
    phase_ = Phase::kPreload;
    const int n = std::min(options_.concurrency, kMaxPreloadSlots);
    const Clock::time_point start = Clock::now();
    StartSlots(n);
    while (!done_->WaitForNotificationWithTimeout(absl::Seconds(1))) {
      if (options_.progress) {
        std::fprintf(stderr, "\rpreload: %llu/%llu keys",
                     static_cast<unsigned long long>(preloaded_.load()),
                     static_cast<unsigned long long>(options_.keys));
      }
    }
    const double secs =
        std::chrono::duration<double>(Clock::now() - start).count();
    if (options_.progress) std::fputs("\r\033[K", stderr);
    absl::MutexLock lock(&mu_);
    if (errors_.load() > 0) {
      return absl::Status(
          first_error_status_.code(),
          absl::StrCat("preload failed: ", first_error_status_.message()));
    }
    std::fprintf(stderr, "preload: %llu keys in %.2f s\n",
                 static_cast<unsigned long long>(preloaded_.load()), secs);
    return absl::OkStatus();
  }

  BenchResult Run() {
    phase_ = Phase::kRun;
    ops_ = 0;
    errors_ = 0;
    stop_ = false;
    const Clock::time_point start = Clock::now();
    const Clock::time_point end =
        start + absl::ToChronoNanoseconds(options_.duration);
    StartSlots(options_.concurrency);
    uint64_t last_ops = 0;
    Clock::time_point last_tick = start;
    Clock::time_point next_tick = start + std::chrono::seconds(1);
    while (true) {
      std::this_thread::sleep_until(std::min(next_tick, end));
      const Clock::time_point now = Clock::now();
      if (now >= end) break;
      if (options_.progress) {
        const uint64_t ops = ops_.load(std::memory_order_relaxed);
        const double dt =
            std::chrono::duration<double>(now - last_tick).count();
        std::fprintf(stderr, "\r[%4.0fs] %.0f ops/s, %llu errors\033[K",
                     std::chrono::duration<double>(now - start).count(),
                     dt > 0 ? (ops - last_ops) / dt : 0.0,
                     static_cast<unsigned long long>(errors_.load()));
        last_ops = ops;
        last_tick = now;
      }
      next_tick += std::chrono::seconds(1);
    }
    stop_ = true;
    done_->WaitForNotification();
    const double elapsed =
        std::chrono::duration<double>(Clock::now() - start).count();
    if (options_.progress) std::fputs("\r\033[K", stderr);

    LatencyHistogram all;
    for (Shard& shard : shards_) {
      absl::MutexLock lock(&shard.mu);
      all.Merge(shard.histogram);
    }
    BenchResult r;
    r.workload = options_.workload;
    r.concurrency = options_.concurrency;
    r.channels = static_cast<int>(clients_.size());
    r.seed = options_.seed;
    r.elapsed_s = elapsed;
    r.ops = ops_.load();
    r.errors = errors_.load();
    r.ops_per_sec = elapsed > 0 ? r.ops / elapsed : 0;
    r.p50_us = all.Percentile(50) / 1e3;
    r.p90_us = all.Percentile(90) / 1e3;
    r.p99_us = all.Percentile(99) / 1e3;
    r.p999_us = all.Percentile(99.9) / 1e3;
    r.max_us = all.Max() / 1e3;
    r.mean_us = all.Mean() / 1e3;
    absl::MutexLock lock(&mu_);
    if (!first_error_status_.ok()) {
      r.first_error =
          absl::StrCat(absl::StatusCodeToString(first_error_status_.code()),
                       ": ", first_error_status_.message());
    }
    return r;
  }

 private:
  enum class Phase { kPreload, kRun };
  enum class Op { kPing, kGet, kPut, kBatch };

  // The state of one call in flight. Touched only by the thread that starts
  // the call and then by its completion callback (ordered by gRPC), never
  // concurrently.
  struct Slot {
    int index = 0;
    Client* client = nullptr;
    std::mt19937_64 rng;
    std::optional<grpc::ClientContext> ctx;
    Clock::time_point start;
    uint64_t batch_keys = 0;  // Keys in the batch in flight (preload).
    kv::v1::PingRequest ping_req;
    kv::v1::PingResponse ping_resp;
    kv::v1::GetRequest get_req;
    kv::v1::GetResponse get_resp;
    kv::v1::PutRequest put_req;  // value set once in the constructor.
    kv::v1::PutResponse put_resp;
    kv::v1::BatchWriteRequest batch_req;
    kv::v1::BatchWriteResponse batch_resp;
  };

  struct Shard {
    absl::Mutex mu;
    LatencyHistogram histogram ABSL_GUARDED_BY(mu);
  };

  void StartSlots(int n) {
    done_.emplace();
    active_ = n;
    for (int i = 0; i < n; ++i) Issue(slots_[i].get());
  }

  void SlotFinished() {
    if (active_.fetch_sub(1) == 1) done_->Notify();
  }

  void Issue(Slot* s) {
    if (stop_.load(std::memory_order_relaxed)) {
      SlotFinished();
      return;
    }
    Op op = Op::kPing;
    if (phase_ == Phase::kPreload) {
      const uint64_t first = next_key_.fetch_add(batch_size_);
      if (first >= options_.keys) {
        SlotFinished();
        return;
      }
      const uint64_t last = std::min(first + batch_size_, options_.keys);
      s->batch_keys = last - first;
      s->batch_req.clear_mutations();
      for (uint64_t k = first; k < last; ++k) {
        kv::v1::Mutation* m = s->batch_req.add_mutations();
        SetKey(k, m->mutable_key());
        m->set_value(value_);
      }
      op = Op::kBatch;
    } else {
      switch (options_.workload) {
        case Workload::kPing:
          op = Op::kPing;
          break;
        case Workload::kGet:
          op = Op::kGet;
          break;
        case Workload::kPut:
          op = Op::kPut;
          break;
        case Workload::kMixed:
          op = (s->rng() & 1) ? Op::kGet : Op::kPut;
          break;
      }
      if (op != Op::kPing) {
        const uint64_t k = std::uniform_int_distribution<uint64_t>(
            0, options_.keys - 1)(s->rng);
        SetKey(k, op == Op::kGet ? s->get_req.mutable_key()
                                 : s->put_req.mutable_key());
      }
    }
    s->ctx.emplace();
    s->client->PrepareContext(&*s->ctx);
    auto done = [this, s](grpc::Status status) { OnDone(s, status); };
    kv::v1::KV::Stub::async_interface* async = s->client->kv_stub()->async();
    s->start = Clock::now();
    switch (op) {
      case Op::kPing:
        async->Ping(&*s->ctx, &s->ping_req, &s->ping_resp, std::move(done));
        break;
      case Op::kGet:
        async->Get(&*s->ctx, &s->get_req, &s->get_resp, std::move(done));
        break;
      case Op::kPut:
        async->Put(&*s->ctx, &s->put_req, &s->put_resp, std::move(done));
        break;
      case Op::kBatch:
        async->BatchWrite(&*s->ctx, &s->batch_req, &s->batch_resp,
                          std::move(done));
        break;
    }
  }

  void OnDone(Slot* s, const grpc::Status& status) {
    const Clock::time_point now = Clock::now();
    if (status.ok()) {
      ops_.fetch_add(1, std::memory_order_relaxed);
      if (phase_ == Phase::kPreload) {
        preloaded_.fetch_add(s->batch_keys, std::memory_order_relaxed);
      } else {
        const auto ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(now - s->start)
                .count();
        Shard& shard = shards_[s->index % kHistogramShards];
        absl::MutexLock lock(&shard.mu);
        shard.histogram.Record(static_cast<uint64_t>(std::max<int64_t>(ns, 0)));
      }
    } else {
      if (errors_.fetch_add(1) == 0) {
        absl::MutexLock lock(&mu_);
        first_error_status_ = FromGrpcStatus(status);
      }
      // A failed preload is not worth continuing.
      if (phase_ == Phase::kPreload) stop_ = true;
    }
    s->ctx.reset();
    Issue(s);
  }

  // Constant after construction.
  const BenchOptions options_;
  const std::vector<std::unique_ptr<Client>> clients_;
  std::string value_;
  uint64_t batch_size_ = 1;
  std::vector<std::unique_ptr<Slot>> slots_;

  // Set by the driving thread while no call is in flight.
  Phase phase_ = Phase::kRun;
  std::optional<absl::Notification> done_;  // Notified when active_ hits 0.

  std::atomic<int> active_{0};  // Slots still issuing calls.
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> ops_{0};
  std::atomic<uint64_t> errors_{0};
  std::atomic<uint64_t> next_key_{0};   // Preload: next key to write.
  std::atomic<uint64_t> preloaded_{0};  // Preload: keys written.
  Shard shards_[kHistogramShards];

  absl::Mutex mu_;
  absl::Status first_error_status_ ABSL_GUARDED_BY(mu_);
};

std::string Us(double us) {
  return us >= 100 ? absl::StrFormat("%.0fus", us)
                   : absl::StrFormat("%.1fus", us);
}

}  // namespace

absl::StatusOr<BenchResult> RunBench(const std::string& endpoint,
                                     const ClientOptions& client_options,
                                     const BenchOptions& options) {
  if (options.concurrency <= 0 || options.channels <= 0 ||
      options.value_size < 0 || options.duration <= absl::ZeroDuration() ||
      (options.workload != Workload::kPing && options.keys == 0)) {
    return absl::InvalidArgumentError(
        "bench needs --concurrency > 0, --channels > 0, --value-size >= 0, "
        "--duration > 0 and --keys > 0");
  }
  std::vector<std::unique_ptr<Client>> clients;
  ClientOptions copt = client_options;
  copt.dedicated_connection = true;
  for (int i = 0; i < options.channels; ++i) {
    absl::StatusOr<std::unique_ptr<Client>> c = Client::Connect(endpoint, copt);
    if (!c.ok()) return c.status();
    // Connect before the clock starts, and fail fast (one error, not a
    // run of them) when the server is down. The deadline is at least 5 s so
    // that a tiny --timeout can still be benchmarked.
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     absl::ToChronoNanoseconds(
                         std::max(client_options.timeout, absl::Seconds(5))));
    if (!client_options.token.empty()) {
      ctx.AddMetadata("authorization", "Bearer " + client_options.token);
    }
    kv::v1::PingRequest req;
    kv::v1::PingResponse resp;
    absl::Status s = FromGrpcStatus((*c)->kv_stub()->Ping(&ctx, req, &resp));
    if (!s.ok()) return s;
    clients.push_back(*std::move(c));
  }
  Runner runner(std::move(clients), options);
  if (options.preload && (options.workload == Workload::kGet ||
                          options.workload == Workload::kMixed)) {
    absl::Status s = runner.Preload();
    if (!s.ok()) return s;
  }
  return runner.Run();
}

std::string FormatBenchText(const BenchResult& r) {
  std::string out = absl::StrFormat(
      "%s: %.0f ops/s, %d ops in %.2f s, concurrency %d, channels %d, "
      "latency p50 %s p90 %s p99 %s p99.9 %s max %s, %d errors, seed %d",
      WorkloadName(r.workload), r.ops_per_sec, r.ops, r.elapsed_s,
      r.concurrency, r.channels, Us(r.p50_us), Us(r.p90_us), Us(r.p99_us),
      Us(r.p999_us), Us(r.max_us), r.errors, r.seed);
  return out;
}

std::string FormatBenchJson(const BenchResult& r) {
  const std::string first_error = IsValidUtf8(r.first_error)
                                      ? r.first_error
                                      : absl::CHexEscape(r.first_error);
  return absl::StrFormat(
      "{\"workload\":\"%s\",\"concurrency\":%d,\"channels\":%d,"
      "\"seed\":%d,\"elapsed_s\":%.3f,\"ops\":%d,\"errors\":%d,"
      "\"ops_per_sec\":%.1f,\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,"
      "\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,\"mean\":%.1f},"
      "\"first_error\":%s}",
      WorkloadName(r.workload), r.concurrency, r.channels, r.seed, r.elapsed_s,
      r.ops, r.errors, r.ops_per_sec, r.p50_us, r.p90_us, r.p99_us, r.p999_us,
      r.max_us, r.mean_us,
      first_error.empty() ? "null" : JsonQuote(first_error));
}

}  // namespace kv::client
