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

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/peer.pb.h"
#include "storage/record.h"

namespace kv::replication {

// The peer protocol version carried in Hello. Version 2 added empty ranges
// (a salted digest of 0, see SaltedDigest) and the records streamed for them,
// 16-bit digests below the root and 16-bit fingerprints, Diff entries by key
// hash and HLC, and wants by position.
inline constexpr uint32_t kProtocolVersion = 2;

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

// Copies `record` into a wire record (a tombstone carries no value).
peer::v1::Record RecordToProto(const storage::Record& record);

// `key` escaped and cut to at most 64 bytes, for error messages.
std::string KeyForMessage(std::string_view key);

// Limits applied to records and keys received from a peer: the node's own
// record limits, checked by storage::CheckKey and storage::CheckValue (one
// definition and one wording for clients and peers).
using storage::RecordLimits;

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
