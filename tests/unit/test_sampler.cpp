// Tests the distributed / repeated-augmentation sampler (data/loading/sampler.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/rng.h"
#include "data/loading/sampler.h"

namespace d = vitslim::data;

TEST(Sampler, RanksCoverTheDatasetOncePerEpoch) {
  const int64_t n = 103;
  std::multiset<int64_t> seen;
  for (int r = 0; r < 4; ++r) {
    d::DistributedSampler s(n, r, 4, 42);
    auto idx = s.epoch_indices(3);
    EXPECT_EQ(static_cast<int64_t>(idx.size()), s.samples_per_rank());
    seen.insert(idx.begin(), idx.end());
  }
  EXPECT_EQ(seen.size(), 104u);  // 103 + 1 padding sample
  for (int64_t i = 0; i < n; ++i) EXPECT_GE(seen.count(i), 1u) << i;
  d::DistributedSampler s(n, 1, 4, 42);
  EXPECT_EQ(s.epoch_indices(3), s.epoch_indices(3));  // a pure function of the epoch
  EXPECT_NE(s.epoch_indices(3), s.epoch_indices(4));
  EXPECT_NE(d::DistributedSampler(n, 1, 4, 43).epoch_indices(3), s.epoch_indices(3));
}

TEST(Sampler, RepeatedAugmentationPutsCopiesOnDifferentRanks) {
  const int64_t n = 60;
  std::vector<std::vector<int64_t>> ranks;
  for (int r = 0; r < 3; ++r) ranks.push_back(d::DistributedSampler(n, r, 3, 0, 3).epoch_indices(0));
  for (const auto& idx : ranks) EXPECT_EQ(idx.size(), 20u);  // floor(N / world): an epoch as without repeats
  // Every image a rank sees appears on the other two ranks as well, at the same position.
  for (size_t k = 0; k < 20; ++k) {
    EXPECT_EQ(ranks[0][k], ranks[1][k]);
    EXPECT_EQ(ranks[1][k], ranks[2][k]);
  }
  std::set<int64_t> distinct(ranks[0].begin(), ranks[0].end());
  EXPECT_EQ(distinct.size(), 20u);
}

TEST(Sampler, ShuffledPrefixIsAPermutation) {
  auto p = vitslim::shuffled_prefix(1000, 1000, 5);
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[static_cast<size_t>(i)], i);
  EXPECT_EQ(vitslim::shuffled_prefix(1000, 10, 5), std::vector<int64_t>(p.begin(), p.begin() + 10));
}
