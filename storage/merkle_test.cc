#include "storage/merkle.h"

#include <gtest/gtest.h>

namespace kv::storage {
namespace {

TEST(MerkleTest, RangesTileTheHashSpace) {
  EXPECT_FALSE(RangeOf(0, 0).bounded);
  HashRange r = RangeOf(1, 0);
  EXPECT_EQ(r.lo, 0u);
  EXPECT_TRUE(r.bounded);
  EXPECT_EQ(r.hi, uint64_t{1} << 63);
  r = RangeOf(1, 1);
  EXPECT_EQ(r.lo, uint64_t{1} << 63);
  EXPECT_FALSE(r.bounded);
  r = RangeOf(64, 5);
  EXPECT_EQ(r.lo, 5u);
  EXPECT_EQ(r.hi, 6u);
  EXPECT_FALSE(RangeOf(64, ~uint64_t{0}).bounded);
  EXPECT_TRUE(RangeOf(16, 3).Contains(uint64_t{3} << 48));
  EXPECT_FALSE(RangeOf(16, 3).Contains(uint64_t{4} << 48));
}

TEST(MerkleTest, ApplyUpdatesThePathAndXorCancels) {
  MerkleTree tree(4);
  const Digest d{0xabc, 0xdef};
  tree.Apply(5, d, 1);
  EXPECT_EQ(tree.Root(), d);
  EXPECT_EQ(tree.KeyCount(), 1);
  EXPECT_EQ(tree.NodeDigest(4, 5), d);
  EXPECT_EQ(tree.NodeDigest(3, 2), d);
  EXPECT_EQ(tree.NodeDigest(1, 0), d);
  EXPECT_TRUE(tree.NodeDigest(1, 1).IsZero());
  tree.Apply(5, d, -1);
  EXPECT_TRUE(tree.Root().IsZero());
  EXPECT_EQ(tree.KeyCount(), 0);
}

TEST(MerkleTest, OrderDoesNotMatterAndResetRebuilds) {
  MerkleTree a(3), b(3);
  std::vector<LeafValue> leaves(8);
  for (uint32_t i = 0; i < 8; ++i) {
    Digest d{i * 31 + 1, i * 17 + 3};
    a.Apply(i, d, 1);
    b.Apply(7 - i, Digest{(7 - i) * 31 + 1, (7 - i) * 17 + 3}, 1);
    leaves[i] = LeafValue{d, 1};
  }
  EXPECT_EQ(a.Root(), b.Root());
  MerkleTree c(3);
  c.Reset(leaves);
  for (uint32_t d = 0; d <= 3; ++d) {
    for (uint64_t i = 0; i < (1u << d); ++i) {
      EXPECT_EQ(c.NodeDigest(d, i), a.NodeDigest(d, i));
      EXPECT_EQ(c.NodeCount(d, i), a.NodeCount(d, i));
    }
  }
}

TEST(MerkleTest, LeafOfUsesTopBits) {
  MerkleTree tree(16);
  EXPECT_EQ(tree.LeafOf(0xABCD000000000000ull), 0xABCDu);
  MerkleTree root_only(0);
  EXPECT_EQ(root_only.LeafOf(0xFFFFFFFFFFFFFFFFull), 0u);
}

}  // namespace
}  // namespace kv::storage
