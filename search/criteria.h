// Per-layer criteria of `vitslim search --criterion` other than NOSE (docs/search.md,
// "Criteria side by side"). Each gives every attention layer an importance; the k least
// important are removed, so the selections of a criterion are nested. Scores are means over the
// calibration images and every token, on the model as loaded:
//   cosine   1 - cos(x, x + Attn(LN1 x)), the attention sublayer's input against its output with
//            the residual (LLM-Drop, He et al. 2024, "What Matters in Transformers?")
//   bi       1 - cos(x, Block(x)), ShortGPT's block influence (Men et al. 2024) of the whole block,
//            used here to choose which blocks lose their attention
//   entropy  sum_c ln sigma_c of the attention branch's output (the lowest entropy goes first)
//   random   a seeded random order; first: blocks 0, 1, 2, ...
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "model/vit.h"
#include "search/nose.h"
#include "search/settings.h"

namespace vitslim::search {

// Importance of every block's attention ([depth]; +inf where it is already removed).
// `shard(i)` gives calibration shard i ([B, Cin, H, W]); `seed` orders `random`.
std::vector<double> layer_scores(Criterion criterion, model::VisionTransformer& model, int64_t shards,
                                 const std::function<at::Tensor(int64_t)>& shard, uint64_t seed);

// The `count` least important of `allowed` (ties: the lower block), ascending.
LayerSet least_important(const std::vector<double>& scores, const LayerSet& allowed, int64_t count);

}  // namespace vitslim::search
