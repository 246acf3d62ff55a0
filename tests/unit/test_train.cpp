// Unit tests of the training step (train/step.h) and optimizer: three real training steps
// (dilution, mixup targets, soft cross-entropy, AdamW) against PyTorch + timm
// (scripts/make_test_checkpoints.py), gradient clipping like torch's, non-finite steps skipped on
// the device, and the sync point's collective decision.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <set>

#include "core/error.h"
#include "data/loading/mixup.h"
#include "dist/mpi_session.h"
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
          return t::MicroBatch{images, targets, torch::Tensor()};
        },
        [](int64_t) { return uint64_t{0}; }, nullptr);
    const double loss = step.loss.item<double>();
    EXPECT_NEAR(loss, get("loss." + std::to_string(k)).item<double>(), 1e-5) << "step " << k;
    const auto norm = t::grad_norm(params);
    t::update_step(params, adam, lrs[k].item<double>(), norm, t::not_finite(step.loss, norm), options, no_ema);
  }
  // The key part of qkv.bias has an exactly zero gradient (softmax ignores a constant shift of
  // the scores), so Adam divides rounding noise by its own size in both programs: each moves those
  // entries by about the learning rate per step, in a direction set by the noise, so they may
  // differ by up to twice the summed learning rates; every other parameter must agree closely.
  const double lr_sum = lrs.sum().item<double>();
  const int64_t dim = model->shape().embed_dim;
  for (auto& [name, p] : params) {
    auto got = p.detach().clone(), want = get("param." + name).clone();
    if (name.find("attn.qkv.bias") != std::string::npos) {
      EXPECT_LE((got.narrow(0, dim, dim) - want.narrow(0, dim, dim)).abs().max().item<double>(), 2 * lr_sum) << name;
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
  const auto norm = t::grad_norm(params);
  EXPECT_NEAR(norm.item<double>(), 5.0, 1e-6);
  t::clip_grad_norm(params, 1.0, norm);
  EXPECT_NEAR(a.grad()[0].item<double>(), 3.0 / (5.0 + 1e-6), 1e-6);
  EXPECT_NEAR(t::grad_norm(params).item<double>(), 1.0, 1e-5);
  t::clip_grad_norm(params, 0.0, torch::tensor(1.0f));  // 0: off
  EXPECT_NEAR(t::grad_norm(params).item<double>(), 1.0, 1e-5);
  t::clip_grad_norm(params, 10.0, t::grad_norm(params));  // below the limit: unchanged
  EXPECT_NEAR(t::grad_norm(params).item<double>(), 1.0, 1e-5);
}

// A step whose loss or gradient is not finite leaves parameters and moments as they were, without
// the host reading anything (the fused kernel's found_inf), and the next finite step proceeds.
TEST(Optimizer, NonFiniteStepIsSkippedOnTheDevice) {
  auto w = torch::ones({3});
  std::vector<std::pair<std::string, torch::Tensor>> params = {{"w", w}};
  t::AdamW adam(t::AdamWOptions{}, {});
  w.mutable_grad() = torch::tensor({1.0f, std::nanf(""), 2.0f});
  const auto bad_norm = t::grad_norm(params);
  const auto found_inf = t::not_finite(torch::tensor(0.5, torch::kFloat64), bad_norm);
  EXPECT_EQ(found_inf.item<float>(), 1.0f);
  adam.step(params, 0.1, found_inf);
  EXPECT_TRUE(torch::equal(w, torch::ones({3})));
  EXPECT_EQ(adam.steps(), 0);  // torch: the skipped step is not counted (bias correction unchanged)
  EXPECT_EQ(t::not_finite(torch::tensor(INFINITY, torch::kFloat64), torch::tensor(1.0f)).item<float>(), 1.0f);
  w.mutable_grad() = torch::tensor({1.0f, 1.0f, 1.0f});
  const auto norm = t::grad_norm(params);
  adam.step(params, 0.1, t::not_finite(torch::tensor(0.5, torch::kFloat64), norm));
  EXPECT_LT(w[0].item<float>(), 1.0f);
  EXPECT_EQ(adam.steps(), 1);
  // The same finite step from a fresh optimizer: step 1 of both, so the same weights exactly.
  auto fresh = torch::ones({3});
  fresh.mutable_grad() = torch::tensor({1.0f, 1.0f, 1.0f});
  std::vector<std::pair<std::string, torch::Tensor>> fresh_params = {{"w", fresh}};
  t::AdamW fresh_adam(t::AdamWOptions{}, {});
  fresh_adam.step(fresh_params, 0.1, torch::zeros({}));
  EXPECT_TRUE(torch::equal(w, fresh));
}

// The EMA does not move on a skipped step and moves by (1 - decay) on a finite one.
TEST(Optimizer, EmaSkipsWithTheStep) {
  auto w = torch::full({4}, 2.0f);
  t::NamedTensors params = {{"w", w}};
  std::map<std::string, torch::Tensor> ema = {{"w", torch::zeros({4})}};
  t::update_ema(params, ema, 0.75, torch::ones({}));
  EXPECT_TRUE(torch::equal(ema.at("w"), torch::zeros({4})));
  t::update_ema(params, ema, 0.75, torch::zeros({}));
  EXPECT_TRUE(torch::allclose(ema.at("w"), torch::full({4}, 0.5f)));
}

// The ranks' decision packs (step, rank) so that the maximum is the earliest step: one process
// gives its own numbers back.
TEST(StepFlags, AgreeOnStepsInOneProcess) {
  int argc = 0;
  char** argv = nullptr;
  vitslim::dist::MpiSession mpi(&argc, &argv);
  auto f = t::agree_on_steps(mpi, 15, 7, -1);
  EXPECT_EQ(f.stop_signal, 15);
  EXPECT_EQ(f.bad_loss_step, 7);
  EXPECT_EQ(f.bad_loss_rank, 0);
  EXPECT_EQ(f.bad_grad_step, -1);
  EXPECT_NO_THROW(t::throw_if_not_finite(t::agree_on_steps(mpi, 0, -1, -1), 0, ""));
  try {
    t::throw_if_not_finite(t::agree_on_steps(mpi, 0, 9, 4), 2, "run/checkpoints/step-3.safetensors");
    FAIL() << "no error";
  } catch (const vitslim::CollectiveError& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite gradients at epoch 2, global step 4 on rank 0"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("step-3.safetensors"), std::string::npos);
  }
}
