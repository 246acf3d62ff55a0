// Tests the gradient reducer (dist/reducer.h) on one process: buckets and accumulation.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>

#include "dist/communicator.h"
#include "dist/mpi_session.h"
#include "dist/reducer.h"

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
