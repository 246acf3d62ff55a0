// Training loss: cross-entropy against soft targets (mixup/cutmix + label smoothing, timm's
// SoftTargetCrossEntropy), mean over the batch, computed in float32 whatever the logits' dtype.
#pragma once

#include <ATen/core/Tensor.h>

namespace vitslim::train {

// logits [B, K], targets [B, K] (rows sum to 1) -> scalar.
at::Tensor soft_cross_entropy(const at::Tensor& logits, const at::Tensor& targets);

}  // namespace vitslim::train
