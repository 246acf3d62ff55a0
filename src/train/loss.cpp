// Implements the soft-target cross-entropy (see loss.h).
#include "train/loss.h"

#include <torch/torch.h>

namespace vitslim::train {

at::Tensor soft_cross_entropy(const at::Tensor& logits, const at::Tensor& targets) {
  return torch::sum(-targets * torch::log_softmax(logits.to(torch::kFloat32), -1), -1).mean();
}

}  // namespace vitslim::train
