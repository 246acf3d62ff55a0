// `vitslim bench-data`: input pipeline speed on a folder of images (every .jpg/.jpeg/.png below
// --data-path), one thread: read + decode, read + DeiT train transform, read + eval transform;
// then the threaded loader building train batches with --workers threads. Prints images/s and
// writes --json; scripts/bench_data.py puts the numbers beside timm/torchvision on Pillow-SIMD.
#pragma once

#include "core/config.h"

namespace vitslim::data {

int run_bench_data_job(const Config& config);

}  // namespace vitslim::data
