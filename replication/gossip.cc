#include "replication/gossip.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kv::replication {
namespace {

using peer::v1::GossipDigest;
using peer::v1::GossipMessage;
using peer::v1::MemberState;
using peer::v1::MemberStatus;

constexpr uint64_t kRemovedMark = std::numeric_limits<uint64_t>::max();
constexpr double kLog10E = 0.4342944819032518;
// Wall clocks beyond this (the year 37 000) are nonsense, not skew.
constexpr int64_t kMaxWallMs = int64_t{1} << 50;

// (generation, version) order of states.
bool Newer(uint64_t gen_a, uint64_t ver_a, uint64_t gen_b, uint64_t ver_b) {
  return gen_a != gen_b ? gen_a > gen_b : ver_a > ver_b;
}

std::string IdHex(uint64_t id) { return absl::StrFormat("%016x", id); }

// How far behind (gen_b, ver_b) is (gen_a, ver_a) (assumed newer): the order
// in which states are sent when not all fit. Another generation or an
// unknown member counts as far behind.
uint64_t Lag(uint64_t gen_a, uint64_t ver_a, uint64_t gen_b, uint64_t ver_b) {
  if (gen_a != gen_b) return std::numeric_limits<uint32_t>::max();
  return std::min<uint64_t>(ver_a - ver_b, std::numeric_limits<uint32_t>::max());
}

}  // namespace

const char* HealthName(MemberHealth health) {
  switch (health) {
    case MemberHealth::kAlive:
      return "alive";
    case MemberHealth::kSuspect:
      return "suspect";
    case MemberHealth::kDown:
      return "down";
    case MemberHealth::kLeft:
      return "left";
    case MemberHealth::kRemoved:
      return "removed";
  }
  return "unknown";
}

const char* EventName(GossipEvent::Kind kind) {
  switch (kind) {
    case GossipEvent::Kind::kJoined:
      return "joined";
    case GossipEvent::Kind::kRestarted:
      return "restarted";
    case GossipEvent::Kind::kSuspect:
      return "suspect";
    case GossipEvent::Kind::kDown:
      return "down";
    case GossipEvent::Kind::kAlive:
      return "alive";
    case GossipEvent::Kind::kLeft:
      return "left";
    case GossipEvent::Kind::kRemoved:
      return "removed";
    case GossipEvent::Kind::kClockSkew:
      return "clock-skew";
    case GossipEvent::Kind::kConflict:
      return "conflict";
  }
  return "unknown";
}

Gossiper::Gossiper(LocalNode self, std::vector<std::string> seeds,
                   GossipOptions options, uint64_t seed)
    : options_(options), self_(std::move(self)), rng_(seed) {
  for (std::string& s : seeds) {
    if (!s.empty() && s != self_.peer_address) seeds_.push_back(std::move(s));
  }
  std::sort(seeds_.begin(), seeds_.end());
  seeds_.erase(std::unique(seeds_.begin(), seeds_.end()), seeds_.end());
  self_state_.set_node_id(self_.node_id);
  self_state_.set_name(self_.name);
  self_state_.set_client_address(self_.client_address);
  self_state_.set_peer_address(self_.peer_address);
  self_state_.set_generation(self_.generation);
  self_state_.set_version(0);
  self_state_.set_status(peer::v1::MEMBER_ALIVE);
  self_state_.set_build_version(self_.build_version);
}

uint64_t Gossiper::Rand() { return rng_(); }

bool Gossiper::IsSeedAddress(const std::string& address) const {
  return std::binary_search(seeds_.begin(), seeds_.end(), address);
}

void Gossiper::Tick(int64_t now_ms, const AppState& app) {
  if (!active_) return;
  // Lifeguard: a late tick means this node was not running (frozen, starved
  // of CPU). Silence in that gap is not the peers' fault.
  if (last_tick_ms_ >= 0) {
    const int64_t gap = now_ms - last_tick_ms_;
    const int64_t late_after =
        static_cast<int64_t>(options_.late_tick_intervals * options_.interval_ms);
    if (gap > late_after) {
      const int64_t shift = gap - options_.interval_ms;
      for (auto& [id, m] : members_) m.last_arrival_ms += shift;
      local_health_ = std::min(local_health_ + 1, options_.max_local_health);
    } else if (local_health_ > 0 && gap <= 2 * options_.interval_ms) {
      // Recovers slowly: one step per few on-time ticks would be gentler,
      // one per tick is enough to forget a single hiccup within seconds.
      if (Rand() % 4 == 0) --local_health_;
    }
  }
  last_tick_ms_ = now_ms;

  self_state_.set_version(self_state_.version() + 1);
  last_wall_ms_ = app.wall_clock_ms;
  if (self_state_.app_version() == 0 || self_state_.merkle_root() != app.merkle_root ||
      self_state_.key_count() != app.key_count) {
    self_state_.set_merkle_root(app.merkle_root);
    self_state_.set_key_count(app.key_count);
    self_state_.set_wall_clock_ms(app.wall_clock_ms);
    self_state_.set_app_version(self_state_.version());
  }

  Detect(now_ms);

  std::vector<const Member*> live, down;
  for (const auto& [id, m] : members_) {
    if (m.state.peer_address().empty()) continue;
    if (m.health == MemberHealth::kAlive || m.health == MemberHealth::kSuspect) {
      live.push_back(&m);
    } else if (m.health == MemberHealth::kDown) {
      down.push_back(&m);
    }
  }
  std::string live_target;
  if (!live.empty()) {
    live_target = live[Rand() % live.size()]->state.peer_address();
    SendSyn(live_target, now_ms);
  }
  if (!down.empty()) {
    const double p = static_cast<double>(down.size()) / (live.size() + 1);
    if (static_cast<double>(Rand() % 1000000) / 1e6 < p) {
      SendSyn(down[Rand() % down.size()]->state.peer_address(), now_ms);
    }
  }
  if (!seeds_.empty()) {
    bool to_seed = live.empty();
    if (!to_seed && !IsSeedAddress(live_target)) {
      const double p =
          static_cast<double>(seeds_.size()) / (live.size() + down.size() + 1);
      to_seed = static_cast<double>(Rand() % 1000000) / 1e6 < p;
    }
    if (to_seed) {
      const std::string& seed = seeds_[Rand() % seeds_.size()];
      if (seed != live_target) SendSyn(seed, now_ms);
    }
  }
}

double Gossiper::Phi(const Member& m, int64_t now_ms) const {
  const double mean = std::max(m.mean_interval_ms, static_cast<double>(options_.interval_ms));
  const double since = static_cast<double>(std::max<int64_t>(0, now_ms - m.last_arrival_ms));
  return since / mean * kLog10E;
}

void Gossiper::Detect(int64_t now_ms) {
  const double scale = 1.0 + local_health_;
  for (auto& [id, m] : members_) {
    if (m.health == MemberHealth::kLeft || m.health == MemberHealth::kRemoved) continue;
    const double phi = Phi(m, now_ms);
    MemberHealth next = MemberHealth::kAlive;
    if (phi >= options_.phi_down * scale) {
      next = MemberHealth::kDown;
    } else if (phi >= options_.phi_suspect * scale) {
      // Suspect never undoes down: only a newer heartbeat does.
      next = m.health == MemberHealth::kDown ? MemberHealth::kDown : MemberHealth::kSuspect;
    } else if (m.health == MemberHealth::kDown || m.health == MemberHealth::kSuspect) {
      // Still no newer heartbeat: the scale went up (local health); keep the
      // verdict until a heartbeat arrives.
      next = m.health;
    }
    if (next == m.health) continue;
    m.health = next;
    ++live_version_;
    if (next == MemberHealth::kDown) {
      ++stats_.down_events;
      Event(GossipEvent::Kind::kDown, m, absl::StrFormat("phi %.1f", phi));
    } else if (next == MemberHealth::kSuspect) {
      ++stats_.suspect_events;
      Event(GossipEvent::Kind::kSuspect, m, absl::StrFormat("phi %.1f", phi));
    }
  }
}

GossipMessage Gossiper::NewMessage(GossipMessage::Kind kind, int64_t now_ms) const {
  GossipMessage msg;
  msg.set_kind(kind);
  msg.set_from_node_id(self_.node_id);
  msg.set_from_generation(self_.generation);
  msg.set_from_address(self_.peer_address);
  msg.set_sent_unix_ms(WallNow(now_ms));
  return msg;
}

void Gossiper::SendSyn(const std::string& to, int64_t now_ms) {
  GossipMessage syn = NewMessage(GossipMessage::SYN, now_ms);
  int64_t bytes = static_cast<int64_t>(syn.ByteSizeLong());
  auto add = [&](const MemberState& s) {
    GossipDigest* d = syn.add_digests();
    d->set_node_id(s.node_id());
    d->set_generation(s.generation());
    d->set_version(s.version());
    bytes += static_cast<int64_t>(d->ByteSizeLong()) + 2;
  };
  add(self_state_);
  // Digests beyond the budget are left out, starting at a random member so
  // that every member is in some round's digest.
  std::vector<const MemberState*> rest;
  for (const auto& [id, m] : members_) rest.push_back(&m.state);
  const size_t start = rest.empty() ? 0 : Rand() % rest.size();
  for (size_t i = 0; i < rest.size() && bytes < options_.max_message_bytes; ++i) {
    add(*rest[(start + i) % rest.size()]);
  }
  AddDownHints(&syn);
  Send(to, std::move(syn));
}

void Gossiper::AddDownHints(GossipMessage* out) {
  for (const auto& [id, m] : members_) {
    if (out->down_size() >= options_.max_down_hints) break;
    if (m.health != MemberHealth::kDown) continue;
    GossipDigest* d = out->add_down();
    d->set_node_id(id);
    d->set_generation(m.state.generation());
    d->set_version(m.state.version());
  }
}

void Gossiper::ApplyDownHints(const GossipMessage& m) {
  for (const GossipDigest& d : m.down()) {
    auto it = members_.find(d.node_id());
    if (it == members_.end()) continue;
    Member& mem = it->second;
    if (mem.health != MemberHealth::kAlive && mem.health != MemberHealth::kSuspect) continue;
    // A newer heartbeat than the sender's verdict was based on refutes it.
    if (Newer(mem.state.generation(), mem.state.version(), d.generation(), d.version())) {
      continue;
    }
    mem.health = MemberHealth::kDown;
    ++live_version_;
    ++stats_.down_events;
    Event(GossipEvent::Kind::kDown, mem, absl::StrCat("confirmed by ", m.from_address()));
  }
}

void Gossiper::Consider(const MemberState& mine, uint64_t gen, uint64_t ver,
                        std::vector<ToSend>* out) {
  if (!Newer(mine.generation(), mine.version(), gen, ver)) return;
  const bool hb_only = gen == mine.generation() && ver >= mine.app_version() &&
                       mine.status() == peer::v1::MEMBER_ALIVE;
  out->push_back(ToSend{Lag(mine.generation(), mine.version(), gen, ver), &mine, hb_only});
}

void Gossiper::AddStates(std::vector<ToSend> by_lag, GossipMessage* out) const {
  std::stable_sort(by_lag.begin(), by_lag.end(),
                   [](const ToSend& a, const ToSend& b) { return a.lag > b.lag; });
  int64_t bytes = static_cast<int64_t>(out->ByteSizeLong());
  for (const ToSend& t : by_lag) {
    MemberState hb;
    if (t.heartbeat_only) {
      hb.set_node_id(t.state->node_id());
      hb.set_generation(t.state->generation());
      hb.set_version(t.state->version());
      hb.set_app_version(t.state->app_version());
      hb.set_status(t.state->status());
      hb.set_heartbeat_only(true);
    }
    const MemberState& state = t.heartbeat_only ? hb : *t.state;
    const int64_t size = static_cast<int64_t>(state.ByteSizeLong()) + 3;
    if (out->states_size() > 0 && bytes + size > options_.max_message_bytes) break;
    *out->add_states() = state;
    bytes += size;
  }
}

std::string Gossiper::ConflictWith(const GossipMessage& m) const {
  if (m.from_node_id() == self_.node_id) {
    if (m.from_generation() != self_.generation) {
      return absl::StrCat("node id ", IdHex(self_.node_id), " belongs to live node '",
                          self_.name, "' at ", self_.peer_address,
                          "; this data directory was probably copied from it: "
                          "start the new node with a fresh data directory");
    }
    return "";
  }
  auto it = members_.find(m.from_node_id());
  if (it == members_.end()) return "";
  const Member& known = it->second;
  if (known.state.status() == peer::v1::MEMBER_REMOVED) {
    return absl::StrCat("node id ", IdHex(m.from_node_id()),
                        " was removed from the cluster (kvctl members remove); "
                        "start the node with a fresh data directory to join as a new member");
  }
  if (known.state.generation() != m.from_generation() &&
      known.state.peer_address() != m.from_address() &&
      (known.health == MemberHealth::kAlive || known.health == MemberHealth::kSuspect) &&
      known.state.status() == peer::v1::MEMBER_ALIVE) {
    return absl::StrCat("node id ", IdHex(m.from_node_id()), " belongs to live node '",
                        known.state.name(), "' at ", known.state.peer_address(),
                        "; this data directory was probably copied from it: start the "
                        "new node with a fresh data directory (or stop the other node "
                        "and wait until it is marked down)");
  }
  return "";
}

absl::Status Gossiper::Step(const GossipMessage& m, int64_t now_ms) {
  ++stats_.messages_received;
  stats_.bytes_received += static_cast<int64_t>(m.ByteSizeLong());
  auto malformed = [&](std::string why) {
    ++stats_.malformed;
    return absl::InvalidArgumentError(absl::StrCat("malformed gossip message: ", why));
  };
  if (m.kind() != GossipMessage::SYN && m.kind() != GossipMessage::ACK &&
      m.kind() != GossipMessage::ACK2) {
    return malformed(absl::StrCat("unknown kind ", static_cast<int>(m.kind())));
  }
  if (m.from_address().empty()) return malformed("no from_address");
  if (m.digests_size() > options_.max_entries || m.states_size() > options_.max_entries) {
    return malformed("too many entries");
  }
  for (const MemberState& s : m.states()) {
    if (s.node_id() == 0) return malformed("a state without node_id");
    if (s.status() == peer::v1::MEMBER_STATUS_UNSPECIFIED) {
      return malformed(absl::StrCat("state of ", IdHex(s.node_id()), " has no status"));
    }
    if (s.status() != peer::v1::MEMBER_REMOVED && !s.heartbeat_only() &&
        s.peer_address().empty()) {
      return malformed(absl::StrCat("state of ", IdHex(s.node_id()), " has no peer_address"));
    }
  }
  if (!active_) return absl::OkStatus();
  if (!m.conflict().empty()) {
    // Only the newer of two nodes with one id stops; the older one keeps it.
    if (m.kind() == GossipMessage::ACK) {
      fatal_ = absl::FailedPreconditionError(m.conflict());
      active_ = false;
      events_.push_back(GossipEvent{GossipEvent::Kind::kConflict, self_.node_id,
                                    self_.name, m.conflict()});
    }
    return absl::OkStatus();
  }
  NoteClock(m.from_node_id(), m.sent_unix_ms(), now_ms);
  if (m.down_size() > options_.max_down_hints) return malformed("too many down hints");
  switch (m.kind()) {
    case GossipMessage::SYN:
      HandleSyn(m, now_ms);
      break;
    case GossipMessage::ACK:
      HandleAck(m, now_ms);
      break;
    default:  // ACK2: states only.
      for (const MemberState& s : m.states()) ApplyState(s, now_ms);
      break;
  }
  // After the states: a heartbeat in this very message refutes a hint.
  ApplyDownHints(m);
  return absl::OkStatus();
}

void Gossiper::HandleSyn(const GossipMessage& m, int64_t now_ms) {
  GossipMessage ack = NewMessage(GossipMessage::ACK, now_ms);
  std::string conflict = ConflictWith(m);
  if (!conflict.empty()) {
    // Refuse only the newer claimant; we may know the older one as alive.
    ack.set_conflict(conflict);
    events_.push_back(GossipEvent{GossipEvent::Kind::kConflict, m.from_node_id(),
                                  m.from_address(),
                                  absl::StrCat("refused ", m.from_address(), ": ", conflict)});
    Send(m.from_address(), std::move(ack));
    return;
  }
  absl::flat_hash_map<uint64_t, const GossipDigest*> theirs;
  theirs.reserve(static_cast<size_t>(m.digests_size()));
  for (const GossipDigest& d : m.digests()) theirs[d.node_id()] = &d;
  std::vector<ToSend> send;
  auto consider = [&](const MemberState& mine) {
    // Absent from the digest: the sender lacks it (or its SYN was full,
    // which costs one state more).
    auto it = theirs.find(mine.node_id());
    if (it == theirs.end()) {
      Consider(mine, 0, 0, &send);
    } else {
      Consider(mine, it->second->generation(), it->second->version(), &send);
    }
  };
  consider(self_state_);
  for (const auto& [id, mem] : members_) consider(mem.state);
  // Digests that are newer than ours, or unknown to us: want them.
  for (const GossipDigest& d : m.digests()) {
    uint64_t gen = 0, ver = 0;
    if (d.node_id() == self_.node_id) continue;
    auto it = members_.find(d.node_id());
    if (it != members_.end()) {
      gen = it->second.state.generation();
      ver = it->second.state.version();
    }
    if (it == members_.end() || Newer(d.generation(), d.version(), gen, ver)) {
      GossipDigest* want = ack.add_digests();
      want->set_node_id(d.node_id());
      want->set_generation(gen);
      want->set_version(ver);
    }
  }
  AddStates(std::move(send), &ack);
  AddDownHints(&ack);
  Send(m.from_address(), std::move(ack));
}

void Gossiper::HandleAck(const GossipMessage& m, int64_t now_ms) {
  for (const MemberState& s : m.states()) ApplyState(s, now_ms);
  if (m.digests_size() == 0) return;
  GossipMessage ack2 = NewMessage(GossipMessage::ACK2, now_ms);
  std::vector<ToSend> send;
  for (const GossipDigest& want : m.digests()) {
    const MemberState* mine = nullptr;
    if (want.node_id() == self_.node_id) {
      mine = &self_state_;
    } else if (auto it = members_.find(want.node_id()); it != members_.end()) {
      mine = &it->second.state;
    }
    if (mine != nullptr) Consider(*mine, want.generation(), want.version(), &send);
  }
  if (send.empty()) return;
  AddStates(std::move(send), &ack2);
  Send(m.from_address(), std::move(ack2));
}

bool Gossiper::ApplyState(const MemberState& s, int64_t now_ms) {
  if (s.node_id() == self_.node_id) {
    if (s.status() == peer::v1::MEMBER_REMOVED && active_) {
      fatal_ = absl::FailedPreconditionError(absl::StrCat(
          "this node (id ", IdHex(self_.node_id),
          ") was removed from the cluster (kvctl members remove); start it with a "
          "fresh data directory to join as a new member"));
      active_ = false;
      events_.push_back(GossipEvent{GossipEvent::Kind::kConflict, self_.node_id,
                                    self_.name, fatal_.ToString()});
    }
    // Our own state is ours to set: stale or forged copies are ignored; the
    // newer claimant of our id is refused in ConflictWith.
    return false;
  }
  if (s.heartbeat_only()) {
    // Applies only on top of the app state it was sent against.
    auto it = members_.find(s.node_id());
    if (it == members_.end() || it->second.state.generation() != s.generation() ||
        it->second.state.version() < s.app_version() ||
        it->second.state.status() != peer::v1::MEMBER_ALIVE ||
        s.status() != peer::v1::MEMBER_ALIVE) {
      return false;
    }
    Member& m = it->second;
    if (s.version() <= m.state.version()) return false;
    m.state.set_version(s.version());  // In place: no copy of the state.
    NoteHeartbeat(m, now_ms, /*fresh=*/false, m.health);
    return true;
  }
  return ApplyFullState(s, now_ms);
}

bool Gossiper::ApplyFullState(const MemberState& s, int64_t now_ms) {
  auto [it, inserted] = members_.try_emplace(s.node_id());
  Member& m = it->second;
  if (!inserted) {
    if (m.state.status() == peer::v1::MEMBER_REMOVED) return false;
    if (!Newer(s.generation(), s.version(), m.state.generation(), m.state.version())) {
      return false;
    }
  }
  const bool restarted = !inserted && s.generation() != m.state.generation();
  const MemberHealth before = m.health;
  if (inserted || m.state.peer_address() != s.peer_address()) ++live_version_;
  m.state = s;
  if (s.status() == peer::v1::MEMBER_REMOVED) {
    ++live_version_;
    m.health = MemberHealth::kRemoved;
    m.state.set_generation(kRemovedMark);
    m.state.set_version(kRemovedMark);
    m.state.set_app_version(kRemovedMark);
    if (inserted || before != MemberHealth::kRemoved) Event(GossipEvent::Kind::kRemoved, m);
    return true;
  }
  if (s.status() == peer::v1::MEMBER_LEFT) {
    ++live_version_;
    m.health = MemberHealth::kLeft;
    if (inserted || before != MemberHealth::kLeft) Event(GossipEvent::Kind::kLeft, m);
    return true;
  }
  NoteHeartbeat(m, now_ms, inserted || restarted, before);
  if (inserted) {
    Event(GossipEvent::Kind::kJoined, m);
  } else if (restarted) {
    Event(GossipEvent::Kind::kRestarted, m,
          absl::StrCat("generation ", s.generation()));
  }
  return true;
}

void Gossiper::NoteHeartbeat(Member& m, int64_t now_ms, bool fresh, MemberHealth before) {
  // One failure detector sample; a new member or generation starts afresh.
  if (fresh) {
    m.samples = 0;
    m.mean_interval_ms = static_cast<double>(options_.interval_ms);
  } else {
    const double sample = static_cast<double>(now_ms - m.last_arrival_ms);
    m.samples = std::min<int64_t>(m.samples + 1, options_.window);
    m.mean_interval_ms += (sample - m.mean_interval_ms) / static_cast<double>(m.samples);
  }
  m.last_arrival_ms = now_ms;
  if (before != MemberHealth::kAlive) ++live_version_;
  m.health = MemberHealth::kAlive;
  if (!fresh && before == MemberHealth::kSuspect) ++stats_.recovered_from_suspect;
  if (!fresh && before == MemberHealth::kDown) ++stats_.recovered_from_down;
  if (!fresh && before != MemberHealth::kAlive) {
    Event(GossipEvent::Kind::kAlive, m, absl::StrCat("was ", HealthName(before)));
  }
}

int64_t Gossiper::WallNow(int64_t now_ms) const {
  // `now_ms` may be a monotonic clock: the wall clock is known only from a
  // Tick's AppState.
  if (last_wall_ms_ <= 0 || last_wall_ms_ > kMaxWallMs) return 0;
  return last_wall_ms_ + std::clamp<int64_t>(now_ms - last_tick_ms_, 0, kMaxWallMs);
}

void Gossiper::NoteClock(uint64_t node_id, int64_t sent_ms, int64_t now_ms) {
  auto it = members_.find(node_id);
  const int64_t ours = WallNow(now_ms);
  // 0 (or nonsense): the sender did not know its wall clock yet.
  if (it == members_.end() || sent_ms <= 0 || sent_ms > kMaxWallMs || ours == 0) return;
  Member& m = it->second;
  // The one-way delay counts as skew; on a LAN it is far below any drift
  // worth reporting.
  m.clock_offset_known = true;
  m.clock_offset_ms = sent_ms - ours;
  const bool skewed = std::llabs(m.clock_offset_ms) > options_.max_clock_drift_ms;
  if (skewed && !m.clock_skew_reported) {
    m.clock_skew_reported = true;
    ++stats_.clock_skew_events;
    Event(GossipEvent::Kind::kClockSkew, m,
          absl::StrCat("clock offset ", m.clock_offset_ms, " ms exceeds ",
                       options_.max_clock_drift_ms, " ms"));
  } else if (!skewed) {
    m.clock_skew_reported = false;
  }
}

void Gossiper::Leave(int64_t now_ms) {
  if (!active_) return;
  self_state_.set_status(peer::v1::MEMBER_LEFT);
  self_state_.set_version(self_state_.version() + 1);
  self_state_.set_app_version(self_state_.version());
  for (const std::string& to : LivePeers()) {
    GossipMessage msg = NewMessage(GossipMessage::ACK2, now_ms);
    *msg.add_states() = self_state_;
    Send(to, std::move(msg));
  }
  active_ = false;
}

absl::Status Gossiper::Remove(uint64_t node_id, int64_t now_ms) {
  if (node_id == self_.node_id) {
    return absl::FailedPreconditionError("a node cannot remove itself");
  }
  auto it = members_.find(node_id);
  if (it == members_.end()) {
    return absl::NotFoundError(absl::StrCat("no member with node id ", IdHex(node_id)));
  }
  Member& m = it->second;
  if (m.health == MemberHealth::kAlive || m.health == MemberHealth::kSuspect) {
    return absl::FailedPreconditionError(absl::StrCat(
        "member '", m.state.name(), "' (", IdHex(node_id), ") is ",
        HealthName(m.health), "; stop it and wait until it is marked down or left"));
  }
  if (m.health == MemberHealth::kRemoved) return absl::OkStatus();
  m.state.set_status(peer::v1::MEMBER_REMOVED);
  m.state.set_generation(kRemovedMark);
  m.state.set_version(kRemovedMark);
  m.state.set_app_version(kRemovedMark);
  m.health = MemberHealth::kRemoved;
  ++live_version_;
  Event(GossipEvent::Kind::kRemoved, m, "by this node");
  return absl::OkStatus();
}

void Gossiper::Event(GossipEvent::Kind kind, const Member& m, std::string detail) {
  events_.push_back(GossipEvent{kind, m.state.node_id(), m.state.name(), std::move(detail)});
}

void Gossiper::Send(std::string to, GossipMessage message) {
  ++stats_.messages_sent;
  stats_.bytes_sent += static_cast<int64_t>(message.ByteSizeLong());
  outbox_.push_back(OutgoingGossip{std::move(to), std::move(message)});
}

std::vector<OutgoingGossip> Gossiper::TakeMessages() { return std::exchange(outbox_, {}); }

std::vector<GossipEvent> Gossiper::TakeEvents() { return std::exchange(events_, {}); }

std::vector<MemberView> Gossiper::Members(int64_t now_ms) const {
  std::vector<MemberView> out;
  MemberView me;
  me.state = self_state_;
  me.is_self = true;
  me.health = self_state_.status() == peer::v1::MEMBER_LEFT ? MemberHealth::kLeft
                                                              : MemberHealth::kAlive;
  out.push_back(std::move(me));
  for (const auto& [id, m] : members_) {
    MemberView v;
    v.state = m.state;
    v.health = m.health;
    if (m.health != MemberHealth::kLeft && m.health != MemberHealth::kRemoved) {
      v.phi = Phi(m, now_ms);
      v.heartbeat_age_ms = now_ms - m.last_arrival_ms;
    }
    v.clock_offset_known = m.clock_offset_known;
    v.clock_offset_ms = m.clock_offset_ms;
    v.clock_skewed = m.clock_offset_known &&
                     std::llabs(m.clock_offset_ms) > options_.max_clock_drift_ms;
    out.push_back(std::move(v));
  }
  std::sort(out.begin(), out.end(), [](const MemberView& a, const MemberView& b) {
    return a.state.node_id() < b.state.node_id();
  });
  return out;
}

std::vector<std::string> Gossiper::LivePeers() const {
  std::vector<std::string> out;
  for (const auto& [id, m] : members_) {
    if (m.health == MemberHealth::kAlive || m.health == MemberHealth::kSuspect) {
      out.push_back(m.state.peer_address());
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

bool Gossiper::IsLive(uint64_t node_id) const {
  auto it = members_.find(node_id);
  return it != members_.end() && (it->second.health == MemberHealth::kAlive ||
                                  it->second.health == MemberHealth::kSuspect);
}

std::optional<MemberHealth> Gossiper::HealthOf(uint64_t node_id) const {
  if (node_id == self_.node_id) return MemberHealth::kAlive;
  auto it = members_.find(node_id);
  if (it == members_.end()) return std::nullopt;
  return it->second.health;
}

GossipDriver::GossipDriver(Gossiper* core, GossipTransport* transport,
                           EventListener on_event)
    : core_(core), transport_(transport), on_event_(std::move(on_event)) {}

void GossipDriver::Flush() {
  for (OutgoingGossip& out : core_->TakeMessages()) transport_->Send(out.to, out.message);
  for (const GossipEvent& e : core_->TakeEvents()) {
    if (on_event_) on_event_(e);
  }
  if (core_->live_version() != last_live_version_) {
    last_live_version_ = core_->live_version();
    live_changed_ = true;
  }
}

void GossipDriver::Tick(int64_t now_ms, const AppState& app) {
  core_->Tick(now_ms, app);
  Flush();
}

absl::Status GossipDriver::Receive(const peer::v1::GossipMessage& message, int64_t now_ms) {
  absl::Status s = core_->Step(message, now_ms);
  Flush();
  return s;
}

void GossipDriver::Leave(int64_t now_ms) {
  core_->Leave(now_ms);
  Flush();
}

absl::Status GossipDriver::Remove(uint64_t node_id, int64_t now_ms) {
  absl::Status s = core_->Remove(node_id, now_ms);
  Flush();
  return s;
}

bool GossipDriver::TakeLivePeersChanged() { return std::exchange(live_changed_, false); }

}  // namespace kv::replication
