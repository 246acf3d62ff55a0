// Settings of the model-only jobs (convert, bench), each field declared once with its option.
#pragma once

#include <cstdint>
#include <string>

#include "core/options.h"
#include "core/runtime.h"

namespace vitslim {

struct ConvertConfig {
  std::string out;  // .safetensors

  void declare(Options& o) {
    o.group("convert", "Convert output");
    o.add_path("out", out, ".safetensors file (timm key names)", PathRole::OutputFile);
  }
};

struct BenchConfig {
  int64_t batch_size = 32;
  int64_t warmup = 2;
  int64_t iters = 5;
  Device device = Device::Cpu;  // not an option: run_bench resolves --device (ComputeConfig) into it
  bool bf16 = false;            // bf16 autocast (CPU or CUDA)
  bool train = true;            // also time a training step (forward + backward)
  std::string json;

  void declare(Options& o) {
    o.group("bench", "Benchmark");
    o.add("batch-size", batch_size, "batch", closed(1, kMaxBatch));
    o.add("warmup", warmup, "untimed iterations", at_least(0));
    o.add("iters", iters, "timed iterations (median reported)", positive());
    o.add_switch("bf16", bf16, kBf16Help);
    o.add_switch("train", train, "also time a training step (forward + backward); --train=false to skip");
    o.add_path("json", json, "write the result as JSON", PathRole::OutputFile);
  }
};

}  // namespace vitslim
