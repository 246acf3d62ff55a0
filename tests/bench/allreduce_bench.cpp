// Gradient all-reduce benchmark (prints numbers, not a test): under `mpiexec -np N`, the
// trainer's GradientReducer path (autograd hooks -> bucket copies -> non-blocking all-reduce ->
// average -> .grad) on a real model's parameters, side by side with one raw MPI_Allreduce of a
// flat buffer of the same size, in one run. Bus bandwidth = bytes x 2(N-1)/N / seconds (the
// nccl-tests convention), median of --iters iterations.
// Usage: mpiexec -np 2 vitslim_bench_allreduce [--model deit_tiny] [--iters 20] [--bucket-mb 25]
#include <mpi.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "dist/mpi_session.h"
#include "dist/reducer.h"
#include "model/presets.h"
#include "model/vit.h"

namespace {

constexpr int64_t kMiB = 1 << 20;
constexpr int64_t kWarmup = 3;
constexpr double kFirstBucketMb = 1.0;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double bus_gbs(int64_t bytes, double seconds, int world) {
  return static_cast<double>(bytes) * 2.0 * (world - 1) / world / seconds / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_name = "deit_tiny";
  int64_t iters = 20, bucket_mb = 25;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--model")
      model_name = argv[i + 1];
    else if (flag == "--iters")
      iters = std::stoll(argv[i + 1]);
    else if (flag == "--bucket-mb")
      bucket_mb = std::stoll(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  try {
    vitslim::dist::MpiSession mpi(&argc, &argv);
    if (mpi.world_size() < 2) {
      std::fprintf(stderr, "run under mpiexec -np N (N >= 2)\n");
      return 2;
    }
    torch::set_num_threads(1);
    auto comm = vitslim::dist::make_cpu_communicator(mpi);
    vitslim::model::VisionTransformer model(vitslim::model::preset(model_name));
    std::vector<std::pair<std::string, torch::Tensor>> params;
    int64_t numel = 0;
    for (const auto& p : model->named_parameters()) {
      params.emplace_back(p.key(), p.value());
      numel += p.value().numel();
    }
    const int64_t bytes = numel * static_cast<int64_t>(sizeof(float));

    // Reducer path: the backward of sum(p) gives every parameter a gradient of ones.
    std::vector<double> reducer_times;
    {
      vitslim::dist::GradientReducer reducer(params, *comm, bucket_mb * kMiB,
                                             static_cast<int64_t>(kFirstBucketMb * static_cast<double>(kMiB)));
      for (int64_t it = 0; it < kWarmup + iters; ++it) {
        for (auto& [name, p] : params) p.mutable_grad() = torch::Tensor();
        std::vector<torch::Tensor> sums;
        for (auto& [name, p] : params) sums.push_back(p.sum());
        auto loss = torch::stack(sums).sum();
        mpi.barrier();
        const auto t0 = std::chrono::steady_clock::now();
        reducer.begin(true);
        loss.backward();
        reducer.finish();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (it >= kWarmup) reducer_times.push_back(s);
      }
      if (std::fabs(params.front().second.grad().mean().item<double>() - 1.0) > 1e-6) {
        std::fprintf(stderr, "reducer result wrong\n");
        return 1;
      }
      if (mpi.rank() == 0) std::printf("reducer buckets: %lld\n", static_cast<long long>(reducer.stats().buckets));
    }

    // The same backward without the reducer: what producing the gradients costs by itself.
    std::vector<double> backward_times;
    for (int64_t it = 0; it < kWarmup + iters; ++it) {
      for (auto& [name, p] : params) p.mutable_grad() = torch::Tensor();
      std::vector<torch::Tensor> sums;
      for (auto& [name, p] : params) sums.push_back(p.sum());
      auto loss = torch::stack(sums).sum();
      const auto t0 = std::chrono::steady_clock::now();
      loss.backward();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (it >= kWarmup) backward_times.push_back(s);
    }

    // Raw MPI_Allreduce of one flat buffer of the same size.
    std::vector<float> flat(static_cast<size_t>(numel), 1.0f);
    std::vector<double> raw_times;
    for (int64_t it = 0; it < kWarmup + iters; ++it) {
      mpi.barrier();
      const auto t0 = std::chrono::steady_clock::now();
      MPI_Allreduce(MPI_IN_PLACE, flat.data(), static_cast<int>(numel), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (it >= kWarmup) raw_times.push_back(s);
    }
    std::vector<double> nb_times;
    for (int64_t it = 0; it < kWarmup + iters; ++it) {
      mpi.barrier();
      const auto t0 = std::chrono::steady_clock::now();
      MPI_Request request;
      MPI_Iallreduce(MPI_IN_PLACE, flat.data(), static_cast<int>(numel), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &request);
      MPI_Wait(&request, MPI_STATUS_IGNORE);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (it >= kWarmup) nb_times.push_back(s);
    }
    if (mpi.rank() == 0) {
      const double nb = median(nb_times);
      const double r = median(reducer_times) - median(backward_times), m = median(raw_times);
      const int n = mpi.world_size();
      std::printf("Gradient all-reduce, %s (%lld parameters, %.1f MiB float32), %d ranks, median of %lld\n",
                  model_name.c_str(), static_cast<long long>(numel), static_cast<double>(bytes) / kMiB, n,
                  static_cast<long long>(iters));
      std::printf("(backward producing the gradients alone: %.2f ms, subtracted from the reducer's time)\n",
                  1e3 * median(backward_times));
      std::printf("| path | ms | bus GB/s |\n|---|---|---|\n");
      std::printf("| vitslim GradientReducer (hooks, %lld MiB buckets, average, .grad) | %.2f | %.2f |\n",
                  static_cast<long long>(bucket_mb), 1e3 * r, bus_gbs(bytes, r, n));
      std::printf("| raw MPI_Allreduce, one flat buffer | %.2f | %.2f |\n", 1e3 * m, bus_gbs(bytes, m, n));
      std::printf("| raw MPI_Iallreduce + MPI_Wait, one flat buffer | %.2f | %.2f |\n", 1e3 * nb,
                  bus_gbs(bytes, nb, n));
      std::printf("reducer / raw bandwidth: %.2f\n", m / r);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vitslim_bench_allreduce: %s\n", e.what());
    return 1;
  }
}
