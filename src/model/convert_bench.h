// `vitslim convert` (import a checkpoint, export timm-named .safetensors) and `vitslim bench`
// (forward images/s of a model on random input, median over timed iterations): the full model,
// the pruned one, and both with the request's token merging.
#pragma once

#include "core/runtime.h"
#include "model/request.h"
#include "model/settings.h"

namespace vitslim::model {

void run_convert(const ModelRequest& request, const ConvertConfig& convert, const RuntimeConfig& runtime);
// Pruned / full: what removing the request's layers buys (compared: false when none is removed);
// merged: the last row with token merging (pruned + ToMe, else full + ToMe) / full; full_merged:
// full + ToMe / full.
struct BenchRatios {
  bool compared = false;
  double params = 1, macs = 1, inference_speedup = 1, train_speedup = 1;
  bool merged = false;
  double merged_macs = 1, merged_inference_speedup = 1;
  bool full_merged = false;
  double full_merged_macs = 1, full_merged_inference_speedup = 1;
};
BenchRatios run_bench(ModelRequest request, const BenchConfig& bench, const ComputeConfig& compute,
                      const RuntimeConfig& runtime);

}  // namespace vitslim::model
