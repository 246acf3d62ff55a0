// The ViT variants (docs/method.md section 8) against timm 1.0.31: every preset's shape and the
// features no preset has, with weights timm wrote at test time (scripts/make_variant_golden.py), in
// every attention mode; residual folding with LayerScale and norm_pre; parameter and multiply-add
// counts of the full-size presets against timm's modules; prefix tokens under token merging;
// weights of unsupported architectures refused by key.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/options.h"
#include "golden_modes.h"
#include "model/checkpoint.h"
#include "model/flops.h"
#include "model/merge.h"
#include "model/token_merge.h"
#include "test_util.h"

namespace m = vitslim::model;
using m::AttentionMode;

namespace {

constexpr double kTolerance = 1e-4;

// Cases of scripts/make_variant_golden.py; its modes are the DeiT golden fixture's.
const std::vector<std::string>& cases() {
  static const std::vector<std::string> kCases = {
      "deit_base_distilled",  "deit3_small",   "deit3_base",  "vit_base_augreg", "vit_small_dinov2",
      "vit_small_dinov2_reg", "vit_base_clip", "avg_fc_norm", "no_class_token",  "qk_norm"};
  return kCases;
}

const std::map<std::string, vitslim::test::BlockModes>& modes() { return vitslim::test::golden_modes(); }

std::string data(const std::string& name) { return vitslim::test::test_data("variants/" + name); }

// The ModelRequest the case's vitslim flags (metadata "args") describe, with its weights.
vitslim::ModelRequest request_of(const std::string& c) {
  auto expected = m::read_safetensors(data("variant_" + c + "_expected.safetensors"));
  std::vector<std::string> args;
  std::istringstream words(expected.metadata.at("args"));
  for (std::string w; words >> w;) args.push_back(w);
  vitslim::ModelRequest r;
  vitslim::Options o;
  r.declare(o);
  vitslim::parse_declared("test", o, args);
  r.weights = data("variant_" + c + ".safetensors");
  return r;
}

at::Tensor tensor(const m::StateDict& sd, const std::string& name) {
  const auto* t = sd.find(name);
  if (!t) throw std::runtime_error("fixture lacks " + name);
  return *t;
}

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

m::VisionTransformer model_in_mode(const std::string& c,
                                   const std::map<int64_t, std::pair<AttentionMode, double>>& ms) {
  auto model = m::build_model(request_of(c), 0);
  model->eval();
  for (const auto& [block, mode] : ms) model->set_mode(block, mode.first, mode.second);
  return model;
}

}  // namespace

TEST(Variants, EveryPresetAndFeatureMatchesTimmInEveryMode) {
  for (const auto& c : cases()) {
    auto expected = m::read_safetensors(data("variant_" + c + "_expected.safetensors"));
    const auto input = tensor(expected, "input");
    for (const auto& [mode, blocks] : modes()) {
      auto model = model_in_mode(c, blocks);
      torch::NoGradGuard no_grad;
      const auto want = tensor(expected, "logits." + mode);
      const auto got = model->forward(input);
      ASSERT_EQ(got.sizes(), want.sizes()) << c << " " << mode;
      EXPECT_LE(max_diff(got, want), kTolerance) << c << " " << mode;
      // With taps every row of the last block is computed: the same logits.
      model->set_taps(true);
      EXPECT_LE(max_diff(model->forward(input), want), kTolerance) << c << " " << mode << " with taps";
      if (mode != "full") {
        EXPECT_GT(max_diff(want, tensor(expected, "logits.full")), 1e-2) << c << " " << mode;
      }
    }
  }
}

TEST(Variants, ShapesComeFromTheWeightsAndPresets) {
  auto shape_of = [](const std::string& c) { return m::build_model(request_of(c), 0)->shape(); };
  const auto distilled = shape_of("deit_base_distilled");
  EXPECT_TRUE(distilled.distilled);
  EXPECT_EQ(distilled.num_prefix_tokens(), 2);
  const auto deit3 = shape_of("deit3_small");
  EXPECT_TRUE(deit3.layer_scale && deit3.no_embed_class);
  const auto reg = shape_of("vit_small_dinov2_reg");
  EXPECT_EQ(reg.reg_tokens, 4);
  EXPECT_EQ(reg.num_classes, 0);
  EXPECT_EQ(reg.patch_size, 14);
  const auto clip = shape_of("vit_base_clip");
  EXPECT_TRUE(clip.pre_norm);
  EXPECT_EQ(clip.act_layer, vitslim::Activation::QuickGelu);
  EXPECT_EQ(clip.norm_eps, 1e-5);
  const auto avg = shape_of("avg_fc_norm");
  EXPECT_EQ(avg.global_pool, vitslim::GlobalPool::Avg);
  EXPECT_TRUE(avg.fc_norm);
  const auto qk = shape_of("qk_norm");
  EXPECT_TRUE(qk.qk_norm && !qk.qkv_bias);
  // Weights alone (sizes and heads given): every tensor-visible feature is read from the keys.
  vitslim::ModelRequest bare;
  bare.weights = data("variant_vit_small_dinov2_reg.safetensors");
  bare.num_heads = 2;
  bare.img_size = 42;
  const auto found = m::build_model(bare, 0)->shape();
  EXPECT_TRUE(found.layer_scale && found.no_embed_class);
  EXPECT_EQ(found.reg_tokens, 4);
  // A preset the weights contradict names the flag.
  vitslim::ModelRequest wrong = request_of("deit3_small");
  wrong.preset = "vit_base_augreg";
  wrong.embed_dim = 48;
  try {
    m::build_model(wrong, 0);
    FAIL() << "a DeiT-III file loaded as AugReg";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("--no-embed-class is false (preset vit_base_augreg) but weights"),
              std::string::npos)
        << e.what();
  }
}

TEST(Variants, FoldingIsExactWithLayerScaleAndPreNorm) {
  for (const std::string c : {"deit3_small", "vit_base_clip", "vit_small_dinov2_reg", "deit_base_distilled"}) {
    auto expected = m::read_safetensors(data("variant_" + c + "_expected.safetensors"));
    auto model = model_in_mode(c, modes().at("removed"));
    ASSERT_TRUE(m::fold_residual(model));
    torch::NoGradGuard no_grad;
    EXPECT_LE(max_diff(model->forward(tensor(expected, "input")), tensor(expected, "logits.removed")), kTolerance) << c;
    // Folded and exported, the file says so and loads back to the same logits.
    vitslim::test::TempDir dir;
    m::export_safetensors(model, dir.file("folded.safetensors"));
    auto r = request_of(c);
    r.weights = dir.file("folded.safetensors");
    auto back = m::build_model(r, 0);
    back->eval();
    EXPECT_LE(max_diff(back->forward(tensor(expected, "input")), tensor(expected, "logits.removed")), kTolerance)
        << c << " reloaded";
  }
}

TEST(Variants, CostsEqualTimmModules) {
  std::ifstream in(data("variant_costs.json"));
  ASSERT_TRUE(in) << "variant_costs.json";
  const auto costs = nlohmann::json::parse(in);
  for (const auto& [preset, want] : costs.items()) {
    const auto cost = m::analytic_cost(m::preset(preset), {});
    EXPECT_EQ(cost.params, want.at("params").get<int64_t>()) << preset;
    EXPECT_EQ(cost.macs - cost.norm_macs, want.at("matmul_macs").get<int64_t>()) << preset;
  }
  // The analytic count equals the parameters each small model really has, pruned or not.
  for (const auto& c : cases()) {
    for (const std::vector<int64_t>& removed : {std::vector<int64_t>{}, std::vector<int64_t>{1, 3}}) {
      auto r = request_of(c);
      r.removed_layers = removed;
      auto model = m::build_model(r, 0);
      int64_t params = 0;
      for (const auto& p : model->parameters()) params += p.numel();
      EXPECT_EQ(m::analytic_cost(model->shape(), removed).params, params) << c;
    }
  }
}

TEST(Variants, PrefixTokensNeverMerge) {
  torch::manual_seed(3);
  for (int64_t prefix : {0, 1, 2, 5}) {
    const int64_t n = 21, r = m::max_merges(n, prefix);
    m::TokenStream s{torch::randn({2, n, 8}), {}};
    auto out = m::merge_tokens(s, torch::randn({2, n, 4}), r, prefix);
    ASSERT_EQ(out.x.size(1), n - r) << prefix;
    EXPECT_TRUE(torch::equal(out.x.narrow(1, 0, prefix), s.x.narrow(1, 0, prefix))) << prefix;
    EXPECT_TRUE(torch::all(out.size.narrow(1, 0, prefix) == 1).item<bool>()) << prefix;
    EXPECT_NEAR(out.size.sum().item<double>(), 2.0 * n, 1e-9) << prefix;
    EXPECT_THROW(m::merge_tokens(s, torch::randn({2, n, 4}), r + 1, prefix), std::exception) << prefix;
  }
  // A distilled model and one with registers run ToMe: the head still reads its tokens.
  for (const std::string c : {"deit_base_distilled", "vit_small_dinov2_reg", "avg_fc_norm"}) {
    auto r = request_of(c);
    r.tome.r = {1};
    auto model = m::build_model(r, 0);
    model->eval();
    auto expected = m::read_safetensors(data("variant_" + c + "_expected.safetensors"));
    torch::NoGradGuard no_grad;
    auto merged = model->forward(tensor(expected, "input"));
    EXPECT_EQ(merged.sizes(), tensor(expected, "logits.full").sizes()) << c;
    EXPECT_TRUE(torch::isfinite(merged).all().item<bool>()) << c;
  }
}

TEST(Variants, UnsupportedArchitecturesAreRefusedByKey) {
  auto w = m::read_safetensors(data("variant_deit3_small.safetensors"));
  for (const std::string key : {"blocks.0.attn.rope.freqs", "blocks.1.mlp.fc1_g.weight", "rel_pos_bias.table"}) {
    auto bad = w;
    bad.tensors.emplace_back(key, torch::zeros({4}));
    try {
      m::build_model(request_of("deit3_small"), 0, bad);
      FAIL() << key;
    } catch (const std::exception& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(key), std::string::npos) << what;
      EXPECT_NE(what.find("DINOv2"), std::string::npos) << what;
    }
  }
}

TEST(Variants, PosEmbedResamplesAsTimm) {
  // Down (3x3 -> 2x2) and up (3x3 -> 5x5), with pos_embed covering the class token, the class and
  // distillation tokens, or the patches only (registers).
  for (const std::string c : {"vit_small_dinov2", "deit_base_distilled", "vit_small_dinov2_reg"}) {
    auto expected = m::read_safetensors(data("variant_" + c + "_expected.safetensors"));
    for (int64_t grid : {2, 5}) {
      auto r = request_of(c);
      const int64_t patch = m::build_model(r, 0)->shape().patch_size;
      r.img_size = grid * patch;
      auto model = m::build_model(r, 0);
      const auto want = tensor(expected, "pos_embed.grid" + std::to_string(grid));
      ASSERT_EQ(model->pos_embed.sizes(), want.sizes()) << c << " grid " << grid;
      EXPECT_LE(max_diff(model->pos_embed, want), 1e-5) << c << " grid " << grid;
    }
  }
}
