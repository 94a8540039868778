#include "tests/sim/gossip_sim.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace kv::sim {

using replication::GossipEvent;
using replication::MemberHealth;

struct GossipSimulation::Node {
  int index = 0;
  uint64_t id = 0;
  std::string address;
  bool up = false;
  bool crashed = false;   // Crashed on purpose (its downs are expected).
  uint64_t incarnation = 0;
  std::unique_ptr<Transport> transport;
  std::unique_ptr<replication::Gossiper> core;
  std::unique_ptr<replication::GossipDriver> driver;
};

class GossipSimulation::Transport final : public replication::GossipTransport {
 public:
  Transport(GossipSimulation* sim, int from) : sim_(sim), from_(from) {}
  void Send(const std::string& to, const peer::v1::GossipMessage& message) override {
    // Addresses are "n<index>".
    const int dest = std::atoi(to.c_str() + 1);
    if (sim_->counting_bytes_) {
      ++sim_->result_.messages;
      sim_->result_.bytes += static_cast<int64_t>(message.ByteSizeLong());
    }
    if (dest < 0 || dest >= static_cast<int>(sim_->nodes_.size())) return;
    if (!sim_->Connected(from_, dest) || sim_->Chance(sim_->options_.loss)) return;
    const int64_t delay =
        static_cast<int64_t>(sim_->Uniform(sim_->options_.min_delay_ms,
                                           sim_->options_.max_delay_ms));
    const int from = from_;
    sim_->At(sim_->now_ + delay,
             [sim = sim_, from, dest, message] { sim->Deliver(from, dest, message); });
  }

 private:
  GossipSimulation* const sim_;
  const int from_;
};

std::string GossipSimResult::Summary() const {
  return absl::StrCat(ok ? "ok" : "FAILED: " + failure, "; bootstrap ", bootstrap_rounds,
                      " rounds; joins [", absl::StrJoin(join_rounds, ","), "]; crashes [",
                      absl::StrJoin(crash_rounds, ","), "] (first [",
                      absl::StrJoin(crash_first_rounds, ","), "]); merge ", merge_rounds,
                      "; false downs ", false_downs, "; ", messages, " msgs, ", bytes,
                      " bytes over ", node_rounds, " node-rounds");
}

GossipSimulation::GossipSimulation(const GossipSimOptions& options)
    : options_(options), rng_(options.seed) {}

GossipSimulation::~GossipSimulation() = default;

uint64_t GossipSimulation::Uniform(uint64_t lo, uint64_t hi) {
  return rng_.Uniform(lo, hi);
}

bool GossipSimulation::Chance(double p) {
  return p > 0 && rng_.Chance(p);
}

void GossipSimulation::At(int64_t time, std::function<void()> fn) {
  events_.At(time, std::move(fn));
}

void GossipSimulation::RunUntil(int64_t until) {
  while (!events_.empty() && events_.next_time() <= until) {
    std::function<void()> fn = events_.Pop(&now_);
    fn();
  }
  now_ = until;
}

int64_t GossipSimulation::Round() const { return now_ / options_.gossip.interval_ms; }

bool GossipSimulation::Connected(int a, int b) const {
  return !partitioned_ || group_[a] == group_[b];
}

std::vector<int> GossipSimulation::LiveNodes() const {
  std::vector<int> out;
  for (const auto& n : nodes_) {
    if (n->up) out.push_back(n->index);
  }
  return out;
}

void GossipSimulation::StartNode(int i, std::vector<std::string> seeds) {
  Node& n = *nodes_[i];
  n.up = true;
  ++n.incarnation;
  replication::LocalNode self;
  self.node_id = n.id;
  self.name = absl::StrCat("node", i);
  self.peer_address = n.address;
  self.client_address = n.address;
  self.generation = static_cast<uint64_t>(now_) + 1;
  n.transport = std::make_unique<Transport>(this, i);
  n.core = std::make_unique<replication::Gossiper>(self, std::move(seeds), options_.gossip,
                                                   rng_());
  n.driver = std::make_unique<replication::GossipDriver>(
      n.core.get(), n.transport.get(), [this](const GossipEvent& e) {
        if (e.kind != GossipEvent::Kind::kDown || !counting_ || expect_downs_) return;
        const int about = static_cast<int>(e.node_id - 1000);
        if (about >= 0 && about < static_cast<int>(nodes_.size()) && !nodes_[about]->crashed) {
          ++result_.false_downs;
        }
      });
  ScheduleTick(i, n.incarnation);
}

void GossipSimulation::ScheduleTick(int i, uint64_t incarnation) {
  const int64_t interval = options_.gossip.interval_ms;
  // Jitter of +-10% of the interval; a node just started gossips at once
  // (as kvd does).
  const bool first = nodes_[i]->core->stats().messages_sent == 0 &&
                     nodes_[i]->core->stats().messages_received == 0;
  const int64_t next =
      first ? now_ + static_cast<int64_t>(Uniform(1, static_cast<uint64_t>(interval / 10)))
            : now_ + interval - interval / 10 +
                  static_cast<int64_t>(Uniform(0, static_cast<uint64_t>(interval / 5)));
  At(next, [this, i, incarnation] {
    Node& n = *nodes_[i];
    if (!n.up || n.incarnation != incarnation) return;
    n.driver->Tick(now_, replication::AppState{std::string(16, '\0'), 0, now_});
    ScheduleTick(i, incarnation);
  });
}

void GossipSimulation::Deliver(int from, int to, const peer::v1::GossipMessage& msg) {
  Node& n = *nodes_[to];
  if (!n.up || !Connected(from, to)) return;
  absl::Status s = n.driver->Receive(msg, now_);
  if (!s.ok()) {
    result_.ok = false;
    result_.failure = absl::StrCat("node ", to, " rejected a message: ", s.ToString());
  }
}

int64_t GossipSimulation::WaitRounds(int64_t start, int64_t bound,
                                     const std::function<bool()>& pred) {
  const int64_t interval = options_.gossip.interval_ms;
  for (int64_t r = 0; r <= bound; ++r) {
    if (pred()) return Round() - start;
    RunUntil(now_ + interval);
  }
  return -1;
}

GossipSimResult GossipSimulation::Run() {
  result_ = GossipSimResult{};
  result_.ok = true;
  const int n_initial = options_.num_nodes;
  const int total = n_initial + options_.joins;
  for (int i = 0; i < total; ++i) {
    auto node = std::make_unique<Node>();
    node->index = i;
    node->id = 1000 + static_cast<uint64_t>(i);
    node->address = absl::StrCat("n", i);
    nodes_.push_back(std::move(node));
  }
  group_.assign(total, 0);
  auto random_seeds = [&](int count, int among) {
    std::vector<std::string> seeds;
    for (int k = 0; k < count; ++k) {
      seeds.push_back(absl::StrCat("n", Uniform(0, static_cast<uint64_t>(among - 1))));
    }
    return seeds;
  };
  for (int i = 0; i < n_initial; ++i) {
    StartNode(i, random_seeds(options_.seeds_per_node, std::min(n_initial, 3)));
  }
  auto everyone_knows_everyone = [&] {
    for (int i : LiveNodes()) {
      if (nodes_[i]->core->size() != static_cast<size_t>(n_initial)) return false;
    }
    return true;
  };
  result_.bootstrap_rounds = WaitRounds(Round(), options_.bootstrap_bound_rounds,
                                        everyone_knows_everyone);
  if (result_.bootstrap_rounds < 0) {
    result_.ok = false;
    result_.failure = "bootstrap: not every node learned every other";
    return result_;
  }
  // Let the failure detectors learn the heartbeat rate.
  RunUntil(now_ + 20 * options_.gossip.interval_ms);

  // Measured phase: joins and crashes, interleaved and spaced.
  counting_ = true;
  struct Tracker {
    bool join;
    int node;
    int64_t start_round;
    int64_t first = -1;
    int64_t done = -1;
  };
  std::vector<Tracker> trackers;
  std::vector<int> crash_candidates;
  for (int i = 0; i < n_initial; ++i) crash_candidates.push_back(i);
  auto check = [&] {
    bool all = true;
    const std::vector<int> live = LiveNodes();
    for (Tracker& tr : trackers) {
      if (tr.done >= 0) continue;
      const uint64_t id = nodes_[tr.node]->id;
      int knowing = 0;
      bool some_down = false;
      for (int i : live) {
        if (i == tr.node) continue;
        const auto h = nodes_[i]->core->HealthOf(id);
        // A crash is known when the node does not consider it live (it may
        // never have heard of it: a later joiner).
        const bool knows = tr.join ? h.has_value() : !nodes_[i]->core->IsLive(id);
        if (knows) ++knowing;
        some_down |= h.has_value() && *h == MemberHealth::kDown;
      }
      const int others = static_cast<int>(live.size()) - (nodes_[tr.node]->up ? 1 : 0);
      if ((tr.join ? knowing > 0 : some_down) && tr.first < 0) {
        tr.first = Round() - tr.start_round;
      }
      if (knowing == others) {
        tr.done = Round() - tr.start_round;
      } else {
        all = false;
      }
    }
    return all;
  };
  // Events every event_spacing_rounds; every tracker is checked each round.
  const int events = std::max(options_.joins, options_.crashes);
  for (int e = 0; e < events; ++e) {
    for (int r = 0; r < options_.event_spacing_rounds; ++r) {
      RunUntil(now_ + options_.gossip.interval_ms);
      (void)check();
    }
    if (e < options_.crashes && crash_candidates.size() > 1) {
      const size_t pick = Uniform(0, crash_candidates.size() - 1);
      const int c = crash_candidates[pick];
      crash_candidates.erase(crash_candidates.begin() + static_cast<long>(pick));
      nodes_[c]->up = false;
      nodes_[c]->crashed = true;
      trackers.push_back(Tracker{false, c, Round()});
    }
    if (e < options_.joins) {
      const int j = n_initial + e;
      // Its one seed is a live member (a dead seed cannot introduce it).
      std::vector<int> live = LiveNodes();
      StartNode(j, {nodes_[live[Uniform(0, live.size() - 1)]]->address});
      trackers.push_back(Tracker{true, j, Round()});
    }
  }
  if (WaitRounds(Round(), options_.event_bound_rounds, check) < 0) {
    result_.ok = false;
    for (const Tracker& tr : trackers) {
      if (tr.done < 0) {
        result_.failure = absl::StrCat(tr.join ? "join of node " : "crash of node ", tr.node,
                                       " not known by every live node within ",
                                       options_.event_bound_rounds, " rounds");
        break;
      }
    }
  }
  for (const Tracker& tr : trackers) {
    if (tr.join) {
      result_.join_rounds.push_back(tr.done);
    } else {
      result_.crash_rounds.push_back(tr.done);
      result_.crash_first_rounds.push_back(tr.first);
    }
  }
  if (!result_.ok) return result_;

  if (options_.partition) {
    for (int i : LiveNodes()) group_[i] = static_cast<int>(Uniform(0, 1));
    partitioned_ = true;
    expect_downs_ = true;
    RunUntil(now_ + options_.partition_rounds * options_.gossip.interval_ms);
    partitioned_ = false;
    // After healing, every live node must see every other live node alive.
    auto merged = [&] {
      const std::vector<int> live = LiveNodes();
      for (int i : live) {
        for (int j : live) {
          if (i != j && !nodes_[i]->core->IsLive(nodes_[j]->id)) return false;
        }
      }
      return true;
    };
    result_.merge_rounds = WaitRounds(Round(), options_.merge_bound_rounds, merged);
    if (result_.merge_rounds < 0) {
      result_.ok = false;
      result_.failure = "the healed partition did not merge";
      return result_;
    }
    expect_downs_ = false;
  }
  // Steady state: the cost of gossip per node and round.
  counting_bytes_ = true;
  result_.node_rounds = static_cast<int64_t>(LiveNodes().size()) * options_.steady_rounds;
  RunUntil(now_ + options_.steady_rounds * options_.gossip.interval_ms);
  counting_bytes_ = false;
  if (result_.false_downs > 0) {
    result_.ok = false;
    result_.failure = absl::StrCat(result_.false_downs, " live nodes were marked down");
  }
  return result_;
}

}  // namespace kv::sim
