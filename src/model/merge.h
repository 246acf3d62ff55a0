// Folding the residual factors of removed attention into the weights (docs/method.md section 4).
// A Removed block doubles the residual stream (x -> 2x), so after k removed blocks the stream is
// 2^k times what the block weights were trained around. Folding moves every factor to the front:
// the embedding (patch projection, prefix tokens, pos_embed; norm_pre's affine output where the
// model has one) is scaled by 2^K (K removed blocks) and each later branch output (attn.proj,
// mlp.fc2; the LayerScale gamma where the model has one) by 2^(removed blocks after it), so the stream at
// every point is the original one times the doublings still ahead, and Removed blocks become
// x -> x: plain MLP blocks. A LayerNorm whose input is now s times larger gets eps * s^2, which
// makes it exact: LN_{eps s^2}(s x) = LN_eps(x). The scales follow from the removed set alone, so
// the flag vitslim.residual_folded = 1 is all a loader needs (scripts/vit_modes.py load_export).
#pragma once

#include "model/vit.h"

namespace vitslim::model {

// Folds in place and marks the model folded. Throws Error when a block is diluting (its factor is
// 2 - lambda, not a removal) or the model is already folded. A model without removed blocks is
// left unchanged (returns false).
bool fold_residual(VisionTransformer& model);

}  // namespace vitslim::model
