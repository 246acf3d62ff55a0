// Implements the convert and bench jobs (see model_jobs.h).
#include "model/model_jobs.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/version.h"
#include "model/checkpoint.h"

namespace vitslim::model {

int run_convert_job(const Config& c) {
  check_writable_output(c.convert.out, "--out");
  VisionTransformer model = build_model(c.model, c.runtime.seed);
  export_safetensors(model, c.convert.out);
  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  std::printf("wrote %s: %s, %lld parameters, removed attention: %zu blocks\n", c.convert.out.c_str(),
              model->shape().describe().c_str(), static_cast<long long>(params), model->removed_blocks().size());
  return 0;
}

int run_bench_job(const Config& config) {
  Config c = config;
  model::use_default_preset(c.model, "deit_tiny");
  if (!c.bench.json.empty()) check_writable_output(c.bench.json, "--json");
  VisionTransformer model = build_model(c.model, c.runtime.seed);
  model->eval();
  const ModelShape& s = model->shape();
  torch::manual_seed(c.runtime.seed);
  auto input = torch::randn({c.bench.batch_size, s.in_chans, s.img_size, s.img_size});  // [B, C, H, W]
  c10::InferenceMode inference;
  std::vector<double> ms;
  for (int64_t i = 0; i < c.bench.warmup + c.bench.iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto out = model->forward(input);
    const auto t1 = std::chrono::steady_clock::now();
    if (i >= c.bench.warmup) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::vector<double> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[sorted.size() / 2];
  const double images_per_s = 1000.0 * static_cast<double>(c.bench.batch_size) / median;
  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  std::printf("vitslim forward: %s, batch %lld, %d threads: %.2f ms/batch median, %.1f images/s\n",
              s.describe().c_str(), static_cast<long long>(c.bench.batch_size), at::get_num_threads(), median,
              images_per_s);
  if (!c.bench.json.empty()) {
    nlohmann::json j = {{"program", "vitslim"},       {"version", kVersion},
                        {"model", c.model.preset},     {"shape", s.describe()},
                        {"parameters", params},        {"batch_size", c.bench.batch_size},
                        {"threads", at::get_num_threads()}, {"ms_per_batch", ms},
                        {"median_ms", median},         {"images_per_s", images_per_s},
                        {"removed_layers", model->removed_blocks()}};
    write_file_atomic(c.bench.json, j.dump(2) + "\n");
  }
  return 0;
}

}  // namespace vitslim::model
