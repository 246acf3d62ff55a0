// Timing the plan's candidates where they will run: in this process (LibTorch, CPU or CUDA, fp32 or
// bf16 autocast), or as exported ONNX files in ONNX Runtime / OpenVINO through an external timer
// program. Both alternate the models of one group round by round (machine drift hits all alike),
// after untimed warm-up passes, for at least --rounds rounds and until each model has run for a
// second in all, and report each model's median milliseconds per batch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/vit.h"

namespace vitslim::plan {

// One model of a timing group: attention removed in `blocks`, `merging` applied.
struct Variant {
  std::vector<int64_t> blocks;
  model::TokenMerging merging;
};

struct TimingSettings {
  int64_t batch = 1;
  int64_t warmup = 1;
  int64_t rounds = 3;
};

// The variants of `model` (blocks set to Skipped, the compute of the merged model, and token
// merging applied; restored afterwards) on the model's device, random input. Returns ms per batch.
std::vector<double> time_in_process(model::VisionTransformer& model, const std::vector<Variant>& variants,
                                    const TimingSettings& settings, bool bf16);

// The ONNX files in `engine` ("onnxruntime" | "openvino") at `precision` ("fp32" | "bf16"): writes
// <work>/request.json, runs `command` + [request, result], reads <work>/result.json. Exit status 3
// means the engine is not installed; any failure is an Error with the program's last output line.
struct ExternalTimer {
  std::vector<std::string> command;  // e.g. {".venv/bin/python", "scripts/time_onnx.py"}
  std::string engine, precision;
  int threads = 1;
};
std::vector<double> time_external(const ExternalTimer& timer, const std::vector<std::string>& onnx_files,
                                  const std::vector<int64_t>& input_shape, const TimingSettings& settings,
                                  const std::string& work_dir);
// The timer program: `timer` (--timer), else scripts/time_onnx.py with the project's .venv (or
// python3).
std::vector<std::string> timer_command(const std::string& timer);
// Whether the timer can run `engine` here: runs it with --check; Error naming --runtime and the
// program's message when not.
void check_external(const ExternalTimer& timer, const std::string& runtime_name, const std::string& work_dir);

}  // namespace vitslim::plan
