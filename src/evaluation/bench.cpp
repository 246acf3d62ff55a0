// Implements the bench job (see bench.h).
#include "evaluation/bench.h"

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
#include "core/cuda_device.h"
#include "core/error.h"
#include "core/json_text.h"
#include "core/log.h"
#include "core/version.h"
#include "model/autocast.h"
#include "model/checkpoint.h"
#include "model/flops.h"

namespace vitslim::evaluation {

using model::AttentionMode;
using model::Bf16Autocast;
using model::Cost;
using model::TokenMerging;
using model::VisionTransformer;

namespace {

constexpr int kBenchGpu = 0;  // bench runs on the first visible GPU (CUDA_VISIBLE_DEVICES picks it)

struct Timing {
  double median_ms = 0;
  double images_per_s = 0;
  int64_t peak_bytes =
      0;  // tensor memory above the resting level (CPU: vitslim's tracker; CUDA: the caching allocator)
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
      Bf16Autocast autocast(images.device().type(), b.bf16);
      loss = torch::nn::functional::cross_entropy(model->forward(images).to(torch::kFloat), labels);
    }
    loss.backward();
    for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
  } else {
    c10::InferenceMode inference;
    Bf16Autocast autocast(images.device().type(), b.bf16);
    auto out = model->forward(images);
  }
  if (cuda) torch::cuda::synchronize();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Tensor memory where the benchmark runs: vitslim's CPU tracker, or the CUDA caching allocator of
// the current GPU.
void reset_peak(Device device) {
  if (device == Device::Cuda) return cuda::reset_peak_memory(kBenchGpu);
  reset_cpu_tensor_peak();
}
int64_t allocated_bytes(Device device) {
  return device == Device::Cuda ? cuda::allocated_memory_bytes(kBenchGpu) : cpu_tensor_bytes();
}
int64_t peak_bytes(Device device) {
  return device == Device::Cuda ? cuda::peak_memory_bytes(kBenchGpu) : cpu_tensor_peak_bytes();
}

// Alternates the models round by round so that machine drift hits both alike.
std::vector<Timing> measure(std::vector<VisionTransformer>& models, const torch::Tensor& images,
                            const torch::Tensor& labels, bool train, const BenchConfig& b) {
  std::vector<std::vector<double>> ms(models.size());
  std::vector<Timing> out(models.size());
  // Inference: one bf16 region over every round, so the weights are cast once (autocast.h).
  Bf16Autocast pass(images.device().type(), b.bf16 && !train);
  for (size_t m = 0; m < models.size(); ++m) {
    if (train)
      models[m]->train();
    else
      models[m]->eval();
  }
  for (int64_t round = 0; round < b.warmup + b.iters; ++round) {
    for (size_t m = 0; m < models.size(); ++m) {
      const bool first_timed = round == b.warmup;
      if (first_timed) reset_peak(b.device);
      const int64_t resting = allocated_bytes(b.device);
      const double t = step_ms(models[m], images, labels, train, b);
      if (first_timed) out[m].peak_bytes = peak_bytes(b.device) - resting;
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

namespace {

// The models of a benchmark and what was measured on them.
struct BenchRun {
  ModelShape shape;
  std::vector<int64_t> removed;
  TokenMerging merging;
  std::vector<std::string> names;         // full, pruned, full + ToMe, pruned + ToMe (those that apply)
  std::vector<VisionTransformer> models;  // in the order of names
  std::vector<Cost> costs;
  std::vector<Timing> inference, training;
  std::string skipped;  // why a row was left out ("" if none)
};

// Adds a freshly initialised model: the request's removed layers if `pruned`, its token merging if
// `merging` (left out, with the reason in run.skipped, where the full model cannot merge that much).
void add_model(BenchRun& run, bool pruned, bool merging) {
  VisionTransformer m(run.shape);
  if (pruned) {
    for (int64_t l : run.removed) m->set_mode(l, AttentionMode::Removed);
  }
  if (merging) {
    try {
      m->set_token_merging(run.merging);
    } catch (const Error& e) {
      run.skipped = cat(pruned ? "pruned" : "full", " + ToMe left out: ", e.what());
      return;
    }
  }
  run.names.push_back(cat(pruned ? "pruned" : "full", merging ? " + ToMe" : ""));
  run.models.push_back(m);
  run.costs.push_back(model::analytic_cost(run.shape, pruned ? run.removed : std::vector<int64_t>{},
                                           merging ? run.merging : TokenMerging{}));
}

// The shape, removed layers and token merging come from the request; speed does not depend on the
// values, so every model is freshly initialised.
BenchRun measure_models(const ModelRequest& request, const BenchConfig& b, const RuntimeConfig& runtime) {
  BenchRun run;
  VisionTransformer reference = model::build_model(request, runtime.seed);
  run.shape = reference->shape();
  run.removed = reference->removed_blocks();
  run.merging = reference->token_merging();
  torch::manual_seed(runtime.seed);
  add_model(run, false, false);
  if (!run.removed.empty()) add_model(run, true, false);
  if (run.merging.active()) {
    add_model(run, false, true);
    if (!run.removed.empty()) add_model(run, true, true);
  }
  const torch::Device device =
      b.device == Device::Cuda ? torch::Device(torch::kCUDA, kBenchGpu) : torch::Device(torch::kCPU);
  for (auto& m : run.models) m->to(device);
  const ModelShape& s = run.shape;
  auto images = torch::randn({b.batch_size, s.in_chans, s.img_size, s.img_size}, device);  // [B, C, H, W]
  auto labels =
      torch::randint(s.output_dim(), {b.batch_size}, torch::TensorOptions().dtype(torch::kLong).device(device));
  run.inference = measure(run.models, images, labels, false, b);
  if (b.train) run.training = measure(run.models, images, labels, true, b);
  return run;
}

nlohmann::json timing_json(const Timing& t) {
  return {{"median_ms", t.median_ms}, {"images_per_s", t.images_per_s}, {"peak_bytes", t.peak_bytes}};
}

// The table on stdout; the same rows as JSON.
nlohmann::json print_rows(const BenchRun& run, const BenchConfig& b) {
  std::printf(
      "bench: %s, removed attention %s, token merging %s, batch %lld, %s%s, %d threads, median of %lld after %lld "
      "warm-up\n\n",
      run.shape.describe().c_str(), run.removed.empty() ? "none" : cat("{", join_list(run.removed), "}").c_str(),
      run.merging.describe().c_str(), static_cast<long long>(b.batch_size), to_string(b.device), b.bf16 ? " bf16" : "",
      at::get_num_threads(), static_cast<long long>(b.iters), static_cast<long long>(b.warmup));
  std::printf("| model | params (M) | MACs/img (G) | infer img/s | infer peak MiB |%s\n",
              b.train ? " train img/s | train peak MiB |" : "");
  std::printf("|---|---|---|---|---|%s\n", b.train ? "---|---|" : "");
  nlohmann::json rows = nlohmann::json::array();
  for (size_t m = 0; m < run.models.size(); ++m) {
    int64_t params = 0;
    for (const auto& p : run.models[m]->parameters()) params += p.numel();
    if (params != run.costs[m].params) {
      throw Error(cat("internal: analytic parameter count ", run.costs[m].params, " != ", params));
    }
    std::printf("| %s | %.2f | %.2f | %.1f | %s |", run.names[m].c_str(), params / 1e6, run.costs[m].macs / 1e9,
                run.inference[m].images_per_s, mib(run.inference[m].peak_bytes).c_str());
    if (b.train) std::printf(" %.1f | %s |", run.training[m].images_per_s, mib(run.training[m].peak_bytes).c_str());
    std::printf("\n");
    nlohmann::json row = {{"model", run.names[m]},
                          {"params", params},
                          {"macs_per_image", run.costs[m].macs},
                          {"inference", timing_json(run.inference[m])}};
    if (b.train) row["train_step"] = timing_json(run.training[m]);
    rows.push_back(row);
  }
  if (!run.skipped.empty()) std::printf("(%s)\n", run.skipped.c_str());
  return rows;
}

BenchRatios ratios_of(const BenchRun& run, const BenchConfig& b) {
  BenchRatios r;
  const auto row = [&](const std::string& name) {
    return static_cast<size_t>(std::find(run.names.begin(), run.names.end(), name) - run.names.begin());
  };
  const size_t full = 0, pruned = row("pruned"), full_merged = row("full + ToMe"), fastest = run.names.size() - 1;
  if (pruned < run.names.size()) {
    r.compared = true;
    r.params = static_cast<double>(run.costs[pruned].params) / static_cast<double>(run.costs[full].params);
    r.macs = static_cast<double>(run.costs[pruned].macs) / static_cast<double>(run.costs[full].macs);
    r.inference_speedup = run.inference[pruned].images_per_s / run.inference[full].images_per_s;
    std::printf("\npruned/full: params %.3f, MACs %.3f, inference speed-up %.3fx", r.params, r.macs,
                r.inference_speedup);
    if (b.train) {
      r.trained = true;
      r.train_speedup = run.training[pruned].images_per_s / run.training[full].images_per_s;
      std::printf(", training-step speed-up %.3fx", r.train_speedup);
    }
    std::printf("\n");
  }
  if (run.merging.active() && run.names[fastest].find("ToMe") != std::string::npos) {
    r.merged = true;
    r.merged_model = run.names[fastest];
    r.merged_macs = static_cast<double>(run.costs[fastest].macs) / static_cast<double>(run.costs[full].macs);
    r.merged_inference_speedup = run.inference[fastest].images_per_s / run.inference[full].images_per_s;
    std::printf("%s/full: MACs %.3f, inference speed-up %.3fx\n", run.names[fastest].c_str(), r.merged_macs,
                r.merged_inference_speedup);
  }
  if (full_merged < run.names.size()) {
    r.full_merged = true;
    r.full_merged_macs = static_cast<double>(run.costs[full_merged].macs) / static_cast<double>(run.costs[full].macs);
    r.full_merged_inference_speedup = run.inference[full_merged].images_per_s / run.inference[full].images_per_s;
    if (full_merged != fastest) {
      std::printf("full + ToMe/full: MACs %.3f, inference speed-up %.3fx\n", r.full_merged_macs,
                  r.full_merged_inference_speedup);
    }
  }
  return r;
}

void write_bench_json(const BenchRun& run, const BenchConfig& b, const nlohmann::json& rows, const BenchRatios& r) {
  const nlohmann::json j = {
      {"program", "vitslim"},
      {"version", kVersion},
      {"job", "bench"},
      {"shape", run.shape.describe()},
      {"removed_layers", run.removed},
      {"token_merging", run.merging.active() ? model::tome_to_text(run.merging) : ""},
      {"batch_size", b.batch_size},
      {"device", to_string(b.device)},
      {"tf32", b.device == Device::Cuda && at::globalContext().allowTF32CuBLAS()},
      {"bf16", b.bf16},
      {"threads", at::get_num_threads()},
      {"iters", b.iters},
      {"warmup", b.warmup},
      {"models", rows},
      {"ratios", ratios_json(r)},
      {"memory_note", b.device == Device::Cuda ? "CUDA: peak of the caching allocator's allocated bytes above the "
                                                 "resting level"
                                               : "CPU: tensor memory above the resting level through LibTorch's "
                                                 "allocator"}};
  write_file_atomic(b.json, json_text(j) + "\n");
}

}  // namespace

nlohmann::json ratios_json(const BenchRatios& r) {
  nlohmann::json j = nlohmann::json::object();
  if (r.compared) {
    j = {{"params", r.params}, {"macs", r.macs}, {"inference_speedup", r.inference_speedup}};
    if (r.trained) j["train_speedup"] = r.train_speedup;
  }
  if (r.merged) {
    j["merged"] = {
        {"model", r.merged_model}, {"macs", r.merged_macs}, {"inference_speedup", r.merged_inference_speedup}};
  }
  if (r.full_merged) {
    j["full_merged"] = {{"macs", r.full_merged_macs}, {"inference_speedup", r.full_merged_inference_speedup}};
  }
  return j;
}

BenchRatios ratios_from_json(const nlohmann::json& j) {
  BenchRatios r;
  if (j.contains("params")) {
    r.compared = true;
    r.params = j.at("params").get<double>();
    r.macs = j.at("macs").get<double>();
    r.inference_speedup = j.at("inference_speedup").get<double>();
  }
  if (j.contains("train_speedup")) {
    r.trained = true;
    r.train_speedup = j.at("train_speedup").get<double>();
  }
  if (j.contains("merged")) {
    r.merged = true;
    r.merged_model = j.at("merged").at("model").get<std::string>();
    r.merged_macs = j.at("merged").at("macs").get<double>();
    r.merged_inference_speedup = j.at("merged").at("inference_speedup").get<double>();
  }
  if (j.contains("full_merged")) {
    r.full_merged = true;
    r.full_merged_macs = j.at("full_merged").at("macs").get<double>();
    r.full_merged_inference_speedup = j.at("full_merged").at("inference_speedup").get<double>();
  }
  return r;
}

BenchRatios read_bench_ratios(const std::string& path, const std::string& what) {
  const nlohmann::json j = read_job_json(path, "bench", what);
  try {
    return ratios_from_json(j.at("ratios"));
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(what, " ", path, ": malformed bench result (", e.what(), ")"));
  }
}

BenchRatios run_bench(const BenchInputs& in) {
  ModelRequest request = in.model;
  const ComputeConfig& compute = in.compute;
  BenchConfig b = in.bench;
  b.device = cuda::resolve_device(compute.device);  // throws naming --device
  if (b.device == Device::Cuda) cuda::set_tf32(compute.tf32);
  model::use_default_preset(request, "deit_tiny");
  if (!b.json.empty()) check_writable_output(b.json, "--json");
  model::warn_if_bf16_emulated(b.device == Device::Cuda ? c10::DeviceType::CUDA : c10::DeviceType::CPU, b.bf16);
  install_cpu_memory_tracker();
  const BenchRun run = measure_models(request, b, in.runtime);
  const nlohmann::json rows = print_rows(run, b);
  const BenchRatios ratios = ratios_of(run, b);
  if (!b.json.empty()) write_bench_json(run, b, rows, ratios);
  return ratios;
}

}  // namespace vitslim::evaluation
