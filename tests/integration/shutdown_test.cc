// Writes that meet a kvd shutting down (SIGTERM): each is answered OK or
// UNAVAILABLE (kv.proto: retry elsewhere or later), never CANCELLED, and
// every write answered OK is there after the restart.
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "tests/integration/kvd_process.h"

namespace kv::testing {
namespace {

struct Outcomes {
  absl::Mutex mu;
  std::vector<std::pair<std::string, client::Version>> acked;
  std::map<absl::StatusCode, int64_t> codes;
  std::string first_other;  // The first answer neither OK nor UNAVAILABLE.
};

// Writers hammer `address` until `stop`; every answer is recorded.
void Hammer(const std::string& address, int writers, int round,
            std::atomic<bool>* stop, Outcomes* out) {
  std::vector<std::thread> threads;
  for (int t = 0; t < writers; ++t) {
    threads.emplace_back([&, t] {
      client::ClientOptions options;
      options.timeout = absl::Seconds(10);
      // Half share one connection, half have their own.
      options.dedicated_connection = t % 2 == 0;
      auto c = client::Client::Connect(address, options);
      if (!c.ok()) return;
      const absl::Time deadline = absl::Now() + absl::Seconds(30);
      for (int i = 0; i < 1'000'000 && !stop->load() && absl::Now() < deadline; ++i) {
        const std::string key = absl::StrCat("r", round, "/w", t, "/", i);
        absl::StatusOr<client::Version> v = (*c)->Put(key, std::string(100, 'a' + i % 26));
        absl::MutexLock lock(&out->mu);
        ++out->codes[v.status().code()];
        if (v.ok()) {
          out->acked.emplace_back(key, *v);
        } else if (v.status().code() != absl::StatusCode::kUnavailable &&
                   out->first_other.empty()) {
          out->first_other = v.status().ToString();
        }
      }
    });
  }
  for (auto& th : threads) th.join();
}

std::string Describe(const std::map<absl::StatusCode, int64_t>& codes) {
  std::string s;
  for (const auto& [code, n] : codes) {
    absl::StrAppend(&s, s.empty() ? "" : ", ", absl::StatusCodeToString(code), " ", n);
  }
  return s;
}

TEST(ShutdownTest, WritesDuringShutdownGetOkOrUnavailableAndOkOnesSurvive) {
  TempDir dir;
  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  KvdProcessOptions o;
  o.data_dir = dir.path() + "/node";
  o.listen = address;
  KvdProcess kvd(o);
  const absl::Time start = absl::Now();
  std::map<std::string, client::Version> all_acked;
  std::map<absl::StatusCode, int64_t> all_codes;
  // A few rounds: the moment SIGTERM lands varies.
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(round);
    ASSERT_TRUE(kvd.Start().ok()) << kvd.LogTail();
    Outcomes out;
    std::atomic<bool> stop{false};
    std::thread hammer([&] { Hammer(address, 8, round, &stop, &out); });
    // Writes flowing, then SIGTERM while they go on.
    const absl::Time flowing_by = absl::Now() + absl::Seconds(20);
    while (absl::Now() < flowing_by) {
      {
        absl::MutexLock lock(&out.mu);
        if (out.acked.size() >= 300) break;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
    absl::StatusOr<int> exit = kvd.Terminate(absl::Seconds(20));
    // A little past the exit: writes then meet a closed port.
    absl::SleepFor(absl::Milliseconds(100));
    stop = true;
    hammer.join();
    ASSERT_TRUE(exit.ok()) << exit.status();
    EXPECT_TRUE(WIFEXITED(*exit) && WEXITSTATUS(*exit) == 0) << kvd.LogTail();
    absl::MutexLock lock(&out.mu);
    EXPECT_GE(out.acked.size(), 300u) << Describe(out.codes);
    EXPECT_GT(out.codes[absl::StatusCode::kUnavailable], 0) << Describe(out.codes);
    EXPECT_EQ(out.codes.size(), 2u)
        << "answers: " << Describe(out.codes) << "; first other: " << out.first_other;
    for (auto& [key, v] : out.acked) all_acked[key] = v;
    for (auto& [code, n] : out.codes) all_codes[code] += n;
  }
  // Every write answered OK is stored, at the version it was answered with.
  ASSERT_TRUE(kvd.Start().ok()) << kvd.LogTail();
  auto c = client::Client::Connect(address);
  ASSERT_TRUE(c.ok());
  int missing = 0;
  for (const auto& [key, v] : all_acked) {
    absl::StatusOr<client::GetResult> got = (*c)->Get(key);
    ASSERT_TRUE(got.ok()) << got.status();
    if (!got->found || !(got->version == v)) {
      if (++missing <= 3) ADD_FAILURE() << "write " << key << " was answered OK but is lost";
    }
  }
  EXPECT_EQ(missing, 0) << "of " << all_acked.size();
  std::printf("3 shutdowns under writes: %s; %zu acknowledged writes checked; %.1f s\n",
              Describe(all_codes).c_str(), all_acked.size(),
              absl::ToDoubleSeconds(absl::Now() - start));
  EXPECT_LT(absl::Now() - start, absl::Seconds(90));
}

}  // namespace
}  // namespace kv::testing
