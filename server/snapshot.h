// Snapshots of a node's data (backup) and restoring one as a new node.
//
// A snapshot is a directory holding a RocksDB checkpoint of the node's data
// directory (every column as of one moment; SST files hard-linked when on the
// same file system) and the manifest KVSNAPSHOT.json (kv.v1.SnapshotManifest
// in protobuf's JSON mapping). A directory without the manifest is not a
// snapshot: SaveSnapshot builds it as DIR.partial and renames it last.
//
// Restoring makes a NEW data directory from a snapshot and gives it a new
// node id: the cluster refuses two live nodes with one id, and the original
// node may still be running. The restored node then catches up through
// anti-entropy like any node that was away.
//
// The tombstone rule: a delete is a record (a tombstone) with a version, and
// tombstones are never purged. So a restored snapshot, however old, cannot
// bring a deleted key back: the cluster still holds the newer tombstone, and
// last-writer-wins keeps it when anti-entropy meets the snapshot's older
// value. (If tombstones are ever purged after a grace period, a restore of a
// snapshot older than that period would resurrect keys and must be refused.)
// What is refused today: restoring into a non-empty data directory (it would
// mix two nodes' data or replace a node's newer data and tombstones), a
// directory without a manifest, data that does not match its manifest, and
// starting kvd on a snapshot directory itself (it would run under the
// original node's id).
//
// Thread safety: the functions are thread-safe; SaveSnapshot may run while
// the store is written.
#ifndef KV_SERVER_SNAPSHOT_H_
#define KV_SERVER_SNAPSHOT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/kv.pb.h"
#include "storage/store.h"

namespace kv::server {

inline constexpr char kSnapshotManifestFile[] = "KVSNAPSHOT.json";
inline constexpr int kSnapshotFormat = 1;

// Writes a snapshot of `store` into `dir`, which must not exist (its parent
// must). The manifest describes the checkpoint itself (key count and root
// are read from the copy, not the live store). Returns the manifest.
// Errors: INVALID_ARGUMENT for an empty dir; ALREADY_EXISTS when dir or
// dir.partial exists; FAILED_PRECONDITION when the parent directory is
// missing; INTERNAL / DATA_LOSS from storage (dir.partial is removed).
absl::StatusOr<kv::v1::SnapshotManifest> SaveSnapshot(storage::Store& store,
                                                      const std::string& dir,
                                                      const std::string& node_name,
                                                      const std::string& build_version);

// Reads `dir`/KVSNAPSHOT.json. Errors: FAILED_PRECONDITION when it is
// missing (not a snapshot, or an unfinished one); DATA_LOSS when it does not
// parse or names an unknown format.
absl::StatusOr<kv::v1::SnapshotManifest> ReadSnapshotManifest(const std::string& dir);

struct RestoreResult {
  kv::v1::SnapshotManifest manifest;  // The snapshot's.
  uint64_t new_node_id = 0;           // Never the manifest's node id.
};

// Makes `data_dir` from the snapshot in `snapshot_dir`: the files are
// hard-linked (SST files, which RocksDB never modifies) or copied, the
// data is checked against the manifest, and the store gets a new node id.
// data_dir may be missing or an empty directory. The work happens in
// data_dir.restoring, renamed to data_dir last, so a failed restore leaves
// no data directory. A copy of the manifest stays in data_dir as
// RESTORED_FROM.json. Errors: FAILED_PRECONDITION when data_dir is not
// empty, data_dir.restoring exists, the snapshot has no manifest, or its
// leaf depth is not `leaf_depth`; DATA_LOSS when the data does not match
// the manifest; INTERNAL for I/O and storage errors.
absl::StatusOr<RestoreResult> RestoreSnapshot(const std::string& snapshot_dir,
                                              const std::string& data_dir,
                                              uint32_t leaf_depth);

// What kvd does before opening its data directory: with `restore_from`
// non-empty, RestoreSnapshot into data_dir and log the old and new node ids;
// unless data_dir was already restored from that very snapshot (its
// RESTORED_FROM.json names the same node id and time), which is logged and
// left alone, so a restart with the same --restore-from serves on. Then
// CheckNotASnapshot. Errors: theirs.
absl::Status PrepareDataDir(const std::string& restore_from, const std::string& data_dir,
                            uint32_t leaf_depth);

// FAILED_PRECONDITION when `data_dir` is a snapshot (holds KVSNAPSHOT.json):
// serving from it would run a second node under the original's id and
// change the snapshot. OK otherwise (also when it does not exist).
absl::Status CheckNotASnapshot(const std::string& data_dir);

}  // namespace kv::server

#endif  // KV_SERVER_SNAPSHOT_H_
