// Implements the convert and bench jobs (see model_jobs.h).
#include "model/model_jobs.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iomanip>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/cpu_memory.h"
#include "core/error.h"
#include "core/log.h"
#include "core/version.h"
#include "model/autocast.h"
#include "model/checkpoint.h"
#include "model/flops.h"

namespace vitslim::model {

void run_convert(const ModelRequest& request, const ConvertConfig& convert, const RuntimeConfig& runtime) {
  check_writable_output(convert.out, "--out");
  VisionTransformer model = build_model(request, runtime.seed);
  export_safetensors(model, convert.out);
  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  std::printf("wrote %s: %s, %lld parameters, removed attention: %zu blocks\n", convert.out.c_str(),
              model->shape().describe().c_str(), static_cast<long long>(params), model->removed_blocks().size());
}

namespace {

struct Timing {
  double median_ms = 0;
  double images_per_s = 0;
  int64_t peak_bytes = 0;  // CPU: tensor memory above the resting level; CUDA: device peak
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// One timed step: inference forward, or forward + backward for training.
double step_ms(VisionTransformer& model, const torch::Tensor& images, const torch::Tensor& labels, bool train,
               const BenchConfig& b) {
  const bool cuda = b.device == Device::Cuda;
  if (cuda) torch::cuda::synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  if (train) {
    torch::Tensor loss;
    {
      CudaBf16Autocast autocast(cuda && b.bf16);
      loss = torch::nn::functional::cross_entropy(model->forward(images).to(torch::kFloat), labels);
    }
    loss.backward();
    for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
  } else {
    c10::InferenceMode inference;
    CudaBf16Autocast autocast(cuda && b.bf16);
    auto out = model->forward(images);
  }
  if (cuda) torch::cuda::synchronize();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Alternates the models round by round so that machine drift hits both alike.
std::vector<Timing> measure(std::vector<VisionTransformer>& models, const torch::Tensor& images,
                            const torch::Tensor& labels, bool train, const BenchConfig& b) {
  std::vector<std::vector<double>> ms(models.size());
  std::vector<Timing> out(models.size());
  for (size_t m = 0; m < models.size(); ++m) {
    if (train)
      models[m]->train();
    else
      models[m]->eval();
  }
  for (int64_t round = 0; round < b.warmup + b.iters; ++round) {
    for (size_t m = 0; m < models.size(); ++m) {
      const bool first_timed = round == b.warmup;
      if (first_timed) reset_cpu_tensor_peak();
      const int64_t resting = cpu_tensor_bytes();
      const double t = step_ms(models[m], images, labels, train, b);
      if (first_timed) out[m].peak_bytes = cpu_tensor_peak_bytes() - resting;
      if (round >= b.warmup) ms[m].push_back(t);
    }
  }
  for (size_t m = 0; m < models.size(); ++m) {
    out[m].median_ms = median(ms[m]);
    out[m].images_per_s = 1000.0 * static_cast<double>(images.size(0)) / out[m].median_ms;
  }
  return out;
}

std::string mib(int64_t bytes) { return cat(std::fixed, std::setprecision(0), static_cast<double>(bytes) / (1 << 20)); }

}  // namespace

void run_bench(ModelRequest request, const BenchConfig& b, const RuntimeConfig& runtime) {
  use_default_preset(request, "deit_tiny");
  if (!b.json.empty()) check_writable_output(b.json, "--json");
  if (b.device == Device::Cuda && !torch::cuda::is_available()) {
    throw Error("--device cuda: no CUDA device is available to this build of LibTorch");
  }
  install_cpu_memory_tracker();
  // The shape (and removed layers) come from the request; speed does not depend on the values,
  // so both models are freshly initialised: the full one and the attention-removed one.
  VisionTransformer reference = build_model(request, runtime.seed);
  const ModelShape shape = reference->shape();
  const std::vector<int64_t> removed = reference->removed_blocks();
  torch::manual_seed(runtime.seed);
  std::vector<VisionTransformer> models = {VisionTransformer(shape)};
  if (!removed.empty()) {
    models.emplace_back(shape);
    for (int64_t l : removed) models.back()->set_mode(l, AttentionMode::Removed);
  }
  const torch::Device device(b.device == Device::Cuda ? torch::kCUDA : torch::kCPU);
  for (auto& m : models) m->to(device);
  auto images = torch::randn({b.batch_size, shape.in_chans, shape.img_size, shape.img_size}, device);  // [B, C, H, W]
  auto labels =
      torch::randint(shape.num_classes, {b.batch_size}, torch::TensorOptions().dtype(torch::kLong).device(device));

  auto inference = measure(models, images, labels, false, b);
  std::vector<Timing> training;
  if (b.train) training = measure(models, images, labels, true, b);

  std::vector<Cost> costs;
  for (size_t m = 0; m < models.size(); ++m)
    costs.push_back(analytic_cost(shape, m == 0 ? std::vector<int64_t>{} : removed));
  const char* names[] = {"full", "pruned"};
  std::printf("bench: %s, removed attention %s, batch %lld, %s%s, %d threads, median of %lld after %lld warm-up\n\n",
              shape.describe().c_str(), removed.empty() ? "none" : cat("{", join_list(removed), "}").c_str(),
              static_cast<long long>(b.batch_size), to_string(b.device), b.bf16 ? " bf16" : "", at::get_num_threads(),
              static_cast<long long>(b.iters), static_cast<long long>(b.warmup));
  std::printf("| model | params (M) | MACs/img (G) | infer img/s | infer peak MiB |%s\n",
              b.train ? " train img/s | train peak MiB |" : "");
  std::printf("|---|---|---|---|---|%s\n", b.train ? "---|---|" : "");
  nlohmann::json rows = nlohmann::json::array();
  for (size_t m = 0; m < models.size(); ++m) {
    int64_t params = 0;
    for (const auto& p : models[m]->parameters()) params += p.numel();
    if (params != costs[m].params)
      throw Error(cat("internal: analytic parameter count ", costs[m].params, " != ", params));
    std::printf("| %s | %.2f | %.2f | %.1f | %s |", names[m], params / 1e6, costs[m].macs / 1e9,
                inference[m].images_per_s, mib(inference[m].peak_bytes).c_str());
    if (b.train) std::printf(" %.1f | %s |", training[m].images_per_s, mib(training[m].peak_bytes).c_str());
    std::printf("\n");
    nlohmann::json row = {{"model", names[m]},
                          {"params", params},
                          {"macs_per_image", costs[m].macs},
                          {"inference",
                           {{"median_ms", inference[m].median_ms},
                            {"images_per_s", inference[m].images_per_s},
                            {"peak_bytes", inference[m].peak_bytes}}}};
    if (b.train) {
      row["train_step"] = {{"median_ms", training[m].median_ms},
                           {"images_per_s", training[m].images_per_s},
                           {"peak_bytes", training[m].peak_bytes}};
    }
    rows.push_back(row);
  }
  nlohmann::json ratios;
  if (models.size() == 2) {
    ratios = {{"params", static_cast<double>(costs[1].params) / costs[0].params},
              {"macs", static_cast<double>(costs[1].macs) / costs[0].macs},
              {"inference_speedup", inference[1].images_per_s / inference[0].images_per_s}};
    std::printf("\npruned/full: params %.3f, MACs %.3f, inference speed-up %.3fx", ratios["params"].get<double>(),
                ratios["macs"].get<double>(), ratios["inference_speedup"].get<double>());
    if (b.train) {
      ratios["train_speedup"] = training[1].images_per_s / training[0].images_per_s;
      std::printf(", training-step speed-up %.3fx", ratios["train_speedup"].get<double>());
    }
    std::printf("\n");
  }
  if (!b.json.empty()) {
    nlohmann::json j = {{"program", "vitslim"},
                        {"version", kVersion},
                        {"job", "bench"},
                        {"shape", shape.describe()},
                        {"removed_layers", removed},
                        {"batch_size", b.batch_size},
                        {"device", to_string(b.device)},
                        {"bf16", b.bf16},
                        {"threads", at::get_num_threads()},
                        {"iters", b.iters},
                        {"warmup", b.warmup},
                        {"models", rows},
                        {"ratios", ratios},
                        {"memory_note", "CPU: tensor memory above the resting level through LibTorch's allocator"}};
    write_file_atomic(b.json, j.dump(2) + "\n");
  }
}

}  // namespace vitslim::model
