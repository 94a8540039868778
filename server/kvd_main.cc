// kvd: one node of the replicated key-value store. Flags (or a config file
// of `name = value` lines, --config) become NodeOptions; everything else is
// in Node.
#include <signal.h>
#include <unistd.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <climits>
#include <cstdio>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/str_split.h"
#include "build_version.h"  // KV_BUILD_VERSION, generated.
#include "server/cpu_priority.h"
#include "server/kvd_env.h"
#include "server/log_format.h"
#include "server/node.h"
#include "server/snapshot.h"
#include "storage/config.h"

namespace {

// host:port with a port in [0, 65535] (an IPv6 host in brackets). CLI11
// prefixes the message with the flag's name.
CLI::Validator HostPort(bool allow_empty = false) {
  return CLI::Validator(
      [allow_empty](std::string& s) -> std::string {
        const absl::string_view v = absl::StripAsciiWhitespace(s);
        if (v.empty() && allow_empty) return "";
        const size_t colon = v.rfind(':');
        int port = -1;
        if (colon == absl::string_view::npos || colon == 0 ||
            !absl::SimpleAtoi(v.substr(colon + 1), &port) || port < 0 ||
            port > 65535) {
          return "'" + s + "' is not host:port (a port in [0, 65535])";
        }
        return "";
      },
      "HOST:PORT", "host:port");
}

CLI::Validator NonEmpty() {
  return CLI::Validator(
      [](std::string& s) { return s.empty() ? std::string("is empty") : std::string(); },
      "", "non-empty");
}

}  // namespace

int main(int argc, char** argv) {
  kv::server::NodeOptions o;
  std::string log_level = "info";
  std::string ready_file;
  CLI::App app{"kvd: a node of the eventually consistent key-value store"};
  app.set_version_flag("--version",
                       std::string("kvd " KV_BUILD_VERSION " (" KV_BUILD_TYPE ")"),
                       "Print the build version (git commit, build type) and exit");
  app.set_config("--config", "", "Read options from a file of `name = value` lines");
  app.add_option("--name", o.name, "Node name (for logs and stats)")
      ->capture_default_str()
      ->check(NonEmpty());
  app.add_option("--listen", o.listen, "host:port to serve gRPC on (port 0: any free port)")
      ->capture_default_str()
      ->check(HostPort());
  app.add_option("--peer-listen", o.peer_listen,
                 "host:port for the peer services (Peer, Gossip, Replica); then --listen "
                 "serves only clients (KV, Admin). Default: peers share --listen");
  app.add_option("--peer-advertise", o.peer_advertise,
                 "host:port other nodes reach the peer port at (default: the bound "
                 "--peer-listen address)");
  app.add_option("--metrics-listen", o.metrics_listen,
                 "host:port to serve Prometheus metrics on (HTTP GET /metrics; default: "
                 "no metrics endpoint)");
  app.add_option("--auth-token-file", o.auth_token_file,
                 "File of `TOKEN ROLE` lines (role: read, readwrite, admin) that client "
                 "calls must present (default: no authentication)");
  // TLS: the files are checked at start (kv::server::ValidateTlsConfig), so
  // a missing one is an error naming its flag, not a failed handshake later.
  app.add_option("--tls-cert", o.tls.client.cert_file,
                 "PEM certificate (chain) to serve TLS on --listen with (default: plaintext)");
  app.add_option("--tls-key", o.tls.client.key_file, "PEM private key of --tls-cert");
  app.add_option("--tls-ca", o.tls.client.ca_file,
                 "PEM CA certificate(s) client certificates are verified against (a client "
                 "presenting one it did not sign is refused); without --peer-listen also the "
                 "CA peers are verified against");
  app.add_flag("--client-cert-auth", o.tls.client_cert_auth,
               "Require a client certificate signed by --tls-ca on --listen");
  app.add_option("--peer-tls-cert", o.tls.peer.cert_file,
                 "PEM certificate of this node for mutual TLS on --peer-listen (presented "
                 "to peers and served to them; needs --peer-listen)");
  app.add_option("--peer-tls-key", o.tls.peer.key_file, "PEM private key of --peer-tls-cert");
  app.add_option("--peer-tls-ca", o.tls.peer.ca_file,
                 "PEM cluster CA: peers whose certificate it did not sign are refused");
  app.add_option("--tls-reload-interval", o.tls.reload_interval_s,
                 "Seconds between rereads of the TLS files (certificates replaced on disk "
                 "are used from then on)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 86400u));
  app.add_option("--data-dir", o.data_dir, "Data directory (created when missing)")
      ->capture_default_str()
      ->check(NonEmpty());
  app.add_flag("--sync", o.sync,
               "fsync the write-ahead log before acknowledging a write (group commit)");
  app.add_option("--max-key-bytes", o.limits.max_key_bytes, "Largest key accepted")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 20));
  app.add_option("--max-value-bytes", o.limits.max_value_bytes, "Largest value accepted")
      ->capture_default_str()
      ->check(CLI::Range(size_t{0}, size_t{64} << 20));
  app.add_option("--max-batch", o.limits.max_batch, "Most mutations or keys per batch call")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--max-message-bytes", o.limits.max_message_bytes,
                 "gRPC message limit (0: key + value limit + 64 KiB; never below what the "
                 "peer protocol needs, about 1 MiB)")
      ->capture_default_str()
      // gRPC takes an int.
      ->check(CLI::Range(size_t{0}, size_t{INT_MAX}));
  app.add_option("--max-concurrent-streams", o.limits.max_concurrent_streams,
                 "Concurrent calls one client connection may have open")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  app.add_option("--server-memory-bytes", o.limits.server_memory_bytes,
                 "Memory all connections and calls may take for buffers (gRPC resource "
                 "quota; 0: none)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  app.add_option("--max-connection-idle-ms", o.limits.max_connection_idle_ms,
                 "Close a client connection with no call for this long (0: never)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{INT_MAX}));
  app.add_option("--handshake-timeout-ms", o.limits.handshake_timeout_ms,
                 "Close a connection that has not finished its HTTP/2 handshake this long "
                 "after it was accepted")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{100}, int64_t{INT_MAX}));
  app.add_option("--keepalive-ms", o.limits.keepalive_ms,
                 "Ping a connection idle this long; close it when the ping goes unanswered "
                 "for 20 s (0: no pings)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{INT_MAX}));
  app.add_option("--leaf-depth", o.leaf_depth, "Merkle tree leaf depth D (2^D leaves)")
      ->capture_default_str()
      ->check(CLI::Range(0u, kv::storage::config::kMaxLeafDepth));
  app.add_option("--verify-interval", o.verify_interval_s,
                 "Seconds between background Merkle tree verifications (0: never)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{365} * 24 * 3600));
  app.add_option("--clock-offset-ms", o.clock_offset_ms,
                 "Test only: shift this node's wall clock")
      ->capture_default_str();
  std::vector<std::string> seed_lists;
  // Defaults from AntiEntropyOptions (one definition); the flags are in ms
  // and s.
  auto& ae = o.anti_entropy;
  int64_t ae_interval_ms = absl::ToInt64Milliseconds(ae.interval);
  int64_t ae_deadline_s = absl::ToInt64Seconds(ae.exchange_deadline);
  app.add_option("--seeds,--peers", seed_lists,
                 "Comma-separated host:port of nodes to join through (this node's own "
                 "address may be among them); --peers is an alias")
      ->delimiter(',')
      ->check(HostPort(/*allow_empty=*/true));
  app.add_option("--advertise", o.advertise,
                 "host:port other nodes reach this one at (default: the bound --listen "
                 "address; required when listening on 0.0.0.0)")
      ->check(HostPort());
  app.add_option("--gossip-interval-ms", o.gossip.interval_ms,
                 "Milliseconds between gossip rounds (jittered +-10%)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{10}, int64_t{60000}));
  app.add_option("--phi-suspect", o.gossip.phi_suspect,
                 "Failure detector: phi at which a member is suspected")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 1000.0));
  app.add_option("--phi-down", o.gossip.phi_down,
                 "Failure detector: phi at which a member is marked down")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 1000.0));
  app.add_option("--ae-interval-ms", ae_interval_ms,
                 "Milliseconds between anti-entropy exchanges (jittered +-25%)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{10}, int64_t{3600000}));
  app.add_option("--ae-deadline", ae_deadline_s, "Seconds one exchange may take")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{3600}));
  int64_t ae_idle_timeout_ms = absl::ToInt64Milliseconds(ae.idle_timeout);
  app.add_option("--ae-idle-timeout-ms", ae_idle_timeout_ms,
                 "Milliseconds without a message from the peer that end an exchange")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{10}, int64_t{3600000}));
  app.add_option("--ae-bandwidth", ae.bandwidth_bytes_per_s,
                 "Repair traffic cap in bytes/s (0: none)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--ae-max-incoming", ae.max_incoming,
                 "Most exchanges served at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--ae-max-records-per-message", ae.exchange.max_records_per_message,
                 "Records per exchange message")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{100000}));
  std::string ae_cpu_priority = kv::server::CpuPriorityName(ae.cpu_priority);
  app.add_option("--ae-cpu-priority", ae_cpu_priority,
                 "CPU priority of anti-entropy exchanges: idle (Linux SCHED_IDLE: "
                 "foreground requests preempt them at once) or normal")
      ->capture_default_str()
      ->check(CLI::IsMember({"idle", "normal"}));
  int64_t ae_promote_ms = absl::ToInt64Milliseconds(ae.idle_promote_after);
  app.add_option("--ae-idle-promote-after-ms", ae_promote_ms,
                 "With --ae-cpu-priority idle: milliseconds after which an exchange still "
                 "running goes on at normal priority (repair keeps going on busy cores)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{3600000}));
  int64_t cpu_slice_us = 400;
  app.add_option("--cpu-slice-us", cpu_slice_us,
                 "Scheduler time slice of kvd's threads, microseconds (Linux 6.12 or later; "
                 "older kernels ignore it): a request that wakes on a core busy with a "
                 "flush or repair waits less; 0: the kernel's default")
      ->capture_default_str()
      // The kernel's range, or 0.
      ->check(CLI::Range(int64_t{100}, int64_t{100000}) | CLI::IsMember({int64_t{0}}));
  std::string storage_cpu_priority = "auto";
  app.add_option("--storage-cpu-priority", storage_cpu_priority,
                 "CPU priority of RocksDB's flush and compaction threads: auto (nice 19 "
                 "while their backlog is small, so that requests preempt them, normal as it "
                 "grows; needs CAP_SYS_NICE, else normal), low (nice 19 always: requests that "
                 "keep a core busy starve them and writes stop meanwhile) or normal")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "low", "normal"}));
  app.add_flag("--ae-paused", ae.start_paused,
               "Start with anti-entropy paused (resume with kvctl ae resume)");
  app.add_option("--max-clock-drift-ms", o.max_clock_drift_ms,
                 "Refuse replicated records versioned further ahead of this node's "
                 "clock (0: no limit)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  bool fanout_enabled = o.fanout.enabled;
  int64_t fanout_ack_timeout_ms = absl::ToInt64Milliseconds(o.fanout.ack_timeout);
  app.add_option("--fanout-enabled", fanout_enabled,
                 "Push every write to the live members at once (false: ONE writes "
                 "spread by anti-entropy alone; QUORUM/ALL still push)")
      ->capture_default_str();
  app.add_option("--fanout-queue-records", o.fanout.fanout.max_queue_records,
                 "Most records queued for one peer (more are dropped and left to "
                 "anti-entropy)")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{10'000'000}));
  app.add_option("--fanout-queue-bytes", o.fanout.fanout.max_queue_bytes,
                 "Most bytes queued for one peer")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1024}, size_t{1} << 34));
  app.add_option("--fanout-ack-timeout-ms", fanout_ack_timeout_ms,
                 "Longest a QUORUM/ALL request waits for replicas")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{600000}));
  app.add_option("--fanout", o.fanout.fanout.fanout,
                 "With more live peers than this, a ONE write goes to this many random "
                 "peers and each receiver forwards what is new to it as many times "
                 "(rumor mongering, with a hop limit); 0: push to every live peer")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")
      ->capture_default_str()
      // spdlog turns an unknown name into "off": a typo would silence kvd.
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  std::string log_format = "text";
  app.add_option("--log-format", log_format,
                 "text|json (json: one object per line with time, level, node, message)")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--ready-file", ready_file,
                 "Write the bound host:port to this file once serving");
  std::string restore_from;
  app.add_option("--restore-from", restore_from,
                 "Make --data-dir (missing or empty) from the snapshot in this directory "
                 "(kvctl snapshot save), with a new node id, then start; the node catches "
                 "up through anti-entropy. Again with the same snapshot: starts as is");
  // Last: every option above also from KVD_<NAME> (flags > env > config file).
  kv::server::UseEnvironment(app, "KVD_");
  CLI11_PARSE(app, argc, argv);
  // Debian's abseil is built with mutex deadlock detection on, which costs a
  // graph update per lock; the striped locks are ordered by construction.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  if (o.gossip.phi_down < o.gossip.phi_suspect) {
    std::fprintf(stderr, "--phi-down must be at least --phi-suspect\n");
    return 3;
  }
  for (const std::string& p : seed_lists) {
    absl::string_view seed = absl::StripAsciiWhitespace(p);
    if (!seed.empty()) o.seeds.emplace_back(seed);
  }
  o.build_version = KV_BUILD_VERSION;
  o.fanout.enabled = fanout_enabled;
  o.fanout.ack_timeout = absl::Milliseconds(fanout_ack_timeout_ms);
  ae.interval = absl::Milliseconds(ae_interval_ms);
  ae.exchange_deadline = absl::Seconds(ae_deadline_s);
  ae.idle_timeout = absl::Milliseconds(ae_idle_timeout_ms);
  ae.idle_promote_after = absl::Milliseconds(ae_promote_ms);
  ae.cpu_priority = ae_cpu_priority == "idle" ? kv::server::CpuPriority::kIdle
                                              : kv::server::CpuPriority::kNormal;
  o.storage_priority = storage_cpu_priority == "low"
                           ? kv::server::NodeOptions::StoragePriority::kLow
                       : storage_cpu_priority == "normal"
                           ? kv::server::NodeOptions::StoragePriority::kNormal
                           : kv::server::NodeOptions::StoragePriority::kAuto;
  spdlog::set_level(spdlog::level::from_str(log_level));
  if (absl::Status s = kv::server::SetLogFormat(log_format, o.name); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 3;
  }

  // Before any thread starts, so that every thread inherits it (an
  // exchange's thread keeps it across its idle scope).
  if (cpu_slice_us > 0) {
    absl::StatusOr<int64_t> slice = kv::server::SetThreadSliceNanos(cpu_slice_us * 1000);
    if (!slice.ok()) {
      spdlog::warn("kvd: --cpu-slice-us {} not set: {}", cpu_slice_us, slice.status().ToString());
    } else if (*slice != cpu_slice_us * 1000) {
      spdlog::info("kvd: --cpu-slice-us {}: this kernel keeps no slice per thread (Linux "
                   "before 6.12); its default applies",
                   cpu_slice_us);
    }
  }

  // Block the stop signals before any thread starts (RocksDB and gRPC start
  // threads) so that only sigwait below receives them. SIGUSR1 is how a
  // fatal gossip error (this node's id was refused) wakes it: kvd then exits
  // with code 1.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  absl::Mutex fatal_mu;
  absl::Status fatal;  // Guarded by fatal_mu.
  o.on_fatal = [&fatal_mu, &fatal](const absl::Status& s) {
    {
      absl::MutexLock lock(&fatal_mu);
      fatal = s;
    }
    kill(getpid(), SIGUSR1);
  };

  if (absl::Status s = kv::server::PrepareDataDir(restore_from, o.data_dir, o.leaf_depth);
      !s.ok()) {
    spdlog::critical("kvd: cannot start: {}", s.ToString());
    return 1;
  }
  auto node = kv::server::Node::Start(o);
  if (!node.ok()) {
    spdlog::critical("kvd: cannot start: {}", node.status().ToString());
    return 1;
  }
  if (!ready_file.empty()) {
    const std::string tmp = ready_file + ".tmp";
    std::ofstream(tmp) << (*node)->address() << "\n";
    std::rename(tmp.c_str(), ready_file.c_str());
  }
  int sig = 0;
  while (true) {
    sigwait(&stop_signals, &sig);
    if (sig != SIGUSR1) break;
    absl::MutexLock lock(&fatal_mu);
    if (!fatal.ok()) break;
  }
  if (sig == SIGUSR1) {
    std::fprintf(stderr, "kvd: stopping: %s\n", std::string(fatal.message()).c_str());
    (*node)->Shutdown();
    return 1;
  }
  spdlog::info("kvd: received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
  (*node)->Shutdown();
  return 0;
}
