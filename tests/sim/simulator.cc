#include "tests/sim/simulator.h"

#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "storage/engine.h"

namespace kv::sim {
namespace {

using peer::v1::ExchangeMessage;
using replication::ExchangeDriver;
using replication::Sessions;

constexpr int64_t kEpochMs = 1'700'000'000'000;  // Virtual time 0.

// The Store's engine: forwards to the node's MemoryEngine (its disk), which
// outlives every Store opened on it.
class DiskEngine final : public storage::Engine {
 public:
  explicit DiskEngine(storage::MemoryEngine* disk) : disk_(disk) {}
  absl::StatusOr<std::optional<std::string>> Get(
      storage::Column c, absl::string_view k) override {
    return disk_->Get(c, k);
  }
  absl::Status Write(const storage::WriteBatch& b) override {
    return disk_->Write(b);
  }
  std::unique_ptr<storage::Iterator> NewIterator(storage::Column c) override {
    return disk_->NewIterator(c);
  }

 private:
  storage::MemoryEngine* const disk_;
};

}  // namespace

struct Simulation::Node {
  explicit Node(int64_t skew) : clock(kEpochMs + skew), skew_ms(skew) {}
  storage::MemoryEngine disk;
  storage::ManualClock clock;
  const int64_t skew_ms;
  uint64_t node_id = 0;
  std::unique_ptr<storage::Store> store;  // Null while crashed.
  // The process's session table; lost in a crash.
  std::unique_ptr<Sessions> sessions;
  bool up = true;
};

// The ExchangeStream of one side of a simulated stream.
class Simulation::Writer final : public replication::ExchangeStream {
 public:
  Writer(Simulation* sim, uint64_t stream_id, int side)
      : sim_(sim), stream_id_(stream_id), side_(side) {}
  absl::Status Write(const ExchangeMessage& msg) override {
    return sim_->Send(stream_id_, side_, msg);
  }

 private:
  Simulation* const sim_;
  const uint64_t stream_id_;
  const int side_;
};

struct Simulation::Stream {
  struct Side {
    std::unique_ptr<Writer> writer;
    std::unique_ptr<ExchangeDriver> driver;  // Null until it runs.
    Sessions::Id session = 0;
    bool ended = false;  // Done, failed, expired or crashed.
    bool done = false;   // Finished cleanly.
  };
  uint64_t id = 0;
  int node[2] = {0, 0};  // [0] initiator, [1] responder.
  Side side[2];
  bool broken = false;
  int64_t last_arrival[2] = {0, 0};  // Per receiving side: keeps order.
};

std::string SimResult::Summary() const {
  return absl::StrCat(
      "exchanges ", exchanges_started, " started, ", exchanges_completed,
      " completed (", equal_root_exchanges, " at equal roots), ",
      exchanges_timed_out, " timed out, ", exchanges_refused, " refused; ", messages_delivered,
      " messages (", bytes_delivered, " bytes); ", records_applied,
      " records applied; ", writes_acked, " writes; ", crashes,
      " crashes; ", streams_broken, " streams broken; converged ",
      converge_ms, " ms after healing");
}

SimOptions SimOptions::ForSeed(uint64_t seed) {
  std::mt19937_64 rng(seed ^ 0x5eed5eed5eedULL);
  auto pick = [&](uint64_t lo, uint64_t hi) { return lo + rng() % (hi - lo + 1); };
  SimOptions o;
  o.seed = seed;
  o.num_nodes = static_cast<int>(pick(3, 6));
  o.max_incoming = static_cast<int>(pick(1, 4));
  o.leaf_depth = static_cast<uint32_t>(pick(0, 8));
  o.exchange.fanout_bits = static_cast<uint32_t>(pick(1, 8));
  o.exchange.finer_bits = static_cast<uint32_t>(pick(1, 4));
  o.exchange.max_fingerprints = static_cast<int64_t>(pick(1, 16));
  o.exchange.max_records_per_message = static_cast<int64_t>(pick(1, 40));
  o.exchange.max_message_bytes = static_cast<int64_t>(pick(128, 4096));
  o.exchange.max_differing_leaves =
      rng() % 3 == 0 ? static_cast<int64_t>(pick(4, 16)) : 65536;
  o.exchange.max_diff_bytes = rng() % 4 == 0 ? static_cast<int64_t>(pick(64, 512))
                                             : int64_t{512} << 10;
  o.writes = static_cast<int>(pick(100, 400));
  o.key_space = static_cast<int>(pick(10, 120));
  o.loss = static_cast<double>(pick(0, 30)) / 1000.0;
  o.crashes = static_cast<int>(pick(0, 4));
  o.partitions = static_cast<int>(pick(0, 3));
  return o;
}

Simulation::Simulation(const SimOptions& options)
    : options_(options), rng_(options.seed) {}

Simulation::~Simulation() {
  // Exchanges point into the stores: drop them first.
  streams_.clear();
}

uint64_t Simulation::Uniform(uint64_t lo, uint64_t hi) {
  return rng_.Uniform(lo, hi);
}

bool Simulation::Chance(double p) {
  return rng_.Chance(p);
}

void Simulation::At(int64_t time, std::function<void()> fn) {
  events_.At(time, std::move(fn));
}

void Simulation::Log(const std::string& line) {
  if (options_.verbose) std::fprintf(stderr, "[%8lld] %s\n", static_cast<long long>(now_), line.c_str());
}

void Simulation::Fail(const std::string& why) {
  if (result_.failure.empty()) {
    result_.failure = absl::StrCat("at virtual ", now_, " ms: ", why);
  }
  Log(absl::StrCat("FAILURE: ", why));
}

void Simulation::Trace(uint64_t v) {
  result_.trace_hash = XXH3_64bits_withSeed(&v, sizeof(v), result_.trace_hash);
}

void Simulation::Trace(const std::string& bytes) {
  result_.trace_hash =
      XXH3_64bits_withSeed(bytes.data(), bytes.size(), result_.trace_hash);
}

void Simulation::SetClocks() {
  for (auto& n : nodes_) n->clock.Set(kEpochMs + now_ + n->skew_ms);
}

absl::Status Simulation::OpenStore(int n) {
  Node& node = *nodes_[n];
  storage::StoreOptions so;
  so.leaf_depth = options_.leaf_depth;
  so.clock = &node.clock;
  so.node_id = static_cast<uint64_t>(n) + 1;  // Used on first open only.
  absl::StatusOr<std::unique_ptr<storage::Store>> store =
      storage::Store::Open(std::make_unique<DiskEngine>(&node.disk), so);
  if (!store.ok()) return store.status();
  node.store = std::move(store).value();
  node.node_id = node.store->node_id();
  replication::SessionOptions session_options;
  session_options.max_incoming = options_.max_incoming;
  session_options.deadline_ms = options_.exchange_deadline_ms;
  session_options.idle_timeout_ms = options_.idle_timeout_ms;
  node.sessions = std::make_unique<Sessions>(node.node_id, session_options);
  std::vector<std::string> peers;
  for (int i = 0; i < options_.num_nodes; ++i) {
    if (i != n) peers.push_back(Address(i));
  }
  node.sessions->SetPeers(std::move(peers));
  return absl::OkStatus();
}

std::string Simulation::Address(int n) { return absl::StrCat("n", n); }

bool Simulation::Connected(int a, int b) const {
  return nodes_[a]->up && nodes_[b]->up && group_[a] == group_[b];
}

void Simulation::Tick(int n) {
  // Next tick: interval +-50%.
  const int64_t iv = options_.exchange_interval_ms;
  At(now_ + iv / 2 + static_cast<int64_t>(Uniform(0, static_cast<uint64_t>(iv))),
     [this, n] { Tick(n); });
  Node& node = *nodes_[n];
  if (!node.up) return;
  ExpireSessions(n);
  std::optional<std::string> peer = node.sessions->PickPeer(rng_());
  if (peer.has_value()) StartExchange(n, *peer);
}

void Simulation::ExpireSessions(int n) {
  // Sessions::Expired is in id order; streams are looked up by session.
  std::vector<Sessions::Id> expired = nodes_[n]->sessions->Expired(now_);
  if (expired.empty()) return;
  std::vector<std::pair<uint64_t, int>> ends;
  for (auto& [id, s] : streams_) {
    for (int side = 0; side < 2; ++side) {
      if (s->node[side] != n || s->side[side].ended) continue;
      if (std::find(expired.begin(), expired.end(), s->side[side].session) !=
          expired.end()) {
        ends.emplace_back(id, side);
      }
    }
  }
  for (const auto& [id, side] : ends) {
    Log(absl::StrCat("exchange ", id, " side ", side,
                     ": idle timeout or deadline"));
    if (side == 0) ++result_.exchanges_timed_out;
    EndSide(id, side,
            absl::DeadlineExceededError("idle timeout or deadline"));
  }
}

void Simulation::StartExchange(int from, const std::string& to_address) {
  const int to = std::stoi(to_address.substr(1));
  const uint64_t salt = rng_();
  Node& node = *nodes_[from];
  absl::StatusOr<Sessions::Id> session =
      node.sessions->BeginOutgoing(to_address, now_);
  if (!session.ok()) {
    Fail(absl::StrCat("BeginOutgoing after PickPeer: ", session.status().ToString()));
    return;
  }
  auto s = std::make_unique<Stream>();
  s->id = next_stream_++;
  s->node[0] = from;
  s->node[1] = to;
  const uint64_t id = s->id;
  for (int side = 0; side < 2; ++side) {
    s->side[side].writer = std::make_unique<Writer>(this, id, side);
  }
  s->side[0].session = *session;
  auto driver = ExchangeDriver::Initiate(node.store.get(), options_.exchange,
                                         salt, s->side[0].writer.get());
  if (!driver.ok()) {
    node.sessions->End(*session);
    Fail(absl::StrCat("Initiate: ", driver.status().ToString()));
    return;
  }
  s->side[0].driver = std::move(driver).value();
  streams_[id] = std::move(s);
  ++result_.exchanges_started;
  Trace(id);
  Log(absl::StrCat("exchange ", id, ": node ", from, " -> node ", to,
                   " roots ", node.store->tree().Root().Hex().substr(0, 8),
                   " / ", nodes_[to]->up ? nodes_[to]->store->tree().Root().Hex().substr(0, 8) : "down"));
  absl::Status st = streams_[id]->side[0].driver->Start();
  if (!st.ok()) EndSide(id, 0, st);
}

void Simulation::BreakStream(Stream& s, const char* why) {
  if (s.broken) return;
  s.broken = true;
  ++result_.streams_broken;
  Log(absl::StrCat("exchange ", s.id, ": stream broken (", why, ")"));
}

absl::Status Simulation::Send(uint64_t stream_id, int from_side,
                              const ExchangeMessage& m) {
  Stream& s = *streams_.at(stream_id);
  if (s.broken) return absl::UnavailableError("the stream is broken");
  const int to_side = 1 - from_side;
  // A message that cannot arrive breaks the stream; the sender learns it
  // at its next write or by its idle timeout.
  if (!Connected(s.node[0], s.node[1])) {
    BreakStream(s, "partitioned or down");
    return absl::OkStatus();
  }
  if (Chance(loss_)) {
    BreakStream(s, "message lost");
    return absl::OkStatus();
  }
  const int64_t arrival = std::max(
      now_ + static_cast<int64_t>(Uniform(options_.min_delay_ms,
                                          options_.max_delay_ms)),
      s.last_arrival[to_side]);
  s.last_arrival[to_side] = arrival;
  auto msg = std::make_shared<ExchangeMessage>(m);
  At(arrival, [this, stream_id, to_side, msg] {
    Deliver(stream_id, to_side, *msg);
  });
  return absl::OkStatus();
}

void Simulation::Deliver(uint64_t stream_id, int to_side,
                         const ExchangeMessage& msg) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return;  // Both sides ended meanwhile.
  Stream& s = *it->second;
  Stream::Side& side = s.side[to_side];
  if (s.broken || side.ended) return;
  const int n = s.node[to_side];
  Node& node = *nodes_[n];
  if (!node.up) {
    BreakStream(s, "receiver down");
    return;
  }
  if (side.driver == nullptr) {
    // The responder accepts the stream on its first message; it takes a
    // serving slot only after a valid Hello (Sessions::Admit).
    Sessions* sessions = node.sessions.get();
    const Sessions::Id session = sessions->BeginIncoming(now_);
    side.session = session;
    auto responder = ExchangeDriver::Respond(
        node.store.get(), options_.exchange, side.writer.get(),
        [sessions, session](uint64_t peer) {
          return sessions->Admit(session, peer);
        });
    if (!responder.ok()) {
      Fail(absl::StrCat("Respond: ", responder.status().ToString()));
      return;
    }
    side.driver = std::move(responder).value();
  } else if (to_side == 0 && !node.sessions->PeerId(Address(s.node[1]))) {
    // kvd learns the responder's id from its first answer (gRPC metadata).
    node.sessions->LearnPeerId(Address(s.node[1]), nodes_[s.node[1]]->node_id);
  }
  ++result_.messages_delivered;
  const std::string bytes = msg.SerializeAsString();
  result_.bytes_delivered += static_cast<int64_t>(bytes.size());
  Trace(static_cast<uint64_t>(now_));
  Trace(stream_id * 2 + static_cast<uint64_t>(to_side));
  Trace(bytes);
  node.sessions->Touch(side.session, now_);
  absl::Status st = side.driver->OnMessage(msg);
  if (!st.ok()) {
    // No hostile peers here: a refusal is expected, a broken stream too,
    // anything else is a bug in the exchange or the driver.
    if (st.code() != absl::StatusCode::kAborted &&
        st.code() != absl::StatusCode::kUnavailable) {
      Fail(absl::StrCat("exchange ", stream_id, " side ", to_side,
                        " OnMessage: ", st.ToString()));
    }
    if (to_side == 1 && !side.driver->admitted()) ++result_.exchanges_refused;
    EndSide(stream_id, to_side, st);
    return;
  }
  if (side.driver->done()) EndSide(stream_id, to_side, absl::OkStatus());
}

void Simulation::EndSide(uint64_t stream_id, int side_index,
                         const absl::Status& status) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return;
  Stream& s = *it->second;
  Stream::Side& side = s.side[side_index];
  if (side.ended) return;
  side.ended = true;
  side.done = status.ok();
  Node& node = *nodes_[s.node[side_index]];
  if (node.sessions != nullptr && side.session != 0) {
    node.sessions->End(side.session);
  }
  if (side.driver != nullptr) {
    result_.records_applied += side.driver->records_applied();
  }
  Trace(stream_id * 4 + static_cast<uint64_t>(side_index) * 2 + side.done);
  if (s.side[0].done && s.side[1].done) {
    ++result_.exchanges_completed;
    if (s.side[1].driver->stats().equal_roots) ++result_.equal_root_exchanges;
    if (options_.verbose) {
      auto describe = [](const replication::ExchangeStats& st) {
        return absl::StrCat("{records ", st.records_sent, ", leaves ",
                            st.differing_leaves, ", skipped ", st.skipped_leaves,
                            ", fingerprints ", st.fingerprints_sent, ", wants ",
                            st.wants_sent, ", turns ", st.turns_sent, "}");
      };
      Log(absl::StrCat("exchange ", stream_id, ": done, initiator ",
                       describe(s.side[0].driver->stats()), " responder ",
                       describe(s.side[1].driver->stats())));
    }
  }
  if (!status.ok()) {
    Log(absl::StrCat("exchange ", stream_id, " side ", side_index, ": ",
                     status.ToString()));
    // The peer hears of a closed stream one delay later, as of a gRPC
    // status or a cancel; not across a partition or from a dead process.
    if (!s.broken && Connected(s.node[0], s.node[1])) {
      const int other = 1 - side_index;
      const int64_t arrival = std::max(
          now_ + static_cast<int64_t>(Uniform(options_.min_delay_ms,
                                              options_.max_delay_ms)),
          s.last_arrival[other]);
      s.last_arrival[other] = arrival;
      At(arrival, [this, stream_id, other, status] {
        PeerClosed(stream_id, other, status);
      });
    }
    s.broken = true;  // No message crosses a closed stream.
  }
  MaybeErase(stream_id);
}

void Simulation::PeerClosed(uint64_t stream_id, int side,
                            const absl::Status& status) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end() || it->second->side[side].ended) return;
  if (!nodes_[it->second->node[side]]->up) return;
  EndSide(stream_id, side,
          absl::Status(status.code(),
                       absl::StrCat("the peer closed the stream: ",
                                    status.message())));
}

void Simulation::MaybeErase(uint64_t stream_id) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return;
  Stream& s = *it->second;
  // A responder that never received a message never ran.
  const bool responder_gone =
      s.side[1].ended || (s.side[1].driver == nullptr && s.side[0].ended);
  if (s.side[0].ended && responder_gone) streams_.erase(it);
}

void Simulation::Crash(int n) {
  Node& node = *nodes_[n];
  if (!node.up) return;
  Log(absl::StrCat("node ", n, " crashes"));
  ++result_.crashes;
  node.up = false;
  std::vector<std::pair<uint64_t, int>> ends;
  for (auto& [id, s] : streams_) {
    for (int side = 0; side < 2; ++side) {
      if (s->node[side] != n) continue;
      BreakStream(*s, "crash");
      ends.emplace_back(id, side);
    }
  }
  // In-flight state is lost with the process: its sides end, unheard.
  for (const auto& [id, side] : ends) {
    EndSide(id, side, absl::UnavailableError("crashed"));
  }
  for (auto& [id, s] : streams_) {
    for (int side = 0; side < 2; ++side) {
      if (s->node[side] == n) s->side[side].driver.reset();
    }
  }
  node.sessions.reset();
  node.store.reset();  // The engine (disk) survives.
}

void Simulation::Restart(int n) {
  Node& node = *nodes_[n];
  if (node.up) return;
  Log(absl::StrCat("node ", n, " restarts"));
  if (absl::Status st = OpenStore(n); !st.ok()) {
    Fail(absl::StrCat("node ", n, " re-open: ", st.ToString()));
    return;
  }
  node.up = true;
}

void Simulation::Partition() {
  // Cut off a random non-empty minority.
  const int n = static_cast<int>(nodes_.size());
  const int cut = static_cast<int>(Uniform(1, std::max(1, n / 2)));
  std::fill(group_.begin(), group_.end(), 0);
  for (int i = 0; i < cut; ++i) group_[Uniform(0, n - 1)] = 1;
  std::string members;
  for (int i = 0; i < n; ++i) {
    if (group_[i]) absl::StrAppend(&members, " ", i);
  }
  Log(absl::StrCat("partition: cut off", members));
}

void Simulation::HealPartition() {
  std::fill(group_.begin(), group_.end(), 0);
  Log("partition healed");
}

void Simulation::Write(int n) {
  if (!nodes_[n]->up) {
    // Writes go to a live node.
    std::vector<int> live;
    for (int i = 0; i < static_cast<int>(nodes_.size()); ++i) {
      if (nodes_[i]->up) live.push_back(i);
    }
    if (live.empty()) return;
    n = live[Uniform(0, live.size() - 1)];
  }
  storage::Mutation m;
  m.key = absl::StrCat("k", Uniform(0, options_.key_space - 1));
  m.tombstone = Chance(options_.delete_fraction);
  if (!m.tombstone) m.value = absl::StrCat("v", rng_() % 1000000, "@", n);
  absl::StatusOr<std::vector<storage::Version>> v =
      nodes_[n]->store->Write({&m, 1});
  if (!v.ok()) {
    Fail(absl::StrCat("node ", n, " Write: ", v.status().ToString()));
    return;
  }
  ++result_.writes_acked;
  storage::Record r{m.key, v->at(0), m.tombstone, m.value};
  Trace(r.version.hlc);
  Trace(r.version.node_id);
  auto it = newest_.find(m.key);
  if (it == newest_.end() || it->second.version < r.version) {
    newest_[m.key] = r;
  }
  Log(absl::StrCat("node ", n, (m.tombstone ? " deletes " : " puts "), m.key,
                   " @ ", r.version.ToString()));
}

std::string Simulation::CheckConverged() {
  const storage::Digest root = nodes_[0]->store->tree().Root();
  for (auto& n : nodes_) {
    if (n->store->tree().Root() != root) return "roots differ";
  }
  // Equal roots: the contents must be equal too, and hold every key's
  // newest acknowledged write.
  std::vector<std::map<std::string, storage::Record>> contents(nodes_.size());
  for (size_t i = 0; i < nodes_.size(); ++i) {
    storage::Store& store = *nodes_[i]->store;
    absl::Status st = store.ForEachIndexEntry(0, 0, [&](const storage::IndexEntry& e) {
      absl::StatusOr<std::optional<storage::Record>> r = store.Get(e.key);
      if (r.ok() && r->has_value()) contents[i][e.key] = **r;
      return true;
    });
    if (!st.ok()) return st.ToString();
    absl::StatusOr<storage::VerifyResult> verify = store.VerifyTree();
    if (!verify.ok() || !verify->matched) {
      return absl::StrCat("node ", i, ": the Merkle tree does not match its data");
    }
  }
  for (size_t i = 1; i < nodes_.size(); ++i) {
    if (contents[i] != contents[0]) {
      return absl::StrCat("equal roots but nodes 0 and ", i,
                          " hold different data");
    }
  }
  for (const auto& [key, want] : newest_) {
    auto it = contents[0].find(key);
    if (it == contents[0].end() || !(it->second == want)) {
      return absl::StrCat("key ", key, ": newest acknowledged write ",
                          want.version.ToString(), " is not what nodes hold");
    }
  }
  if (contents[0].size() != newest_.size()) {
    return "nodes hold keys that were never written";
  }
  return "";
}

SimResult Simulation::Run() {
  const int n = options_.num_nodes;
  if (n < 2) {
    result_.failure = "need at least 2 nodes";
    return result_;
  }
  group_.assign(n, 0);
  for (int i = 0; i < n; ++i) {
    const int64_t skew = static_cast<int64_t>(
        Uniform(0, 2 * static_cast<uint64_t>(options_.max_clock_skew_ms))) -
                         options_.max_clock_skew_ms;
    nodes_.push_back(std::make_unique<Node>(skew));
    if (absl::Status st = OpenStore(i); !st.ok()) {
      result_.failure = st.ToString();
      return result_;
    }
  }
  loss_ = options_.loss;
  const int64_t heal_at = options_.fault_phase_ms;

  // The fault phase's schedule.
  for (int i = 0; i < n; ++i) {
    At(static_cast<int64_t>(Uniform(0, options_.exchange_interval_ms)),
       [this, i] { Tick(i); });
  }
  for (int i = 0; i < options_.writes; ++i) {
    const int node = static_cast<int>(Uniform(0, n - 1));
    At(static_cast<int64_t>(Uniform(0, heal_at - 1)), [this, node] { Write(node); });
  }
  for (int i = 0; i < options_.crashes; ++i) {
    const int node = static_cast<int>(Uniform(0, n - 1));
    const int64_t t = static_cast<int64_t>(Uniform(0, heal_at - 1));
    const int64_t down = static_cast<int64_t>(Uniform(1, options_.max_down_ms));
    At(t, [this, node] { Crash(node); });
    At(std::min(t + down, heal_at), [this, node] { Restart(node); });
  }
  for (int i = 0; i < options_.partitions; ++i) {
    const int64_t t = static_cast<int64_t>(Uniform(0, heal_at - 1));
    const int64_t len = static_cast<int64_t>(Uniform(1, options_.max_partition_ms));
    At(t, [this] { Partition(); });
    At(std::min(t + len, heal_at), [this] { HealPartition(); });
  }
  At(heal_at, [this, n] {
    Log(absl::StrCat("faults stop; options: nodes ", options_.num_nodes,
                     " leaf_depth ", options_.leaf_depth, " fanout ",
                     options_.exchange.fanout_bits, " finer ",
                     options_.exchange.finer_bits, " max_fp ",
                     options_.exchange.max_fingerprints, " budget ",
                     options_.exchange.max_differing_leaves, " diff_bytes ",
                     options_.exchange.max_diff_bytes, " msg_bytes ",
                     options_.exchange.max_message_bytes));
    faults_ = false;
    loss_ = 0;
    HealPartition();
    for (int i = 0; i < n; ++i) Restart(i);
  });
  // Convergence checks after healing.
  bool converged = false;
  std::function<void()> check = [&] {
    if (CheckConverged().empty()) {
      converged = true;
      return;
    }
    At(now_ + options_.check_interval_ms, check);
  };
  At(heal_at + 1, check);

  const int64_t end = heal_at + options_.converge_bound_ms;
  while (!events_.empty() && !converged && result_.failure.empty()) {
    if (events_.next_time() > end) break;
    std::function<void()> fn = events_.Pop(&now_);
    SetClocks();
    fn();
  }
  if (result_.failure.empty()) {
    if (converged) {
      result_.converge_ms = now_ - heal_at;
    } else {
      result_.failure = absl::StrCat(
          "not converged ", options_.converge_bound_ms,
          " ms after healing: ", CheckConverged());
    }
  }
  for (auto& node : nodes_) {
    const std::string hex =
        node->store ? node->store->tree().Root().Hex() : std::string("down");
    result_.final_roots.push_back(hex);
    Trace(hex);
  }
  result_.ok = result_.failure.empty();
  streams_.clear();
  return result_;
}

}  // namespace kv::sim
