// ae_bench: anti-entropy cost and convergence time between two real kvd
// processes.
//
// 1. Starts nodes A and B on loopback, each the other's only peer, with
//    anti-entropy paused (--ae-paused), a short interval and the write
//    fan-out off (--fanout-enabled false: anti-entropy is what is measured).
// 2. Loads n keys ("key%010d", --value-size byte values) into A with
//    BatchWrite, resumes anti-entropy and times the full sync to B (equal
//    roots), then pauses it again and waits for exchanges in flight to end.
//    Replication is the only way to give both nodes the same versions. The
//    peak RSS of both is reset (/proc/PID/clear_refs) before the sync, so
//    the one reported is the sync's own; the load's is reported apart.
// 3. For each d of --d: overwrites d/2 keys on A and d - d/2 other keys on B,
//    snapshots both nodes' Admin.Stats counters, resumes anti-entropy, polls
//    Stats every 10 ms until the roots are equal, pauses, waits for exchanges
//    in flight, and reports the counter deltas summed over both nodes:
//    records streamed (keys_sent, target d, + d / 500 rounded up for 16-bit
//    fingerprint collisions), bytes on the wire (bytes_sent:
//    serialized ExchangeMessage bytes, without gRPC/HTTP2/TCP framing; target
//    <= d * (record + 150) + 64 KiB), the same bytes by part (descent
//    digests, fingerprints, Diffs, wants, records, framing), the IP bytes
//    between the nodes' peer ports as the kernel counts them (tcp_info
//    through `ss`: TCP payload + 52 B of headers per segment; target <=
//    1.5 x d x record + 64 KiB), exchanges. For d = 0 it lets
//    --d0-exchanges exchanges run at equal roots and reports bytes per
//    exchange (target <= 1 KiB).
// 4. Restarts A after SIGTERM and after SIGKILL and times process start to
//    the first successful Admin.Stats (target < 2 s).
//
// Nodes are not pinned to CPUs unless --pin (A on CPU 0, B on CPU 1). Both
// nodes start exchanges, as deployed; --single-initiator leaves that to A
// (B gets a 1 h interval and only answers), which separates the protocol's
// own cost from the overlap of two concurrent exchanges. A converge time
// includes the wait for the next exchange (the interval is jittered +-25%).
//
// Every wait is bounded; a wait that times out is a FAIL, never a hang.
// Exit code: 0 every target met, 1 some target failed, 2 the benchmark could
// not run (bad flags, a node did not start, an RPC failed).
#include <unistd.h>

#include <google/protobuf/util/json_util.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/client.h"
#include "proto/kv.pb.h"
#include "tests/bench/ae_bench_report.pb.h"
#include "tests/integration/kvd_process.h"

namespace kv::bench {
namespace {

namespace fs = std::filesystem;
using ::kv::testing::KvdProcess;
using ::kv::testing::KvdProcessOptions;
using Clock = std::chrono::steady_clock;

constexpr int64_t kVersionBytes = 16;  // hlc + node_id.
constexpr int64_t kPerRecordOverhead =
    150;  // Allowed protocol bytes per record.
constexpr int64_t kFixedOverhead = 64
                                   << 10;  // Allowed protocol bytes per case.
constexpr int kIdleBytesTarget = 1 << 10;  // Per exchange at equal roots.
constexpr double kRestartTargetMs = 2000;
constexpr auto kPoll = std::chrono::milliseconds(10);
constexpr int kNeverIntervalMs = 3600000;  // kvd's largest --ae-interval-ms.

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string Key(int64_t i) { return absl::StrFormat("key%010d", i); }

// A deterministic value of `size` printable bytes for key `i` and write
// `tag` (so that every overwrite changes the value, not only the version).
std::string Value(int64_t i, uint64_t tag, int size) {
  static constexpr char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string v(size, ' ');
  uint64_t x = static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull ^ tag;
  for (int k = 0; k < size; ++k) {
    x ^= x >> 33;  // splitmix-style scrambling.
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 29;
    v[k] = kAlphabet[x % 62];
    x += 0x9E3779B97F4A7C15ull;
  }
  return v;
}

struct Config {
  int64_t n = 1000000;
  std::vector<int64_t> ds = {0, 1, 100, 10000};
  int value_size = 100;
  std::string dir;  // Empty: a temporary directory, removed at the end.
  std::string kvd = kv::testing::KvdPath();
  std::string output = "text";
  int interval_ms = 200;
  int64_t bandwidth = -1;  // kvd --ae-bandwidth; -1: kvd's default.
  std::string cpu_priority;  // kvd --ae-cpu-priority; empty: kvd's default.
  bool pin = false;
  bool single_initiator = false;  // Only A starts exchanges; B only answers.
  int batch = 1000;
  int d0_exchanges = 10;
  bool restart = true;
  int sync_timeout_s = 900;
  int case_timeout_s = 120;

  int64_t RecordBytes() const {
    return static_cast<int64_t>(Key(0).size()) + value_size + kVersionBytes;
  }
  // "ae interval 200 ms, both nodes initiate exchanges, nodes unpinned".
  std::string Setup() const {
    return absl::StrCat(
        "ae interval ", interval_ms, " ms, ",
        bandwidth < 0 ? std::string()
                      : absl::StrCat("ae bandwidth ", bandwidth, " B/s, "),
        cpu_priority.empty() ? std::string()
                             : absl::StrCat("ae cpu priority ", cpu_priority, ", "),
        single_initiator ? "only A initiates exchanges (B answers)"
                         : "both nodes initiate exchanges",
        ", nodes ", pin ? "pinned (A: CPU 0, B: CPU 1)" : "unpinned");
  }
};

// Admin.Stats anti-entropy counters of one node, or a sum or difference of
// them: the report's own AeCounters.
using Counters = AeCounters;

Counters CountersOf(const kv::v1::StatsResponse& s) {
  Counters c;
  c.set_exchanges_started(s.exchanges_started());
  c.set_exchanges_completed(s.exchanges_completed());
  c.set_exchanges_failed(s.exchanges_failed());
  c.set_exchanges_yielded(s.exchanges_yielded());
  c.set_rounds_equal_roots(s.rounds_equal_roots());
  c.set_differing_leaves(s.differing_leaves());
  c.set_keys_sent(s.keys_sent());
  c.set_keys_received(s.keys_received());
  c.set_bytes_sent(s.bytes_sent());
  c.set_bytes_received(s.bytes_received());
  const kv::v1::AntiEntropyBytes& p = s.bytes_sent_by_part();
  c.set_bytes_digests(p.digests());
  c.set_bytes_fingerprints(p.fingerprints());
  c.set_bytes_diffs(p.diffs());
  c.set_bytes_wants(p.wants());
  c.set_bytes_records(p.records());
  c.set_keys_streamed(s.keys_streamed());
  return c;
}

// a + sign * b, field by field (every field of AeCounters is an int64).
Counters Combine(const Counters& a, const Counters& b, int sign) {
  Counters out;
  const google::protobuf::Reflection* r = out.GetReflection();
  const google::protobuf::Descriptor* d = out.GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = d->field(i);
    r->SetInt64(&out, f, r->GetInt64(a, f) + sign * r->GetInt64(b, f));
  }
  return out;
}

// Exchanges a node started (either side) that have not ended yet.
int64_t InFlight(const Counters& c) {
  return c.exchanges_started() - c.exchanges_completed() - c.exchanges_failed();
}

using StatsPair = std::array<kv::v1::StatsResponse, 2>;

// Sum over both nodes of (after - before).
Counters Delta(const StatsPair& before, const StatsPair& after) {
  Counters sum;
  for (int i = 0; i < 2; ++i) {
    sum = Combine(sum, Combine(CountersOf(after[i]), CountersOf(before[i]), -1), +1);
  }
  return sum;
}

// Every exchange that completes is counted by both sides (initiator and
// responder); an exchange the peer refused is counted only by the initiator,
// as failed.
double Exchanges(const Counters& delta) { return delta.exchanges_completed() / 2.0; }

// The two nodes and a client for each.
class Pair {
 public:
  explicit Pair(const Config& config) : config_(config) {}

  absl::Status Start(const std::string& dir) {
    const std::array<std::string, 2> addresses = {
        absl::StrCat("127.0.0.1:", kv::testing::FreePort()),
        absl::StrCat("127.0.0.1:", kv::testing::FreePort())};
    // Peers talk on ports of their own, so the kernel's per-connection
    // counters on them (PeerIpBytes) hold the traffic between the nodes and
    // nothing of this program's client calls.
    peer_ports_ = {kv::testing::FreePort(), kv::testing::FreePort()};
    const std::array<std::string, 2> peer_addresses = {
        absl::StrCat("127.0.0.1:", peer_ports_[0]),
        absl::StrCat("127.0.0.1:", peer_ports_[1])};
    const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
    for (int i = 0; i < 2; ++i) {
      KvdProcessOptions o;
      o.binary = config_.kvd;
      o.data_dir = absl::StrCat(dir, "/", kNames[i]);
      o.listen = addresses[i];
      // B with an interval of an hour never starts an exchange during the
      // run (the first comes after 45 min or more) but answers A's.
      const int interval_ms = config_.single_initiator && i == 1
                                  ? kNeverIntervalMs
                                  : config_.interval_ms;
      // Anti-entropy alone: with the write fan-out on, a case's overwrites
      // would reach the other node at once and there would be nothing to
      // repair.
      o.args = {"--name",          kNames[i],
                "--peer-listen",   peer_addresses[i],
                "--peers",         peer_addresses[1 - i],
                "--ae-interval-ms", absl::StrCat(interval_ms),
                "--ae-paused",     "--fanout-enabled",
                "false"};
      if (config_.bandwidth >= 0) {
        o.args.push_back("--ae-bandwidth");
        o.args.push_back(absl::StrCat(config_.bandwidth));
      }
      if (!config_.cpu_priority.empty()) {
        o.args.push_back("--ae-cpu-priority");
        o.args.push_back(config_.cpu_priority);
      }
      o.cpu = config_.pin ? static_cast<int>(i % cpus) : -1;
      nodes_[i] = std::make_unique<KvdProcess>(std::move(o));
      if (absl::Status s = nodes_[i]->Start(absl::Seconds(60)); !s.ok())
        return s;
      if (absl::Status s = Reconnect(i); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // A fresh client for node i (after a restart).
  absl::Status Reconnect(int i) {
    client::ClientOptions o;
    o.timeout = absl::Seconds(30);
    o.dedicated_connection = true;
    auto c = client::Client::Connect(nodes_[i]->address(), o);
    if (!c.ok()) return c.status();
    clients_[i] = std::move(*c);
    return absl::OkStatus();
  }

  KvdProcess& node(int i) { return *nodes_[i]; }

  // IP bytes so far on the open connections to either node's peer port,
  // both directions, as the kernel counts them (ss's tcp_info: TCP payload
  // bytes sent and received + 52 bytes of IPv4 and TCP headers with
  // timestamps per segment, pure ACKs included). Gossip between the two
  // shares them (a few hundred bytes a second). Errors: ss missing or
  // failing.
  absl::StatusOr<int64_t> PeerIpBytes() const {
    const std::string cmd = absl::StrCat(
        "ss -tinH state established '( sport = :", peer_ports_[0],
        " or sport = :", peer_ports_[1], " )' 2>/dev/null");
    FILE* f = popen(cmd.c_str(), "r");
    if (f == nullptr) return absl::UnavailableError("cannot run ss");
    std::string out;
    char buf[4096];
    for (size_t got; (got = fread(buf, 1, sizeof(buf), f)) > 0;) {
      out.append(buf, got);
    }
    if (pclose(f) != 0) return absl::UnavailableError("ss failed (iproute2)");
    int64_t payload = 0, segments = 0;
    for (absl::string_view token :
         absl::StrSplit(out, absl::ByAnyChar(" \t\n"), absl::SkipEmpty())) {
      int64_t v = 0;
      for (const auto& [prefix, sum] :
           {std::pair<absl::string_view, int64_t*>{"bytes_acked:", &payload},
            {"bytes_received:", &payload},
            {"segs_out:", &segments},
            {"segs_in:", &segments}}) {
        absl::string_view rest = token;
        if (absl::ConsumePrefix(&rest, prefix) && absl::SimpleAtoi(rest, &v)) {
          *sum += v;
        }
      }
    }
    return payload + 52 * segments;
  }
  client::Client& client(int i) { return *clients_[i]; }

  absl::StatusOr<StatsPair> Stats() {
    StatsPair out;
    for (int i = 0; i < 2; ++i) {
      auto s = clients_[i]->Stats();
      if (!s.ok()) {
        return absl::Status(
            s.status().code(),
            absl::StrCat("Stats of ", kNames[i], ": ", s.status().message()));
      }
      out[i] = *std::move(s);
    }
    return out;
  }

  absl::Status SetAntiEntropy(bool running) {
    for (int i = 0; i < 2; ++i) {
      auto r = clients_[i]->SetAntiEntropy(running);
      if (!r.ok()) return r.status();
    }
    return absl::OkStatus();
  }

  // Polls both nodes' Stats every 10 ms until `done` holds for them;
  // returns those Stats. DEADLINE_EXCEEDED (naming both roots and key
  // counts) after `timeout` (plus at most one Stats call's deadline); the
  // error of a failed Stats call.
  absl::StatusOr<StatsPair> WaitUntil(
      Clock::duration timeout,
      const std::function<bool(const StatsPair&)>& done) {
    const auto deadline = Clock::now() + timeout;
    while (true) {
      auto s = Stats();
      if (!s.ok()) return s.status();
      if (done(*s)) return s;
      if (Clock::now() >= deadline) {
        return absl::DeadlineExceededError(absl::StrCat(
            "gave up after ",
            std::chrono::duration_cast<std::chrono::seconds>(timeout).count(),
            " s (roots ", (*s)[0].root_digest(), " / ", (*s)[1].root_digest(),
            ", keys ", (*s)[0].key_count(), " / ", (*s)[1].key_count(), ")"));
      }
      std::this_thread::sleep_for(kPoll);
    }
  }

  // Pauses anti-entropy on both, waits two intervals, then until neither
  // node has an exchange in flight. Returns the Stats after that.
  absl::StatusOr<StatsPair> PauseAndSettle() {
    if (absl::Status s = SetAntiEntropy(false); !s.ok()) return s;
    std::this_thread::sleep_for(
        std::chrono::milliseconds(2 * config_.interval_ms));
    return WaitUntil(std::chrono::seconds(60), [](const StatsPair& s) {
      return InFlight(CountersOf(s[0])) == 0 && InFlight(CountersOf(s[1])) == 0;
    });
  }

  static constexpr std::array<const char*, 2> kNames = {"a", "b"};

 private:
  const Config& config_;
  std::array<std::unique_ptr<KvdProcess>, 2> nodes_;
  std::array<int, 2> peer_ports_{};
  std::array<std::unique_ptr<client::Client>, 2> clients_;
};

bool RootsEqual(const StatsPair& s) {
  return s[0].root_digest() == s[1].root_digest();
}

// Writes keys `first`, `first + 1`, ... (count of them, modulo n) to `c` in
// batches, with values tagged `tag`. `progress`: print a line on stderr at
// every 10%.
absl::Status Write(client::Client& c, const Config& config, int64_t first,
                   int64_t count, uint64_t tag, bool progress) {
  const auto t0 = Clock::now();
  int64_t next_report = count / 10;
  std::vector<client::Mutation> batch;
  for (int64_t done = 0; done < count;) {
    batch.clear();
    const int64_t m = std::min<int64_t>(config.batch, count - done);
    for (int64_t j = 0; j < m; ++j) {
      const int64_t k = (first + done + j) % config.n;
      batch.push_back({Key(k), Value(k, tag, config.value_size), false, {}});
    }
    auto r = c.BatchWrite(batch);  // Bounded by the client's per-call deadline.
    if (!r.ok()) {
      return absl::Status(r.status().code(),
                          absl::StrCat("BatchWrite at key ", Key(first + done),
                                       ": ", r.status().message()));
    }
    done += m;
    if (progress && (done >= next_report || done == count)) {
      const double s = MsSince(t0) / 1000;
      std::fprintf(stderr,
                   "load: %" PRId64 " / %" PRId64
                   " keys (%.1f s, %.0f keys/s)\n",
                   done, count, s, done / std::max(s, 1e-9));
      next_report = done + count / 10;
    }
  }
  return absl::OkStatus();
}

// Peak resident set size (VmHWM) of a running process in bytes; 0 when
// unknown.
int64_t PeakRss(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    int64_t kb = 0;
    absl::string_view rest = line;
    if (absl::ConsumePrefix(&rest, "VmHWM:") &&
        absl::SimpleAtoi(
            absl::StripSuffix(absl::StripAsciiWhitespace(rest), "kB"), &kb)) {
      return kb << 10;
    }
  }
  return 0;
}

std::string HumanBytes(double b) {
  if (b >= 1e9) return absl::StrFormat("%.2f GB", b / 1e9);
  if (b >= 1e6) return absl::StrFormat("%.2f MB", b / 1e6);
  if (b >= 1e3) return absl::StrFormat("%.1f kB", b / 1e3);
  return absl::StrFormat("%.0f B", b);
}

// The "anti-entropy with ..." and warning lines a node logged from `offset`.
std::string ExchangeLogLines(const KvdProcess& node, int64_t offset) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(node.LogFrom(offset), '\n')) {
    if (absl::StrContains(line, "anti-entropy with")) lines.emplace_back(line);
  }
  return absl::StrJoin(lines, "\n");
}

struct SyncResult {
  bool ok = false;
  std::string error;
  double ms = 0;
  Counters delta;
};

struct CaseResult {
  int64_t d = 0;
  int64_t ip_bytes = -1;
  int64_t ip_target = 0;
  bool converged = false;
  double converge_ms = 0;
  Counters delta;
  int64_t bound = 0;
  int64_t records_target = 0;
  double bytes_per_exchange = 0;  // d = 0 only.
  bool pass = false;
  std::vector<std::string> failures;
};

struct RestartResult {
  std::string kind;  // "SIGTERM" or "SIGKILL".
  bool ok = false;
  std::string error;
  double stop_ms = 0;         // Signal to exit (SIGTERM only).
  double ready_ms = 0;        // Exec to ready file.
  double first_stats_ms = 0;  // Exec to first successful Admin.Stats.
  int64_t key_count = 0;
  bool same_root = false;
  bool pass = false;
};

// "digests 1.2 kB, fingerprints ..., Hello and framing 3 kB".
std::string Parts(const AeCounters& c) {
  return absl::StrCat(
      "digests ", HumanBytes(c.bytes_digests()), ", fingerprints ",
      HumanBytes(c.bytes_fingerprints()), ", diffs ",
      HumanBytes(c.bytes_diffs()), ", wants ", HumanBytes(c.bytes_wants()),
      ", records ", HumanBytes(c.bytes_records()), " (",
      c.keys_streamed(), " streamed), Hello and framing ",
      HumanBytes(c.bytes_sent() - c.bytes_digests() - c.bytes_fingerprints() -
                 c.bytes_diffs() - c.bytes_wants() - c.bytes_records()));
}

// PeerIpBytes, or -1 when it cannot be measured (reported as such).
int64_t IpBytesOr(const Pair& pair) {
  absl::StatusOr<int64_t> b = pair.PeerIpBytes();
  return b.ok() ? *b : -1;
}

int64_t IpDelta(int64_t before, int64_t after) {
  return before < 0 || after < 0 ? -1 : after - before;
}

// Foreground reads while something else runs: one thread per node, one Get
// of a random loaded key at a time, one per ms, on a connection of its own.
// Stop() returns the latencies (ms) per node.
class GetProbe {
 public:
  GetProbe(const std::array<std::string, 2>& addresses, int64_t n) {
    for (int i = 0; i < 2; ++i) {
      threads_[i] = std::thread([this, i, address = addresses[i], n] {
        client::ClientOptions o;
        o.timeout = absl::Seconds(10);
        o.dedicated_connection = true;
        auto c = client::Client::Connect(address, o);
        if (!c.ok()) return;
        uint64_t x = 0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(i + 1);
        while (!stop_.load()) {
          x ^= x << 13;
          x ^= x >> 7;
          x ^= x << 17;
          const auto t0 = Clock::now();
          if ((*c)->Get(Key(static_cast<int64_t>(x % static_cast<uint64_t>(n)))).ok()) {
            latencies_[i].push_back(MsSince(t0));
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      });
    }
  }
  ~GetProbe() { Stop(); }
  std::array<std::vector<double>, 2> Stop() {
    stop_.store(true);
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
    return latencies_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::array<std::thread, 2> threads_;
  std::array<std::vector<double>, 2> latencies_;  // Each written by its thread.
};

// The q-quantile (0..1) of `v` in ms; 0 when empty.
double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

// Resets the peak RSS (VmHWM) of a process to its current RSS (Linux >= 4.0,
// /proc/PID/clear_refs); false when that failed.
bool ResetPeakRss(pid_t pid) {
  std::ofstream out(absl::StrCat("/proc/", pid, "/clear_refs"));
  out << "5";
  out.flush();
  return out.good();
}

// Resumes anti-entropy and waits for equal roots (the initial full sync, or
// a re-sync). Leaves anti-entropy paused and nothing in flight.
SyncResult Sync(Pair& pair, const Config& config) {
  SyncResult r;
  auto fail = [&r](const absl::Status& s) {
    r.error = s.ToString();
    return r;
  };
  auto before = pair.Stats();
  if (!before.ok()) return fail(before.status());
  const auto t0 = Clock::now();
  if (absl::Status s = pair.SetAntiEntropy(true); !s.ok()) return fail(s);
  auto converged =
      pair.WaitUntil(std::chrono::seconds(config.sync_timeout_s), RootsEqual);
  r.ms = MsSince(t0);
  auto after = pair.PauseAndSettle();
  if (!converged.ok()) return fail(converged.status());
  if (!after.ok()) return fail(after.status());
  r.delta = Delta(*before, *after);
  r.ok = true;
  return r;
}

absl::StatusOr<CaseResult> RunCase(Pair& pair, const Config& config, int64_t d,
                                   int64_t first, uint64_t tag) {
  CaseResult r;
  r.d = d;
  r.records_target = d;
  r.bound = d * (config.RecordBytes() + kPerRecordOverhead) + kFixedOverhead;

  auto start = pair.Stats();
  if (!start.ok()) return start.status();
  if (!RootsEqual(*start)) {
    return absl::FailedPreconditionError(
        "the nodes differ before the case (a previous case "
        "did not converge)");
  }
  // d/2 keys overwritten on A, the next d - d/2 on B.
  const int64_t on_a = d / 2;
  if (on_a > 0) {
    if (absl::Status s = Write(pair.client(0), config, first, on_a, tag, false);
        !s.ok())
      return s;
  }
  if (d - on_a > 0) {
    if (absl::Status s = Write(pair.client(1), config, first + on_a, d - on_a,
                               tag + 1, false);
        !s.ok()) {
      return s;
    }
  }
  auto before = pair.Stats();
  if (!before.ok()) return before.status();
  if (d > 0 && RootsEqual(*before)) {
    return absl::InternalError(
        "the roots are still equal after the overwrites");
  }
  const std::array<int64_t, 2> log_offsets = {pair.node(0).LogSize(),
                                              pair.node(1).LogSize()};

  const int64_t ip_before = IpBytesOr(pair);
  const auto t0 = Clock::now();
  if (absl::Status s = pair.SetAntiEntropy(true); !s.ok()) return s;
  auto converged =
      pair.WaitUntil(std::chrono::seconds(config.case_timeout_s), RootsEqual);
  r.converge_ms = MsSince(t0);
  r.converged = converged.ok();
  if (!r.converged) r.failures.push_back(converged.status().ToString());
  if (d == 0 && r.converged) {
    // Let a few exchanges run, all at equal roots.
    auto idle = pair.WaitUntil(
        std::chrono::seconds(config.case_timeout_s), [&](const StatsPair& s) {
          return Delta(*before, s).exchanges_completed() >= 2 * config.d0_exchanges;
        });
    if (!idle.ok())
      r.failures.push_back(
          absl::StrCat("idle exchanges: ", idle.status().ToString()));
  }
  auto after = pair.PauseAndSettle();
  if (!after.ok()) return after.status();
  r.delta = Delta(*before, *after);
  r.ip_bytes = IpDelta(ip_before, IpBytesOr(pair));
  // Issue 14's target, framing included: 1.5 x the divergent records + 64 KiB.
  r.ip_target = d * config.RecordBytes() * 3 / 2 + 65536;
  if (r.ip_bytes > r.ip_target) {
    r.failures.push_back(absl::StrCat("IP bytes ", r.ip_bytes, " > target ",
                                      r.ip_target));
  }

  // Exactly d, but for 16-bit fingerprint collisions (about 15 / 2^16 per
  // differing key at 1M keys in 2^16 leaves): a collided key is found by the
  // next exchange, and may cost a record sent in vain (its tie is re-sent).
  // d / 500 rounded up: at d = 100 one collision (about a 2 % chance) is
  // no failure.
  const int64_t collision_slack = (d + 499) / 500;
  if (r.delta.keys_sent() < r.records_target ||
      r.delta.keys_sent() > r.records_target + collision_slack) {
    r.failures.push_back(absl::StrCat("records streamed ", r.delta.keys_sent(),
                                      " is not d = ", d, " (+ at most ",
                                      collision_slack, " for collisions)"));
  }
  if (r.delta.bytes_sent() > r.bound) {
    r.failures.push_back(
        absl::StrCat("bytes ", r.delta.bytes_sent(), " > bound ", r.bound));
  }
  if ((*after)[0].key_count() != config.n ||
      (*after)[1].key_count() != config.n) {
    r.failures.push_back(absl::StrCat("key counts ", (*after)[0].key_count(),
                                      " / ", (*after)[1].key_count(), " != n"));
  }
  if (d == 0) {
    const double exchanges = Exchanges(r.delta);
    r.bytes_per_exchange = exchanges > 0 ? r.delta.bytes_sent() / exchanges : 0;
    if (exchanges <= 0) r.failures.push_back("no exchange completed");
    if (r.bytes_per_exchange > kIdleBytesTarget) {
      r.failures.push_back(absl::StrFormat("%.1f bytes per exchange > %d",
                                           r.bytes_per_exchange,
                                           kIdleBytesTarget));
    }
    if (r.delta.rounds_equal_roots() != r.delta.exchanges_completed()) {
      r.failures.push_back(
          absl::StrCat(r.delta.exchanges_completed() - r.delta.rounds_equal_roots(),
                       " exchange sides did not end at equal roots"));
    }
  }
  r.pass = r.failures.empty();
  if (!r.pass) {
    std::fprintf(stderr, "d=%" PRId64 " FAIL: %s\n", d,
                 absl::StrJoin(r.failures, "; ").c_str());
    for (int i = 0; i < 2; ++i) {
      const std::string lines = ExchangeLogLines(pair.node(i), log_offsets[i]);
      if (!lines.empty()) {
        std::fprintf(stderr, "  node %s logged:\n%s\n", Pair::kNames[i],
                     lines.c_str());
      }
    }
  }
  return r;
}

// Stops node `i` (SIGTERM, or SIGKILL when `kill`), starts it again on the
// same address and data, and times exec to the first Admin.Stats reply.
RestartResult Restart(Pair& pair, const Config& config, int i, bool kill) {
  RestartResult r;
  r.kind = kill ? "SIGKILL" : "SIGTERM";
  auto fail = [&r](const absl::Status& s) {
    r.ok = false;
    r.error = s.ToString();
    return r;
  };
  auto before = pair.client(i).Stats();
  if (!before.ok()) return fail(before.status());
  KvdProcess& node = pair.node(i);
  const auto stop0 = Clock::now();
  if (kill) {
    node.Kill();
  } else if (auto st = node.Terminate(absl::Seconds(60)); !st.ok()) {
    return fail(st.status());
  }
  r.stop_ms = MsSince(stop0);

  const auto t0 = Clock::now();
  if (absl::Status s = node.Start(absl::Seconds(60)); !s.ok()) {
    return fail(s);
  }
  r.ready_ms = MsSince(t0);
  // A new channel per attempt: a channel that failed once backs off.
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  absl::Status last = absl::DeadlineExceededError("no attempt");
  while (Clock::now() < deadline) {
    client::ClientOptions o;
    o.timeout = absl::Seconds(5);
    o.dedicated_connection = true;
    auto c = client::Client::Connect(node.address(), o);
    if (c.ok()) {
      auto s = (*c)->Stats();
      if (s.ok()) {
        r.first_stats_ms = MsSince(t0);
        r.key_count = s->key_count();
        r.same_root = s->root_digest() == before->root_digest();
        r.ok = true;
        break;
      }
      last = s.status();
    } else {
      last = c.status();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (!r.ok) {
    return fail(absl::Status(
        last.code(),
        absl::StrCat("no Admin.Stats reply within 60 s: ", last.message())));
  }
  if (absl::Status s = pair.Reconnect(i); !s.ok()) return fail(s);
  r.pass = r.first_stats_ms < kRestartTargetMs && r.same_root &&
           r.key_count == config.n;
  return r;
}

absl::StatusOr<std::vector<int64_t>> ParseList(const std::string& text) {
  std::vector<int64_t> out;
  for (absl::string_view part :
       absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int64_t v;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &v) || v < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--d: bad value \"", part, "\""));
    }
    out.push_back(v);
  }
  if (out.empty()) return absl::InvalidArgumentError("--d: no value");
  return out;
}

// The report's counters.

// Parses the flags into `config`. Returns the exit code when the program
// should end now (--help, bad flags), nullopt to go on.
std::optional<int> ParseFlags(int argc, char** argv, Config* config) {
  std::string ds_text = "0,1,100,10000";
  CLI::App app{
      "ae_bench: anti-entropy traffic, convergence and restart time between "
      "two real kvd nodes on loopback"};
  app.add_option("--n", config->n, "Keys loaded into both nodes")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{9999999999}));
  app.add_option("--d", ds_text,
                 "Comma-separated numbers of differing keys, one case each")
      ->capture_default_str();
  app.add_option("--value-size", config->value_size, "Value bytes")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  app.add_option(
      "--dir", config->dir,
      "Keep the data here (DIR/a, DIR/b and their .log files) instead of a "
      "temporary directory; when DIR/a already holds n keys, the load is "
      "skipped");
  app.add_option("--kvd", config->kvd, "kvd binary")->capture_default_str();
  app.add_option("--output", config->output,
                 "text|json (progress always goes to stderr)")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--ae-interval-ms", config->interval_ms, "kvd --ae-interval-ms")
      ->capture_default_str()
      ->check(CLI::Range(10, 60000));
  app.add_option("--ae-bandwidth", config->bandwidth,
                 "kvd --ae-bandwidth, bytes/s (default: kvd's, 64 MiB/s; 0: no cap)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--ae-cpu-priority", config->cpu_priority,
                 "kvd --ae-cpu-priority (idle|normal; default: kvd's)")
      ->check(CLI::IsMember({"idle", "normal"}));
  app.add_flag("--pin", config->pin,
               "Pin node A to CPU 0 and node B to CPU 1 (default: unpinned)");
  app.add_flag(
      "--single-initiator", config->single_initiator,
      "Only A starts exchanges (B runs with a 1 h interval and only answers); "
      "default: both nodes start exchanges, as deployed");
  app.add_option("--batch", config->batch, "Mutations per BatchWrite")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--d0-exchanges", config->d0_exchanges,
                 "Exchanges to let run at equal roots in the d = 0 case")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  bool no_restart = false;
  app.add_flag("--no-restart", no_restart, "Skip the restart timing");
  app.add_option(
         "--sync-timeout", config->sync_timeout_s,
         "Seconds the initial full sync may take before it counts as FAIL")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  app.add_option(
         "--case-timeout", config->case_timeout_s,
         "Seconds one case may take to converge before it counts as FAIL")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  CLI11_PARSE(app, argc, argv);
  config->restart = !no_restart;
  auto ds = ParseList(ds_text);
  if (!ds.ok()) {
    std::fprintf(stderr, "ae_bench: %s\n", ds.status().ToString().c_str());
    return 2;
  }
  config->ds = *ds;
  for (int64_t d : config->ds) {
    if (d > config->n) {
      std::fprintf(stderr,
                   "ae_bench: --d %" PRId64 " is larger than --n %" PRId64 "\n",
                   d, config->n);
      return 2;
    }
  }
  if (access(config->kvd.c_str(), X_OK) != 0) {
    std::fprintf(stderr,
                 "ae_bench: %s is not executable (build kvd, or pass --kvd)\n",
                 config->kvd.c_str());
    return 2;
  }
  return std::nullopt;
}

// Loads n keys into A unless --dir's A already holds them. Errors:
// FAILED_PRECONDITION when A holds neither 0 nor n keys; the load's error.
absl::Status Load(Pair& pair, const Config& config, const std::string& dir,
                  AeLoad* out) {
  auto initial = pair.Stats();
  if (!initial.ok()) return initial.status();
  const int64_t keys = (*initial)[0].key_count();
  if (keys == config.n) {
    std::fprintf(stderr,
                 "ae_bench: %s/a already holds %" PRId64 " keys; no load\n",
                 dir.c_str(), config.n);
    return absl::OkStatus();
  }
  if (keys != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, "/a holds ", keys,
                     " keys, neither 0 nor n; use an empty --dir"));
  }
  const auto t0 = Clock::now();
  if (absl::Status s = Write(pair.client(0), config, 0, config.n, 0, true);
      !s.ok()) {
    return s;
  }
  out->set_ms(MsSince(t0));
  out->set_loaded(true);
  return absl::OkStatus();
}

// The initial full sync, into the report; false when it failed.
bool FullSync(Pair& pair, const Config& config, AeFullSync* out) {
  std::fprintf(stderr, "ae_bench: full sync A -> B ...\n");
  for (int i = 0; i < 2; ++i) {
    out->add_load_peak_rss_bytes(PeakRss(pair.node(i).pid()));
    if (!ResetPeakRss(pair.node(i).pid())) {
      std::fprintf(stderr, "ae_bench: could not reset the peak RSS of %s\n",
                   Pair::kNames[i]);
    }
  }
  const std::array<std::string, 2> addresses = {pair.node(0).address(),
                                                pair.node(1).address()};
  std::array<std::vector<double>, 2> idle;
  {
    GetProbe probe(addresses, config.n);
    std::this_thread::sleep_for(std::chrono::seconds(2));
    idle = probe.Stop();
  }
  const int64_t ip_before = IpBytesOr(pair);
  std::array<std::vector<double>, 2> during;
  SyncResult sync;
  {
    GetProbe probe(addresses, config.n);
    sync = Sync(pair, config);
    during = probe.Stop();
  }
  out->set_ip_bytes(IpDelta(ip_before, IpBytesOr(pair)));
  for (int i = 0; i < 2; ++i) {
    out->add_idle_get_p50_ms(Quantile(idle[i], 0.5));
    out->add_idle_get_p99_ms(Quantile(idle[i], 0.99));
    out->add_sync_get_p50_ms(Quantile(during[i], 0.5));
    out->add_sync_get_p99_ms(Quantile(during[i], 0.99));
  }
  out->set_ok(sync.ok);
  out->set_ms(sync.ms);
  out->set_records(sync.delta.keys_sent());
  out->set_bytes(sync.delta.bytes_sent());
  out->set_exchanges(Exchanges(sync.delta));
  out->set_error(sync.error);
  *out->mutable_counters() = sync.delta;
  out->add_peak_rss_bytes(PeakRss(pair.node(0).pid()));
  out->add_peak_rss_bytes(PeakRss(pair.node(1).pid()));
  if (!sync.ok) {
    std::fprintf(stderr, "ae_bench: full sync FAILED after %.0f ms: %s\n",
                 sync.ms, sync.error.c_str());
  } else {
    std::fprintf(stderr,
                 "ae_bench: full sync %.0f ms, %" PRId64
                 " records, %s, %.1f exchanges (%" PRId64 " refused/failed)\n",
                 sync.ms, sync.delta.keys_sent(),
                 HumanBytes(sync.delta.bytes_sent()).c_str(),
                 Exchanges(sync.delta), sync.delta.exchanges_failed());
  }
  return sync.ok;
}

void ToProto(const CaseResult& c, AeCase* out) {
  out->set_d(c.d);
  out->set_converged(c.converged);
  out->set_converge_ms(c.converge_ms);
  out->set_records(c.delta.keys_sent());
  out->set_bytes(c.delta.bytes_sent());
  out->set_bound(c.bound);
  out->set_exchanges(Exchanges(c.delta));
  out->set_bytes_per_exchange(c.bytes_per_exchange);
  out->set_ip_bytes(c.ip_bytes);
  out->set_ip_target(c.ip_target);
  out->set_pass(c.pass);
  for (const std::string& f : c.failures) out->add_failures(f);
  *out->mutable_counters() = c.delta;
}

// One case per d of --d, into the report; false when one failed. A case
// that could not run is a failure, and the nodes are synced again for the
// next one.
bool RunCases(Pair& pair, const Config& config, AeBenchReport* report) {
  bool all_pass = true;
  // Overwrite tags differ from run to run (hlc-ish), so that a reused --dir
  // still sees changed values.
  uint64_t tag =
      static_cast<uint64_t>(Clock::now().time_since_epoch().count()) | 1;
  int64_t first = 0;
  for (int64_t d : config.ds) {
    std::fprintf(stderr, "ae_bench: case d=%" PRId64 " ...\n", d);
    auto r = RunCase(pair, config, d, first, tag);
    if (r.ok()) {
      all_pass = all_pass && r->pass;
      ToProto(*r, report->add_cases());
      first = (first + d) % config.n;
      tag += 2;
      continue;
    }
    std::fprintf(stderr, "ae_bench: case d=%" PRId64 " could not run: %s\n", d,
                 r.status().ToString().c_str());
    CaseResult failed;
    failed.d = d;
    failed.failures.push_back(r.status().ToString());
    ToProto(failed, report->add_cases());
    all_pass = false;
    // Bring the nodes back together for the next case.
    const SyncResult resync = Sync(pair, config);
    if (!resync.ok) {
      std::fprintf(stderr, "ae_bench: re-sync failed: %s\n",
                   resync.error.c_str());
      break;
    }
  }
  return all_pass;
}

// Restarts A after SIGTERM, then after SIGKILL, into the report; false when
// one failed.
bool RunRestarts(Pair& pair, const Config& config, AeBenchReport* report) {
  bool all_pass = true;
  for (bool kill : {false, true}) {
    std::fprintf(stderr, "ae_bench: restart of A after %s ...\n",
                 kill ? "SIGKILL" : "SIGTERM");
    const RestartResult r = Restart(pair, config, 0, kill);
    AeRestart* out = report->add_restarts();
    out->set_kind(r.kind);
    out->set_ok(r.ok);
    out->set_stop_ms(r.stop_ms);
    out->set_ready_ms(r.ready_ms);
    out->set_first_stats_ms(r.first_stats_ms);
    out->set_key_count(r.key_count);
    out->set_same_root(r.same_root);
    out->set_pass(r.pass);
    out->set_error(r.error);
    all_pass = all_pass && r.pass;
    if (!r.ok) {
      std::fprintf(stderr, "ae_bench: restart failed: %s\n", r.error.c_str());
      break;
    }
  }
  return all_pass;
}

// The setup part of the report.
AeBenchReport NewReport(const Config& config) {
  AeBenchReport report;
  report.set_n(config.n);
  report.set_value_size(config.value_size);
  report.set_record_bytes(config.RecordBytes());
  report.set_ae_interval_ms(config.interval_ms);
  report.set_pinned(config.pin);
  report.set_single_initiator(config.single_initiator);
  report.set_kvd(config.kvd);
  report.add_notes(
      "bytes on wire = sum over both nodes of Admin.Stats bytes_sent deltas: "
      "serialized peer.v1.ExchangeMessage bytes (ByteSizeLong), without "
      "gRPC/HTTP2/TCP framing");
  report.add_notes(
      "exchanges = sum over both nodes of exchanges_completed deltas / 2 (each "
      "side counts an exchange); refused ones (a peer still paused) are not "
      "included");
  return report;
}

// --output json: protobuf's JSON printer, snake_case names as in the .proto,
// zeros and falses printed too.
absl::Status PrintJson(const AeBenchReport& report) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  const auto status =
      google::protobuf::util::MessageToJsonString(report, &json, options);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("report to JSON: ", status.ToString()));
  }
  std::fputs(json.c_str(), stdout);
  return absl::OkStatus();
}

void PrintText(const Config& config, const AeBenchReport& report) {
  std::printf("ae_bench: n=%" PRId64 ", value %d B, record %" PRId64
              " B (key + value + 16), %s\n",
              config.n, config.value_size, config.RecordBytes(),
              config.Setup().c_str());
  const AeLoad& load = report.load();
  if (load.loaded()) {
    std::printf("load: %" PRId64 " keys into A in %.1f s (%.0f keys/s)\n",
                config.n, load.ms() / 1000,
                config.n / std::max(load.ms() / 1000, 1e-9));
  }
  const AeFullSync& sync = report.full_sync();
  if (sync.ok()) {
    std::printf("full sync A -> B: %.0f ms, %" PRId64
                " records streamed (%.2f per key), %" PRId64
                " bytes on wire (%s), %g exchanges completed, %" PRId64
                " exchange sides failed (%" PRId64 " of them yielded)\n",
                sync.ms(), sync.records(),
                static_cast<double>(sync.records()) / config.n, sync.bytes(),
                HumanBytes(sync.bytes()).c_str(), sync.exchanges(),
                sync.counters().exchanges_failed(), sync.counters().exchanges_yielded());
    if (sync.idle_get_p99_ms_size() == 2 && sync.sync_get_p99_ms_size() == 2) {
      std::printf(
          "foreground Get latency (1 in flight per node) idle -> during the "
          "sync: A p50 %.2f -> %.2f ms, p99 %.2f -> %.2f ms; B p50 %.2f -> "
          "%.2f ms, p99 %.2f -> %.2f ms (target: p99 <= 2 x idle)\n",
          sync.idle_get_p50_ms(0), sync.sync_get_p50_ms(0),
          sync.idle_get_p99_ms(0), sync.sync_get_p99_ms(0),
          sync.idle_get_p50_ms(1), sync.sync_get_p50_ms(1),
          sync.idle_get_p99_ms(1), sync.sync_get_p99_ms(1));
    }
    if (sync.ip_bytes() >= 0) {
      std::printf("full sync IP bytes between the peer ports (kernel): %s\n",
                  HumanBytes(sync.ip_bytes()).c_str());
    }
    std::printf("full sync bytes sent by part: %s\n",
                Parts(sync.counters()).c_str());
    if (sync.peak_rss_bytes_size() == 2 &&
        sync.load_peak_rss_bytes_size() == 2) {
      std::printf(
          "kvd peak RSS (VmHWM) during the full sync: A %s, B %s (before it, "
          "after the load: A %s, B %s)\n",
          HumanBytes(sync.peak_rss_bytes(0)).c_str(),
          HumanBytes(sync.peak_rss_bytes(1)).c_str(),
          HumanBytes(sync.load_peak_rss_bytes(0)).c_str(),
          HumanBytes(sync.load_peak_rss_bytes(1)).c_str());
    }
  } else {
    std::printf("full sync A -> B: FAIL after %.0f ms: %s\n", sync.ms(),
                sync.error().c_str());
  }
  std::printf("\n%8s | %11s | %16s | %13s | %13s | %9s | %s\n", "d",
              "converge ms", "records streamed", "bytes on wire", "bound",
              "exchanges", "pass/fail");
  for (const AeCase& c : report.cases()) {
    std::printf("%8" PRId64 " | %11.0f | %16" PRId64 " | %13" PRId64
                " | %13" PRId64 " | %9g | %s\n",
                c.d(), c.converge_ms(), c.records(), c.bytes(), c.bound(),
                c.exchanges(), c.pass() ? "PASS" : "FAIL");
  }
  std::printf("\nbytes sent by part, and IP bytes between the peer ports "
              "counted by the kernel (target: <= 1.5 x d x %" PRId64
              " B + 64 KiB):\n",
              config.RecordBytes());
  for (const AeCase& c : report.cases()) {
    std::printf("d=%" PRId64 ": %s; IP bytes %s", c.d(),
                Parts(c.counters()).c_str(),
                c.ip_bytes() < 0 ? "not measured (no ss)"
                                 : absl::StrCat(c.ip_bytes()).c_str());
    if (c.ip_bytes() >= 0 && c.d() > 0) {
      std::printf(" = %.2f x the divergent records, target %" PRId64 ": %s",
                  static_cast<double>(c.ip_bytes()) /
                      static_cast<double>(c.d() * config.RecordBytes()),
                  c.ip_target(),
                  c.ip_bytes() <= c.ip_target() ? "PASS" : "FAIL");
    }
    std::printf("\n");
  }
  for (const AeCase& c : report.cases()) {
    if (c.d() == 0 && c.converged()) {
      std::printf(
          "\nd=0: %g exchanges at equal roots, %.1f bytes per exchange "
          "(target <= %d): %s\n",
          c.exchanges(), c.bytes_per_exchange(), kIdleBytesTarget,
          c.bytes_per_exchange() <= kIdleBytesTarget &&
                  c.counters().exchanges_completed() > 0
              ? "PASS"
              : "FAIL");
    }
    if (!c.pass()) {
      std::printf("d=%" PRId64 " failed: %s\n", c.d(),
                  absl::StrJoin(c.failures(), "; ").c_str());
    }
    if (c.counters().exchanges_failed() > 0) {
      std::printf("d=%" PRId64 ": %" PRId64
                  " exchange sides failed or were refused (%" PRId64 " of them yielded)\n",
                  c.d(), c.counters().exchanges_failed(), c.counters().exchanges_yielded());
    }
  }
  if (report.restarts_size() > 0) std::printf("\n");
  for (const AeRestart& r : report.restarts()) {
    if (!r.ok()) {
      std::printf("restart of A after %s: FAIL: %s\n", r.kind().c_str(),
                  r.error().c_str());
      continue;
    }
    std::printf(
        "restart of A after %s (stop took %.0f ms): exec -> ready %.0f ms, "
        "exec -> first Admin.Stats %.0f ms (target < %.0f), keys %" PRId64
        ", root %s: %s\n",
        r.kind().c_str(), r.stop_ms(), r.ready_ms(), r.first_stats_ms(),
        kRestartTargetMs, r.key_count(), r.same_root() ? "unchanged" : "CHANGED",
        r.pass() ? "PASS" : "FAIL");
  }
  std::printf("\n");
  for (const std::string& note : report.notes()) std::printf("%s.\n", note.c_str());
  std::printf("overall: %s\n", report.pass() ? "PASS" : "FAIL");
}

int Main(int argc, char** argv) {
  Config config;
  if (std::optional<int> exit_code = ParseFlags(argc, argv, &config)) {
    return *exit_code;
  }
  auto fail_setup = [](const std::string& what, const absl::Status& s) {
    std::fprintf(stderr, "ae_bench: %s: %s\n", what.c_str(),
                 s.ToString().c_str());
    return 2;
  };
  // Outlives the nodes (declared first).
  std::optional<kv::testing::TempDir> tmp;
  std::string dir = config.dir;
  if (dir.empty()) {
    tmp.emplace();
    dir = tmp->path();
  } else {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return fail_setup("--dir", absl::InternalError(ec.message()));
  }
  std::fprintf(stderr,
               "ae_bench: n=%" PRId64 ", value %d B, record %" PRId64
               " B, %s, data in %s, kvd %s\n",
               config.n, config.value_size, config.RecordBytes(),
               config.Setup().c_str(), dir.c_str(), config.kvd.c_str());

  Pair pair(config);
  if (absl::Status s = pair.Start(dir); !s.ok()) return fail_setup("start", s);
  std::fprintf(stderr, "ae_bench: A on %s, B on %s\n",
               pair.node(0).address().c_str(), pair.node(1).address().c_str());
  AeBenchReport report = NewReport(config);
  if (absl::Status s = Load(pair, config, dir, report.mutable_load()); !s.ok()) {
    return fail_setup("load", s);
  }
  bool pass = FullSync(pair, config, report.mutable_full_sync());
  if (pass) pass = RunCases(pair, config, &report);
  if (config.restart) pass = RunRestarts(pair, config, &report) && pass;
  for (int i = 0; i < 2; ++i) {
    if (pair.node(i).running()) (void)pair.node(i).Terminate(absl::Seconds(30));
  }
  report.set_pass(pass);

  if (config.output == "json") {
    if (absl::Status s = PrintJson(report); !s.ok()) return fail_setup("report", s);
  } else {
    PrintText(config, report);
  }
  std::fflush(stdout);
  return pass ? 0 : 1;
}

}  // namespace
}  // namespace kv::bench

int main(int argc, char** argv) { return kv::bench::Main(argc, argv); }
