// kvctl: command-line client for kvd.
//
// Exit codes:
//   0  success
//   1  get: the key was not found (never written or deleted); cluster
//      status: the cluster has not converged
//   2  the call failed (server or connection error; health not SERVING; a
//      bench where every call failed): "kvctl: CODE: message" on stderr,
//      CODE being the gRPC status code name (e.g. INVALID_ARGUMENT)
//   3  usage error: bad flags or arguments, unreadable --file, unwritable
//      --out
//
// Output (stdout). --output text (default):
//   get      the value's raw bytes; a newline is added only when stdout is a
//            terminal and the value does not end in one, so `kvctl get k >f`
//            writes the value byte for byte. With --out FILE the value goes
//            to FILE (written to FILE.kvctl-tmp-PID, then renamed; not
//            created when the key is not found) and nothing to stdout;
//            --out - writes the raw bytes to stdout, never adding a newline.
//   put      the new version as HLC:NODE (the form --if-version takes).
//   delete   the tombstone's version as HLC:NODE.
//   scan     one line per entry: KEY<TAB>VALUE<TAB>HLC:NODE, with key and value
//            escaped (\\ \t \n \r \xNN; bytes that are not UTF-8 as \xNN).
//   health   the serving status (SERVING, NOT_SERVING, ...).
//   stats    one "name  value" line per field, then the peers.
//   ae       "anti-entropy running" or "anti-entropy paused".
//   verify   whether the tree matched, the key count and root digest.
//   bench    one summary line (progress goes to stderr on a terminal).
//   members  a table of the members the node knows (see
//            FormatMembersTable); `members remove` prints what it removed.
//   cluster status  the live members' roots and key counts, then one line
//            "converged: ..." or "not converged: ..." (which nodes differ,
//            which are suspect or down); exit code 1 when not converged.
//   snapshot save  what was saved: node, keys, root digest, directory, time.
//   health, stats with --all  a table, one row per endpoint (see
//            FormatReportTable in client/kvctl_endpoints.h).
//   completion bash  a bash completion script (client/kvctl_completion.h).
// --output table: a header row and aligned columns (Table in
//   client/kvctl_output.h), keys and values escaped as in text:
//     get     KEY VALUE VERSION (with --out: KEY VERSION BYTES FILE)
//     put, delete  KEY VERSION
//     scan    KEY VALUE VERSION (all entries are gathered first; nothing is
//             printed when the scan fails)
//     health  ENDPOINT STATUS (as with --all)
//     stats   FIELD VALUE, then PEER LAST EXCHANGE LAST FAILURE
//             REFUSED (CLOCK) LAST ERROR
//     verify  MATCHED KEYS ROOT
//     snapshot save  NODE NODE ID KEYS ROOT DIR MS
//     health, stats with --all  as in text.
//   members and cluster status are tables already (as in text); ae, bench,
//   members remove and completion print their text form.
// --output json: exactly one JSON object on one line. Keys and values are
//   bytes: a field "value" comes with "value_encoding": "utf8" when the bytes
//   are valid UTF-8 (the JSON string is the value), or "base64" (the JSON
//   string is standard padded base64 of the bytes); likewise "key" and
//   "key_encoding". Versions are strings "HLC:NODE" (64-bit numbers do not
//   survive JSON doubles), null when the key was never written.
//     get     {"key","key_encoding","found","value","value_encoding","version"};
//             with --out FILE "out":FILE,"bytes":N in place of the value
//     put, delete  {"key","key_encoding","version"}
//     scan    {"entries":[{"key",..,"value",..,"version"},...],"count":N},
//             streamed; a scan that fails midway leaves it unterminated
//             (exit code 2).
//     health  {"status":"SERVING"}
//     stats, verify  the proto message in protobuf's JSON mapping, with
//             proto field names and all fields printed.
//     ae      {"anti_entropy_running":true|false}
//     bench   see FormatBenchJson in client/bench.h.
//     members the MembersResponse in protobuf's JSON mapping.
//     members remove  {"removed":"NODE ID HEX"}
//     snapshot save  the SnapshotResponse in protobuf's JSON mapping.
//     health, stats with --all  one object per endpoint and line (see
//             FormatReportJson in client/kvctl_endpoints.h).
//     cluster status  see FormatClusterJson in client/kvctl_members.h.
#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "build_version.h"  // KV_BUILD_VERSION, KV_BUILD_TYPE, generated.
#include "client/bench.h"
#include "client/client.h"
#include "client/kvctl_completion.h"
#include "client/kvctl_endpoints.h"
#include "client/kvctl_members.h"
#include "client/kvctl_output.h"
#include "client/kvctl_util.h"

namespace kv::client {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitNotFound = 1;
constexpr int kExitError = 2;
constexpr int kExitUsage = 3;

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "kvctl: %s: %s\n",
               absl::StatusCodeToString(s.code()).c_str(),
               std::string(s.message()).c_str());
  return kExitError;
}

int Usage(absl::string_view message) {
  std::fprintf(stderr, "kvctl: %s\n", std::string(message).c_str());
  return kExitUsage;
}

void Out(absl::string_view s) { std::fwrite(s.data(), 1, s.size(), stdout); }

// Parses argv; returns -1 to go on, or the exit code (0 after --help).
int Parse(CLI::App& app, int argc, char** argv) {
  CLI11_PARSE(app, argc, argv);
  return -1;
}

// Reads all of `f` into `out`. Returns errno on failure, 0 on success.
int ReadAll(FILE* f, std::string* out) {
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out->append(buf, n);
  return std::ferror(f) ? (errno != 0 ? errno : EIO) : 0;
}

struct Flags {
  // Global.
  std::string endpoint = "127.0.0.1:7070";
  std::string output = "text";
  std::string timeout = "10";
  std::string consistency = "one";
  std::string token;  // --token / KVCTL_TOKEN.
  // --cacert/--cert/--key, KVCTL_CACERT/KVCTL_CERT/KVCTL_KEY.
  std::string tls_ca, tls_cert, tls_key;
  std::string endpoints;  // --endpoints / KVCTL_ENDPOINTS: a,b,c.
  bool all = false;       // --all: health/stats on every endpoint.
  // Commands.
  std::string key;
  std::string value;
  std::string file;
  std::string out_file;  // get --out.
  std::string if_version;
  bool if_absent = false;
  std::string prefix, start, end;
  uint32_t limit = 0;
  std::string ae_action;
  std::string member;
  // Bench.
  std::string workload = "ping";
  double duration_s = 10;
  int concurrency = 32;
  int channels = 1;
  uint64_t keys = 100000;
  int value_size = 100;
  bool preload = false;
  uint64_t seed = 0;
};

std::string VersionJson(const Version& v) {
  return v.IsSet() ? JsonQuote(FormatVersion(v)) : "null";
}

absl::StatusOr<Precondition> PreconditionFromFlags(const Flags& f) {
  if (f.if_absent) return Precondition::MustNotExist();
  if (f.if_version.empty()) return Precondition::None();
  absl::StatusOr<Version> v = ParseVersion(f.if_version);
  if (!v.ok()) return v.status();
  return Precondition::ExpectVersion(*v);
}

std::string FormatUnixMs(int64_t ms, absl::Time now) {
  if (ms == 0) return "never";
  const absl::Time t = absl::FromUnixMillis(ms);
  const absl::Duration ago = absl::Trunc(now - t, absl::Seconds(1));
  return absl::StrCat(
      absl::FormatTime("%Y-%m-%d %H:%M:%S", t, absl::LocalTimeZone()), " (",
      ago < absl::Seconds(1) ? "just now" : absl::StrCat(absl::FormatDuration(ago), " ago"),
      ")");
}

std::string ProtoJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.always_print_primitive_fields = true;
  opts.preserve_proto_field_names = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(m, &out, opts).ok()) {
    return "{}";
  }
  return out;
}

// Writes `data` to `path` whole or not at all: into PATH.kvctl-tmp-PID in the
// same directory, then renamed over `path`.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view data) {
  const std::string tmp = absl::StrCat(path, ".kvctl-tmp-", getpid());
  FILE* out = std::fopen(tmp.c_str(), "wb");
  if (out == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write --out ", path, ": ", std::strerror(errno)));
  }
  const bool written = std::fwrite(data.data(), 1, data.size(), out) == data.size();
  int err = written ? 0 : errno;
  if (std::fclose(out) != 0 && err == 0) err = errno;
  if (err == 0 && std::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) {
    std::remove(tmp.c_str());
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write --out ", path, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

int CmdGet(Client& c, const Flags& f, OutputFormat fmt) {
  const bool to_file = !f.out_file.empty() && f.out_file != "-";
  if (f.out_file == "-" && fmt != OutputFormat::kText) {
    return Usage("get --out - writes the raw value to stdout: it goes with --output text only");
  }
  absl::StatusOr<GetResult> r = c.Get(f.key);
  if (!r.ok()) return Fail(r.status());
  if (r->found && to_file) {
    absl::Status s = WriteFileAtomically(f.out_file, r->value);
    if (!s.ok()) return Usage(s.message());
  }
  if (fmt == OutputFormat::kJson) {
    std::string out = "{";
    AppendJsonBytes(&out, "key", f.key);
    absl::StrAppend(&out, ",\"found\":", r->found ? "true" : "false", ",");
    if (to_file) {
      absl::StrAppend(&out, "\"out\":",
                      JsonQuote(IsValidUtf8(f.out_file) ? f.out_file
                                                        : absl::CHexEscape(f.out_file)),
                      ",\"bytes\":",
                      r->found ? r->value.size() : 0);
    } else {
      AppendJsonBytes(&out, "value", r->value);
    }
    absl::StrAppend(&out, ",\"version\":", VersionJson(r->version), "}\n");
    Out(out);
  } else if (r->found && fmt == OutputFormat::kTable) {
    Table t(to_file ? std::vector<std::string>{"KEY", "VERSION", "BYTES", "FILE"}
                    : std::vector<std::string>{"KEY", "VALUE", "VERSION"});
    if (to_file) {
      t.AlignRight(2);
      t.AddRow({TextEscape(f.key), FormatVersion(r->version), absl::StrCat(r->value.size()),
                TextEscape(f.out_file)});
    } else {
      t.AddRow({TextEscape(f.key), TextEscape(r->value), FormatVersion(r->version)});
    }
    Out(t.Render());
  } else if (r->found && !to_file) {
    Out(r->value);
    if (f.out_file.empty() && isatty(STDOUT_FILENO) &&
        (r->value.empty() || r->value.back() != '\n')) {
      Out("\n");
    }
  }
  if (!r->found && fmt != OutputFormat::kJson) {
    std::fprintf(stderr, "kvctl: key not found: %s\n",
                 TextEscape(f.key).c_str());
  }
  return r->found ? kExitOk : kExitNotFound;
}

int PrintWriteResult(const absl::StatusOr<Version>& v, const Flags& f,
                     OutputFormat fmt) {
  if (!v.ok()) return Fail(v.status());
  if (fmt == OutputFormat::kTable) {
    Table t({"KEY", "VERSION"});
    t.AddRow({TextEscape(f.key), FormatVersion(*v)});
    Out(t.Render());
  } else if (fmt == OutputFormat::kJson) {
    std::string out = "{";
    AppendJsonBytes(&out, "key", f.key);
    absl::StrAppend(&out, ",\"version\":", VersionJson(*v), "}\n");
    Out(out);
  } else {
    Out(absl::StrCat(FormatVersion(*v), "\n"));
  }
  return kExitOk;
}

int CmdPut(Client& c, Flags& f, OutputFormat fmt, bool have_value) {
  absl::StatusOr<Precondition> pre = PreconditionFromFlags(f);
  if (!pre.ok()) return Usage(pre.status().message());
  if (have_value && !f.file.empty()) {
    return Usage("put takes VALUE or --file, not both");
  }
  if (!have_value) {
    FILE* in = stdin;
    if (!f.file.empty() && f.file != "-") {
      in = std::fopen(f.file.c_str(), "rb");
      if (in == nullptr) {
        return Usage(
            absl::StrCat("cannot open ", f.file, ": ", std::strerror(errno)));
      }
    } else if (isatty(STDIN_FILENO)) {
      std::fputs("kvctl: reading the value from stdin (end with Ctrl-D)\n",
                 stderr);
    }
    const int err = ReadAll(in, &f.value);
    if (in != stdin) std::fclose(in);
    if (err != 0) {
      return Usage(absl::StrCat("cannot read ",
                                f.file.empty() ? "stdin" : f.file, ": ",
                                std::strerror(err)));
    }
  }
  return PrintWriteResult(c.Put(f.key, f.value, *pre), f, fmt);
}

int CmdDelete(Client& c, const Flags& f, OutputFormat fmt) {
  absl::StatusOr<Precondition> pre = PreconditionFromFlags(f);
  if (!pre.ok()) return Usage(pre.status().message());
  return PrintWriteResult(c.Delete(f.key, *pre), f, fmt);
}

int CmdScan(Client& c, const Flags& f, OutputFormat fmt) {
  const bool json = fmt == OutputFormat::kJson;
  ScanOptions opts{f.prefix, f.start, f.end, f.limit};
  uint64_t count = 0;
  Table table({"KEY", "VALUE", "VERSION"});
  if (json) Out("{\"entries\":[");
  absl::Status s = c.Scan(opts, [&](const Entry& e) {
    if (fmt == OutputFormat::kTable) {
      table.AddRow({TextEscape(e.key), TextEscape(e.value), FormatVersion(e.version)});
    } else if (json) {
      std::string out = count == 0 ? "{" : ",{";
      AppendJsonBytes(&out, "key", e.key);
      out += ",";
      AppendJsonBytes(&out, "value", e.value);
      absl::StrAppend(&out, ",\"version\":", VersionJson(e.version), "}");
      Out(out);
    } else {
      Out(absl::StrCat(TextEscape(e.key), "\t", TextEscape(e.value), "\t",
                       FormatVersion(e.version), "\n"));
    }
    ++count;
    return true;
  });
  if (!s.ok()) {
    if (json) Out("\n");
    std::fflush(stdout);
    return Fail(s);
  }
  if (json) Out(absl::StrCat("],\"count\":", count, "}\n"));
  if (fmt == OutputFormat::kTable) Out(table.Render());
  return kExitOk;
}

int CmdHealth(Client& c, OutputFormat fmt) {
  auto r = c.Health();
  if (!r.ok()) return Fail(r.status());
  const std::string name =
      grpc::health::v1::HealthCheckResponse::ServingStatus_Name(*r);
  if (fmt == OutputFormat::kTable) {
    EndpointReport report;
    report.endpoint = c.endpoint();
    report.health = name;
    Out(FormatReportTable({report}, /*stats=*/false));
  } else {
    Out(fmt == OutputFormat::kJson ? absl::StrCat("{\"status\":", JsonQuote(name), "}\n")
                                   : absl::StrCat(name, "\n"));
  }
  if (*r != grpc::health::v1::HealthCheckResponse::SERVING) {
    std::fprintf(stderr, "kvctl: health: %s\n", name.c_str());
    return kExitError;
  }
  return kExitOk;
}

int CmdStats(Client& c, OutputFormat fmt) {
  absl::StatusOr<kv::v1::StatsResponse> r = c.Stats();
  if (!r.ok()) return Fail(r.status());
  if (fmt == OutputFormat::kJson) {
    Out(absl::StrCat(ProtoJson(*r), "\n"));
    return kExitOk;
  }
  const absl::Time now = absl::Now();
  const std::vector<std::pair<std::string, std::string>> fields = {
      {"node", absl::StrCat(r->node_name(), " (id ", r->node_id(), ")")},
      {"keys (incl. tombstones)", absl::StrCat(r->key_count())},
      {"root digest", r->root_digest()},
      {"anti-entropy", r->anti_entropy_running() ? "running" : "paused"},
      {"exchanges",
       absl::StrFormat("%d started, %d completed, %d failed (%d of them yielded), "
                       "%d equal roots",
                       r->exchanges_started(), r->exchanges_completed(),
                       r->exchanges_failed(), r->exchanges_yielded(),
                       r->rounds_equal_roots())},
      {"differing leaves", absl::StrCat(r->differing_leaves())},
      {"keys sent / received", absl::StrCat(r->keys_sent(), " / ", r->keys_received())},
      {"bytes sent / received", absl::StrCat(r->bytes_sent(), " / ", r->bytes_received())},
      {"bytes sent by part",
       absl::StrCat("digests ", r->bytes_sent_by_part().digests(), ", fingerprints ",
                    r->bytes_sent_by_part().fingerprints(), ", diffs ",
                    r->bytes_sent_by_part().diffs(), ", wants ",
                    r->bytes_sent_by_part().wants(), ", records ",
                    r->bytes_sent_by_part().records())},
      {"keys streamed (to empty)", absl::StrCat(r->keys_streamed())},
      {"promoted to normal CPU", absl::StrCat(r->exchanges_promoted())},
      {"refused (clock ahead)", absl::StrCat(r->records_refused_clock())},
      {"skipped (over limits)", absl::StrCat(r->records_over_limits())},
      {"refused (not asked)", absl::StrCat(r->records_not_asked())},
      {"tree verifications",
       absl::StrCat(r->tree_verifications(), " (", r->tree_mismatches(), " mismatches)")},
      {"fan-out pushes", absl::StrFormat("%d sent, %d failed", r->fanout().pushes_sent(),
                                         r->fanout().pushes_failed())},
      {"fan-out records",
       absl::StrFormat("%d queued, %d acked, %d dropped, %d retried, %d coalesced",
                       r->fanout().records_queued(), r->fanout().records_acked(),
                       r->fanout().records_dropped(), r->fanout().records_retried(),
                       r->fanout().records_coalesced())},
      {"fan-out rumors", absl::StrFormat("%d writes, %d records forwarded",
                                         r->fanout().rumor_writes(),
                                         r->fanout().records_forwarded())},
      {"quorum/all writes", absl::StrFormat("%d acked, %d failed", r->fanout().writes_acked(),
                                            r->fanout().writes_failed())},
      {"read repairs", absl::StrCat(r->fanout().reads_repaired())},
      {"pushed to this node",
       absl::StrFormat("%d applied, %d refused (clock ahead), %d skipped (over limits)",
                       r->fanout().received_applied(), r->fanout().received_refused_clock(),
                       r->fanout().received_over_limits())},
  };
  if (fmt == OutputFormat::kTable) {
    Table t({"FIELD", "VALUE"});
    for (const auto& [name, value] : fields) t.AddRow({name, value});
    Table peers({"PEER", "LAST EXCHANGE", "LAST FAILURE", "REFUSED (CLOCK)", "LAST ERROR"});
    peers.AlignRight(3);
    for (const kv::v1::PeerStats& p : r->peers()) {
      peers.AddRow({p.live() ? p.address() : absl::StrCat(p.address(), " (not live)"),
                    FormatUnixMs(p.last_exchange_unix_ms(), now),
                    FormatUnixMs(p.last_failure_unix_ms(), now),
                    absl::StrCat(p.records_refused_clock()), TextEscape(p.last_error())});
    }
    Out(absl::StrCat(t.Render(), "\n", peers.Render()));
    return kExitOk;
  }
  std::string out;
  for (const auto& [name, value] : fields) {
    absl::StrAppendFormat(&out, "%-24s %s\n", name, value);
  }
  absl::StrAppend(&out, "peers (", r->peers_size(), ")\n");
  for (const kv::v1::PeerStats& p : r->peers()) {
    absl::StrAppend(&out, "  ", p.address(), p.live() ? "" : " (not live)", "\n");
    absl::StrAppend(&out, "    last exchange  ",
                    FormatUnixMs(p.last_exchange_unix_ms(), now), "\n");
    absl::StrAppend(&out, "    last failure   ",
                    FormatUnixMs(p.last_failure_unix_ms(), now), "\n");
    if (!p.last_error().empty()) {
      absl::StrAppend(&out, "    last error     ", TextEscape(p.last_error()),
                      "\n");
    }
    if (p.records_refused_clock() > 0) {
      absl::StrAppend(&out, "    refused (clock ahead) ", p.records_refused_clock(),
                      "\n");
    }
  }
  Out(out);
  return kExitOk;
}

int CmdAntiEntropy(Client& c, const Flags& f, bool json) {
  absl::StatusOr<bool> r = c.SetAntiEntropy(f.ae_action == "resume");
  if (!r.ok()) return Fail(r.status());
  Out(json ? absl::StrCat("{\"anti_entropy_running\":", *r ? "true" : "false",
                          "}\n")
           : absl::StrCat("anti-entropy ", *r ? "running" : "paused", "\n"));
  return kExitOk;
}

int CmdVerify(Client& c, OutputFormat fmt) {
  absl::StatusOr<kv::v1::VerifyTreeResponse> r = c.VerifyTree();
  if (!r.ok()) return Fail(r.status());
  if (fmt == OutputFormat::kTable) {
    Table t({"MATCHED", "KEYS", "ROOT"});
    t.AlignRight(1);
    t.AddRow({r->matched() ? "yes" : "NO (rebuilt)", absl::StrCat(r->key_count()),
              r->root_digest()});
    Out(t.Render());
  } else if (fmt == OutputFormat::kJson) {
    Out(absl::StrCat(ProtoJson(*r), "\n"));
  } else {
    Out(absl::StrCat(
        r->matched() ? "tree matched the data"
                     : "tree DID NOT match the data; rebuilt from the data",
        ": ", r->key_count(), " keys, root ", r->root_digest(), "\n"));
  }
  return kExitOk;
}

int CmdMembers(Client& c, bool json) {
  absl::StatusOr<kv::v1::MembersResponse> r = c.Members();
  if (!r.ok()) return Fail(r.status());
  Out(json ? absl::StrCat(ProtoJson(*r), "\n") : FormatMembersTable(*r));
  return kExitOk;
}

// DIR is on the node's machine; a relative one is made absolute here (with
// kvctl's working directory), as for a node on this machine.
int CmdSnapshotSave(Client& c, const std::string& dir, OutputFormat fmt) {
  std::error_code ec;
  const std::filesystem::path absolute = std::filesystem::absolute(dir, ec);
  absl::StatusOr<kv::v1::SnapshotResponse> r = c.Snapshot(ec ? dir : absolute.string());
  if (!r.ok()) return Fail(r.status());
  const kv::v1::SnapshotManifest& m = r->manifest();
  if (fmt == OutputFormat::kTable) {
    Table t({"NODE", "NODE ID", "KEYS", "ROOT", "DIR", "MS"});
    t.AlignRight(2).AlignRight(5);
    t.AddRow({m.node_name(), m.node_id_hex(), absl::StrCat(m.key_count()), m.root_digest(),
              TextEscape(r->dir()), absl::StrCat(r->duration_ms())});
    Out(t.Render());
  } else if (fmt == OutputFormat::kJson) {
    Out(absl::StrCat(ProtoJson(*r), "\n"));
  } else {
    Out(absl::StrFormat("snapshot of node %s (%s): %d keys, root %s, in %s (%d ms)\n",
                        m.node_name(), m.node_id_hex(), m.key_count(), m.root_digest(),
                        r->dir(), r->duration_ms()));
  }
  return kExitOk;
}

int CmdMembersRemove(Client& c, const Flags& f, bool json) {
  absl::StatusOr<kv::v1::MembersResponse> members = c.Members();
  if (!members.ok()) return Fail(members.status());
  absl::StatusOr<uint64_t> id = ResolveMember(f.member, *members);
  if (!id.ok()) {
    return id.status().code() == absl::StatusCode::kInvalidArgument
               ? Usage(id.status().message())
               : Fail(id.status());
  }
  absl::Status s = c.RemoveMember(*id);
  if (!s.ok()) return Fail(s);
  Out(json ? absl::StrCat("{\"removed\":\"", NodeIdHex(*id), "\"}\n")
           : absl::StrCat("removed ", NodeIdHex(*id),
                          " for good (it can never rejoin under this id)\n"));
  return kExitOk;
}

int CmdClusterStatus(Client& c, bool json) {
  absl::StatusOr<kv::v1::MembersResponse> r = c.Members();
  if (!r.ok()) return Fail(r.status());
  const ClusterVerdict verdict = JudgeCluster(*r);
  Out(json ? FormatClusterJson(*r, verdict) : FormatClusterText(*r, verdict));
  return verdict.converged ? kExitOk : kExitNotFound;
}

int CmdBench(const Flags& f, const ClientOptions& copt, bool json,
             bool seed_given) {
  absl::StatusOr<Workload> w = ParseWorkload(f.workload);
  if (!w.ok()) return Usage(w.status().message());
  BenchOptions opts;
  opts.workload = *w;
  opts.duration = absl::Seconds(f.duration_s);
  opts.concurrency = f.concurrency;
  opts.channels = f.channels;
  opts.keys = f.keys;
  opts.value_size = f.value_size;
  opts.preload = f.preload;
  opts.seed = seed_given ? f.seed : std::random_device{}();
  opts.progress = isatty(STDERR_FILENO);
  opts.consistency = copt.consistency;
  absl::StatusOr<BenchResult> r = RunBench(f.endpoint, copt, opts);
  if (!r.ok()) {
    return r.status().code() == absl::StatusCode::kInvalidArgument
               ? Usage(r.status().message())
               : Fail(r.status());
  }
  Out(absl::StrCat(json ? FormatBenchJson(*r) : FormatBenchText(*r), "\n"));
  if (!r->first_error.empty()) {
    std::fprintf(stderr, "kvctl: bench: %llu errors, first: %s\n",
                 static_cast<unsigned long long>(r->errors),
                 r->first_error.c_str());
  }
  return r->ops == 0 && r->errors > 0 ? kExitError : kExitOk;
}

// CLI11 validators with short messages.
std::string Positive(const std::string& s) {
  double d;
  return absl::SimpleAtod(s, &d) && d > 0 ? "" : "must be a number > 0";
}
std::string NonNegative(const std::string& s) {
  double d;
  return absl::SimpleAtod(s, &d) && d >= 0 ? "" : "must be a number >= 0";
}

int Main(int argc, char** argv) {
  Flags f;
  CLI::App app{
      "kvctl: command-line client for kvd.\n"
      "Exit codes: 0 ok, 1 key not found (get) or not converged (cluster "
      "status), 2 server or connection error "
      "(\"kvctl: CODE: message\" on stderr), 3 usage error.\n"
      "Versions are written HLC:NODE. get prints the raw value (a newline is "
      "added only on a terminal). --output json prints one JSON object; "
      "keys/values that are not UTF-8 are base64 with \"*_encoding\": "
      "\"base64\"."};
  app.fallthrough();
  app.require_subcommand(1);
  app.set_version_flag("--version",
                       std::string("kvctl " KV_BUILD_VERSION " (" KV_BUILD_TYPE ")"),
                       "Print the build version (git commit, build type) and exit");
  app.add_option("--endpoint,-e", f.endpoint, "Server host:port")
      ->envname("KVCTL_ENDPOINT")
      ->capture_default_str();
  app.add_option("--endpoints", f.endpoints,
                 "Comma-separated host:port list: the first that answers (Ping within "
                 "2 s) is used, instead of --endpoint (not by bench)")
      ->envname("KVCTL_ENDPOINTS");
  app.add_flag("--all", f.all,
               "health/stats: ask every endpoint (--endpoints, else --endpoint) and print "
               "one row per node (--output json: one object per line); exit 2 unless "
               "all are SERVING");
  app.add_option("--output,-o", f.output,
                 "Output format; table: a header row and aligned columns (get, put, "
                 "delete, scan, health, stats, verify, members, snapshot save)")
      ->check(CLI::IsMember(OutputFormatNames()))
      ->capture_default_str();
  app.add_option("--consistency", f.consistency,
                 "Replicas a get/put/delete/bench call involves: one (the node "
                 "called), quorum (a majority of the cluster) or all; scan takes one "
                 "only (it reads the node called)")
      ->check(CLI::IsMember({"one", "quorum", "all"}))
      ->capture_default_str();
  app.add_option("--token", f.token,
                 "Token sent with every call (for a kvd with --auth-token-file)")
      ->envname("KVCTL_TOKEN");
  app.add_option("--cacert", f.tls_ca,
                 "Connect with TLS, verifying the node's certificate against this PEM CA "
                 "(a kvd with --tls-cert)")
      ->envname("KVCTL_CACERT");
  app.add_option("--cert", f.tls_cert,
                 "PEM client certificate to present (with --key; for --client-cert-auth); "
                 "implies TLS")
      ->envname("KVCTL_CERT");
  app.add_option("--key", f.tls_key, "PEM private key of --cert")->envname("KVCTL_KEY");
  app.add_option("--timeout", f.timeout,
                 "Per-call deadline: seconds (2.5) or a duration (500ms, inf)")
      ->capture_default_str();

  CLI::App* get = app.add_subcommand("get", "Print the value of KEY");
  get->add_option("KEY", f.key, "Key")->required();
  get->add_option("--out", f.out_file,
                  "Write the value's bytes to this file (replaced whole, not created "
                  "when the key is not found); - = stdout, never adding a newline");

  CLI::App* put = app.add_subcommand(
      "put", "Write VALUE (or --file, or stdin) under KEY; prints the version");
  put->add_option("KEY", f.key, "Key")->required();
  CLI::Option* value_opt = put->add_option("VALUE", f.value, "Value");
  put->add_option("--file,-f", f.file,
                  "Read the value from this file (- = stdin)");

  CLI::App* del =
      app.add_subcommand("delete", "Delete KEY (writes a tombstone)");
  del->add_option("KEY", f.key, "Key")->required();

  for (CLI::App* sub : {put, del}) {
    CLI::Option* iv =
        sub->add_option("--if-version", f.if_version,
                        "Only if the key's current version is HLC:NODE");
    CLI::Option* ia = sub->add_flag("--if-absent", f.if_absent,
                                    "Only if the key does not exist");
    iv->excludes(ia);
  }

  CLI::App* scan = app.add_subcommand("scan", "List live keys in key order");
  CLI::Option* prefix_opt =
      scan->add_option("--prefix", f.prefix, "Key prefix");
  CLI::Option* start_opt =
      scan->add_option("--start", f.start, "First key (inclusive)");
  CLI::Option* end_opt = scan->add_option(
      "--end", f.end, "End key (exclusive; default: to the last key)");
  prefix_opt->excludes(start_opt)->excludes(end_opt);
  scan->add_option("--limit,-n", f.limit, "At most N entries (0 = all)")
      ->capture_default_str();

  CLI::App* health = app.add_subcommand(
      "health", "grpc.health.v1 check; exit 2 unless SERVING");
  CLI::App* stats = app.add_subcommand("stats", "Print the node's Admin.Stats");
  CLI::App* ae = app.add_subcommand("ae", "Pause or resume anti-entropy");
  ae->add_option("ACTION", f.ae_action, "pause|resume")
      ->required()
      ->check(CLI::IsMember({"pause", "resume"}));
  CLI::App* verify = app.add_subcommand(
      "verify", "Rebuild the Merkle tree from the data and compare");

  CLI::App* members = app.add_subcommand(
      "members", "The members the node knows (gossip): status, phi, root, keys");
  CLI::App* members_remove = members->add_subcommand(
      "remove", "Forget a member that is down or left, for good");
  members_remove->add_option("NODE", f.member, "Name, or node id (hex or decimal)")
      ->required();
  CLI::App* cluster = app.add_subcommand("cluster", "Cluster-wide views");
  cluster->require_subcommand(1);
  CLI::App* cluster_status = cluster->add_subcommand(
      "status",
      "Whether every live member holds the same data (as the node sees it); "
      "exit 1 when not");

  std::string snapshot_dir;
  CLI::App* snapshot = app.add_subcommand("snapshot", "Backups of the node's data");
  snapshot->require_subcommand(1);
  CLI::App* snapshot_save = snapshot->add_subcommand(
      "save",
      "Write a consistent copy of the node's data (RocksDB checkpoint + manifest "
      "KVSNAPSHOT.json) into the new directory DIR on the node's machine, online; "
      "restore it with kvd --restore-from DIR");
  snapshot_save->add_option("DIR", snapshot_dir, "Directory to create (must not exist)")
      ->required();

  CLI::App* bench = app.add_subcommand(
      "bench", "Closed-loop benchmark with N calls in flight");
  bench->add_option("--workload,-w", f.workload, "ping|get|put|mixed")
      ->check(CLI::IsMember({"ping", "get", "put", "mixed"}))
      ->capture_default_str();
  bench->add_option("--duration,-d", f.duration_s, "Seconds")
      ->check(Positive)
      ->capture_default_str();
  bench->add_option("--concurrency,-c", f.concurrency, "Calls in flight")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  bench
      ->add_option("--channels", f.channels,
                   "gRPC channels (TCP connections) to spread calls over")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  bench->add_option("--keys,-k", f.keys, "Key space: key0000000000..")
      ->check(Positive)
      ->capture_default_str();
  bench->add_option("--value-size", f.value_size, "Value bytes for puts")
      ->check(NonNegative)
      ->capture_default_str();
  bench->add_flag("--preload", f.preload,
                  "get/mixed: write all keys first (not measured)");
  CLI::Option* seed_opt =
      bench->add_option("--seed", f.seed, "Random seed (default: random)");

  std::string shell;
  CLI::App* completion = app.add_subcommand(
      "completion",
      "Print a shell completion script: source <(kvctl completion bash), or save it "
      "in /etc/bash_completion.d/kvctl");
  completion->add_option("SHELL", shell, "Shell")
      ->required()
      ->check(CLI::IsMember({"bash"}));

  const int rc = Parse(app, argc, argv);
  if (rc == 0) return kExitOk;
  if (rc > 0) return kExitUsage;
  if (*completion) {
    Out(BashCompletion(app, "kvctl"));
    return kExitOk;
  }

  absl::StatusOr<absl::Duration> timeout = ParseTimeout(f.timeout);
  if (!timeout.ok()) return Usage(timeout.status().message());
  ClientOptions copt;
  copt.timeout = *timeout;
  copt.consistency = *ParseConsistency(f.consistency);  // Checked by CLI11.
  copt.token = f.token;
  copt.tls_ca_file = f.tls_ca;
  copt.tls_cert_file = f.tls_cert;
  copt.tls_key_file = f.tls_key;
  absl::StatusOr<OutputFormat> fmt = ParseOutputFormat("--output", f.output);
  if (!fmt.ok()) return Usage(fmt.status().message());  // Checked by CLI11 too.
  const bool json = *fmt == OutputFormat::kJson;

  if (*bench) return CmdBench(f, copt, json, seed_opt->count() > 0);
  if (*scan && copt.consistency != Consistency::kOne) {
    // Scan streams the called node's own data (ScanRequest has no
    // consistency): merging several replicas' streams is not built.
    return Usage(absl::StrCat("--consistency ", f.consistency,
                              " does not work with scan: a scan reads the node called "
                              "only; read single keys with get --consistency ",
                              f.consistency));
  }

  const std::vector<std::string> endpoints = ParseEndpoints(f.endpoints);
  if (f.all) {
    const bool want_stats = static_cast<bool>(*stats);
    if (!*health && !want_stats) return Usage("--all works with health and stats");
    const std::vector<EndpointReport> reports = ReportAll(
        endpoints.empty() ? std::vector<std::string>{f.endpoint} : endpoints, copt, want_stats);
    Out(json ? FormatReportJson(reports, want_stats) : FormatReportTable(reports, want_stats));
    return AllServing(reports) ? kExitOk : kExitError;
  }
  absl::StatusOr<std::unique_ptr<Client>> client =
      endpoints.empty() ? Client::Connect(f.endpoint, copt)
                        : ConnectFirst(endpoints, copt, absl::Seconds(2));
  if (!client.ok()) {
    if (client.status().code() == absl::StatusCode::kUnavailable) return Fail(client.status());
    return Usage(client.status().message());
  }
  Client& c = **client;
  if (*get) return CmdGet(c, f, *fmt);
  if (*put) return CmdPut(c, f, *fmt, value_opt->count() > 0);
  if (*del) return CmdDelete(c, f, *fmt);
  if (*scan) return CmdScan(c, f, *fmt);
  if (*health) return CmdHealth(c, *fmt);
  if (*stats) return CmdStats(c, *fmt);
  if (*ae) return CmdAntiEntropy(c, f, json);
  if (*verify) return CmdVerify(c, *fmt);
  if (*members_remove) return CmdMembersRemove(c, f, json);
  if (*members) return CmdMembers(c, json);
  if (*cluster_status) return CmdClusterStatus(c, json);
  if (*snapshot_save) return CmdSnapshotSave(c, snapshot_dir, *fmt);
  return Usage("no command");
}

}  // namespace
}  // namespace kv::client

int main(int argc, char** argv) {
  const int rc = kv::client::Main(argc, argv);
  std::fflush(stdout);
  return rc;
}
