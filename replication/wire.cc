#include "replication/wire.h"

#include <xxhash.h>

#include <algorithm>

#include "absl/base/internal/endian.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
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

namespace {

// The checks every received record passes, whichever its wire form.
absl::Status CheckRecord(const std::string& key, const std::string& value,
                         bool tombstone, bool has_version,
                         const RecordLimits& limits) {
  if (key.empty()) return absl::InvalidArgumentError("record: empty key");
  if (!has_version) {
    return absl::InvalidArgumentError(
        absl::StrCat("record of key '", KeyForMessage(key), "' has no version"));
  }
  if (tombstone && !value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tombstone of key '", KeyForMessage(key), "' carries a value"));
  }
  KV_RETURN_IF_ERROR(storage::CheckKey(limits, key, "record: "));
  KV_RETURN_IF_ERROR(storage::CheckValue(
      limits, value, absl::StrCat("record of key '", KeyForMessage(key), "': ")));
  return absl::OkStatus();
}

constexpr RecordLimits kNoLimits{SIZE_MAX, SIZE_MAX};

}  // namespace

absl::StatusOr<storage::Record> RecordFromProto(const peer::v1::Record& proto,
                                                const RecordLimits& limits) {
  KV_RETURN_IF_ERROR(CheckRecord(proto.key(), proto.value(), proto.tombstone(),
                                 proto.has_version() && proto.version().hlc() != 0,
                                 limits));
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
  return over && RecordFromProto(proto, kNoLimits).ok();
}

int64_t VersionTableWriter::HlcDelta(uint64_t hlc) {
  if (!has_base_) {
    base_ = hlc;
    has_base_ = true;
  }
  return static_cast<int64_t>(hlc - base_);
}

uint32_t VersionTableWriter::NodePosition(uint64_t node_id) {
  auto [it, inserted] =
      positions_.emplace(node_id, static_cast<uint32_t>(node_ids_.size()));
  if (inserted) node_ids_.push_back(node_id);
  return it->second;
}

void VersionTableWriter::Rollback(const Mark& mark) {
  while (node_ids_.size() > mark.node_ids) {
    positions_.erase(node_ids_.back());
    node_ids_.pop_back();
  }
  if (!mark.has_base) {
    has_base_ = false;
    base_ = 0;
  }
}

int64_t VersionTableWriter::ByteSize() const {
  // hlc_base: tag + fixed64, absent when 0 (proto3). node_ids: packed, tag +
  // length varint + 8 bytes each.
  int64_t bytes = base_ != 0 ? 9 : 0;
  if (!node_ids_.empty()) {
    const uint32_t len = static_cast<uint32_t>(8 * node_ids_.size());
    bytes += 1 + static_cast<int64_t>(
                     google::protobuf::io::CodedOutputStream::VarintSize32(len)) +
             len;
  }
  return bytes;
}

void VersionTableWriter::WriteTo(peer::v1::ExchangeMessage* msg) const {
  msg->set_hlc_base(base_);
  msg->clear_node_ids();
  for (uint64_t id : node_ids_) msg->add_node_ids(id);
}

absl::StatusOr<storage::Version> VersionTableReader::Read(
    int64_t hlc_delta, uint32_t node, absl::string_view what) const {
  if (node >= static_cast<uint32_t>(msg_.node_ids_size())) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": node position ", node,
                     " is out of range of the message's ", msg_.node_ids_size(),
                     " node_ids"));
  }
  const uint64_t hlc = msg_.hlc_base() + static_cast<uint64_t>(hlc_delta);
  if (hlc == 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": zero version"));
  }
  return storage::Version{hlc, msg_.node_ids(static_cast<int>(node))};
}

size_t KeyHashBytes(uint32_t depth) { return (64 - depth + 7) / 8; }

void AppendKeyHash(uint64_t key_hash, uint32_t depth, std::string* out) {
  // The low 64 - depth bits only (depth 64 writes nothing).
  if (depth > 0 && depth < 64) key_hash &= (uint64_t{1} << (64 - depth)) - 1;
  for (size_t i = 0; i < KeyHashBytes(depth); ++i) {
    out->push_back(static_cast<char>((key_hash >> (8 * i)) & 0xFF));
  }
}

absl::StatusOr<uint64_t> ReadKeyHash(const char* p, uint32_t depth,
                                     uint64_t index) {
  uint64_t low = 0;
  for (size_t i = 0; i < KeyHashBytes(depth); ++i) {
    low |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  }
  if (depth == 0) return low;
  if (depth >= 64) return index;
  if ((low >> (64 - depth)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key hash bits ", absl::Hex(low), " reach above the ", 64 - depth,
        " bits below node (", depth, ", ", index, "): not under the node"));
  }
  return (index << (64 - depth)) | low;
}

namespace {

void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// Reads a varint of at most 10 bytes at *p (before `end`), advancing *p.
bool ReadVarint(const char** p, const char* end, uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift < 70 && *p < end; shift += 7) {
    const auto byte = static_cast<uint8_t>(*(*p)++);
    result |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;
}

}  // namespace

void AppendDiffEntry(const WireDiffEntry& entry, uint32_t depth,
                     std::string* out) {
  AppendKeyHash(entry.key_hash, depth, out);
  const auto d = static_cast<uint64_t>(entry.hlc_delta);
  AppendVarint((d << 1) ^ (entry.hlc_delta < 0 ? ~uint64_t{0} : 0), out);
  AppendVarint(entry.node, out);
}

absl::StatusOr<std::vector<WireDiffEntry>> ParseDiffEntries(
    absl::string_view entries, uint32_t depth, uint64_t index,
    size_t max_entries) {
  std::vector<WireDiffEntry> out;
  const size_t hash_bytes = KeyHashBytes(depth);
  const char* p = entries.data();
  const char* const end = p + entries.size();
  while (p < end) {
    const size_t n = out.size();
    if (n >= max_entries) {
      return absl::InvalidArgumentError(absl::StrCat(
          "more than ", max_entries, " entries (the limit)"));
    }
    if (static_cast<size_t>(end - p) < hash_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("entry ", n, " is cut short in its key hash"));
    }
    WireDiffEntry e;
    absl::StatusOr<uint64_t> hash = ReadKeyHash(p, depth, index);
    if (!hash.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("entry ", n, ": ", hash.status().message()));
    }
    e.key_hash = *hash;
    p += hash_bytes;
    uint64_t zigzag = 0, node = 0;
    if (!ReadVarint(&p, end, &zigzag) || !ReadVarint(&p, end, &node)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "entry ", n, " is cut short or has a varint over 10 bytes"));
    }
    if (node > UINT32_MAX) {
      return absl::InvalidArgumentError(
          absl::StrCat("entry ", n, ": node position ", node, " is over 32 bits"));
    }
    e.hlc_delta = static_cast<int64_t>((zigzag >> 1) ^ (~(zigzag & 1) + 1));
    e.node = static_cast<uint32_t>(node);
    out.push_back(e);
  }
  return out;
}

peer::v1::ExchangeRecord ExchangeRecordToProto(const storage::Record& record,
                                               VersionTableWriter* table) {
  peer::v1::ExchangeRecord proto;
  proto.set_key(record.key);
  proto.set_hlc(table->HlcDelta(record.version.hlc));
  proto.set_node(table->NodePosition(record.version.node_id));
  proto.set_tombstone(record.tombstone);
  if (!record.tombstone) proto.set_value(record.value);
  return proto;
}

absl::StatusOr<storage::Record> ExchangeRecordFromProto(
    const peer::v1::ExchangeRecord& proto, const VersionTableReader& versions,
    const RecordLimits& limits) {
  if (proto.key().empty()) return absl::InvalidArgumentError("record: empty key");
  absl::StatusOr<storage::Version> version = versions.Read(
      proto.hlc(), proto.node(),
      absl::StrCat("record of key '", KeyForMessage(proto.key()),
                   "' has no version"));
  if (!version.ok()) return version.status();
  KV_RETURN_IF_ERROR(CheckRecord(proto.key(), proto.value(), proto.tombstone(),
                                 true, limits));
  storage::Record record;
  record.key = proto.key();
  record.version = *version;
  record.tombstone = proto.tombstone();
  record.value = proto.value();
  return record;
}

bool OverLimits(const peer::v1::ExchangeRecord& proto,
                const VersionTableReader& versions, const RecordLimits& limits) {
  const bool over = proto.key().size() > limits.max_key_bytes ||
                    proto.value().size() > limits.max_value_bytes;
  return over && ExchangeRecordFromProto(proto, versions, kNoLimits).ok();
}

}  // namespace kv::replication
