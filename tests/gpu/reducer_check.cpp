// vitslim_gpu_test: GoogleTest checks of the training step's GPU path, built with NCCL and a CUDA
// LibTorch (scripts/check_cuda_build.sh) and run where a GPU exists (scripts/gpu_smoke.sh); every
// test skips without one. On one GPU training never uses NCCL or the reducer (both need more than
// one rank), so this drives them directly: a 1-rank NCCL communicator and the bucketed reducer,
// inside the trainer's own backward_step, must give the gradients of plain backward, at
// accumulation 1 and 2, with the buckets launched from autograd's device thread.
#include <c10/cuda/CUDAStream.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "dist/mpi_session.h"
#include "dist/nccl_communicator.h"
#include "dist/reducer.h"
#include "model/checkpoint.h"
#include "model/vit.h"
#include "train/step.h"

namespace t = vitslim::train;
namespace m = vitslim::model;
namespace dist = vitslim::dist;

namespace {

constexpr int64_t kBatch = 4;
constexpr uint64_t kSeed = 3;
constexpr int64_t kBucketBytes = 64 << 10;  // small buckets: several all-reduces per step
constexpr double kTimeoutSeconds = 60;
constexpr double kTolerance = 1e-6;

m::VisionTransformer make_model() {
  vitslim::ModelRequest r;
  r.preset = "vit_test";
  auto model = m::build_model(r, kSeed);
  model->to(torch::Device(torch::kCUDA, 0));
  return model;
}

t::NamedTensors parameters(m::VisionTransformer& model) {
  t::NamedTensors out;
  for (const auto& p : model->named_parameters()) out.emplace_back(p.key(), p.value());
  return out;
}

// Gradients after one optimizer step's backward of `accum` micro-batches, with `reducer` or none.
std::map<std::string, torch::Tensor> gradients(m::VisionTransformer& model, t::NamedTensors& params, int64_t accum,
                                               dist::GradientReducer* reducer) {
  const auto& s = model->shape();
  torch::manual_seed(kSeed);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA, 0);
  std::vector<t::MicroBatch> batches;
  for (int64_t k = 0; k < accum; ++k) {
    batches.push_back({torch::randn({kBatch, s.in_chans, s.img_size, s.img_size}, cuda),
                       torch::softmax(torch::randn({kBatch, s.num_classes}, cuda), 1), torch::Tensor()});
  }
  t::StepOptions options;
  options.accum_steps = accum;
  t::backward_step(
      model, params, options, [&](int64_t k) { return batches[static_cast<size_t>(k)]; }, [](int64_t) { return kSeed; },
      reducer);
  std::map<std::string, torch::Tensor> out;
  for (auto& [name, p] : params) out[name] = p.grad().detach().cpu().clone();
  return out;
}

class GpuReducer : public ::testing::TestWithParam<int64_t> {};

TEST_P(GpuReducer, OneRankNcclMatchesPlainBackward) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const int64_t accum = GetParam();
  int argc = 0;
  char** argv = nullptr;
  dist::MpiSession mpi(&argc, &argv);
  auto plain_model = make_model(), reduced_model = make_model();
  auto plain_params = parameters(plain_model), reduced_params = parameters(reduced_model);
  const auto want = gradients(plain_model, plain_params, accum, nullptr);

  auto current = [] { return static_cast<void*>(c10::cuda::getCurrentCUDAStream(0).stream()); };
  dist::NcclCommunicator comm(mpi, 0, current, dist::CommOptions{kTimeoutSeconds});
  dist::GradientReducer reducer(reduced_params, comm, kBucketBytes, kBucketBytes / 4);
  ASSERT_GT(reducer.stats().buckets, 2);
  for (int step = 0; step < 2; ++step) {  // a second step reuses the buckets
    const auto got = gradients(reduced_model, reduced_params, accum, &reducer);
    for (const auto& [name, g] : want) {
      ASSERT_TRUE(got.count(name)) << name;
      EXPECT_TRUE(torch::allclose(got.at(name), g, kTolerance, kTolerance))
          << name << " step " << step << " max diff " << (got.at(name) - g).abs().max().item<double>();
    }
  }
  auto timer = reducer.take_wait_timer();
  ASSERT_TRUE(timer);
  EXPECT_GE(timer->seconds(), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Accumulation, GpuReducer, ::testing::Values(1, 2));

}  // namespace
