#include "client/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace kv::client {

namespace {

constexpr uint64_t kSubCount = uint64_t{1} << LatencyHistogram::kSubBits;
// Exact buckets for [0, kSubCount), then kSubCount buckets for each exponent
// e in [kSubBits, 63].
constexpr int kNumBuckets =
    static_cast<int>(kSubCount + (64 - LatencyHistogram::kSubBits) * kSubCount);

}  // namespace

LatencyHistogram::LatencyHistogram() : buckets_(kNumBuckets, 0) {}

int LatencyHistogram::BucketOf(uint64_t value) {
  if (value < kSubCount) return static_cast<int>(value);
  const int e = std::bit_width(value) - 1;  // 2^e <= value < 2^(e+1)
  const uint64_t sub = (value >> (e - kSubBits)) & (kSubCount - 1);
  return static_cast<int>(kSubCount + (e - kSubBits) * kSubCount + sub);
}

uint64_t LatencyHistogram::BucketLow(int bucket) {
  if (bucket < static_cast<int>(kSubCount)) return bucket;
  const int rel = bucket - static_cast<int>(kSubCount);
  const int e = kSubBits + rel / static_cast<int>(kSubCount);
  const uint64_t sub = rel % kSubCount;
  return (uint64_t{1} << e) + (sub << (e - kSubBits));
}

uint64_t LatencyHistogram::BucketHigh(int bucket) {
  if (bucket < static_cast<int>(kSubCount)) return bucket;
  const int rel = bucket - static_cast<int>(kSubCount);
  const int e = kSubBits + rel / static_cast<int>(kSubCount);
  return BucketLow(bucket) + ((uint64_t{1} << (e - kSubBits)) - 1);
}

void LatencyHistogram::Record(uint64_t value) {
  ++buckets_[BucketOf(value)];
  ++count_;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
  sum_ += value;
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (int i = 0; i < kNumBuckets; ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

double LatencyHistogram::Mean() const {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_ / count_);
}

uint64_t LatencyHistogram::Percentile(double p) const {
  if (count_ == 0) return 0;
  p = std::clamp(p, 0.0, 100.0);
  // Nearest rank, computed in integers where possible so that e.g. p = 90
  // with count = 10 gives rank 9 exactly (no 9.000000001 -> 10).
  const long double exact = static_cast<long double>(p) / 100.0L * count_;
  uint64_t rank = static_cast<uint64_t>(std::ceil(exact - 1e-9L));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  if (rank == 1) return min_;  // The smallest and largest sample are exact.
  if (rank == count_) return max_;
  uint64_t seen = 0;
  for (int i = 0; i < kNumBuckets; ++i) {
    seen += buckets_[i];
    if (seen >= rank) {
      const uint64_t low = BucketLow(i);
      const uint64_t high = BucketHigh(i);
      const uint64_t mid = low + (high - low) / 2;
      return std::clamp(mid, Min(), max_);
    }
  }
  return max_;
}

}  // namespace kv::client
