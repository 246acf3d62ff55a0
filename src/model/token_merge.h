// The tensor side of token merging (ToMe; docs/method.md section 7): the token stream that flows
// between blocks with its per-token sizes, bipartite soft matching and the size-weighted merge.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace vitslim::model {

// The tokens between blocks and, once a block merged some, how many patches each stands for.
struct TokenStream {
  at::Tensor x;     // [B, N, C]; prefix tokens (class, distillation, registers) first
  at::Tensor size;  // [B, N, 1]; undefined while every token is one patch (nothing merged yet)
};

// The attention-logit bias of proportional attention: log(size) per key, [B, 1, 1, N]; undefined
// while nothing was merged (the bias would be 0).
at::Tensor size_bias(const TokenStream& s);

// Bipartite soft matching: tokens alternate between sets A (even positions) and B (odd); each A
// token's most similar B token by cosine of `metric` [B, N, D]; the r A tokens with the highest
// similarity merge into their B partners by a size-weighted average. The first `prefix` tokens
// neither merge nor receive. Result: [B, N - r, C] (the prefix tokens in their order, then the
// unmerged A tokens in theirs, then B), with the summed sizes. r = 0 returns `s` as it is.
// Requires r <= max_merges(N, prefix) (model/tome.h). With one prefix token this is ToMe's order.
TokenStream merge_tokens(const TokenStream& s, const at::Tensor& metric, int64_t r, int64_t prefix);

}  // namespace vitslim::model
