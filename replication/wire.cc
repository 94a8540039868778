#include "replication/wire.h"

#include <xxhash.h>

#include <algorithm>

#include "absl/base/internal/endian.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "storage/status_macros.h"

namespace kv::replication {

std::string KeyForMessage(std::string_view key) {
  constexpr size_t kMax = 64;
  std::string out = absl::CHexEscape(
      absl::string_view(key.data(), std::min(key.size(), kMax)));
  if (key.size() > kMax) absl::StrAppend(&out, "...");
  return out;
}

uint32_t SaltedDigest(const storage::Digest& digest, uint64_t salt) {
  if (digest == storage::Digest{}) return kEmptyDigest;
  char buf[16];
  absl::little_endian::Store64(buf, digest.hi);
  absl::little_endian::Store64(buf + 8, digest.lo);
  const auto h =
      static_cast<uint32_t>(XXH3_64bits_withSeed(buf, sizeof(buf), salt));
  return h == kEmptyDigest ? 1 : h;
}

uint32_t ChildDigest(const storage::Digest& digest, uint64_t salt) {
  const uint32_t d = SaltedDigest(digest, salt) & 0xFFFF;
  return d == kEmptyDigest && !(digest == storage::Digest{}) ? 1 : d;
}

uint32_t Fingerprint(const storage::Digest& digest, uint64_t salt) {
  return SaltedDigest(digest, salt) & 0xFFFF;
}

void AppendFingerprint(uint32_t fingerprint, std::string* out) {
  for (size_t i = 0; i < kFingerprintBytes; ++i) {
    out->push_back(static_cast<char>((fingerprint >> (8 * i)) & 0xFF));
  }
}

uint32_t ReadFingerprint(const char* p) {
  uint32_t v = 0;
  for (size_t i = 0; i < kFingerprintBytes; ++i) {
    v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  }
  return v;
}

peer::v1::Record RecordToProto(const storage::Record& record) {
  peer::v1::Record proto;
  proto.set_key(record.key);
  storage::VersionToProto(record.version, proto.mutable_version());
  proto.set_tombstone(record.tombstone);
  if (!record.tombstone) proto.set_value(record.value);
  return proto;
}

absl::Status ValidateVersion(const kv::v1::Version& version) {
  if (version.hlc() == 0) {
    return absl::InvalidArgumentError("missing or zero version");
  }
  return absl::OkStatus();
}

absl::StatusOr<storage::Record> RecordFromProto(const peer::v1::Record& proto,
                                                const RecordLimits& limits) {
  if (proto.key().empty()) return absl::InvalidArgumentError("record: empty key");
  if (!proto.has_version() || proto.version().hlc() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("record of key '", KeyForMessage(proto.key()), "' has no version"));
  }
  if (proto.tombstone() && !proto.value().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tombstone of key '", KeyForMessage(proto.key()), "' carries a value"));
  }
  KV_RETURN_IF_ERROR(storage::CheckKey(limits, proto.key(), "record: "));
  KV_RETURN_IF_ERROR(storage::CheckValue(
      limits, proto.value(), absl::StrCat("record of key '", KeyForMessage(proto.key()), "': ")));
  storage::Record record;
  record.key = proto.key();
  record.version = storage::VersionFromProto(proto.version());
  record.tombstone = proto.tombstone();
  record.value = proto.value();
  return record;
}

bool OverLimits(const peer::v1::Record& proto, const RecordLimits& limits) {
  const bool over = proto.key().size() > limits.max_key_bytes ||
                    proto.value().size() > limits.max_value_bytes;
  // Well formed: RecordFromProto checks the shape before the limits.
  return over && RecordFromProto(proto, RecordLimits{SIZE_MAX, SIZE_MAX}).ok();
}

}  // namespace kv::replication
