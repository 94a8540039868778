#include "storage/record.h"

#include <xxhash.h>

#include <cstring>

#include "absl/base/internal/endian.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kv::storage {
namespace {

constexpr uint8_t kFlagTombstone = 0x1;
constexpr size_t kRecordHeader = 8 + 8 + 1;
constexpr size_t kIndexValueSize = 8 * 4;
constexpr size_t kLeafValueSize = 8 * 3;

void PutLE64(std::string* out, uint64_t v) {
  char buf[8];
  absl::little_endian::Store64(buf, v);
  out->append(buf, 8);
}

uint64_t GetLE64(const char* p) { return absl::little_endian::Load64(p); }

}  // namespace

std::string Version::ToString() const { return absl::StrCat(hlc, ":", node_id); }

std::string Digest::Hex() const { return absl::StrFormat("%016x%016x", hi, lo); }

absl::Status CheckKey(const RecordLimits& limits, absl::string_view key,
                      absl::string_view what) {
  if (key.empty()) return absl::InvalidArgumentError(absl::StrCat(what, "key is empty"));
  if (key.size() > limits.max_key_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, "key is ", key.size(), " bytes, over the limit of ",
        limits.max_key_bytes, " bytes (--max-key-bytes)"));
  }
  return absl::OkStatus();
}

absl::Status CheckValue(const RecordLimits& limits, absl::string_view value,
                        absl::string_view what) {
  if (value.size() > limits.max_value_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, "value is ", value.size(), " bytes, over the limit of ",
        limits.max_value_bytes, " bytes (--max-value-bytes)"));
  }
  return absl::OkStatus();
}

uint64_t KeyHash(absl::string_view key) {
  return XXH3_64bits(key.data(), key.size());
}

Digest EntryDigest(const Record& record) {
  std::string buf;
  buf.reserve(record.key.size() + 8 * 4 + 1);
  PutLE64(&buf, record.key.size());
  buf.append(record.key);
  PutLE64(&buf, record.version.hlc);
  PutLE64(&buf, record.version.node_id);
  buf.push_back(record.tombstone ? 1 : 0);
  PutLE64(&buf, XXH3_64bits(record.value.data(), record.value.size()));
  XXH128_hash_t h = XXH3_128bits(buf.data(), buf.size());
  return Digest{h.high64, h.low64};
}

std::string EncodeRecordValue(const Record& record) {
  std::string out;
  out.reserve(kRecordHeader + record.value.size());
  PutLE64(&out, record.version.hlc);
  PutLE64(&out, record.version.node_id);
  out.push_back(static_cast<char>(record.tombstone ? kFlagTombstone : 0));
  if (!record.tombstone) out.append(record.value);
  return out;
}

absl::StatusOr<Record> DecodeRecordValue(absl::string_view key,
                                         absl::string_view encoded) {
  if (encoded.size() < kRecordHeader) {
    return absl::DataLossError(absl::StrCat("record of key '", key, "' is ",
                                            encoded.size(),
                                            " bytes, shorter than its header"));
  }
  const uint8_t flags = static_cast<uint8_t>(encoded[16]);
  if ((flags & ~kFlagTombstone) != 0) {
    return absl::DataLossError(
        absl::StrCat("record of key '", key, "' has unknown flags ", flags));
  }
  Record r;
  r.key = std::string(key);
  r.version.hlc = GetLE64(encoded.data());
  r.version.node_id = GetLE64(encoded.data() + 8);
  r.tombstone = (flags & kFlagTombstone) != 0;
  if (r.tombstone && encoded.size() != kRecordHeader) {
    return absl::DataLossError(
        absl::StrCat("tombstone of key '", key, "' carries a value"));
  }
  r.value = std::string(encoded.substr(kRecordHeader));
  return r;
}

std::string EncodeIndexKey(uint64_t hash, absl::string_view key) {
  std::string out = IndexSeekKey(hash);
  out.append(key.data(), key.size());
  return out;
}

std::string IndexSeekKey(uint64_t hash) {
  char buf[8];
  absl::big_endian::Store64(buf, hash);
  return std::string(buf, 8);
}

std::string EncodeIndexValue(const Version& version, const Digest& digest) {
  std::string out;
  out.reserve(kIndexValueSize);
  PutLE64(&out, version.hlc);
  PutLE64(&out, version.node_id);
  PutLE64(&out, digest.hi);
  PutLE64(&out, digest.lo);
  return out;
}

absl::StatusOr<IndexEntry> DecodeIndexEntry(absl::string_view index_key,
                                            absl::string_view index_value) {
  if (index_key.size() <= 8 || index_value.size() != kIndexValueSize) {
    return absl::DataLossError(absl::StrCat("malformed hash-index entry (key ",
                                            index_key.size(), " bytes, value ",
                                            index_value.size(), " bytes)"));
  }
  IndexEntry e;
  e.hash = absl::big_endian::Load64(index_key.data());
  e.key = std::string(index_key.substr(8));
  e.version.hlc = GetLE64(index_value.data());
  e.version.node_id = GetLE64(index_value.data() + 8);
  e.digest.hi = GetLE64(index_value.data() + 16);
  e.digest.lo = GetLE64(index_value.data() + 24);
  return e;
}

std::string EncodeLeafValue(const LeafValue& leaf) {
  std::string out;
  out.reserve(kLeafValueSize);
  PutLE64(&out, leaf.digest.hi);
  PutLE64(&out, leaf.digest.lo);
  PutLE64(&out, static_cast<uint64_t>(leaf.count));
  return out;
}

absl::StatusOr<LeafValue> DecodeLeafValue(absl::string_view encoded) {
  if (encoded.size() != kLeafValueSize) {
    return absl::DataLossError(absl::StrCat("Merkle leaf value is ",
                                            encoded.size(), " bytes, not 24"));
  }
  LeafValue leaf;
  leaf.digest.hi = GetLE64(encoded.data());
  leaf.digest.lo = GetLE64(encoded.data() + 8);
  leaf.count = static_cast<int64_t>(GetLE64(encoded.data() + 16));
  return leaf;
}

std::string MergeLeafValues(absl::string_view existing,
                            absl::string_view operand) {
  LeafValue a = DecodeLeafValue(existing).value_or(LeafValue{});
  LeafValue b = DecodeLeafValue(operand).value_or(LeafValue{});
  a.digest ^= b.digest;
  // Two's-complement wrap-around, not signed overflow: a corrupt leaf's count
  // can be anything (found by record_fuzz), and VerifyTree repairs it.
  a.count = static_cast<int64_t>(static_cast<uint64_t>(a.count) +
                                 static_cast<uint64_t>(b.count));
  return EncodeLeafValue(a);
}

std::string EncodeLeafKey(uint32_t index) {
  char buf[4];
  absl::big_endian::Store32(buf, index);
  return std::string(buf, 4);
}

}  // namespace kv::storage
