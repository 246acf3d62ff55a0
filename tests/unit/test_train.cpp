// Unit tests of the training step (train/step.h) and optimizer: three real training steps
// (dilution, mixup targets, soft cross-entropy, AdamW) against PyTorch + timm
// (scripts/make_test_checkpoints.py), and gradient clipping like torch's.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <set>

#include "core/error.h"
#include "data/mixup.h"
#include "model/checkpoint.h"
#include "test_util.h"
#include "train/loss.h"
#include "train/optimizer.h"
#include "train/step.h"

namespace t = vitslim::train;
namespace d = vitslim::data;
namespace m = vitslim::model;

// Three steps of the golden ViT (block 1 diluting at 0.5) against PyTorch + timm + AdamW.
TEST(TrainGolden, ThreeStepsMatchPyTorchAdamW) {
  auto golden = m::read_safetensors(vitslim::test::test_data("train_golden.safetensors"));
  auto get = [&](const std::string& name) {
    const auto* tensor = golden.find(name);
    if (!tensor) throw vitslim::Error("train_golden: no " + name);
    return *tensor;
  };
  vitslim::ModelRequest r;
  r.preset = "vit_test";
  r.weights = vitslim::test::fixture("golden_vit_test.safetensors");
  auto model = m::build_model(r, 0);
  model->set_mode(1, m::AttentionMode::Diluting, 0.5);
  model->train();

  // The mixup batch as the trainer builds it.
  auto images = get("raw").clone();
  d::MixupOptions o;
  o.num_classes = 10;
  o.smoothing = 0.1;
  d::MixDecision mix;
  mix.lam = 0.7;
  auto targets = d::apply_mix(images, get("labels"), mix, o);
  ASSERT_TRUE(torch::allclose(images, get("input"), 1e-6, 1e-6));
  ASSERT_TRUE(torch::allclose(targets, get("targets"), 1e-6, 1e-7));

  std::vector<std::pair<std::string, torch::Tensor>> params;
  for (const auto& p : model->named_parameters()) params.emplace_back(p.key(), p.value());
  const auto names = model->no_weight_decay_names();
  t::AdamW adam(t::AdamWOptions{0.05, 0.9, 0.999, 1e-8}, std::set<std::string>(names.begin(), names.end()));
  auto lrs = get("lrs");
  // The trainer's own step: backward over one micro-batch, then clipping (off), AdamW and EMA (off).
  const t::StepOptions options;
  std::map<std::string, torch::Tensor> no_ema;
  for (int64_t k = 0; k < lrs.size(0); ++k) {
    const auto step = t::backward_step(
        model, params, options,
        [&](int64_t) {
          return t::MicroBatch{images, targets};
        },
        [](int64_t) { return uint64_t{0}; }, nullptr);
    const double loss = step.loss;
    EXPECT_NEAR(loss, get("loss." + std::to_string(k)).item<double>(), 1e-5) << "step " << k;
    t::update_step(params, adam, lrs[k].item<double>(), t::grad_norm(params), options, no_ema);
  }
  // The key part of qkv.bias has an exactly zero gradient (softmax ignores a constant shift of
  // the scores), so Adam divides rounding noise by its own size in both programs: those entries
  // may differ by up to the summed learning rates; every other parameter must agree closely.
  const double lr_sum = lrs.sum().item<double>();
  const int64_t dim = model->shape().embed_dim;
  for (auto& [name, p] : params) {
    auto got = p.detach().clone(), want = get("param." + name).clone();
    if (name.find("attn.qkv.bias") != std::string::npos) {
      EXPECT_LE((got.narrow(0, dim, dim) - want.narrow(0, dim, dim)).abs().max().item<double>(), lr_sum) << name;
      got.narrow(0, dim, dim).zero_();
      want.narrow(0, dim, dim).zero_();
    }
    EXPECT_LE((got - want).abs().max().item<double>(), 2e-5) << name;
  }
}

TEST(Optimizer, ClipGradNormLikeTorch) {
  auto a = torch::zeros({2}), b = torch::zeros({1});
  a.mutable_grad() = torch::tensor({3.0f, 0.0f});
  b.mutable_grad() = torch::tensor({4.0f});
  std::vector<std::pair<std::string, torch::Tensor>> params = {{"a", a}, {"b", b}};
  const double norm = t::grad_norm(params);
  EXPECT_NEAR(norm, 5.0, 1e-6);
  t::clip_grad_norm(params, 1.0, norm);
  EXPECT_NEAR(a.grad()[0].item<double>(), 3.0 / (5.0 + 1e-6), 1e-6);
  EXPECT_NEAR(t::grad_norm(params), 1.0, 1e-5);
  t::clip_grad_norm(params, 0.0, 1.0);  // 0: off
  EXPECT_NEAR(t::grad_norm(params), 1.0, 1e-5);
}
