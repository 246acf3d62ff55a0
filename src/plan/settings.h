// Settings of the plan job (what to remove to reach a measured speed or accuracy target), each
// field declared once with its option, and the runtime table the plan times candidates in. No torch.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/options.h"

namespace vitslim {

// Where a candidate is timed: vitslim itself (LibTorch, in this process, on --device), or the
// ONNX runtimes `export` targets, through the timer program (scripts/time_onnx.py by default).
enum class PlanRuntime { Libtorch, LibtorchBf16, OnnxRuntime, OpenVino, OpenVinoBf16 };
struct PlanRuntimeInfo {
  PlanRuntime runtime;
  const char* name;       // --runtime value
  const char* engine;     // what the timer is asked for ("" for libtorch: timed in-process)
  const char* precision;  // fp32 | bf16
};
inline const std::vector<PlanRuntimeInfo>& plan_runtimes() {
  static const std::vector<PlanRuntimeInfo> kTable = {
      {PlanRuntime::Libtorch, "libtorch", "", "fp32"},
      {PlanRuntime::LibtorchBf16, "libtorch-bf16", "", "bf16"},
      {PlanRuntime::OnnxRuntime, "onnxruntime", "onnxruntime", "fp32"},
      {PlanRuntime::OpenVino, "openvino", "openvino", "fp32"},
      {PlanRuntime::OpenVinoBf16, "openvino-bf16", "openvino", "bf16"},
  };
  return kTable;
}
const PlanRuntimeInfo& plan_runtime_info(PlanRuntime runtime);

struct PlanConfig {
  std::optional<double> target_speedup;     // against the unpruned model, same runtime and batch
  std::optional<double> target_latency_ms;  // per batch
  std::optional<double> max_drop;           // probe top-1 points below the unpruned model's probe
  std::string runtimes = "libtorch";        // comma-separated PlanRuntime names
  double max_ratio = 0.5;                   // candidates remove 1 .. floor(max_ratio x depth) blocks
  std::vector<int64_t> tome_r = {0};        // token merging grid (0: none), each r constant from tome_start
  int64_t tome_start = 0;
  std::string criteria = "none";  // other criteria's picks at the same counts
  std::string search;             // a NOSE search JSON to take the order from (else searched here)
  int64_t beam = 1;               // the search here: sets kept per step
  int64_t warmup = 1;             // untimed passes per timing group
  int64_t rounds = 3;             // timed passes per candidate (median), alternating
  int64_t probe_steps = 100;      // dilution fine-tuning steps per probed candidate (0: no probe)
  double probe_lr = 4e-3;         // per 512 images
  int64_t probe_images = 2000;    // first N images of the held-out split per probe evaluation
  std::string timer;              // the ONNX timer program (default: scripts/time_onnx.py)
  std::string out_dir = "runs/plan";

  void declare(Options& o) {
    o.group("plan", "Plan (the target, the candidates, how they are timed and probed)");
    o.add("target-speedup", target_speedup, "measured speed-up over the unpruned model to reach (e.g. 1.2)",
          {1, 1e6, true, false});
    o.add("target-latency-ms", target_latency_ms, "measured milliseconds per batch to reach", positive());
    o.add("max-drop", max_drop,
          "probe top-1 points the plan may lose against the unpruned model's probe (alone: the fastest such plan)",
          at_least(0));
    o.add("runtime", runtimes,
          "where candidates are timed, comma-separated: libtorch, libtorch-bf16 (this process, --device), "
          "onnxruntime, openvino, openvino-bf16 (the exported ONNX file, through --timer); one choice each",
          {"libtorch,onnxruntime", "openvino-bf16"});
    o.add("max-ratio", max_ratio, "candidates remove 1 up to floor(max-ratio x depth) attention layers",
          {0, 1, true, false});
    o.add("tome-r", tome_r, "token merging grid: each candidate also with each r (0: none), constant from --tome-start",
          at_least(0));
    o.add("tome-start", tome_start, "first block that merges", at_least(0));
    o.add("criteria", criteria, "other criteria's picks at the same counts, comma-separated, or none",
          {"random", "cosine,first"});
    o.add_path("search", search,
               "the NOSE order from this `vitslim search --json` file (same model; default: searched here into "
               "--out-dir)",
               PathRole::InputFile);
    o.add("beam", beam, "the search here: sets kept per step (1: greedy)", at_least(1));
    o.add("warmup", warmup, "untimed passes per model before timing (in-process: before the first group only)",
          at_least(0));
    o.add("rounds", rounds,
          "timed passes per candidate at least (more until each has run 1 s), candidates alternating round by round; "
          "the median counts",
          positive());
    o.add("probe-steps", probe_steps,
          "dilution fine-tuning steps per candidate on the front (lambda 1 -> 0 over the first half; 0: no probe)",
          at_least(0));
    o.add("probe-lr", probe_lr, "probe learning rate per 512 images", positive());
    o.add("probe-images", probe_images, "first N images of the test split per probe evaluation (0: all)", at_least(0));
    o.add_path("timer", timer,
               "program that times ONNX files in onnxruntime/openvino (default: scripts/time_onnx.py with the "
               "project's .venv)",
               PathRole::InputFile);
    o.add_path("out-dir", out_dir, "plan.json, report.md, plan-train.ini, the timing cache, search and probes",
               PathRole::OutputDir);
  }
  std::vector<PlanRuntime> runtime_list() const;  // throws naming --runtime
  void validate() const;
};

}  // namespace vitslim
