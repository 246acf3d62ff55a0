// Implements the residual-factor folding (see merge.h).
#include "model/merge.h"

#include <torch/torch.h>

#include <cmath>

#include "core/error.h"

namespace vitslim::model {

bool fold_residual(VisionTransformer& model) {
  if (model->residual_folded()) throw Error("the residual factors of this model are already folded");
  const int64_t depth = model->depth();
  std::vector<int64_t> removed_after(static_cast<size_t>(depth + 1), 0);  // removed blocks with index >= b
  for (int64_t b = depth - 1; b >= 0; --b) {
    const auto mode = model->block(b)->mode();
    if (!is_full(mode) && !is_removed(mode)) {
      throw Error(cat("block ", b, " is ", to_string(mode), " (lambda ", model->block(b)->lambda(),
                      "): only full and removed blocks can be folded"));
    }
    removed_after[static_cast<size_t>(b)] = removed_after[static_cast<size_t>(b + 1)] + (is_removed(mode) ? 1 : 0);
  }
  const int64_t total = removed_after[0];
  if (total == 0) return false;
  torch::NoGradGuard no_grad;
  const double embed_scale = std::ldexp(1.0, static_cast<int>(total));
  auto scale = [](const torch::Tensor& t, double by) {
    if (t.defined()) t.mul_(by);
  };
  if (model->norm_pre) {  // the embedding leaves through norm_pre: scale its affine output
    scale(model->norm_pre->weight, embed_scale);
    scale(model->norm_pre->bias, embed_scale);
  } else {
    for (const auto& t : {model->patch_embed->proj->weight, model->patch_embed->proj->bias, model->cls_token,
                          model->reg_token, model->dist_token, model->pos_embed}) {
      scale(t, embed_scale);
    }
  }
  for (int64_t b = 0; b < depth; ++b) {
    auto& block = model->block(b);
    // Doublings still ahead after this block's own (a removed block's doubling precedes its MLP).
    const double s = std::ldexp(1.0, static_cast<int>(removed_after[static_cast<size_t>(b + 1)]));
    if (s == 1.0) continue;
    // LayerScale models scale gamma (C values) instead of the projection (C x C + C).
    if (is_full(block->mode())) {
      if (block->ls1) {
        scale(block->ls1->gamma, s);
      } else {
        scale(block->attn->proj->weight, s);
        scale(block->attn->proj->bias, s);
      }
    }
    if (block->ls2) {
      scale(block->ls2->gamma, s);
    } else {
      scale(block->mlp->fc2->weight, s);
      scale(block->mlp->fc2->bias, s);
    }
  }
  model->set_residual_folded(true);
  return true;
}

}  // namespace vitslim::model
