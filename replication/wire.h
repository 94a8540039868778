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
// (a salted digest of 0, see SaltedDigest) and the records streamed for them.
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

// Entry fingerprints on the wire (Fingerprints.fingerprints) are the low 24
// bits of the salted digest, 3 bytes little-endian each. Shorter than node
// digests because there are many more of them; a collision (about 1 in 2^24
// per pair of entries compared) only hides a difference from this exchange,
// and the next exchange's salt finds it.
inline constexpr size_t kFingerprintBytes = 3;
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
