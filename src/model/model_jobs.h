// `vitslim convert` (import a checkpoint, export timm-named .safetensors) and `vitslim bench`
// (forward images/s of a model on random input, median over timed iterations).
#pragma once

#include "core/runtime.h"
#include "model/request.h"
#include "model/settings.h"

namespace vitslim::model {

void run_convert(const ModelRequest& request, const ConvertConfig& convert, const RuntimeConfig& runtime);
void run_bench(ModelRequest request, const BenchConfig& bench, const RuntimeConfig& runtime);

}  // namespace vitslim::model
