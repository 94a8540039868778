// What the simulators (simulator.h: anti-entropy; gossip_sim.h: membership)
// share: a seeded random source whose draws are defined here, not by the
// standard library's distributions (their output is implementation-defined),
// and a queue of events in virtual time.
//
// Thread safety: not thread-safe; one per simulation.
#ifndef KV_TESTS_SIM_SIM_CORE_H_
#define KV_TESTS_SIM_SIM_CORE_H_

#include <cstdint>
#include <functional>
#include <queue>
#include <random>
#include <utility>
#include <vector>

namespace kv::sim {

class SimRandom {
 public:
  explicit SimRandom(uint64_t seed) : rng_(seed) {}
  // A raw 64-bit draw.
  uint64_t operator()() { return rng_(); }
  // In [lo, hi]. REQUIRES: lo <= hi.
  uint64_t Uniform(uint64_t lo, uint64_t hi) { return lo + rng_() % (hi - lo + 1); }
  // True with probability p (one draw, whatever p).
  bool Chance(double p) { return static_cast<double>(rng_() >> 11) * 0x1.0p-53 < p; }

 private:
  std::mt19937_64 rng_;
};

// Events run in time order; events at the same time in the order they were
// added, so a run is a function of the seed alone.
class EventQueue {
 public:
  void At(int64_t time, std::function<void()> fn) {
    events_.push(Event{time, next_seq_++, std::move(fn)});
  }
  bool empty() const { return events_.empty(); }
  // REQUIRES: !empty().
  int64_t next_time() const { return events_.top().time; }
  // Removes the next event; returns its function, and its time in *time.
  // REQUIRES: !empty().
  std::function<void()> Pop(int64_t* time) {
    Event e = events_.top();
    events_.pop();
    *time = e.time;
    return std::move(e.fn);
  }

 private:
  struct Event {
    int64_t time;
    uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Event& o) const {
      return time != o.time ? time > o.time : seq > o.seq;
    }
  };
  uint64_t next_seq_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
};

}  // namespace kv::sim

#endif  // KV_TESTS_SIM_SIM_CORE_H_
