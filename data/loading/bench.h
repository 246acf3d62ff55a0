// `vitslim bench-data`: input pipeline speed on a folder of images (every .jpg/.jpeg/.png below
// --data-path) or on WebDataset shards (--data-set wds: the same per-image work, images read from
// the shards by offset), one thread: read + decode, read + DeiT train transform, read + eval transform;
// then the threaded loader building train batches with --workers threads. Prints images/s and
// writes --json; scripts/bench_data.py puts the numbers beside timm/torchvision on Pillow-SIMD.
#pragma once

#include <cstdint>
#include <optional>

#include "data/settings.h"

namespace vitslim::data {

// `img_size`: output side of the transforms (unset: 224).
// What `vitslim bench-data` is given: the images, the rounds, and the output side (--img-size;
// unset: 224).
struct BenchDataInputs {
  const DataConfig& data;
  const BenchDataConfig& bench;
  std::optional<int64_t> img_size;
};

void run_bench_data(const BenchDataInputs& inputs);

}  // namespace vitslim::data
