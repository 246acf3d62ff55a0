// `vitslim convert` (import a checkpoint, export timm-named .safetensors) and `vitslim bench`
// (forward images/s of a model on random input, median over timed iterations).
#pragma once

#include "core/config.h"

namespace vitslim::model {

int run_convert_job(const Config& config);
int run_bench_job(const Config& config);

}  // namespace vitslim::model
