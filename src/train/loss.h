// Training loss: cross-entropy against soft targets (mixup/cutmix + label smoothing, timm's
// SoftTargetCrossEntropy), mean over the batch, computed in float32 whatever the logits' dtype;
// optionally mixed with a distillation term from a frozen teacher's logits (train/distill.h):
//   soft: tau^2 KL(softmax(teacher / tau) || softmax(student / tau)), the KL summed over classes
//         and averaged over the batch (Hinton et al.; DeiT's "soft" divides the same sum by
//         batch x classes instead, which weakens it by the class count)
//   hard: cross-entropy against the teacher's arg-max class (DeiT's hard distillation)
// as (1 - alpha) CE + alpha KD.
#pragma once

#include <ATen/core/Tensor.h>

#include "train/settings.h"

namespace vitslim::train {

// logits [B, K], targets [B, K] (rows sum to 1) -> scalar.
at::Tensor soft_cross_entropy(const at::Tensor& logits, const at::Tensor& targets);

// student, teacher [B, K] logits, targets [B, K] -> scalar float32. With kind None (or an
// undefined `teacher`) this is soft_cross_entropy(student, targets).
at::Tensor training_loss(const at::Tensor& student, const at::Tensor& teacher, const at::Tensor& targets,
                         const DistillSettings& loss);

}  // namespace vitslim::train
