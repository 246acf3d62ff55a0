// Analytic cost of a VisionTransformer per image, counted as fvcore counts it (the convention of
// the DeiT and NOSE papers): one multiply-add per linear/conv/matmul MAC, the two attention
// matmuls (q k^T and attn v), and LayerNorm as 5 per element; GELU, softmax and residual adds
// are not counted (nor LayerScale's per-channel products, QuickGELU or pooling). DeiT-B: 17.58 G; with the attention of
// blocks {0,1,3,4,6} removed: 14.96 G. With token merging every block counts the tokens it really sees (model/tome.h
// token_schedule): attention on the tokens that enter it, the MLP and norm2 on those left after its merge, plus the
// merge's similarity matmul (A tokens x B tokens x metric width).
#pragma once

#include <cstdint>
#include <vector>

#include "core/shape.h"
#include "model/tome.h"

namespace vitslim::model {

struct Cost {
  int64_t params = 0;
  int64_t macs = 0;       // per image, norm_macs included
  int64_t norm_macs = 0;  // the LayerNorm part (what counters of matmuls alone, like torch's, leave out)
};

// removed: blocks without attention (x -> 2x), which also lose norm1; tm: token merging.
Cost analytic_cost(const ModelShape& shape, const std::vector<int64_t>& removed, const TokenMerging& tm = {});

}  // namespace vitslim::model
