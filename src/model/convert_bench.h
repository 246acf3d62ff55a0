// `vitslim convert` (import a checkpoint, export timm-named .safetensors) and `vitslim bench`
// (forward images/s of a model on random input, median over timed iterations).
#pragma once

#include "core/runtime.h"
#include "model/request.h"
#include "model/settings.h"

namespace vitslim::model {

void run_convert(const ModelRequest& request, const ConvertConfig& convert, const RuntimeConfig& runtime);
// Pruned / full: what removing the request's layers buys (compared: false when none is removed).
struct BenchRatios {
  bool compared = false;
  double params = 1, macs = 1, inference_speedup = 1, train_speedup = 1;
};
BenchRatios run_bench(ModelRequest request, const BenchConfig& bench, const RuntimeConfig& runtime);

}  // namespace vitslim::model
