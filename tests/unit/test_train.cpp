// Unit tests of the training pieces: schedules, the distributed / repeated-augmentation sampler,
// mixup and cutmix, three training steps (dilution, mixup targets, soft cross-entropy, AdamW)
// against PyTorch + timm (scripts/make_test_checkpoints.py), the gradient reducer's buckets and
// accumulation, and checkpoint files.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"
#include "data/mixup.h"
#include "data/sampler.h"
#include "dist/communicator.h"
#include "dist/mpi_session.h"
#include "dist/reducer.h"
#include "model/checkpoint.h"
#include "test_util.h"
#include "train/loss.h"
#include "train/optimizer.h"
#include "train/schedule.h"
#include "train/train_checkpoint.h"

namespace t = vitslim::train;
namespace d = vitslim::data;
namespace m = vitslim::model;

TEST(Schedule, WarmupThenCosineToTheFloor) {
  t::LrSchedule s{1e-3, 1e-6, 1e-5, 10, 110};
  EXPECT_DOUBLE_EQ(s.at(0), 1e-6);
  EXPECT_NEAR(s.at(5), 1e-6 + 0.5 * (1e-3 - 1e-6), 1e-15);
  EXPECT_DOUBLE_EQ(s.at(10), 1e-3);
  EXPECT_NEAR(s.at(60), 1e-5 + 0.5 * (1e-3 - 1e-5), 1e-15);  // half way through the cosine
  EXPECT_NEAR(s.at(110), 1e-5, 1e-15);
  EXPECT_NEAR(s.at(500), 1e-5, 1e-15);               // never below the floor
  EXPECT_DOUBLE_EQ(t::scaled_lr(5e-4, 2048), 2e-3);  // the paper's 8 x 256
}

TEST(Schedule, LambdaPerEpochAndPerStep) {
  t::LambdaSchedule per_epoch{299, 100, false};
  EXPECT_DOUBLE_EQ(per_epoch.at(0, 50), 1.0);
  EXPECT_NEAR(per_epoch.at(150, 15050), 1.0 - 150.0 / 299.0, 1e-12);
  EXPECT_DOUBLE_EQ(per_epoch.at(299, 29900), 0.0);
  EXPECT_DOUBLE_EQ(per_epoch.at(399, 39900), 0.0);
  t::LambdaSchedule per_step{4, 10, true};
  EXPECT_DOUBLE_EQ(per_step.at(0, 5), 1.0 - 0.5 / 4.0);
  EXPECT_DOUBLE_EQ(per_step.at(3, 39), 1.0 - 3.9 / 4.0);
  EXPECT_DOUBLE_EQ(per_step.at(4, 40), 0.0);
}

TEST(Sampler, RanksCoverTheDatasetOncePerEpoch) {
  const int64_t n = 103;
  std::multiset<int64_t> seen;
  for (int r = 0; r < 4; ++r) {
    d::DistributedSampler s(n, r, 4, 42);
    auto idx = s.epoch_indices(3);
    EXPECT_EQ(static_cast<int64_t>(idx.size()), s.samples_per_rank());
    seen.insert(idx.begin(), idx.end());
  }
  EXPECT_EQ(seen.size(), 104u);  // 103 + 1 padding sample
  for (int64_t i = 0; i < n; ++i) EXPECT_GE(seen.count(i), 1u) << i;
  d::DistributedSampler s(n, 1, 4, 42);
  EXPECT_EQ(s.epoch_indices(3), s.epoch_indices(3));  // a pure function of the epoch
  EXPECT_NE(s.epoch_indices(3), s.epoch_indices(4));
  EXPECT_NE(d::DistributedSampler(n, 1, 4, 43).epoch_indices(3), s.epoch_indices(3));
}

TEST(Sampler, RepeatedAugmentationPutsCopiesOnDifferentRanks) {
  const int64_t n = 60;
  std::vector<std::vector<int64_t>> ranks;
  for (int r = 0; r < 3; ++r) ranks.push_back(d::DistributedSampler(n, r, 3, 0, 3).epoch_indices(0));
  for (const auto& idx : ranks) EXPECT_EQ(idx.size(), 20u);  // floor(N / world): an epoch as without repeats
  // Every image a rank sees appears on the other two ranks as well, at the same position.
  for (size_t k = 0; k < 20; ++k) {
    EXPECT_EQ(ranks[0][k], ranks[1][k]);
    EXPECT_EQ(ranks[1][k], ranks[2][k]);
  }
  std::set<int64_t> distinct(ranks[0].begin(), ranks[0].end());
  EXPECT_EQ(distinct.size(), 20u);
}

TEST(Sampler, ShuffledPrefixIsAPermutation) {
  auto p = d::shuffled_prefix(1000, 1000, 5);
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[static_cast<size_t>(i)], i);
  EXPECT_EQ(d::shuffled_prefix(1000, 10, 5), std::vector<int64_t>(p.begin(), p.begin() + 10));
}

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
  for (int64_t k = 0; k < lrs.size(0); ++k) {
    for (auto& [name, p] : params) p.mutable_grad() = torch::Tensor();
    auto loss = t::soft_cross_entropy(model->forward(images), targets);
    EXPECT_NEAR(loss.item<double>(), get("loss." + std::to_string(k)).item<double>(), 1e-5) << "step " << k;
    loss.backward();
    adam.step(params, lrs[k].item<double>());
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

// The reducer on one process: buckets in reverse order with a small first one, gradients equal
// to plain autograd's, accumulation over micro-steps summed.
TEST(Reducer, BucketsAndAccumulation) {
  int argc = 0;
  char** argv = nullptr;
  vitslim::dist::MpiSession mpi(&argc, &argv);
  auto comm = vitslim::dist::make_cpu_communicator(mpi);
  EXPECT_EQ(comm->backend(), "local");
  torch::manual_seed(0);
  auto w1 = torch::randn({64, 64}).requires_grad_(), b1 = torch::randn({64}).requires_grad_();
  auto w2 = torch::randn({10, 64}).requires_grad_();
  std::vector<std::pair<std::string, torch::Tensor>> params = {{"w1", w1}, {"b1", b1}, {"w2", w2}};
  auto x1 = torch::randn({8, 64}), x2 = torch::randn({8, 64});
  auto loss = [&](const torch::Tensor& x) { return (torch::relu(x.matmul(w1.t()) + b1).matmul(w2.t())).pow(2).mean(); };

  // Reference: plain accumulation of two micro-steps.
  (loss(x1) + loss(x2)).backward();
  std::map<std::string, torch::Tensor> want;
  for (auto& [n, p] : params) {
    want[n] = p.grad().clone();
    p.mutable_grad() = torch::Tensor();
  }
  {
    vitslim::dist::GradientReducer reducer(params, *comm, 32 * 1024, 2 * 1024);
    const auto buckets = reducer.bucket_names();
    ASSERT_EQ(buckets.size(), 2u);
    EXPECT_EQ(buckets[0], std::vector<std::string>{"w2"});  // last registered first, small bucket
    EXPECT_EQ(buckets[1], (std::vector<std::string>{"b1", "w1"}));
    for (int round = 0; round < 2; ++round) {  // twice: state is reset between optimizer steps
      for (auto& [n, p] : params) p.mutable_grad() = torch::Tensor();
      reducer.begin(false);
      loss(x1).backward();
      reducer.begin(true);
      loss(x2).backward();
      reducer.finish();
      for (auto& [n, p] : params)
        EXPECT_TRUE(torch::allclose(p.grad(), want[n], 1e-5, 1e-6)) << n << " round " << round;
    }
    EXPECT_EQ(reducer.stats().buckets, 2);
  }
  // Hooks are gone with the reducer: a later backward leaves .grad alone.
  for (auto& [n, p] : params) p.mutable_grad() = torch::Tensor();
  loss(x1).backward();
  EXPECT_TRUE(w1.grad().defined());
}

TEST(TrainCheckpoint, RoundTripListAndPrune) {
  vitslim::test::TempDir dir;
  t::TrainState s;
  s.epoch = 2;
  s.step_in_epoch = 5;
  s.global_step = 25;
  s.modes = {"full", "diluting", "removed"};
  s.lambdas = {1.0, 0.25, 0.0};
  s.best_top1 = 71.5;
  s.best_epoch = 1;
  s.world_size = 4;
  s.seed = 42;
  s.config = "[train]\nepochs = 3\n";
  std::filesystem::create_directories(t::checkpoint_dir(dir.path()));
  auto w = torch::randn({3, 4});
  for (int64_t step : {5, 15, 25}) {
    t::write_checkpoint(t::checkpoint_path(dir.path(), step), s, {{"model/w", w}, {"optim/exp_avg/w", w * 2}});
  }
  EXPECT_EQ(t::list_checkpoints(dir.path()), (std::vector<int64_t>{5, 15, 25}));
  t::prune_checkpoints(dir.path(), 2);
  EXPECT_EQ(t::list_checkpoints(dir.path()), (std::vector<int64_t>{15, 25}));
  auto ck = t::read_checkpoint(t::checkpoint_path(dir.path(), 25));
  EXPECT_EQ(ck.state.global_step, 25);
  EXPECT_EQ(ck.state.modes, s.modes);
  EXPECT_EQ(ck.state.lambdas, s.lambdas);
  EXPECT_EQ(ck.state.config, s.config);
  EXPECT_TRUE(torch::equal(ck.tensors.at("model/w"), w));
  // A file that is not a checkpoint is refused by name.
  EXPECT_THROW(t::read_checkpoint(vitslim::test::fixture("golden_vit_test.safetensors")), vitslim::Error);
}
