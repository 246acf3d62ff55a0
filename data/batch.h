// Turning dataset images into model input: uint8 [B, C, H, W] -> float [B, Cm, S, S], scaled to
// [0,1], normalised per channel, grey replicated to 3 channels (or colour averaged to 1) when the
// model wants it, and resized bicubically to the model's resolution when it differs.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "core/config.h"
#include "data/dataset.h"

namespace vitslim::data {

struct Batch {
  at::Tensor images;  // float [B, Cm, S, S]
  at::Tensor labels;  // int64 [B]
};

// Reads `indices` from `dataset` and prepares them for a model of `shape`.
Batch load_batch(const Dataset& dataset, const std::vector<int64_t>& indices, const std::vector<double>& mean,
                 const std::vector<double>& std, const ModelShape& shape);

}  // namespace vitslim::data
