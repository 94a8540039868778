// fanout_bench: how long after a Put is acknowledged (at --consistency, ONE
// by default) it is readable on every node of a running cluster.
//
//   scripts/cluster.sh up 5 --ae-interval-ms 1000
//   build/tests/bench/fanout_bench --endpoints 127.0.0.1:7071,...,127.0.0.1:7075
//
// Writes --count keys to the first endpoint, one every --interval-ms (a light
// load); one thread per other endpoint polls its pending keys (Get at ONE)
// every --poll-us and notes when each first appears. A key's time is the
// slowest node's. Prints p50, p99 and max in milliseconds.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "client/client.h"

namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Time from a Put's acknowledgement until every node serves it"};
  std::string endpoints_flag;
  int count = 200;
  int interval_ms = 20;
  int poll_us = 200;
  double timeout_s = 60;
  std::string prefix = absl::StrCat("fanout-bench-", time(nullptr), "-");
  app.add_option("--endpoints", endpoints_flag, "Comma-separated host:port, writer first")
      ->required();
  app.add_option("--count,-n", count, "Keys written")->capture_default_str();
  app.add_option("--interval-ms", interval_ms, "Between writes")->capture_default_str();
  app.add_option("--poll-us", poll_us, "Between polls of one node")->capture_default_str();
  app.add_option("--timeout", timeout_s, "Seconds to wait for the last key")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::vector<std::string> endpoints = absl::StrSplit(endpoints_flag, ',', absl::SkipEmpty());
  if (endpoints.size() < 2) {
    std::fprintf(stderr, "need at least two endpoints\n");
    return 2;
  }
  const int nodes = static_cast<int>(endpoints.size());
  std::vector<std::unique_ptr<kv::client::Client>> clients;
  for (const std::string& e : endpoints) {
    auto c = kv::client::Client::Connect(e, {.timeout = absl::Seconds(5),
                                             .connect_timeout = absl::Seconds(5),
                                             .dedicated_connection = true});
    if (!c.ok()) {
      std::fprintf(stderr, "%s: %s\n", e.c_str(), c.status().ToString().c_str());
      return 1;
    }
    clients.push_back(std::move(*c));
  }

  // ack[i]: when key i was acknowledged (ns since epoch of Clock; 0 = not
  // yet). seen[j][i]: ms after ack that node j first served it (-1: not yet).
  std::vector<std::atomic<int64_t>> ack(count);
  for (auto& a : ack) a.store(0);
  std::vector<std::vector<double>> seen(nodes, std::vector<double>(count, -1));
  std::atomic<bool> writer_done{false};
  const auto deadline_after_writes = std::chrono::duration<double>(timeout_s);

  std::vector<std::thread> pollers;
  for (int j = 1; j < nodes; ++j) {
    pollers.emplace_back([&, j] {
      std::vector<int> pending;
      int next = 0;  // Keys below were added to `pending`.
      Clock::time_point give_up = Clock::time_point::max();
      while (true) {
        while (next < count && ack[next].load() != 0) pending.push_back(next++);
        for (auto it = pending.begin(); it != pending.end();) {
          const int i = *it;
          auto r = clients[j]->Get(absl::StrCat(prefix, i));
          if (r.ok() && r->found) {
            const auto at = Clock::time_point(Clock::duration(ack[i].load()));
            seen[j][i] = std::chrono::duration<double, std::milli>(Clock::now() - at).count();
            it = pending.erase(it);
          } else {
            ++it;
          }
        }
        if (writer_done.load() && next == count) {
          if (pending.empty()) return;
          if (give_up == Clock::time_point::max()) {
            give_up = Clock::now() +
                      std::chrono::duration_cast<Clock::duration>(deadline_after_writes);
          }
          if (Clock::now() > give_up) return;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(poll_us));
      }
    });
  }

  int errors = 0;
  for (int i = 0; i < count; ++i) {
    auto r = clients[0]->Put(absl::StrCat(prefix, i), "v");
    const auto now = Clock::now();
    if (!r.ok()) {
      ++errors;
      std::fprintf(stderr, "put %d: %s\n", i, r.status().ToString().c_str());
    }
    ack[i].store(now.time_since_epoch().count());
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
  }
  writer_done.store(true);
  for (auto& t : pollers) t.join();

  std::vector<double> times;
  int missing = 0;
  for (int i = 0; i < count; ++i) {
    double worst = 0;
    bool all = true;
    for (int j = 1; j < nodes; ++j) {
      if (seen[j][i] < 0) all = false;
      worst = std::max(worst, seen[j][i]);
    }
    if (all) {
      times.push_back(worst);
    } else {
      ++missing;
    }
  }
  std::sort(times.begin(), times.end());
  auto pct = [&](double p) {
    if (times.empty()) return -1.0;
    return times[std::min(times.size() - 1, static_cast<size_t>(p * times.size()))];
  };
  std::printf(
      "ack -> readable on all %d nodes: n=%zu p50 %.2f ms p99 %.2f ms max %.2f ms "
      "(missing %d, put errors %d)\n",
      nodes, times.size(), pct(0.5), pct(0.99), times.empty() ? -1.0 : times.back(),
      missing, errors);
  return missing == 0 && errors == 0 ? 0 : 1;
}
