// Tests mixup and cutmix (data/loading/mixup.h): targets, images, and draws that follow the options.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "data/loading/mixup.h"

namespace d = vitslim::data;

TEST(Mixup, TargetsAndImages) {
  d::MixupOptions o;
  o.num_classes = 5;
  o.smoothing = 0.1;
  auto labels = torch::tensor({0, 2, 4}, torch::kInt64);
  auto y = d::smooth_one_hot(labels, 5, 0.1);
  EXPECT_NEAR(y[0][0].item<double>(), 0.92, 1e-6);
  EXPECT_NEAR(y[0][1].item<double>(), 0.02, 1e-6);

  auto images = torch::rand({3, 1, 8, 8});
  auto mixed = images.clone();
  d::MixDecision mix;
  mix.lam = 0.7;
  auto targets = d::apply_mix(mixed, labels, mix, o);
  EXPECT_TRUE(torch::allclose(mixed, images * 0.7 + images.flip(0) * 0.3, 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(targets, y * 0.7 + y.flip(0) * 0.3, 1e-6, 1e-6));

  // Cutmix: the box comes from the reversed batch, lam is its complement's area.
  d::MixDecision cut;
  cut.cutmix = true;
  cut.y0 = 2, cut.y1 = 6, cut.x0 = 0, cut.x1 = 4;
  cut.lam = 1.0 - 16.0 / 64.0;
  auto boxed = images.clone();
  d::apply_mix(boxed, labels, cut, o);
  using torch::indexing::Slice;
  EXPECT_TRUE(torch::equal(boxed.index({Slice(), Slice(), Slice(2, 6), Slice(0, 4)}),
                           images.flip(0).index({Slice(), Slice(), Slice(2, 6), Slice(0, 4)})));
  EXPECT_TRUE(
      torch::equal(boxed.index({Slice(), Slice(), Slice(6, 8)}), images.index({Slice(), Slice(), Slice(6, 8)})));
}

TEST(Mixup, DrawsFollowTheOptions) {
  d::MixupOptions o;
  o.num_classes = 10;
  int cutmix = 0, mixed = 0;
  const int draws = 2000;
  for (int i = 0; i < draws; ++i) {
    auto mix = d::draw_mix(o, 32, 32, static_cast<uint64_t>(i));
    EXPECT_GE(mix.lam, 0.0);
    EXPECT_LE(mix.lam, 1.0);
    if (mix.cutmix) {
      ++cutmix;
      EXPECT_NEAR(mix.lam, 1.0 - static_cast<double>((mix.y1 - mix.y0) * (mix.x1 - mix.x0)) / 1024.0, 1e-12);
    }
    mixed += mix.lam < 1.0;
  }
  EXPECT_NEAR(cutmix / static_cast<double>(draws), 0.5, 0.05);  // switch probability
  EXPECT_GT(mixed, draws * 9 / 10);
  o.prob = 0.0;
  EXPECT_EQ(d::draw_mix(o, 32, 32, 1).lam, 1.0);
  auto a = d::draw_mix(d::MixupOptions{}, 32, 32, 9), b = d::draw_mix(d::MixupOptions{}, 32, 32, 9);
  EXPECT_EQ(a.lam, b.lam);  // a pure function of the seed: resumable
}
