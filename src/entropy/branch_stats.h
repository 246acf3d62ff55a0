// Channel statistics of every branch of a ViT over images: per block the attention-branch and
// MLP-branch outputs (the block's taps, rows = images x tokens) and the head logits; mergeable
// across shards and ranks (docs/method.md section 2). branch_entropies() is the one-process
// measurement the trainer traces every epoch.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "data/formats/dataset.h"
#include "entropy/channel_stats.h"
#include "model/vit.h"

namespace vitslim::entropy {

struct BranchStats {
  std::vector<ChannelStats> attn, mlp;  // [depth]
  ChannelStats head;

  BranchStats(int64_t depth, int64_t dim, int64_t classes);
  // Adds the model's taps after a forward pass with taps on (removed attention adds nothing).
  void add_taps(model::VisionTransformer& model);
  std::vector<double> serialize() const;
  void merge_serialized(const double* data);
};

// Entropy of every block's attention (NaN for removed attention) and MLP branch over `indices`
// of `dataset` in this process alone. Leaves the model in eval mode with taps off.
struct BranchEntropies {
  std::vector<double> attn, mlp;  // [depth]
};
BranchEntropies branch_entropies(model::VisionTransformer& model, const data::Dataset& dataset,
                                 const std::vector<int64_t>& indices, const std::vector<double>& mean,
                                 const std::vector<double>& std, int64_t batch_size);

}  // namespace vitslim::entropy
