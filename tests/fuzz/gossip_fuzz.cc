// libFuzzer target: the gossip membership core (replication::Gossiper).
//
// Three gossipers (node ids 1..3) run on a clock the input moves forward.
// The input chooses, step after step: a Tick of one node, a message from
// the outgoing queues delivered (as is, mutated, or twice) or dropped, a
// GossipMessage decoded from raw input bytes and stepped into a node, a
// structured message with fields chosen by the input (small node ids,
// generations and versions near the real ones, so it collides with real
// members), a Remove, or a Leave.
//
// Checked: no crash and no sanitizer report; Step returns OK or
// INVALID_ARGUMENT; Members() lists self exactly once, in node id order, and
// agrees with size().
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "google/protobuf/stubs/logging.h"
#include "proto/peer.pb.h"
#include "replication/gossip.h"

namespace kv::replication {
namespace {

using peer::v1::GossipMessage;

constexpr int kNodes = 3;
constexpr int64_t kStartMs = int64_t{1} << 40;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "gossip_fuzz: check failed: %s\n", what);
    std::abort();
  }
}

std::string Address(int i) { return "10.0.0." + std::to_string(i + 1) + ":7000"; }

void FillState(FuzzedDataProvider& in, peer::v1::MemberState* s) {
  s->set_node_id(in.ConsumeIntegralInRange<uint64_t>(0, kNodes + 1));
  if (in.ConsumeBool()) s->set_name(in.ConsumeRandomLengthString(8));
  s->set_peer_address(in.ConsumeBool() ? Address(in.ConsumeIntegralInRange(0, kNodes))
                                       : in.ConsumeRandomLengthString(16));
  s->set_generation(in.ConsumeBool() ? kStartMs + in.ConsumeIntegralInRange(0, 3)
                                     : in.ConsumeIntegral<uint64_t>());
  s->set_version(in.ConsumeBool() ? in.ConsumeIntegralInRange<uint64_t>(0, 64)
                                  : in.ConsumeIntegral<uint64_t>());
  s->set_status(static_cast<peer::v1::MemberStatus>(in.ConsumeIntegralInRange(0, 5)));
  if (in.ConsumeBool()) s->set_merkle_root(in.ConsumeRandomLengthString(20));
  s->set_key_count(in.ConsumeIntegral<int64_t>());
  s->set_wall_clock_ms(in.ConsumeIntegral<int64_t>());
}

void FillDigest(FuzzedDataProvider& in, peer::v1::GossipDigest* d) {
  d->set_node_id(in.ConsumeIntegralInRange<uint64_t>(0, kNodes + 1));
  d->set_generation(in.ConsumeBool() ? kStartMs + in.ConsumeIntegralInRange(0, 3)
                                     : in.ConsumeIntegral<uint64_t>());
  d->set_version(in.ConsumeBool() ? in.ConsumeIntegralInRange<uint64_t>(0, 64)
                                  : in.ConsumeIntegral<uint64_t>());
}

GossipMessage Structured(FuzzedDataProvider& in, int64_t now_ms) {
  GossipMessage m;
  m.set_kind(static_cast<GossipMessage::Kind>(in.ConsumeIntegralInRange(0, 4)));
  m.set_from_node_id(in.ConsumeIntegralInRange<uint64_t>(0, kNodes + 1));
  m.set_from_generation(kStartMs + in.ConsumeIntegralInRange(0, 3));
  m.set_from_address(Address(in.ConsumeIntegralInRange(0, kNodes)));
  m.set_sent_unix_ms(in.ConsumeBool() ? now_ms + in.ConsumeIntegralInRange(-10000, 10000)
                                      : in.ConsumeIntegral<int64_t>());
  for (int n = in.ConsumeIntegralInRange(0, 4); n > 0; --n) FillDigest(in, m.add_digests());
  for (int n = in.ConsumeIntegralInRange(0, 4); n > 0; --n) FillState(in, m.add_states());
  for (int n = in.ConsumeIntegralInRange(0, 2); n > 0; --n) FillDigest(in, m.add_down());
  if (in.ConsumeIntegralInRange(0, 7) == 0) m.set_conflict(in.ConsumeRandomLengthString(8));
  return m;
}

void Mutate(FuzzedDataProvider& in, GossipMessage* m) {
  switch (in.ConsumeIntegralInRange(0, 4)) {
    case 0:
      if (m->states_size() > 0) {
        FillState(in, m->mutable_states(in.ConsumeIntegralInRange(0, m->states_size() - 1)));
      }
      break;
    case 1:
      FillDigest(in, m->add_digests());
      break;
    case 2:
      m->set_from_node_id(in.ConsumeIntegralInRange<uint64_t>(0, kNodes + 1));
      break;
    case 3:
      m->set_sent_unix_ms(in.ConsumeIntegral<int64_t>());
      break;
    default: {
      std::string bytes = m->SerializeAsString();
      if (bytes.empty()) break;
      bytes[in.ConsumeIntegralInRange<size_t>(0, bytes.size() - 1)] =
          static_cast<char>(in.ConsumeIntegral<uint8_t>());
      GossipMessage parsed;
      if (parsed.ParseFromString(bytes)) *m = std::move(parsed);
      break;
    }
  }
}

void CheckViews(const Gossiper& g, int64_t now_ms) {
  const std::vector<MemberView> members = g.Members(now_ms);
  Check(members.size() == g.size(), "Members() disagrees with size()");
  int selves = 0;
  for (size_t i = 0; i < members.size(); ++i) {
    if (members[i].is_self) {
      ++selves;
      Check(members[i].state.node_id() == g.self().node_id, "self has another id");
    }
    if (i > 0) {
      Check(members[i - 1].state.node_id() < members[i].state.node_id(),
            "Members() not in node id order");
    }
  }
  Check(selves == 1, "self not listed exactly once");
  (void)g.LivePeers();
}

}  // namespace
}  // namespace kv::replication

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Parsing arbitrary bytes makes protobuf log every invalid UTF-8 string.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kv::replication;
  FuzzedDataProvider in(data, size);
  GossipOptions options;
  options.max_message_bytes = in.ConsumeIntegralInRange<int64_t>(64, 4096);
  options.max_entries = in.ConsumeIntegralInRange<int64_t>(1, 16);
  options.max_down_hints = in.ConsumeIntegralInRange(0, 4);
  std::vector<std::unique_ptr<Gossiper>> nodes;
  for (int i = 0; i < kNodes; ++i) {
    LocalNode self;
    self.node_id = static_cast<uint64_t>(i + 1);
    self.name = "n" + std::to_string(i + 1);
    self.peer_address = Address(i);
    self.client_address = Address(i);
    self.generation = kStartMs;
    nodes.push_back(std::make_unique<Gossiper>(
        self, std::vector<std::string>{Address(0), Address(1)}, options,
        in.ConsumeIntegral<uint64_t>()));
  }
  std::vector<OutgoingGossip> in_flight;
  int64_t now_ms = kStartMs;
  for (int step = 0; step < 512 && in.remaining_bytes() > 0; ++step) {
    const int node = in.ConsumeIntegralInRange(0, kNodes - 1);
    Gossiper& g = *nodes[node];
    absl::Status s;
    switch (in.ConsumeIntegralInRange(0, 9)) {
      case 0: case 1: {
        now_ms += in.ConsumeIntegralInRange<int64_t>(0, 5000);
        AppState app;
        app.merkle_root = std::string(16, static_cast<char>(step));
        app.key_count = step;
        app.wall_clock_ms = now_ms;
        g.Tick(now_ms, app);
        break;
      }
      case 2: case 3: case 4: {  // Deliver one message in flight.
        if (in_flight.empty()) break;
        const size_t i = in.ConsumeIntegralInRange<size_t>(0, in_flight.size() - 1);
        OutgoingGossip out = std::move(in_flight[i]);
        in_flight.erase(in_flight.begin() + static_cast<std::ptrdiff_t>(i));
        int to = -1;
        for (int j = 0; j < kNodes; ++j) {
          if (out.to == Address(j)) to = j;
        }
        if (to < 0) break;
        switch (in.ConsumeIntegralInRange(0, 5)) {
          case 0: break;  // Dropped.
          case 1: Mutate(in, &out.message); [[fallthrough]];
          default: s = nodes[to]->Step(out.message, now_ms); break;
        }
        if (in.ConsumeIntegralInRange(0, 7) == 0) {
          s = nodes[to]->Step(out.message, now_ms);  // Again.
        }
        break;
      }
      case 5: {
        GossipMessage raw;
        if (raw.ParseFromString(in.ConsumeRandomLengthString(512))) {
          s = g.Step(raw, now_ms);
        }
        break;
      }
      case 6: case 7:
        s = g.Step(Structured(in, now_ms), now_ms);
        break;
      case 8: {
        const absl::Status r =
            g.Remove(in.ConsumeIntegralInRange<uint64_t>(0, kNodes + 1), now_ms);
        Check(r.ok() || r.code() == absl::StatusCode::kNotFound ||
                  r.code() == absl::StatusCode::kFailedPrecondition,
              "Remove returned an undocumented code");
        break;
      }
      default:
        if (in.ConsumeIntegralInRange(0, 3) == 0) g.Leave(now_ms);
        break;
    }
    Check(s.ok() || s.code() == absl::StatusCode::kInvalidArgument,
          "Step returned an undocumented code");
    for (auto& n : nodes) {
      for (OutgoingGossip& out : n->TakeMessages()) {
        if (in_flight.size() < 64) in_flight.push_back(std::move(out));
      }
      (void)n->TakeEvents();
    }
    CheckViews(g, now_ms);
  }
  for (auto& n : nodes) CheckViews(*n, now_ms);
  return 0;
}
