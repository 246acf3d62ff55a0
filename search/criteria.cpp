// Implements the per-layer criteria (see criteria.h).
#include "search/criteria.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <numeric>

#include "data/loading/sampler.h"
#include "entropy/channel_stats.h"

namespace vitslim::search {

namespace {

constexpr uint64_t kRandomSalt = 0x63726974ULL;  // the random criterion's order

// Sums over every calibration token of cos(x, x + Attn(LN1 x)), cos(x, Block(x)), and the
// attention branch's channel statistics, per block.
struct Sums {
  std::vector<double> cos_attn, cos_block;
  std::vector<entropy::ChannelStats> attn;
  int64_t tokens = 0;
};

Sums measure(model::VisionTransformer& model, int64_t shards, const std::function<at::Tensor(int64_t)>& shard) {
  torch::NoGradGuard no_grad;
  model->eval();
  const int64_t depth = model->depth(), dim = model->shape().embed_dim;
  Sums s{std::vector<double>(static_cast<size_t>(depth)), std::vector<double>(static_cast<size_t>(depth)),
         std::vector<entropy::ChannelStats>(static_cast<size_t>(depth), entropy::ChannelStats(dim)), 0};
  for (int64_t i = 0; i < shards; ++i) {
    at::Tensor x = model->embed(shard(i));  // [B, N+1, C]
    s.tokens += x.size(0) * x.size(1);
    for (int64_t b = 0; b < depth; ++b) {
      auto& block = model->block(b);
      const at::Tensor next = block->forward(x);  // [B, N+1, C]
      s.cos_block[static_cast<size_t>(b)] += torch::cosine_similarity(x, next, -1).sum().item<double>();
      if (!model::is_removed(block->mode())) {
        const at::Tensor a = block->attn->forward(block->norm1->forward(x));  // [B, N+1, C]
        s.cos_attn[static_cast<size_t>(b)] += torch::cosine_similarity(x, x + a, -1).sum().item<double>();
        s.attn[static_cast<size_t>(b)].add(a.reshape({-1, dim}));  // rows = images x tokens
      }
      x = next;
    }
  }
  return s;
}

}  // namespace

std::vector<double> layer_scores(Criterion criterion, model::VisionTransformer& model, int64_t shards,
                                 const std::function<at::Tensor(int64_t)>& shard, uint64_t seed) {
  const int64_t depth = model->depth();
  std::vector<double> scores(static_cast<size_t>(depth));
  if (criterion == Criterion::First) {
    std::iota(scores.begin(), scores.end(), 0.0);
  } else if (criterion == Criterion::Random) {
    const auto order = shuffled_prefix(depth, depth, mix_seed(seed, kRandomSalt));
    for (int64_t rank = 0; rank < depth; ++rank) scores[static_cast<size_t>(order[static_cast<size_t>(rank)])] = rank;
  } else {
    const Sums s = measure(model, shards, shard);
    const auto n = static_cast<double>(s.tokens);
    for (size_t b = 0; b < scores.size(); ++b) {
      if (criterion == Criterion::Cosine) scores[b] = 1.0 - s.cos_attn[b] / n;
      if (criterion == Criterion::Bi) scores[b] = 1.0 - s.cos_block[b] / n;
      if (criterion == Criterion::Entropy) scores[b] = s.attn[b].entropy();
    }
  }
  for (int64_t b = 0; b < depth; ++b) {
    if (model::is_removed(model->block(b)->mode())) {
      scores[static_cast<size_t>(b)] = std::numeric_limits<double>::infinity();
    }
  }
  return scores;
}

LayerSet least_important(const std::vector<double>& scores, const LayerSet& allowed, int64_t count) {
  LayerSet order = allowed;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return scores[static_cast<size_t>(a)] < scores[static_cast<size_t>(b)];
  });
  order.resize(static_cast<size_t>(std::min<int64_t>(count, static_cast<int64_t>(order.size()))));
  std::sort(order.begin(), order.end());
  return order;
}

}  // namespace vitslim::search
