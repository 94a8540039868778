// Records, versions and digests: the unit of storage and of replication.
//
// Thread safety: plain values and pure functions; safe to use from any thread.
#ifndef KV_STORAGE_RECORD_H_
#define KV_STORAGE_RECORD_H_

#include <compare>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "storage/config.h"

namespace kv::storage {

// Totally ordered write version: hybrid logical clock first, then node id.
// The higher version wins (last-writer-wins). {0, 0} means "no version".
struct Version {
  uint64_t hlc = 0;      // 48-bit physical ms << 16 | 16-bit logical.
  uint64_t node_id = 0;  // Id of the node that made the write.

  friend auto operator<=>(const Version&, const Version&) = default;
  bool IsZero() const { return hlc == 0 && node_id == 0; }
  // "HLC:NODE" in decimal, the form kvctl accepts back.
  std::string ToString() const;
};

// 128-bit digest. XOR is the only operation the Merkle tree needs.
struct Digest {
  uint64_t hi = 0;
  uint64_t lo = 0;

  friend bool operator==(const Digest&, const Digest&) = default;
  // An arbitrary but fixed total order (hi, then lo): breaks ties between
  // records with equal versions.
  friend auto operator<=>(const Digest&, const Digest&) = default;
  Digest& operator^=(const Digest& o) {
    hi ^= o.hi;
    lo ^= o.lo;
    return *this;
  }
  friend Digest operator^(Digest a, const Digest& b) { return a ^= b; }
  bool IsZero() const { return hi == 0 && lo == 0; }
  std::string Hex() const;  // 32 lowercase hex digits, hi first.
};

// A version in a message: kv.v1.Version (proto/kv.proto), which carries
// {hlc, node_id} for clients and peers alike. The one conversion for the KV
// service and the peer protocol; templates, so that storage needs none of
// the generated code (`VersionProto` is kv::v1::Version).
template <typename VersionProto>
Version VersionFromProto(const VersionProto& proto) {
  return Version{proto.hlc(), proto.node_id()};
}
template <typename VersionProto>
void VersionToProto(const Version& version, VersionProto* proto) {
  proto->set_hlc(version.hlc);
  proto->set_node_id(version.node_id);
}

// One stored entry. A tombstone has an empty value.
struct Record {
  std::string key;
  Version version;
  bool tombstone = false;
  std::string value;

  friend bool operator==(const Record&, const Record&) = default;
};

// The largest key and value a node accepts, from clients (server::Limits)
// and from peers (replication). Set by kvd's --max-key-bytes and
// --max-value-bytes, which the error messages below name.
struct RecordLimits {
  size_t max_key_bytes = config::kDefaultMaxKeyBytes;
  size_t max_value_bytes = config::kDefaultMaxValueBytes;
};

// The one key and value check. `what` prefixes the message (e.g.
// "mutation 3: ").
// Errors: INVALID_ARGUMENT "key is empty", or "key is N bytes, over the
// limit of M bytes (--max-key-bytes)".
absl::Status CheckKey(const RecordLimits& limits, absl::string_view key,
                      absl::string_view what = "");
// Errors: INVALID_ARGUMENT "value is N bytes, over the limit of M bytes
// (--max-value-bytes)".
absl::Status CheckValue(const RecordLimits& limits, absl::string_view value,
                        absl::string_view what = "");

// Where a key sits in the hash space (XXH3-64 of the key bytes).
uint64_t KeyHash(absl::string_view key);

// 128-bit digest of (key, version, tombstone, hash of value). Two replicas
// hold the same entry iff its digests are equal (up to hash collisions).
Digest EntryDigest(const Record& record);

// Encoding of a record as the value of the data column (the key is the user
// key): [hlc u64 LE][node_id u64 LE][flags u8][value bytes].
std::string EncodeRecordValue(const Record& record);
// Errors: DATA_LOSS when `encoded` is truncated or has unknown flags.
absl::StatusOr<Record> DecodeRecordValue(absl::string_view key,
                                         absl::string_view encoded);

// Hash-index column: key = [KeyHash(key) u64 BE][key], value =
// [hlc u64 LE][node_id u64 LE][digest hi u64 LE][digest lo u64 LE].
struct IndexEntry {
  uint64_t hash = 0;
  std::string key;
  Version version;
  Digest digest;
};
std::string EncodeIndexKey(uint64_t hash, absl::string_view key);
// The smallest index key whose hash is >= `hash` (a seek target).
std::string IndexSeekKey(uint64_t hash);
std::string EncodeIndexValue(const Version& version, const Digest& digest);
// Errors: DATA_LOSS on a malformed key or value.
absl::StatusOr<IndexEntry> DecodeIndexEntry(absl::string_view index_key,
                                            absl::string_view index_value);

// Merkle leaf value (and merge operand): [digest hi][digest lo][count i64],
// all little-endian. Merging XORs the digests and adds the counts, so it is
// associative and commutative.
struct LeafValue {
  Digest digest;
  int64_t count = 0;
};
std::string EncodeLeafValue(const LeafValue& leaf);
// Errors: DATA_LOSS when `encoded` is not 24 bytes.
absl::StatusOr<LeafValue> DecodeLeafValue(absl::string_view encoded);
// existing ^ operand (both encoded leaf values; an empty `existing` is zero).
// Malformed input is treated as zero and reported by DecodeLeafValue later.
// Counts add modulo 2^64 (a corrupt count never overflows).
std::string MergeLeafValues(absl::string_view existing, absl::string_view operand);
// Key of leaf `index` in the Merkle column: u32 BE.
std::string EncodeLeafKey(uint32_t index);

}  // namespace kv::storage

#endif  // KV_STORAGE_RECORD_H_
