#include "server/snapshot.h"

#include <google/protobuf/util/json_util.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "storage/rocksdb_engine.h"
#include "storage/status_macros.h"

namespace kv::server {
namespace {

namespace fs = std::filesystem;

constexpr char kRestoredFromFile[] = "RESTORED_FROM.json";

absl::Status IoError(absl::string_view what, const fs::path& path,
                     const std::error_code& ec) {
  return absl::InternalError(absl::StrCat(what, " ", path.string(), ": ", ec.message()));
}

absl::Status WriteManifest(const kv::v1::SnapshotManifest& manifest,
                           const fs::path& path) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(manifest, &json, options).ok()) {
    return absl::InternalError("cannot encode the snapshot manifest");
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << json;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path.string()));
  return absl::OkStatus();
}

// Everything after the checkpoint exists: read it back (read-only) and
// write the manifest.
absl::StatusOr<kv::v1::SnapshotManifest> DescribeCheckpoint(
    const fs::path& partial, const std::string& node_name,
    const std::string& build_version, int64_t created_unix_ms) {
  KV_ASSIGN_OR_RETURN(auto engine, storage::OpenRocksDbEngine(storage::RocksDbOptions{
                                       .path = partial.string(),
                                       .block_cache_bytes = 8 << 20,
                                       .memtable_budget_bytes = 16 << 20,
                                       .read_only = true}));
  KV_ASSIGN_OR_RETURN(storage::StoreInfo info, storage::Store::Inspect(std::move(engine)));
  kv::v1::SnapshotManifest m;
  m.set_format(kSnapshotFormat);
  m.set_node_id(info.node_id);
  m.set_node_id_hex(absl::StrFormat("%016x", info.node_id));
  m.set_node_name(node_name);
  m.set_key_count(info.key_count);
  m.set_root_digest(info.root.Hex());
  m.set_leaf_depth(info.leaf_depth);
  m.set_created_unix_ms(created_unix_ms);
  m.set_build_version(build_version);
  KV_RETURN_IF_ERROR(WriteManifest(m, partial / kSnapshotManifestFile));
  return m;
}

// Copies the snapshot's files into `to` (which exists), hard-linking SST
// files: RocksDB never modifies one, and a compaction that deletes it only
// removes one link.
absl::Status CopySnapshotFiles(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(from, ec)) {
    const fs::path name = e.path().filename();
    if (name == kSnapshotManifestFile) continue;
    if (!e.is_regular_file()) {
      return absl::FailedPreconditionError(
          absl::StrCat("unexpected entry in the snapshot: ", e.path().string()));
    }
    if (e.path().extension() == ".sst") {
      fs::create_hard_link(e.path(), to / name, ec);
      if (!ec) continue;  // Else (another file system) copy it.
      ec.clear();
    }
    fs::copy_file(e.path(), to / name, ec);
    if (ec) return IoError("cannot copy", e.path(), ec);
  }
  if (ec) return IoError("cannot list", from, ec);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<kv::v1::SnapshotManifest> SaveSnapshot(storage::Store& store,
                                                      const std::string& dir,
                                                      const std::string& node_name,
                                                      const std::string& build_version) {
  if (dir.empty()) return absl::InvalidArgumentError("no snapshot directory given");
  std::error_code ec;
  const fs::path target = fs::absolute(dir, ec).lexically_normal();
  if (ec) return IoError("cannot resolve", dir, ec);
  const fs::path partial = target.string() + ".partial";
  if (fs::exists(target, ec)) {
    return absl::AlreadyExistsError(absl::StrCat(target.string(), " already exists"));
  }
  if (fs::exists(partial, ec)) {
    return absl::AlreadyExistsError(absl::StrCat(
        partial.string(), " exists (left by a failed snapshot?); remove it first"));
  }
  if (!fs::is_directory(target.parent_path(), ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the parent directory of ", target.string(), " does not exist"));
  }
  const int64_t created = absl::ToUnixMillis(absl::Now());
  absl::Status s = store.Checkpoint(partial.string());
  absl::StatusOr<kv::v1::SnapshotManifest> manifest =
      s.ok() ? DescribeCheckpoint(partial, node_name, build_version, created)
             : absl::StatusOr<kv::v1::SnapshotManifest>(s);
  if (manifest.ok()) {
    fs::rename(partial, target, ec);
    if (ec) manifest = IoError("cannot rename to", target, ec);
  }
  if (!manifest.ok()) {
    fs::remove_all(partial, ec);
    return manifest.status();
  }
  return manifest;
}

absl::StatusOr<kv::v1::SnapshotManifest> ReadSnapshotManifest(const std::string& dir) {
  const fs::path path = fs::path(dir) / kSnapshotManifestFile;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir, " is not a complete snapshot (no ", kSnapshotManifestFile, ")"));
  }
  std::stringstream buf;
  buf << in.rdbuf();
  kv::v1::SnapshotManifest m;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  if (!google::protobuf::util::JsonStringToMessage(buf.str(), &m, options).ok()) {
    return absl::DataLossError(absl::StrCat(path.string(), " does not parse"));
  }
  if (m.format() != kSnapshotFormat) {
    return absl::DataLossError(absl::StrCat(path.string(), " has format ", m.format(),
                                            ", not ", kSnapshotFormat));
  }
  return m;
}

absl::StatusOr<RestoreResult> RestoreSnapshot(const std::string& snapshot_dir,
                                              const std::string& data_dir,
                                              uint32_t leaf_depth) {
  RestoreResult result;
  KV_ASSIGN_OR_RETURN(result.manifest, ReadSnapshotManifest(snapshot_dir));
  const kv::v1::SnapshotManifest& m = result.manifest;
  if (m.leaf_depth() != leaf_depth) {
    return absl::FailedPreconditionError(
        absl::StrCat("the snapshot has Merkle leaf depth ", m.leaf_depth(),
                     ", not the configured ", leaf_depth, " (set --leaf-depth)"));
  }
  std::error_code ec;
  const fs::path target = fs::absolute(data_dir, ec).lexically_normal();
  if (ec) return IoError("cannot resolve", data_dir, ec);
  if (fs::exists(target, ec) && !fs::is_empty(target, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing to restore into ", target.string(),
        ": it is not empty (restoring over a node's data would drop its newer "
        "writes; give an empty or new --data-dir)"));
  }
  const fs::path work = target.string() + ".restoring";
  if (fs::exists(work, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        work.string(), " exists (left by a failed restore?); remove it first"));
  }
  fs::create_directories(work, ec);
  if (ec) return IoError("cannot create", work, ec);
  auto restore = [&]() -> absl::Status {
    KV_RETURN_IF_ERROR(CopySnapshotFiles(snapshot_dir, work));
    KV_ASSIGN_OR_RETURN(auto engine, storage::OpenRocksDbEngine(
                                         storage::RocksDbOptions{.path = work.string()}));
    KV_ASSIGN_OR_RETURN(result.new_node_id, storage::Store::AssignNewNodeId(*engine));
    KV_ASSIGN_OR_RETURN(storage::StoreInfo info, storage::Store::Inspect(std::move(engine)));
    if (info.key_count != m.key_count() || info.root.Hex() != m.root_digest()) {
      return absl::DataLossError(absl::StrCat(
          "the snapshot's data (", info.key_count, " keys, root ", info.root.Hex(),
          ") does not match its manifest (", m.key_count(), " keys, root ",
          m.root_digest(), ")"));
    }
    KV_RETURN_IF_ERROR(WriteManifest(m, work / kRestoredFromFile));
    if (fs::exists(target, ec)) fs::remove(target, ec);  // Empty: checked above.
    fs::rename(work, target, ec);
    if (ec) return IoError("cannot rename to", target, ec);
    return absl::OkStatus();
  };
  absl::Status s = restore();
  if (!s.ok()) {
    fs::remove_all(work, ec);
    return s;
  }
  return result;
}

absl::Status PrepareDataDir(const std::string& restore_from, const std::string& data_dir,
                            uint32_t leaf_depth) {
  if (!restore_from.empty()) {
    KV_ASSIGN_OR_RETURN(kv::v1::SnapshotManifest wanted, ReadSnapshotManifest(restore_from));
    std::ifstream done(fs::path(data_dir) / kRestoredFromFile, std::ios::binary);
    kv::v1::SnapshotManifest restored;
    std::stringstream buf;
    buf << done.rdbuf();
    if (done && google::protobuf::util::JsonStringToMessage(buf.str(), &restored).ok() &&
        restored.node_id() == wanted.node_id() &&
        restored.created_unix_ms() == wanted.created_unix_ms()) {
      spdlog::info("restore: {} was already restored from the snapshot in {}; starting "
                   "from it as it is",
                   data_dir, restore_from);
    } else {
      KV_ASSIGN_OR_RETURN(RestoreResult r, RestoreSnapshot(restore_from, data_dir, leaf_depth));
      spdlog::warn(
          "restore: made {} from the snapshot in {} (node {} '{}', {} keys, root {}, taken "
          "{}, build {}) with the NEW node id {:016x}; anti-entropy brings what was "
          "written since",
          data_dir, restore_from, r.manifest.node_id_hex(), r.manifest.node_name(),
          r.manifest.key_count(), r.manifest.root_digest(),
          absl::FormatTime(absl::FromUnixMillis(r.manifest.created_unix_ms())),
          r.manifest.build_version(), r.new_node_id);
    }
  }
  return CheckNotASnapshot(data_dir);
}

absl::Status CheckNotASnapshot(const std::string& data_dir) {
  std::error_code ec;
  if (fs::exists(fs::path(data_dir) / kSnapshotManifestFile, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        data_dir, " is a snapshot, not a data directory: start with --restore-from ",
        data_dir, " and another --data-dir"));
  }
  return absl::OkStatus();
}

}  // namespace kv::server
