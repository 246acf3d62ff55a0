// Tests NOSE's selection logic: ratio -> layer count, greedy/beam expansion, exhaustive subsets,
// ranking by |TE|.
#include <gtest/gtest.h>

#include "core/error.h"
#include "search/nose.h"

namespace s = vitslim::search;

TEST(Nose, RatioToLayerCount) {
  EXPECT_EQ(s::layers_for_ratio(0.4, 12), 5);  // the paper's "40%" of DeiT-B
  EXPECT_EQ(s::layers_for_ratio(0.5, 12), 6);
  EXPECT_EQ(s::layers_for_ratio(0.25, 12), 3);  // Tiny/Small {0,2,4}
  EXPECT_EQ(s::layers_for_ratio(0.3, 12), 4);   // Tiny/Small {0,2,4,6}
  EXPECT_EQ(s::layers_for_ratio(0.25, 6), 2);   // 1.5 rounds up
  EXPECT_THROW(s::layers_for_ratio(1.0, 12), vitslim::Error);
  EXPECT_THROW(s::layers_for_ratio(0.0, 12), vitslim::Error);
}

TEST(Nose, ExpandIsGreedyOrBeam) {
  auto first = s::expand({{}}, {0, 1, 2});
  ASSERT_EQ(first.size(), 3u);
  EXPECT_EQ(first[1].set, (s::LayerSet{1}));
  EXPECT_TRUE(first[1].base.empty());
  auto beam = s::expand({{0}, {2}}, {0, 1, 2});
  // {0,1}, {0,2} from {0}; {1,2} from {2} ({0,2} once, first base wins).
  ASSERT_EQ(beam.size(), 3u);
  EXPECT_EQ(beam[1].set, (s::LayerSet{0, 2}));
  EXPECT_EQ(beam[1].base, (s::LayerSet{0}));
  EXPECT_EQ(beam[2].set, (s::LayerSet{1, 2}));
  EXPECT_EQ(s::with_layer({1, 5}, 3), (s::LayerSet{1, 3, 5}));
  EXPECT_EQ(s::set_of_mask(s::mask_of({0, 3, 11})), (s::LayerSet{0, 3, 11}));
  EXPECT_EQ(s::to_string({0, 1, 3}), "{0,1,3}");
}

TEST(Nose, ExhaustiveSubsets) {
  auto all = s::all_subsets({0, 1, 2, 3, 4}, 2, 100);
  EXPECT_EQ(all.size(), 10u);
  EXPECT_EQ(all.front().set, (s::LayerSet{0, 1}));
  EXPECT_EQ(all.back().set, (s::LayerSet{3, 4}));
  EXPECT_EQ(s::binomial(12, 6), 924u);
  EXPECT_THROW(s::all_subsets({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 6, 500), vitslim::Error);
}

TEST(Nose, RanksBySmallestMagnitudeThenSet) {
  std::vector<s::Scored> scored = {{{3}, 0, -0.5}, {{1}, 0, 0.2}, {{0}, 0, -0.2}, {{2}, 0, 0.9}};
  auto top = s::best(scored, 2);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].set, (s::LayerSet{0}));  // |-0.2| ties with |0.2|: the smaller set first
  EXPECT_EQ(top[1].set, (s::LayerSet{1}));
}
