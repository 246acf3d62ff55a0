// Implements the analytic parameter and multiply-add count (see flops.h).
#include "model/flops.h"

#include <algorithm>

namespace vitslim::model {
namespace {
constexpr int64_t kLayerNormOpsPerElement = 5;  // fvcore: mean, var, normalise, scale, shift
}  // namespace

Cost analytic_cost(const ModelShape& s, const std::vector<int64_t>& removed, const TokenMerging& tm) {
  const int64_t C = s.embed_dim, N = s.num_tokens(), P = s.grid() * s.grid();
  const int64_t H = static_cast<int64_t>(C * s.mlp_ratio);
  const int64_t patch_in = s.in_chans * s.patch_size * s.patch_size;
  const int64_t ln_params = 2 * C;
  std::vector<bool> attention;
  for (int64_t b = 0; b < s.depth; ++b)
    attention.push_back(std::find(removed.begin(), removed.end(), b) == removed.end());
  const std::vector<BlockTokens> tokens = token_schedule(N, attention, tm);
  Cost c;
  // Patch embedding, CLS token, position embedding, head; the final norm sees what the last block leaves.
  c.params = patch_in * C + C + C + N * C + ln_params + C * s.num_classes + s.num_classes;
  c.macs = P * patch_in * C + kLayerNormOpsPerElement * tokens.back().out * C + C * s.num_classes;
  for (int64_t b = 0; b < s.depth; ++b) {
    const int64_t in = tokens[static_cast<size_t>(b)].in, out = tokens[static_cast<size_t>(b)].out;
    c.params += ln_params + C * H + H + H * C + C;                  // norm2, fc1, fc2
    c.macs += kLayerNormOpsPerElement * out * C + 2 * out * C * H;  // norm2, MLP
    if (attention[static_cast<size_t>(b)]) {
      c.params += ln_params + C * 3 * C + 3 * C + C * C + C;  // norm1, qkv, proj
      c.macs += kLayerNormOpsPerElement * in * C + in * C * 3 * C + 2 * in * in * C + in * C * C;
    }
    if (out != in) {  // ToMe's scores: A (even positions) x B (odd) over the metric's width
      const int64_t metric = attention[static_cast<size_t>(b)] ? C / s.num_heads : C;
      c.macs += ((in + 1) / 2) * (in / 2) * metric;
    }
  }
  return c;
}

}  // namespace vitslim::model
