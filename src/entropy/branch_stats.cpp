// Implements the branch statistics (see branch_stats.h).
#include "entropy/branch_stats.h"

#include <torch/torch.h>

#include <cmath>

#include "core/cuda_device.h"
#include "data/loading/batch.h"

namespace vitslim::entropy {

BranchStats::BranchStats(int64_t depth, int64_t dim, int64_t classes)
    : attn(static_cast<size_t>(depth), ChannelStats(dim)),
      mlp(static_cast<size_t>(depth), ChannelStats(dim)),
      head(classes) {}

void BranchStats::add_taps(model::VisionTransformer& model) {
  const int64_t dim = model->shape().embed_dim;
  for (int64_t b = 0; b < model->depth(); ++b) {
    const auto& blk = model->block(b);
    if (blk->attn_tap().defined())
      attn[static_cast<size_t>(b)].add(blk->attn_tap().reshape({-1, dim}));  // [B*(N+1), C]
    mlp[static_cast<size_t>(b)].add(blk->mlp_tap().reshape({-1, dim}));
  }
}

std::vector<double> BranchStats::serialize() const {
  std::vector<double> out;
  for (const auto* group : {&attn, &mlp}) {
    for (const auto& s : *group) {
      auto v = s.serialize();
      out.insert(out.end(), v.begin(), v.end());
    }
  }
  auto h = head.serialize();
  out.insert(out.end(), h.begin(), h.end());
  return out;
}

void BranchStats::merge_serialized(const double* data) {
  for (auto* group : {&attn, &mlp}) {
    for (auto& s : *group) {
      s.merge(ChannelStats::deserialize(data, s.channels()));
      data += ChannelStats::serialized_size(s.channels());
    }
  }
  head.merge(ChannelStats::deserialize(data, head.channels()));
}

BranchEntropies branch_entropies(model::VisionTransformer& model, const data::Dataset& dataset,
                                 const std::vector<int64_t>& indices, const std::vector<double>& mean,
                                 const std::vector<double>& std, int64_t batch_size) {
  const ModelShape& shape = model->shape();
  BranchStats stats(shape.depth, shape.embed_dim, shape.output_dim());
  model->eval();
  model->set_taps(true);
  {
    c10::InferenceMode inference;
    for (size_t lo = 0; lo < indices.size(); lo += static_cast<size_t>(batch_size)) {
      const size_t hi = std::min(indices.size(), lo + static_cast<size_t>(batch_size));
      std::vector<int64_t> chunk(indices.begin() + static_cast<std::ptrdiff_t>(lo),
                                 indices.begin() + static_cast<std::ptrdiff_t>(hi));
      model->forward(cuda::to_device(data::load_batch(dataset, chunk, mean, std, shape).images, model->device()));
      stats.add_taps(model);
    }
  }
  model->set_taps(false);
  BranchEntropies out;
  for (int64_t b = 0; b < shape.depth; ++b) {
    const auto& a = stats.attn[static_cast<size_t>(b)];
    out.attn.push_back(a.count() ? a.entropy() : std::nan(""));
    out.mlp.push_back(stats.mlp[static_cast<size_t>(b)].entropy());
  }
  return out;
}

}  // namespace vitslim::entropy
