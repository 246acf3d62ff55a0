// Tests the VisionTransformer: parameter counts of the presets (docs/method.md section 1), the four
// attention modes' semantics, taps, drop-path, gradients and input checks.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>
#include <tuple>

#include "core/error.h"
#include "model/presets.h"
#include "model/vit.h"

namespace m = vitslim::model;
using m::AttentionMode;

namespace {

int64_t count_params(m::VisionTransformer& model) {
  int64_t n = 0;
  for (const auto& p : model->parameters()) n += p.numel();
  return n;
}

m::VisionTransformer test_model(double drop_path = 0.0) {
  torch::manual_seed(3);
  m::VisionTransformer model(m::preset("vit_test"), drop_path);
  model->eval();
  return model;
}

torch::Tensor images() {
  torch::manual_seed(11);
  return torch::randn({2, 3, 32, 32});
}

}  // namespace

TEST(VisionTransformer, PresetParameterCounts) {
  const std::vector<std::pair<std::string, int64_t>> expected = {
      {"deit_tiny", 5717416}, {"deit_small", 22050664}, {"deit_base", 86567656}};
  for (const auto& [name, params] : expected) {
    m::VisionTransformer model(m::preset(name));
    EXPECT_EQ(count_params(model), params) << name;
  }
  // DeiT-B with 5 attention layers removed: 74.75M (docs/method.md section 6).
  m::VisionTransformer base(m::preset("deit_base"));
  for (int64_t b : {0, 1, 3, 4, 6}) base->set_mode(b, AttentionMode::Removed);
  EXPECT_EQ(count_params(base), 74748136);
}

TEST(VisionTransformer, TimmParameterNames) {
  auto model = test_model();
  std::set<std::string> names;
  for (const auto& p : model->named_parameters()) names.insert(p.key());
  for (const char* key :
       {"cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.norm1.weight", "blocks.3.attn.qkv.bias",
        "blocks.2.attn.proj.weight", "blocks.1.mlp.fc1.weight", "blocks.1.mlp.fc2.bias", "norm.weight", "head.bias"}) {
    EXPECT_TRUE(names.count(key)) << key;
  }
  model->set_mode(2, AttentionMode::Removed);
  for (const auto& p : model->named_parameters()) {
    EXPECT_EQ(p.key().rfind("blocks.2.attn", 0), std::string::npos) << p.key();
    EXPECT_EQ(p.key().rfind("blocks.2.norm1", 0), std::string::npos) << p.key();
  }
  auto nwd = model->no_weight_decay_names();
  std::set<std::string> no_decay(nwd.begin(), nwd.end());
  EXPECT_TRUE(no_decay.count("pos_embed") && no_decay.count("cls_token") && no_decay.count("blocks.0.attn.qkv.bias"));
  EXPECT_FALSE(no_decay.count("blocks.0.attn.qkv.weight"));
}

TEST(VisionTransformer, ModeSemantics) {
  torch::NoGradGuard no_grad;
  auto x = images();
  auto full = test_model()->forward(x);
  {
    auto model = test_model();
    model->set_mode(1, AttentionMode::Diluting, 1.0);
    EXPECT_TRUE(torch::allclose(model->forward(x), full, 1e-6, 1e-6)) << "lambda 1 is the ordinary block";
  }
  auto at_zero = test_model();
  at_zero->set_mode(1, AttentionMode::Diluting, 0.0);
  auto removed = test_model();
  removed->set_mode(1, AttentionMode::Removed);
  auto diff = (at_zero->forward(x) - removed->forward(x)).abs().max().item<double>();
  EXPECT_LT(diff, 1e-5) << "lambda 0 equals the removed (x -> 2x) block";
  auto skipped = test_model();
  skipped->set_mode(1, AttentionMode::Skipped);
  EXPECT_GT((skipped->forward(x) - removed->forward(x)).abs().max().item<double>(), 1e-4)
      << "skipped (identity) differs from removed (2x)";
  EXPECT_GT((skipped->forward(x) - full).abs().max().item<double>(), 1e-4);
}

TEST(VisionTransformer, ClsOnlyLastBlockIsExact) {
  torch::NoGradGuard no_grad;
  for (auto mode : {AttentionMode::Full, AttentionMode::Diluting, AttentionMode::Skipped, AttentionMode::Removed}) {
    auto model = test_model();
    model->set_mode(3, mode, 0.4);
    auto fast = model->forward(images());
    auto all_rows = model->logits(model->forward_tokens(images()));
    EXPECT_LT((fast - all_rows).abs().max().item<double>(), 1e-5) << m::to_string(mode);
  }
}

TEST(VisionTransformer, ModeErrors) {
  auto model = test_model();
  EXPECT_THROW(model->set_mode(0, AttentionMode::Diluting, 1.5), vitslim::Error);
  EXPECT_THROW(model->set_mode(0, AttentionMode::Diluting, -0.1), vitslim::Error);
  EXPECT_THROW(model->set_mode(9, AttentionMode::Full), vitslim::Error);
  model->set_mode(0, AttentionMode::Removed);
  EXPECT_THROW(model->set_mode(0, AttentionMode::Full), vitslim::Error);
  EXPECT_NO_THROW(model->set_mode(0, AttentionMode::Removed));
  EXPECT_EQ(model->removed_blocks(), std::vector<int64_t>{0});
  EXPECT_THROW(model->forward(torch::randn({1, 3, 28, 28})), vitslim::Error);
  EXPECT_THROW(model->forward(torch::randn({1, 1, 32, 32})), vitslim::Error);
}

// Every mode's answer to each question code asks of it (attention_mode.h).
TEST(VisionTransformer, ModeQuestions) {
  using vitslim::model::has_attention;
  using vitslim::model::is_diluting;
  using vitslim::model::is_full;
  using vitslim::model::is_removed;
  const std::vector<std::tuple<AttentionMode, bool, bool, bool, bool>> want = {
      // mode, is_full, has_attention, is_diluting, is_removed
      {AttentionMode::Full, true, true, false, false},
      {AttentionMode::Diluting, false, true, true, false},
      {AttentionMode::Skipped, false, false, false, false},
      {AttentionMode::Removed, false, false, false, true},
  };
  for (const auto& [mode, full, attention, diluting, removed] : want) {
    SCOPED_TRACE(to_string(mode));
    EXPECT_EQ(is_full(mode), full);
    EXPECT_EQ(has_attention(mode), attention);
    EXPECT_EQ(is_diluting(mode), diluting);
    EXPECT_EQ(is_removed(mode), removed);
  }
}

TEST(VisionTransformer, TapsAreOptional) {
  torch::NoGradGuard no_grad;
  auto model = test_model();
  model->set_mode(2, AttentionMode::Skipped);
  model->forward(images());
  EXPECT_FALSE(model->block(0)->mlp_tap().defined());
  model->set_taps(true);
  model->forward(images());
  EXPECT_EQ(model->block(0)->attn_tap().sizes(), (std::vector<int64_t>{2, 17, 24}));
  EXPECT_EQ(model->block(0)->mlp_tap().sizes(), (std::vector<int64_t>{2, 17, 24}));
  EXPECT_FALSE(model->block(2)->attn_tap().defined());
  EXPECT_TRUE(model->block(2)->mlp_tap().defined());
}

TEST(VisionTransformer, EveryParameterGetsAGradient) {
  auto model = test_model();
  model->set_mode(1, AttentionMode::Diluting, 0.3);
  model->set_mode(2, AttentionMode::Removed);
  model->train();
  auto loss = model->forward(images()).square().mean();
  loss.backward();
  for (const auto& p : model->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
}

TEST(VisionTransformer, DropPathOnlyInTraining) {
  auto model = test_model(0.5);
  model->train();
  torch::NoGradGuard no_grad;
  auto batch = torch::randn({16, 3, 32, 32});
  auto a = model->forward(batch), b = model->forward(batch);
  EXPECT_FALSE(torch::allclose(a, b)) << "drop-path is random in training";
  model->eval();
  EXPECT_TRUE(torch::equal(model->forward(images()), model->forward(images())));
}
