// libFuzzer target: decoding of records from the two places they come from
// untrusted: the wire (replication::RecordFromProto of a peer::v1::Record
// parsed from arbitrary bytes) and the disk (storage's DecodeRecordValue,
// DecodeIndexEntry, DecodeLeafValue and MergeLeafValues over arbitrary
// bytes, as a corrupt or foreign data directory would hold).
//
// The first input byte picks the decoder; the rest is its input.
// Checked: no crash and no sanitizer report; what a decoder accepts obeys
// its contract (limits, tombstones without values) and survives a round trip
// through the matching encoder unchanged.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/stubs/logging.h"
#include "proto/peer.pb.h"
#include "replication/wire.h"
#include "storage/record.h"

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "record_fuzz: check failed: %s\n", what);
    std::abort();
  }
}

void FuzzWireRecord(absl::string_view bytes) {
  using namespace kv::replication;
  kv::peer::v1::Record proto;
  if (!proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return;
  RecordLimits limits;
  limits.max_key_bytes = 16;
  limits.max_value_bytes = 64;
  auto r = RecordFromProto(proto, limits);
  if (!r.ok()) {
    Check(r.status().code() == absl::StatusCode::kInvalidArgument,
          "RecordFromProto: an error other than INVALID_ARGUMENT");
    return;
  }
  Check(!r->key.empty() && r->key.size() <= limits.max_key_bytes, "key limits");
  Check(r->value.size() <= limits.max_value_bytes, "value limit");
  Check(!r->tombstone || r->value.empty(), "a tombstone with a value");
  Check(r->version.hlc != 0, "a zero version");
  auto again = RecordFromProto(RecordToProto(*r), limits);
  Check(again.ok() && *again == *r, "wire round trip");
  // What the store would compute for it must not trip the sanitizers.
  (void)kv::storage::EntryDigest(*r);
  (void)KeyForMessage(r->key);
}

void FuzzStoredRecord(absl::string_view bytes) {
  using namespace kv::storage;
  // The key is the first up-to-8 bytes, the encoded value the rest.
  const size_t key_size = bytes.empty() ? 0 : static_cast<uint8_t>(bytes[0]) % 9;
  if (bytes.size() < 1 + key_size) return;
  const absl::string_view key = bytes.substr(1, key_size);
  const absl::string_view encoded = bytes.substr(1 + key_size);
  auto r = DecodeRecordValue(key, encoded);
  if (!r.ok()) {
    Check(r.status().code() == absl::StatusCode::kDataLoss,
          "DecodeRecordValue: an error other than DATA_LOSS");
    return;
  }
  Check(!r->tombstone || r->value.empty(), "a decoded tombstone with a value");
  Check(EncodeRecordValue(*r) == encoded, "record value round trip");
  (void)EntryDigest(*r);
}

void FuzzIndexEntry(absl::string_view bytes) {
  using namespace kv::storage;
  // Split at the first byte's position.
  const size_t split = bytes.empty() ? 0 : static_cast<uint8_t>(bytes[0]);
  if (bytes.size() < 1 + split) return;
  const absl::string_view key = bytes.substr(1, split);
  const absl::string_view value = bytes.substr(1 + split);
  auto e = DecodeIndexEntry(key, value);
  if (!e.ok()) {
    Check(e.status().code() == absl::StatusCode::kDataLoss,
          "DecodeIndexEntry: an error other than DATA_LOSS");
    return;
  }
  Check(EncodeIndexKey(e->hash, e->key) == key, "index key round trip");
  Check(EncodeIndexValue(e->version, e->digest) == value, "index value round trip");
  Check(IndexSeekKey(e->hash) <= key, "seek key above its entries");
}

void FuzzLeafValues(absl::string_view bytes) {
  using namespace kv::storage;
  // Two values, split at the first byte's position (a merge of a stored
  // leaf, possibly corrupt, with an operand).
  const size_t split = bytes.empty() ? 0 : static_cast<uint8_t>(bytes[0]) % 49;
  if (bytes.size() < 1 + split) return;
  const absl::string_view existing = bytes.substr(1, split);
  const absl::string_view operand = bytes.substr(1 + split);
  const std::string merged = MergeLeafValues(existing, operand);
  auto leaf = DecodeLeafValue(merged);
  Check(leaf.ok(), "a merge result does not decode");
  auto a = DecodeLeafValue(existing);
  if (a.ok()) Check(EncodeLeafValue(*a) == existing, "leaf value round trip");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Parsing arbitrary bytes makes protobuf log every invalid UTF-8 string.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const absl::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: FuzzWireRecord(rest); break;
    case 1: FuzzStoredRecord(rest); break;
    case 2: FuzzIndexEntry(rest); break;
    default: FuzzLeafValues(rest); break;
  }
  return 0;
}
