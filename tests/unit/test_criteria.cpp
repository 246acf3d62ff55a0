// Unit tests of the per-layer search criteria (search/criteria.h): cosine (LLM-Drop), bi
// (ShortGPT) and attention entropy against timm on the golden model
// (scripts/make_test_checkpoints.py), the seeded random order, first-k, removed blocks never
// chosen, and the selection of the least important layers.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "model/checkpoint.h"
#include "search/criteria.h"
#include "test_util.h"

namespace s = vitslim::search;
namespace m = vitslim::model;
using vitslim::Criterion;

namespace {

m::VisionTransformer golden_model() {
  vitslim::ModelRequest r;
  r.preset = "vit_test";
  r.weights = vitslim::test::fixture("golden_vit_test.safetensors");
  return m::build_model(r, 0);
}

}  // namespace

TEST(Criteria, CosineBiAndEntropyMatchTimm) {
  auto golden = m::read_safetensors(vitslim::test::test_data("criteria_golden.safetensors"));
  const auto images = *golden.find("images");
  auto model = golden_model();
  // Two shards of four images: the scores are means over every token of both.
  const auto shard = [&](int64_t i) { return images.slice(0, 4 * i, 4 * i + 4); };
  for (const auto& [criterion, key] : {std::pair{Criterion::Cosine, "cosine"}, std::pair{Criterion::Bi, "bi"},
                                       std::pair{Criterion::Entropy, "entropy"}}) {
    SCOPED_TRACE(key);
    const auto scores = s::layer_scores(criterion, model, 2, shard, 0);
    const auto expected = *golden.find(key);
    ASSERT_EQ(static_cast<int64_t>(scores.size()), expected.size(0));
    for (size_t b = 0; b < scores.size(); ++b) {
      EXPECT_NEAR(scores[b], expected[static_cast<int64_t>(b)].item<double>(), 1e-5) << "block " << b;
    }
  }
}

TEST(Criteria, RandomIsASeededPermutationAndFirstIsTheOrder) {
  auto model = golden_model();
  const auto none = [](int64_t) -> at::Tensor { throw std::logic_error("no images needed"); };
  const auto a = s::layer_scores(Criterion::Random, model, 0, none, 1);
  EXPECT_EQ(a, s::layer_scores(Criterion::Random, model, 0, none, 1));
  std::vector<double> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, (std::vector<double>{0, 1, 2, 3}));
  bool differs = false;
  for (uint64_t seed = 2; seed < 10 && !differs; ++seed)
    differs = s::layer_scores(Criterion::Random, model, 0, none, seed) != a;
  EXPECT_TRUE(differs);
  EXPECT_EQ(s::layer_scores(Criterion::First, model, 0, none, 0), (std::vector<double>{0, 1, 2, 3}));
}

TEST(Criteria, RemovedAttentionIsNeverChosen) {
  auto model = golden_model();
  model->set_mode(2, m::AttentionMode::Removed);
  const auto images = torch::randn({4, 3, 32, 32});
  const auto scores = s::layer_scores(
      Criterion::Cosine, model, 1, [&](int64_t) { return images; }, 0);
  EXPECT_TRUE(std::isinf(scores[2]));
  EXPECT_TRUE(std::isfinite(scores[0]) && std::isfinite(scores[3]));
}

TEST(Criteria, LeastImportantTakesTheLowestScoresTiesToTheLowerBlock) {
  const std::vector<double> scores = {0.5, 0.1, 0.3, 0.1, 0.9};
  EXPECT_EQ(s::least_important(scores, {0, 1, 2, 3, 4}, 1), (s::LayerSet{1}));
  EXPECT_EQ(s::least_important(scores, {0, 1, 2, 3, 4}, 3), (s::LayerSet{1, 2, 3}));
  EXPECT_EQ(s::least_important(scores, {0, 2, 4}, 2), (s::LayerSet{0, 2}));
}
