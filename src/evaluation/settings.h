// Settings of the measuring jobs (eval, bench, tome-sweep), each field declared once with its
// option.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/options.h"
#include "core/runtime.h"

namespace vitslim {

struct EvalConfig {
  int64_t images = 0;  // first N images of the split (0: all)
  bool bf16 = false;   // bf16 autocast (CPU)
  std::string json;

  void declare(Options& o) {
    o.group("eval", "Evaluation");
    o.add("eval-images", images, "first N images of the split (0: all)", at_least(0));
    o.add_switch("bf16", bf16, kBf16Help);
    o.add_path("json", json, "JSON result", PathRole::OutputFile);
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

// `vitslim tome-sweep`: token merging tuned for a (compact) model over a grid of r and start block.
struct TomeSweepConfig {
  std::vector<int64_t> r = {2, 4, 6, 8, 12, 16};  // r of each point (r = 0, the reference, is always run)
  std::vector<int64_t> start = {0};               // start blocks of each point
  double max_drop = 0.3;                          // top-1 points below r = 0 a chosen setting may lose
  int64_t bench_batch = 32;                       // the speed of each point: random input of this batch
  int64_t bench_iters = 5;
  int64_t images = 0;  // first N images of the split (0: all)
  bool bf16 = false;
  std::string json, csv;
  std::string speeds;  // images/s of every point from this CSV instead of timing them

  void declare(Options& o) {
    o.group("tome-sweep",
            "Token-merging sweep (--tome-schedule, --tome-prop-attn, --tome-mlp-blocks apply to every point)");
    o.add("sweep-r", r, "values of --tome-r to try (r = 0 is always measured as the reference)", positive());
    o.add("sweep-start", start, "values of --tome-start to try", at_least(0));
    o.add("max-drop", max_drop, "accuracy budget: top-1 points a chosen setting may lose against r = 0", at_least(0));
    o.add("bench-batch", bench_batch, "batch of the speed measurement", closed(1, kMaxBatch));
    o.add("bench-iters", bench_iters, "timed forward passes per point (median)", positive());
    o.add("eval-images", images, "first N images of the split (0: all)", at_least(0));
    o.add_switch("bf16", bf16, kBf16Help);
    o.add_path("json", json, "every point, the Pareto front and the choice as JSON", PathRole::OutputFile);
    o.add_path("csv", csv, "every point as CSV (for plots)", PathRole::OutputFile);
    o.add_path("speeds", speeds,
               "take every point's images/s from this CSV (columns r, start, images_per_s, as --csv writes: a sweep "
               "timed on the deployment machine) instead of timing here; the choice is then reproducible",
               PathRole::InputFile);
  }
};

}  // namespace vitslim
