#include "client/latency_histogram.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace kv::client {
namespace {

TEST(LatencyHistogramTest, EmptyReportsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.Count(), 0u);
  EXPECT_EQ(h.Min(), 0u);
  EXPECT_EQ(h.Max(), 0u);
  EXPECT_EQ(h.Percentile(50), 0u);
  EXPECT_EQ(h.Mean(), 0.0);
}

TEST(LatencyHistogramTest, ExactNearestRankForSmallValues) {
  LatencyHistogram h;
  // 1..100 recorded in reverse order: values below 128 are exact.
  for (uint64_t v = 100; v >= 1; --v) h.Record(v);
  EXPECT_EQ(h.Count(), 100u);
  EXPECT_EQ(h.Percentile(0), 1u);
  EXPECT_EQ(h.Percentile(1), 1u);
  EXPECT_EQ(h.Percentile(50), 50u);
  EXPECT_EQ(h.Percentile(90), 90u);
  EXPECT_EQ(h.Percentile(99), 99u);
  EXPECT_EQ(h.Percentile(99.9), 100u);  // rank ceil(99.9) = 100
  EXPECT_EQ(h.Percentile(100), 100u);
  EXPECT_EQ(h.Min(), 1u);
  EXPECT_EQ(h.Max(), 100u);
  EXPECT_DOUBLE_EQ(h.Mean(), 50.5);
}

TEST(LatencyHistogramTest, RankRoundsUp) {
  LatencyHistogram h;
  for (uint64_t v : {10, 20, 30, 40, 50, 60, 70, 80, 90, 100}) h.Record(v);
  EXPECT_EQ(h.Percentile(50), 50u);  // rank 5
  EXPECT_EQ(h.Percentile(51), 60u);  // rank ceil(5.1) = 6
  EXPECT_EQ(h.Percentile(90), 90u);  // rank 9, not 10
  EXPECT_EQ(h.Percentile(99), 100u);
}

TEST(LatencyHistogramTest, SkewedDistribution) {
  LatencyHistogram h;
  for (int i = 0; i < 990; ++i) h.Record(5);
  for (int i = 0; i < 9; ++i) h.Record(70);
  h.Record(120);
  EXPECT_EQ(h.Percentile(50), 5u);
  EXPECT_EQ(h.Percentile(99), 5u);     // rank 990
  EXPECT_EQ(h.Percentile(99.5), 70u);  // rank 995
  EXPECT_EQ(h.Percentile(99.9), 70u);  // rank 999
  EXPECT_EQ(h.Percentile(100), 120u);
}

TEST(LatencyHistogramTest, LargeValuesWithinRelativeError) {
  LatencyHistogram h;
  // 1000 distinct values spread over 1us..10s in ns.
  std::vector<uint64_t> values;
  for (int i = 0; i < 1000; ++i) {
    values.push_back(static_cast<uint64_t>(1000 * std::pow(1e7, i / 999.0)));
  }
  std::mt19937_64 rng(7);
  std::vector<uint64_t> shuffled = values;
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  for (uint64_t v : shuffled) h.Record(v);
  for (double p : {50.0, 90.0, 99.0, 99.9}) {
    const uint64_t want = values[static_cast<size_t>(std::ceil(p * 10)) - 1];
    const double got = static_cast<double>(h.Percentile(p));
    EXPECT_NEAR(got, want, want / 256.0 + 1) << "p" << p;
  }
  EXPECT_EQ(h.Percentile(100), values.back());  // Clamped to the exact max.
  EXPECT_EQ(h.Percentile(0), values.front());   // Clamped to the exact min.
}

TEST(LatencyHistogramTest, ExtremesDoNotOverflow) {
  LatencyHistogram h;
  h.Record(0);
  h.Record(UINT64_MAX);
  EXPECT_EQ(h.Percentile(50), 0u);
  EXPECT_EQ(h.Percentile(100), UINT64_MAX);
}

TEST(LatencyHistogramTest, MergeEqualsRecordingEverything) {
  LatencyHistogram a, b, all;
  for (uint64_t v = 1; v <= 50; ++v) {
    a.Record(v * 1000);
    all.Record(v * 1000);
  }
  for (uint64_t v = 51; v <= 100; ++v) {
    b.Record(v * 1000);
    all.Record(v * 1000);
  }
  a.Merge(b);
  EXPECT_EQ(a.Count(), 100u);
  EXPECT_EQ(a.Min(), 1000u);
  EXPECT_EQ(a.Max(), 100000u);
  for (double p : {0.0, 50.0, 90.0, 99.0, 99.9, 100.0}) {
    EXPECT_EQ(a.Percentile(p), all.Percentile(p)) << p;
  }
  EXPECT_DOUBLE_EQ(a.Mean(), all.Mean());
}

}  // namespace
}  // namespace kv::client
