// Analytic cost of a VisionTransformer per image, counted as fvcore counts it (the convention of
// the DeiT and NOSE papers): one multiply-add per linear/conv/matmul MAC, the two attention
// matmuls (q k^T and attn v), and LayerNorm as 5 per element; GELU, softmax and residual adds
// are not counted. DeiT-B: 17.58 G; with the attention of blocks {0,1,3,4,6} removed: 14.96 G.
#pragma once

#include <cstdint>
#include <vector>

#include "core/shape.h"

namespace vitslim::model {

struct Cost {
  int64_t params = 0;
  int64_t macs = 0;  // per image
};

// removed: blocks without attention (x -> 2x), which also lose norm1.
Cost analytic_cost(const ModelShape& shape, const std::vector<int64_t>& removed);

}  // namespace vitslim::model
