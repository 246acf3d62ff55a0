// Tests ChannelStats: one-pass values against a direct float64 computation, shard merging,
// serialisation, and the entropy formula.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "entropy/channel_stats.h"

using vitslim::entropy::ChannelStats;

namespace {

torch::Tensor sample_rows(int64_t n, int64_t c) {
  torch::manual_seed(7);
  // Channels with very different scales and offsets, the case naive sums get wrong.
  auto scale = torch::logspace(-3, 2, c, 10, torch::kDouble);
  return (torch::randn({n, c}, torch::kDouble) * scale + 1e3).to(torch::kFloat);
}

}  // namespace

TEST(ChannelStats, MatchesDirectComputation) {
  auto rows = sample_rows(1000, 6);
  ChannelStats stats(6);
  for (int64_t i = 0; i < 1000; i += 64) stats.add(rows.narrow(0, i, std::min<int64_t>(64, 1000 - i)));
  auto x = rows.to(torch::kDouble);
  auto var = x.var(0, /*unbiased=*/false);
  ASSERT_EQ(stats.count(), 1000);
  for (int64_t c = 0; c < 6; ++c) {
    EXPECT_NEAR(stats.variance()[c], var[c].item<double>(), 1e-12 * var[c].item<double>() + 1e-15);
    EXPECT_NEAR(stats.mean()[c], x.mean(0)[c].item<double>(), 1e-9);
  }
  double h = 0.5 * var.log().sum().item<double>();
  EXPECT_NEAR(stats.entropy(), h, 1e-10);
  EXPECT_NEAR(stats.gaussian_entropy() - stats.entropy(), 6 * 0.5 * std::log(2 * M_PI * M_E), 1e-12);
}

TEST(ChannelStats, ShardMergeEqualsOnePass) {
  auto rows = sample_rows(999, 5);
  ChannelStats one(5), a(5), b(5), c(5);
  one.add(rows);
  a.add(rows.narrow(0, 0, 100));
  b.add(rows.narrow(0, 100, 500));
  c.add(rows.narrow(0, 600, 399));
  ChannelStats merged(5);
  merged.merge(a);
  merged.merge(b);
  merged.merge(c);
  ASSERT_EQ(merged.count(), one.count());
  for (int64_t k = 0; k < 5; ++k) {
    EXPECT_NEAR(merged.variance()[k], one.variance()[k], 1e-12 * one.variance()[k]);
  }
  EXPECT_NEAR(merged.entropy(), one.entropy(), 1e-11);
}

TEST(ChannelStats, PerBatchAveragingIsNotTheAnswer) {
  // Two batches with different means: the all-data sigma exceeds the per-batch ones.
  auto lo = torch::randn({100, 1}), hi = torch::randn({100, 1}) + 10;
  ChannelStats all(1), first(1), second(1);
  all.add(torch::cat({lo, hi}));
  first.add(lo);
  second.add(hi);
  EXPECT_GT(all.entropy(), 0.5 * (first.entropy() + second.entropy()) + 1.0);
}

TEST(ChannelStats, SerializeRoundTripAndErrors) {
  ChannelStats s(3);
  s.add(sample_rows(10, 3));
  auto flat = s.serialize();
  ASSERT_EQ(static_cast<int64_t>(flat.size()), ChannelStats::serialized_size(3));
  auto back = ChannelStats::deserialize(flat.data(), 3);
  EXPECT_EQ(back.count(), s.count());
  EXPECT_EQ(back.variance(), s.variance());
  EXPECT_THROW(s.add(torch::zeros({4, 2})), std::exception);
  EXPECT_THROW(s.merge(ChannelStats(4)), std::exception);
  ChannelStats constant(2);
  constant.add(torch::ones({5, 2}));
  EXPECT_EQ(constant.zero_variance_channels(), 2);
  EXPECT_TRUE(std::isinf(constant.entropy()));
  EXPECT_TRUE(std::isnan(ChannelStats(2).entropy()));
}
