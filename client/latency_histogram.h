// LatencyHistogram: a log-linear histogram of non-negative integer samples
// (the benchmark records nanoseconds) with percentile queries.
//
// Buckets: values below 2^kSubBits (128) each have their own bucket, so they
// are recorded exactly. Above that, each power of two [2^e, 2^(e+1)) is split
// into 2^kSubBits equal buckets, so a reported percentile is within 1/256
// (0.4%) of a recorded value. Min, max, count and sum are kept exactly.
//
// Percentiles use the nearest-rank definition: Percentile(p) is the smallest
// recorded value v such that at least p% of the samples are <= v (rank
// ceil(p/100 * count), at least 1). Rank 1 and rank count report Min() and
// Max() exactly; otherwise, for a bucket wider than 1 the midpoint of the
// bucket is reported, clamped to [Min(), Max()].
//
// Thread safety: not thread-safe; use one per thread (or guard it) and Merge.
#ifndef KV_CLIENT_LATENCY_HISTOGRAM_H_
#define KV_CLIENT_LATENCY_HISTOGRAM_H_

#include <cstdint>
#include <vector>

namespace kv::client {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 7;

  LatencyHistogram();

  void Record(uint64_t value);
  // Adds all samples of `other`.
  void Merge(const LatencyHistogram& other);

  uint64_t Count() const { return count_; }
  // 0 when empty.
  uint64_t Min() const { return count_ == 0 ? 0 : min_; }
  uint64_t Max() const { return max_; }
  double Mean() const;
  // REQUIRES: 0 <= p <= 100. Returns 0 when empty.
  uint64_t Percentile(double p) const;

 private:
  static int BucketOf(uint64_t value);
  // Smallest and largest value that map to `bucket`.
  static uint64_t BucketLow(int bucket);
  static uint64_t BucketHigh(int bucket);

  std::vector<uint64_t> buckets_;  // Sample counts per bucket.
  uint64_t count_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
  long double sum_ = 0;  // For Mean(); long double keeps ns sums exact enough.
};

}  // namespace kv::client

#endif  // KV_CLIENT_LATENCY_HISTOGRAM_H_
