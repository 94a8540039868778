// libFuzzer target: the anti-entropy exchange core (replication::Exchange),
// both roles, fed message sequences decoded from the fuzz input.
//
// The input picks the exchange options, the contents of two small stores
// (each on a MemoryEngine) and a salt, then drives an initiator over store A
// and a responder over store B. Every message one side produces passes
// through the input's hands before the other side steps it: delivered,
// dropped, delivered twice, mutated (a structured field change or a raw byte
// change of its encoding), or replaced by a message decoded from raw input
// bytes. Random messages alone would rarely get past Hello; passing real
// ones through mutations reaches every turn of the protocol.
//
// Checked: no crash and no sanitizer report; Step returns only the codes
// exchange.h documents for a store on a MemoryEngine (OK, INVALID_ARGUMENT,
// FAILED_PRECONDITION); the records a side hands out are valid (Apply takes
// them or refuses them for their clock, never for their form); and each
// store's Merkle tree still equals its data afterwards (VerifyTree).
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "google/protobuf/stubs/logging.h"
#include "proto/peer.pb.h"
#include "replication/exchange.h"
#include "storage/hlc.h"
#include "storage/memory_engine.h"
#include "storage/store.h"

namespace kv::replication {
namespace {

using peer::v1::ExchangeMessage;

constexpr int64_t kNowMs = int64_t{1} << 40;  // A fixed wall clock.

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "exchange_fuzz: check failed: %s\n", what);
    std::abort();
  }
}

std::unique_ptr<storage::Store> NewStore(storage::PhysicalClock* clock,
                                         uint32_t leaf_depth, uint64_t node_id) {
  storage::StoreOptions o;
  o.leaf_depth = leaf_depth;
  o.clock = clock;
  o.node_id = node_id;
  auto store = storage::Store::Open(std::make_unique<storage::MemoryEngine>(), o);
  Check(store.ok(), "Store::Open");
  return std::move(*store);
}

// Keys from a small alphabet so the two stores overlap.
std::string SmallKey(FuzzedDataProvider& in) {
  return std::string(1, static_cast<char>('a' + in.ConsumeIntegralInRange(0, 11))) +
         (in.ConsumeBool() ? "" : std::string(in.ConsumeIntegralInRange(1, 3), 'x'));
}

void Populate(FuzzedDataProvider& in, storage::Store* a, storage::Store* b) {
  const int n = in.ConsumeIntegralInRange(0, 16);
  std::vector<storage::Record> for_a, for_b;
  for (int i = 0; i < n; ++i) {
    storage::Record r;
    r.key = SmallKey(in);
    r.version.hlc = storage::HlcFromMillis(kNowMs - 1000) +
                    in.ConsumeIntegralInRange<uint64_t>(1, 1000);
    r.version.node_id = in.ConsumeIntegralInRange<uint64_t>(1, 3);
    r.tombstone = in.ConsumeIntegralInRange(0, 3) == 0;
    if (!r.tombstone) r.value = in.ConsumeRandomLengthString(64);
    switch (in.ConsumeIntegralInRange(0, 2)) {
      case 0: for_a.push_back(r); break;
      case 1: for_b.push_back(r); break;
      default: for_a.push_back(r); for_b.push_back(std::move(r)); break;
    }
  }
  Check(a->ApplyBatch(for_a).ok(), "populate A");
  Check(b->ApplyBatch(for_b).ok(), "populate B");
}

ExchangeOptions SmallOptions(FuzzedDataProvider& in) {
  ExchangeOptions o;
  o.fanout_bits = in.ConsumeIntegralInRange<uint32_t>(1, 3);
  o.finer_bits = in.ConsumeIntegralInRange<uint32_t>(1, 3);
  o.max_fingerprints = in.ConsumeIntegralInRange<int64_t>(0, 8);
  o.max_differing_leaves = in.ConsumeIntegralInRange<int64_t>(1, 64);
  o.max_records_per_message = in.ConsumeIntegralInRange<int64_t>(1, 8);
  o.max_message_bytes = in.ConsumeIntegralInRange<int64_t>(64, 4096);
  o.max_record_bytes_per_exchange = in.ConsumeIntegralInRange<int64_t>(0, 4096);
  o.max_key_bytes = in.ConsumeIntegralInRange<size_t>(1, 8);
  o.max_value_bytes = in.ConsumeIntegralInRange<size_t>(0, 64);
  o.max_received_fingerprints =
      o.max_fingerprints + in.ConsumeIntegralInRange<int64_t>(0, 64);
  o.max_diff_bytes = in.ConsumeIntegralInRange<int64_t>(1, 1024);
  o.max_list_entries = in.ConsumeIntegralInRange<int64_t>(1, 64);
  return o;
}

// A structured change of one field, or a raw change of the encoding.
void Mutate(FuzzedDataProvider& in, ExchangeMessage* m) {
  switch (in.ConsumeIntegralInRange(0, 9)) {
    case 0:
      m->set_end_of_turn(!m->end_of_turn());
      break;
    case 1:
      if (m->digests_size() > 0) {
        auto* d = m->mutable_digests(in.ConsumeIntegralInRange(0, m->digests_size() - 1));
        d->set_parent_depth(in.ConsumeIntegralInRange<uint32_t>(0, 70));
        d->set_parent_index(in.ConsumeIntegral<uint64_t>() >> in.ConsumeIntegralInRange(0, 63));
        if (in.ConsumeBool()) d->set_child_bits(in.ConsumeIntegralInRange<uint32_t>(0, 9));
      }
      break;
    case 2:
      if (m->digests_size() > 0) {
        auto* d = m->mutable_digests(in.ConsumeIntegralInRange(0, m->digests_size() - 1));
        d->set_digests(in.ConsumeRandomLengthString(128));
      }
      break;
    case 3:
      if (m->fingerprints_size() > 0) {
        auto* f = m->mutable_fingerprints(
            in.ConsumeIntegralInRange(0, m->fingerprints_size() - 1));
        if (in.ConsumeBool()) {
          f->set_fingerprints(in.ConsumeRandomLengthString(64));
        } else {
          f->set_levels_below_leaves(in.ConsumeIntegralInRange<uint32_t>(0, 70));
          f->set_index_delta(in.ConsumeIntegral<int64_t>() >> in.ConsumeIntegralInRange(0, 63));
        }
      }
      break;
    case 4:
      if (m->diffs_size() > 0) {
        auto* d = m->mutable_diffs(in.ConsumeIntegralInRange(0, m->diffs_size() - 1));
        switch (in.ConsumeIntegralInRange(0, 3)) {
          case 0:
            d->add_missing(in.ConsumeIntegralInRange<uint32_t>(0, 80));
            break;
          case 1: {  // An entry: its key hash below a node at a guessed depth.
            const uint64_t hash = in.ConsumeBool() ? storage::KeyHash(SmallKey(in))
                                                   : in.ConsumeIntegral<uint64_t>();
            const uint32_t depth = in.ConsumeIntegralInRange<uint32_t>(0, 8);
            std::string entries = d->entries();
            AppendDiffEntry(
                WireDiffEntry{hash,
                              in.ConsumeIntegral<int64_t>() >> in.ConsumeIntegralInRange(0, 63),
                              in.ConsumeIntegralInRange<uint32_t>(0, 3)},
                depth, &entries);
            d->set_entries(entries);
            break;
          }
          case 2:  // Raw entry bytes.
            d->set_entries(in.ConsumeRandomLengthString(24));
            break;
          default:  // Cut short, or a byte changed.
            if (!d->entries().empty()) {
              std::string entries = d->entries();
              const size_t at = in.ConsumeIntegralInRange<size_t>(0, entries.size() - 1);
              if (in.ConsumeBool()) {
                entries.resize(at);
              } else {
                entries[at] = static_cast<char>(in.ConsumeIntegral<uint8_t>());
              }
              d->set_entries(entries);
            }
            break;
        }
      }
      break;
    case 5: {
      auto* r = m->add_records();
      r->set_key(SmallKey(in));
      r->set_value(in.ConsumeRandomLengthString(80));
      r->set_tombstone(in.ConsumeBool());
      if (m->hlc_base() == 0 || in.ConsumeBool()) {
        m->set_hlc_base(storage::HlcFromMillis(kNowMs));
      }
      r->set_hlc(in.ConsumeIntegralInRange<int64_t>(-5000, 5000));
      if (m->node_ids_size() == 0 || in.ConsumeBool()) {
        m->add_node_ids(in.ConsumeIntegralInRange<uint64_t>(0, 3));
      }
      r->set_node(in.ConsumeIntegralInRange<uint32_t>(0, m->node_ids_size()));
      break;
    }
    case 6:
      if (m->records_size() > 0) {
        auto* r = m->mutable_records(in.ConsumeIntegralInRange(0, m->records_size() - 1));
        if (in.ConsumeBool()) r->set_node(in.ConsumeIntegralInRange<uint32_t>(0, 4));
        if (in.ConsumeBool()) r->set_hlc(in.ConsumeIntegral<int64_t>());
        if (in.ConsumeBool()) r->set_key(in.ConsumeRandomLengthString(12));
        if (in.ConsumeBool()) r->set_tombstone(!r->tombstone());
      } else if (in.ConsumeBool()) {  // The version table itself.
        m->set_hlc_base(in.ConsumeIntegral<uint64_t>());
      } else if (m->node_ids_size() > 0) {
        m->set_node_ids(in.ConsumeIntegralInRange(0, m->node_ids_size() - 1),
                        in.ConsumeIntegralInRange<uint64_t>(0, 3));
      }
      break;
    case 7:
      m->add_wants(in.ConsumeIntegralInRange<uint32_t>(0, in.ConsumeBool() ? 8 : 100000));
      break;
    case 8:
      if (m->has_hello()) {
        auto* h = m->mutable_hello();
        switch (in.ConsumeIntegralInRange(0, 3)) {
          case 0: h->set_protocol_version(in.ConsumeIntegral<uint32_t>()); break;
          case 1: h->set_leaf_depth(in.ConsumeIntegralInRange<uint32_t>(0, 70)); break;
          case 2: h->set_root(in.ConsumeIntegral<uint32_t>()); break;
          default: h->set_salt(in.ConsumeIntegral<uint64_t>()); break;
        }
      } else {
        m->mutable_hello()->set_leaf_depth(in.ConsumeIntegralInRange<uint32_t>(0, 8));
      }
      break;
    default: {  // Raw: overwrite a byte of the encoding (or cut it short).
      std::string bytes = m->SerializeAsString();
      if (bytes.empty()) break;
      const size_t at = in.ConsumeIntegralInRange<size_t>(0, bytes.size() - 1);
      if (in.ConsumeBool()) {
        bytes[at] = static_cast<char>(in.ConsumeIntegral<uint8_t>());
      } else {
        bytes.resize(at);
      }
      ExchangeMessage parsed;
      if (parsed.ParseFromString(bytes)) *m = std::move(parsed);
      break;
    }
  }
}

struct Side {
  storage::Store* store;
  Exchange* exchange;
  std::deque<ExchangeMessage> inbox;  // From the other side, in order.
};

// Moves what `from` has ready: records into its store, messages through the
// input's hands into `to`'s inbox.
void Flush(FuzzedDataProvider& in, Side& from, Side& to) {
  Ready ready = from.exchange->TakeReady();
  if (!ready.records_to_apply.empty()) {
    auto applied = from.store->ApplyBatch(ready.records_to_apply);
    // A record Step handed out passed RecordFromProto: only the engine could
    // refuse the batch, and a MemoryEngine does not.
    Check(applied.ok(), "ApplyBatch of records the exchange accepted");
  }
  for (ExchangeMessage& m : ready.messages) {
    switch (in.remaining_bytes() == 0 ? 0 : in.ConsumeIntegralInRange(0, 7)) {
      case 0: case 1: case 2: case 3:
        to.inbox.push_back(std::move(m));
        break;
      case 4:  // Dropped.
        break;
      case 5:  // Twice.
        to.inbox.push_back(m);
        to.inbox.push_back(std::move(m));
        break;
      case 6:
        Mutate(in, &m);
        to.inbox.push_back(std::move(m));
        break;
      default: {  // Replaced by raw bytes from the input.
        ExchangeMessage raw;
        if (raw.ParseFromString(in.ConsumeRandomLengthString(256))) {
          to.inbox.push_back(std::move(raw));
        }
        break;
      }
    }
  }
}

// Steps one message from the inbox; false when nothing more can happen.
bool StepOne(Side& side) {
  if (side.inbox.empty() || side.exchange->failed()) return false;
  ExchangeMessage m = std::move(side.inbox.front());
  side.inbox.pop_front();
  const absl::Status s = side.exchange->Step(m);
  Check(s.ok() || s.code() == absl::StatusCode::kInvalidArgument ||
            s.code() == absl::StatusCode::kFailedPrecondition,
        "Step returned an undocumented code");
  Check(s.ok() != side.exchange->failed() ||
            s.code() == absl::StatusCode::kFailedPrecondition,
        "failed() disagrees with Step's status");
  return true;
}

}  // namespace
}  // namespace kv::replication

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // VerifyTree takes all 1024 stripe locks of a store: absl's deadlock
  // detector would spend nearly all the time on its lock graph.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Parsing arbitrary bytes makes protobuf log every invalid UTF-8 string.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kv::replication;
  FuzzedDataProvider in(data, size);
  kv::storage::ManualClock clock(kNowMs);
  const uint32_t leaf_depth = in.ConsumeIntegralInRange<uint32_t>(0, 6);
  auto a = NewStore(&clock, leaf_depth, 1);
  auto b = NewStore(&clock, leaf_depth, 2);
  ExchangeOptions options = SmallOptions(in);
  // The two sides may disagree on options (a rolling change of flags).
  ExchangeOptions options_b = in.ConsumeBool() ? options : SmallOptions(in);
  Populate(in, a.get(), b.get());
  const uint64_t salt = in.ConsumeIntegral<uint64_t>();

  auto initiator = Exchange::Initiator(a.get(), options, salt);
  auto responder = Exchange::Responder(b.get(), options_b);
  Check(initiator.ok() && responder.ok(), "valid options refused");
  Side ini{a.get(), initiator->get(), {}};
  Side res{b.get(), responder->get(), {}};

  // Extra raw messages ahead of the real ones, for either side.
  while (in.ConsumeBool()) {
    ExchangeMessage raw;
    if (!raw.ParseFromString(in.ConsumeRandomLengthString(256))) continue;
    (in.ConsumeBool() ? ini : res).inbox.push_back(std::move(raw));
  }
  for (int steps = 0; steps < 256; ++steps) {
    Flush(in, ini, res);
    Flush(in, res, ini);
    const bool ini_first = in.ConsumeBool();
    const bool first = StepOne(ini_first ? ini : res);
    const bool second = StepOne(ini_first ? res : ini);
    if (!first && !second) break;
  }
  Flush(in, ini, res);
  Flush(in, res, ini);

  for (kv::storage::Store* s : {a.get(), b.get()}) {
    auto verified = s->VerifyTree();
    Check(verified.ok() && verified->matched, "tree differs from the data");
  }
  return 0;
}
