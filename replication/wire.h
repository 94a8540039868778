// Conversions between the peer protocol (proto/peer.proto) and storage types,
// the salted 32-bit digests used on the wire, and validation of peer input.
// Every proto <-> storage conversion of replication/ lives here.
//
// Thread safety: pure functions; safe from any thread.
#ifndef KV_REPLICATION_WIRE_H_
#define KV_REPLICATION_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/peer.pb.h"
#include "storage/record.h"

namespace kv::replication {

// The peer protocol version carried in Hello. Version 2 added empty ranges
// (a salted digest of 0, see SaltedDigest) and the records streamed for them,
// 16-bit digests below the root and 16-bit fingerprints, Diff entries by key
// hash and HLC, and wants by position. Version 3 writes versions through a
// version table per message (VersionTableWriter), Diff entries as one byte
// string of (key hash bits below their node, varint hlc delta, varint node
// position) (AppendDiffEntry), Diffs without their node (the n-th answers
// the n-th Fingerprints), Fingerprints' node relative to the leaves and to
// the message's previous Fingerprints, and records as ExchangeRecord.
// Versions refuse each other in Hello.
inline constexpr uint32_t kProtocolVersion = 3;

// The salted 32-bit wire digest of a 128-bit node or entry digest: the low 32
// bits of XXH3_64bits_withSeed over the 16 bytes hi (little-endian) then lo
// (little-endian), seeded with `salt`; except that 0 is reserved for the zero
// digest, the digest of a node that holds no entries ("empty"), and a hash
// of 0 for any other digest is sent as 1. So a peer can tell an empty node
// from a differing one. (A non-empty node whose entry digests XOR to zero,
// a chance of 2^-128, would pass for empty.)
uint32_t SaltedDigest(const storage::Digest& digest, uint64_t salt);
inline constexpr uint32_t kEmptyDigest = 0;

// Below the root (Digests.digests) node digests are 16 bits: the low 16 bits
// of SaltedDigest, 0 again only for an empty node (a non-empty one whose
// low bits are 0 is sent as 1), 2 bytes little-endian each. A collision
// (about 1 in 2^16 per differing node) hides that subtree from this exchange
// only: the next exchange's salt finds it. Hello's root stays 32 bits, so
// equal roots end an exchange with a 2^-32 chance of a mistake.
inline constexpr size_t kChildDigestBytes = 2;
uint32_t ChildDigest(const storage::Digest& digest, uint64_t salt);

// Entry fingerprints on the wire (Fingerprints.fingerprints) are the low 16
// bits of the salted digest, 2 bytes little-endian each. A node is compared
// by fingerprints only when it holds at most max_fingerprints (64) entries,
// so a differing entry is hidden by a collision with about 64 / 2^16 = 0.1 %
// chance, and then only from this exchange: the next exchange's salt finds
// it. (24 bits cost 50 % more bytes, a third of all the overhead for 10 000
// differing keys out of 1M.)
inline constexpr size_t kFingerprintBytes = 2;
uint32_t Fingerprint(const storage::Digest& digest, uint64_t salt);
void AppendFingerprint(uint32_t fingerprint, std::string* out);
// REQUIRES: `p` points at kFingerprintBytes readable bytes.
uint32_t ReadFingerprint(const char* p);

// Limits applied to records and keys received from a peer: the node's own
// record limits, checked by storage::CheckKey and storage::CheckValue (one
// definition and one wording for clients and peers).
using storage::RecordLimits;

// Copies `record` into a wire record (a tombstone carries no value).
peer::v1::Record RecordToProto(const storage::Record& record);

// The version table of one ExchangeMessage as its sender fills it: each
// version is written as (hlc - hlc_base, position of its node id in
// node_ids). hlc_base is the hlc of the first version written; deltas are
// two's complement modulo 2^64 (zigzag on the wire), so any hlc is exact.
//
// Thread safety: not thread-safe; one table per message being built.
class VersionTableWriter {
 public:
  // A point to roll back to (an item that did not fit in the message).
  struct Mark {
    size_t node_ids = 0;
    bool has_base = false;
  };

  // The delta of `hlc` from the base (set by the first call).
  int64_t HlcDelta(uint64_t hlc);
  // The position of `node_id` in node_ids, added when new.
  uint32_t NodePosition(uint64_t node_id);

  Mark mark() const { return Mark{node_ids_.size(), has_base_}; }
  // Forgets what was added since `mark`.
  void Rollback(const Mark& mark);
  // Serialized bytes hlc_base and node_ids add to the message, with their
  // tags and lengths (what WriteTo adds to ByteSizeLong).
  int64_t ByteSize() const;
  // Sets msg's hlc_base and node_ids.
  void WriteTo(peer::v1::ExchangeMessage* msg) const;

 private:
  uint64_t base_ = 0;
  bool has_base_ = false;
  std::vector<uint64_t> node_ids_;
  absl::flat_hash_map<uint64_t, uint32_t> positions_;
};

// Reads versions through a received message's version table. Holds a
// pointer to `msg`, which must outlive it.
class VersionTableReader {
 public:
  explicit VersionTableReader(const peer::v1::ExchangeMessage& msg)
      : msg_(msg) {}
  // The version (hlc_base + hlc_delta, node_ids[node]).
  // Errors: INVALID_ARGUMENT when `node` is out of range of node_ids or the
  // hlc is 0; the message starts with `what`.
  absl::StatusOr<storage::Version> Read(int64_t hlc_delta, uint32_t node,
                                        absl::string_view what) const;

 private:
  const peer::v1::ExchangeMessage& msg_;
};

// A Diff entry's key hash on the wire: its low 64 - depth bits (the top
// `depth` bits are the index of the Diff's node), in KeyHashBytes(depth)
// bytes little-endian. REQUIRES depth <= 64.
size_t KeyHashBytes(uint32_t depth);
void AppendKeyHash(uint64_t key_hash, uint32_t depth, std::string* out);
// The key hash at `p` (KeyHashBytes(depth) readable bytes) under node
// (depth, index). Errors: INVALID_ARGUMENT when bits above the low
// 64 - depth are set (the hash would not be under the node).
absl::StatusOr<uint64_t> ReadKeyHash(const char* p, uint32_t depth,
                                     uint64_t index);

// One Diff entry as written in Diff.entries: the key hash, and the version
// as (hlc delta, node position) of the message's version table.
struct WireDiffEntry {
  uint64_t key_hash = 0;
  int64_t hlc_delta = 0;
  uint32_t node = 0;
};
// Appends `entry` of a Diff whose node is at `depth` to `out`: the key hash
// (AppendKeyHash), the zigzag varint hlc delta, the varint node position.
void AppendDiffEntry(const WireDiffEntry& entry, uint32_t depth,
                     std::string* out);
// Parses Diff.entries of a Diff of node (depth, index).
// Errors: INVALID_ARGUMENT when an entry is cut short, a varint is longer
// than 10 bytes or a node position over 32 bits, a key hash is not under the
// node (ReadKeyHash), or there are more than max_entries entries.
absl::StatusOr<std::vector<WireDiffEntry>> ParseDiffEntries(
    absl::string_view entries, uint32_t depth, uint64_t index,
    size_t max_entries);

// Copies `record` into an exchange record, its version through `table`.
peer::v1::ExchangeRecord ExchangeRecordToProto(const storage::Record& record,
                                               VersionTableWriter* table);

// Validates a received exchange record and converts it.
// Errors: INVALID_ARGUMENT as RecordFromProto; a missing version is a zero
// hlc or a node position out of range of the message's node_ids (the
// message names which).
absl::StatusOr<storage::Record> ExchangeRecordFromProto(
    const peer::v1::ExchangeRecord& proto, const VersionTableReader& versions,
    const RecordLimits& limits);
// As OverLimits below, for an exchange record.
bool OverLimits(const peer::v1::ExchangeRecord& proto,
                const VersionTableReader& versions, const RecordLimits& limits);

// `key` escaped and cut to at most 64 bytes, for error messages.
std::string KeyForMessage(std::string_view key);

// Errors: INVALID_ARGUMENT when the version is missing or its hlc is zero.
absl::Status ValidateVersion(const kv::v1::Version& version);

// Validates a received record and converts it.
// Errors: INVALID_ARGUMENT for an empty or oversized key, a missing or zero
// version, a tombstone that carries a value, or a value over
// limits.max_value_bytes (the messages of storage::CheckKey and CheckValue).
absl::StatusOr<storage::Record> RecordFromProto(const peer::v1::Record& proto,
                                                const RecordLimits& limits);

// Whether the record is well formed (RecordFromProto would take it with no
// limits) and its key or value is longer than `limits` allow. A node
// configured with larger limits (a rolling change of --max-key-bytes or
// --max-value-bytes) sends such records; receivers skip and count them
// instead of failing the whole exchange or push.
bool OverLimits(const peer::v1::Record& proto, const RecordLimits& limits);

}  // namespace kv::replication

#endif  // KV_REPLICATION_WIRE_H_
