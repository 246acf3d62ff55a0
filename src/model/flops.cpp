// Implements the analytic parameter and multiply-add count (see flops.h).
#include "model/flops.h"

#include <algorithm>

namespace vitslim::model {
namespace {
constexpr int64_t kLayerNormOpsPerElement = 5;  // fvcore: mean, var, normalise, scale, shift
}  // namespace

Cost analytic_cost(const ModelShape& s, const std::vector<int64_t>& removed) {
  const int64_t C = s.embed_dim, N = s.num_tokens(), P = s.grid() * s.grid();
  const int64_t H = static_cast<int64_t>(C * s.mlp_ratio);
  const int64_t patch_in = s.in_chans * s.patch_size * s.patch_size;
  const int64_t ln_params = 2 * C;
  Cost c;
  // Patch embedding, CLS token, position embedding, final norm, head.
  c.params = patch_in * C + C + C + N * C + ln_params + C * s.num_classes + s.num_classes;
  c.macs = P * patch_in * C + kLayerNormOpsPerElement * N * C + C * s.num_classes;
  for (int64_t b = 0; b < s.depth; ++b) {
    const bool attention = std::find(removed.begin(), removed.end(), b) == removed.end();
    c.params += ln_params + C * H + H + H * C + C;              // norm2, fc1, fc2
    c.macs += kLayerNormOpsPerElement * N * C + 2 * N * C * H;  // norm2, MLP
    if (attention) {
      c.params += ln_params + C * 3 * C + 3 * C + C * C + C;  // norm1, qkv, proj
      c.macs += kLayerNormOpsPerElement * N * C + N * C * 3 * C + 2 * N * N * C + N * C * C;
    }
  }
  return c;
}

}  // namespace vitslim::model
