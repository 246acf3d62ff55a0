// Unit tests of residual folding (model/merge.h): the folded model gives the unfolded logits,
// its export rebuilds a folded model, and diluting or already folded models are refused.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "model/checkpoint.h"
#include "model/merge.h"
#include "test_util.h"

namespace m = vitslim::model;

namespace {

m::VisionTransformer golden(const std::vector<int64_t>& removed) {
  vitslim::ModelRequest r;
  r.preset = "vit_test";
  r.weights = vitslim::test::fixture("golden_vit_test.safetensors");
  r.removed_layers = removed;
  auto model = m::build_model(r, 0);
  model->eval();
  return model;
}

}  // namespace

TEST(Merge, FoldingKeepsTheLogits) {
  torch::manual_seed(3);
  auto images = torch::randn({4, 3, 32, 32});
  for (const auto& removed : std::vector<std::vector<int64_t>>{{0}, {3}, {0, 2}, {0, 1, 3}, {0, 1, 2, 3}}) {
    auto model = golden(removed);
    torch::NoGradGuard no_grad;
    auto want = model->forward(images);
    ASSERT_TRUE(m::fold_residual(model));
    EXPECT_TRUE(model->residual_folded());
    const double diff = (model->forward(images) - want).abs().max().item<double>();
    const double scale = want.abs().max().item<double>();
    EXPECT_LE(diff, 1e-5 * std::max(1.0, scale)) << "removed " << vitslim::join_list(removed);
    // The embedding carries 2^K: K removed blocks, each later branch 2^(removed after it).
    EXPECT_GT(model->cls_token.abs().max().item<double>(), 0.0);
  }
}

TEST(Merge, FoldedExportRebuildsFolded) {
  vitslim::test::TempDir dir;
  auto model = golden({0, 2});
  torch::manual_seed(4);
  auto images = torch::randn({2, 3, 32, 32});
  torch::NoGradGuard no_grad;
  auto want = model->forward(images);
  m::fold_residual(model);
  m::export_safetensors(model, dir.file("folded.safetensors"));
  vitslim::ModelRequest r;
  r.weights = dir.file("folded.safetensors");
  auto loaded = m::build_model(r, 0);
  loaded->eval();
  EXPECT_TRUE(loaded->residual_folded());
  EXPECT_EQ(loaded->removed_blocks(), (std::vector<int64_t>{0, 2}));
  EXPECT_LE((loaded->forward(images) - want).abs().max().item<double>(), 1e-5);
  // Removing more attention from a folded model would silently be wrong: refused.
  r.removed_layers = {1};
  EXPECT_THROW(m::build_model(r, 0), vitslim::Error);
}

TEST(Merge, RefusesDilutingAndRefolding) {
  auto model = golden({0});
  model->set_mode(1, m::AttentionMode::Diluting, 0.5);
  EXPECT_THROW(m::fold_residual(model), vitslim::Error);
  model->set_mode(1, m::AttentionMode::Skipped);  // the plan's timing mode: not foldable either
  EXPECT_THROW(m::fold_residual(model), vitslim::Error);
  model->set_mode(1, m::AttentionMode::Full);
  EXPECT_TRUE(m::fold_residual(model));
  EXPECT_THROW(m::fold_residual(model), vitslim::Error);
  auto full = golden({});
  EXPECT_FALSE(m::fold_residual(full));  // nothing removed: nothing to fold
  EXPECT_FALSE(full->residual_folded());
}
