// Golden test: vitslim's VisionTransformer against timm's (scripts/make_golden.py) for every
// attention mode, from .safetensors and every .pth variant torch.save writes, and timm's
// full-size deit_tiny / deit_base state dicts (scripts/make_test_checkpoints.py).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <map>

#include "golden_modes.h"
#include "model/checkpoint.h"
#include "test_util.h"

namespace m = vitslim::model;
using m::AttentionMode;

namespace {

constexpr double kTolerance = 1e-4;

torch::Tensor expected(const m::StateDict& sd, const std::string& name) {
  const auto* t = sd.find(name);
  EXPECT_NE(t, nullptr) << name;
  return t ? *t : torch::Tensor();
}

m::VisionTransformer golden_model(const std::string& weights) {
  vitslim::ModelRequest r;
  r.preset = "vit_test";
  r.weights = weights;
  auto model = m::build_model(r, 0);
  model->eval();
  return model;
}

void expect_close(const torch::Tensor& got, const torch::Tensor& want, const std::string& what) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  double diff = (got - want).abs().max().item<double>();
  EXPECT_LE(diff, kTolerance) << what << ": max abs diff " << diff;
}

}  // namespace

TEST(Golden, EveryAttentionModeMatchesTimm) {
  auto sd = m::read_safetensors(vitslim::test::fixture("golden_vit_test_expected.safetensors"));
  auto input = expected(sd, "input");
  for (const auto& [name, modes] : vitslim::test::golden_modes()) {
    auto model = golden_model(vitslim::test::fixture("golden_vit_test.safetensors"));
    for (const auto& [block, mode] : modes) model->set_mode(block, mode.first, mode.second);
    torch::NoGradGuard no_grad;
    expect_close(model->forward(input), expected(sd, "logits." + name), name);
    // The logits really differ between cases (the fixture exercises every path).
    if (name != "full") {
      EXPECT_GT((expected(sd, "logits." + name) - expected(sd, "logits.full")).abs().max().item<double>(), 1e-2);
    }
  }
}

TEST(Golden, EveryPthVariantLoadsTheSameWeights) {
  auto sd = m::read_safetensors(vitslim::test::fixture("golden_vit_test_expected.safetensors"));
  auto input = expected(sd, "input");
  for (const char* file :
       {"golden_wrapped.pth", "golden_flat.pth", "golden_proto4.pth", "golden_views.pth", "golden_strided.pth",
        "golden_ddp.pth", "golden_deflated.pth", "deit_train_checkpoint.pth"}) {
    auto model = golden_model(vitslim::test::test_data(file));
    torch::NoGradGuard no_grad;
    expect_close(model->forward(input), expected(sd, "logits.full"), file);
  }
  // fp16 weights: same logits up to half precision rounding.
  auto model = golden_model(vitslim::test::test_data("golden_fp16.pth"));
  torch::NoGradGuard no_grad;
  auto diff = (model->forward(input) - expected(sd, "logits.full")).abs().max().item<double>();
  EXPECT_LT(diff, 0.05);
  // The pickle payloads (os.system) were refused and never executed.
  EXPECT_FALSE(std::filesystem::exists(vitslim::test::test_data("vitslim_pickle_executed")));
}

TEST(Golden, FullSizeDeitStateDicts) {
  for (std::string name : {"deit_tiny", "deit_base"}) {
    auto want = m::read_safetensors(vitslim::test::test_data(name + "_expected.safetensors"));
    vitslim::ModelRequest r;
    r.preset = name;
    r.weights = vitslim::test::test_data(name + ".pth");
    auto model = m::build_model(r, 0);
    model->eval();
    torch::NoGradGuard no_grad;
    expect_close(model->forward(expected(want, "input")), expected(want, "logits"), name);
  }
  // deit_tiny from safetensors, shape inferred from the file (heads from the preset).
  vitslim::ModelRequest r;
  r.num_heads = 3;
  r.weights = vitslim::test::test_data("deit_tiny.safetensors");
  auto model = m::build_model(r, 0);
  EXPECT_EQ(model->shape().img_size, 224);
  EXPECT_EQ(model->shape().depth, 12);
  EXPECT_EQ(model->shape().num_classes, 1000);
}
