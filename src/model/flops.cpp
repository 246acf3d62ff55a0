// Implements the analytic parameter and multiply-add count (see flops.h).
#include "model/flops.h"

#include <algorithm>

namespace vitslim::model {
namespace {
constexpr int64_t kLayerNormOpsPerElement = 5;  // fvcore: mean, var, normalise, scale, shift

// Parameters outside the blocks: embedding, prefix tokens, norms and heads.
int64_t stem_and_head_params(const ModelShape& s) {
  const int64_t C = s.embed_dim, K = s.num_classes, ln = 2 * C;
  int64_t p = s.in_chans * s.patch_size * s.patch_size * C + (s.pre_norm ? 0 : C);  // patch projection
  p += (s.class_token ? C : 0) + (s.distilled ? C : 0) + s.reg_tokens * C + s.pos_embed_tokens() * C;
  p += (s.pre_norm ? ln : 0) + ln;  // norm_pre; the final norm or fc_norm
  if (K > 0) p += (s.distilled ? 2 : 1) * (s.pooled_dim() * K + K);
  return p;
}

}  // namespace

Cost analytic_cost(const ModelShape& s, const std::vector<int64_t>& removed, const TokenMerging& tm) {
  const int64_t C = s.embed_dim, N = s.num_tokens(), P = s.grid() * s.grid(), K = s.num_classes;
  const int64_t H = static_cast<int64_t>(static_cast<double>(C) * s.mlp_ratio);
  const int64_t D = C / s.num_heads;
  const int64_t patch_in = s.in_chans * s.patch_size * s.patch_size;
  const int64_t ln_params = 2 * C, ls_params = s.layer_scale ? C : 0;
  std::vector<bool> attention;
  for (int64_t b = 0; b < s.depth; ++b)
    attention.push_back(std::find(removed.begin(), removed.end(), b) == removed.end());
  const std::vector<BlockTokens> tokens = token_schedule(N, s.num_prefix_tokens(), attention, tm);
  Cost c;
  c.params = stem_and_head_params(s);
  c.macs = P * patch_in * C + (K > 0 ? (s.distilled ? 2 : 1) * s.pooled_dim() * K : 0);
  // norm_pre on every token; the final norm on every token the last block leaves, or fc_norm on
  // the pooled vector.
  c.norm_macs = (s.pre_norm ? kLayerNormOpsPerElement * N * C : 0) +
                kLayerNormOpsPerElement * (s.fc_norm ? 1 : tokens.back().out) * C;
  for (int64_t b = 0; b < s.depth; ++b) {
    const int64_t in = tokens[static_cast<size_t>(b)].in, out = tokens[static_cast<size_t>(b)].out;
    c.params += ln_params + C * H + H + H * C + C + ls_params;  // norm2, fc1, fc2, ls2
    c.macs += 2 * out * C * H;                                  // MLP
    c.norm_macs += kLayerNormOpsPerElement * out * C;           // norm2
    if (attention[static_cast<size_t>(b)]) {
      // norm1, qkv, proj, ls1, q_norm + k_norm (per head: 2 D each)
      c.params += ln_params + C * 3 * C + (s.qkv_bias ? 3 * C : 0) + C * C + C + ls_params + (s.qk_norm ? 4 * D : 0);
      c.macs += in * C * 3 * C + 2 * in * in * C + in * C * C;
      c.norm_macs += kLayerNormOpsPerElement * in * C * (s.qk_norm ? 3 : 1);  // norm1 (+ q and k over all heads)
    }
    if (out != in) {  // ToMe's scores: A (even positions) x B (odd) over the metric's width
      const int64_t metric = attention[static_cast<size_t>(b)] ? D : C;
      c.macs += ((in + 1) / 2) * (in / 2) * metric;
    }
  }
  c.macs += c.norm_macs;
  return c;
}

}  // namespace vitslim::model
