// Implements the prefix-cached candidate scorer (see scorer.h).
#include "search/scorer.h"

#include <torch/torch.h>

#include <algorithm>

#include "core/error.h"

namespace vitslim::search {

Estimator parse_estimator(const std::string& name) {
  if (name == "logits") return Estimator::Logits;
  if (name == "cls") return Estimator::ClsFeature;
  throw Error(cat("--estimator must be logits or cls, got '", name, "'"));
}

PrefixScorer::PrefixScorer(model::VisionTransformer model, Estimator estimator, int64_t cache_bytes)
    : model_(std::move(model)), estimator_(estimator), cache_bytes_(cache_bytes) {}

int64_t PrefixScorer::channels() const {
  return estimator_ == Estimator::Logits ? model_->shape().num_classes : model_->shape().embed_dim;
}

void PrefixScorer::set_modes(const LayerSet& skipped) {
  for (int64_t b = 0; b < model_->depth(); ++b) {
    const bool skip = std::binary_search(skipped.begin(), skipped.end(), b);
    model_->set_mode(b, skip ? model::AttentionMode::Skipped : model::AttentionMode::Full);
  }
}

at::Tensor PrefixScorer::run(at::Tensor x, int64_t from, int64_t to) {
  block_forwards_ += to - from;
  return model_->run_blocks(std::move(x), from, to);
}

entropy::ChannelStats PrefixScorer::stats_of(const at::Tensor& tokens) {
  auto feature = model_->cls_feature(tokens);                                      // [B, C]
  auto rows = estimator_ == Estimator::Logits ? model_->head(feature) : feature;  // [B, K] or [B, C]
  entropy::ChannelStats stats(channels());
  stats.add(rows);
  return stats;
}

PrefixScorer::Entry* PrefixScorer::entry_for(int64_t shard, const at::Tensor& images, const LayerSet& base) {
  const int64_t L = model_->depth();
  auto it = cache_.find(shard);
  int64_t start = 0;  // first block whose input must be recomputed
  if (it == cache_.end()) {
    const int64_t bytes = (L + 1) * images.size(0) * model_->shape().num_tokens() * model_->shape().embed_dim *
                          static_cast<int64_t>(sizeof(float));
    if (used_bytes_ + bytes > cache_bytes_) return nullptr;
    used_bytes_ += bytes;
    it = cache_.emplace(shard, Entry{base, std::vector<at::Tensor>(static_cast<size_t>(L + 1))}).first;
    it->second.inputs[0] = model_->embed(images);
  } else if (it->second.base == base) {
    return &it->second;
  } else {
    // inputs[b] depends on the modes of blocks < b only: valid up to the first differing block.
    const LayerSet& old = it->second.base;
    LayerSet diff;
    std::set_symmetric_difference(old.begin(), old.end(), base.begin(), base.end(), std::back_inserter(diff));
    start = diff.front();
  }
  Entry& entry = it->second;
  entry.base = base;
  set_modes(base);
  at::Tensor x = entry.inputs[static_cast<size_t>(start)];
  for (int64_t b = start; b < L; ++b) {
    x = run(x, b, b + 1);
    entry.inputs[static_cast<size_t>(b + 1)] = x;
  }
  return &entry;
}

entropy::ChannelStats PrefixScorer::evaluate(int64_t shard, const at::Tensor& images, const LayerSet& set,
                                            const LayerSet& base) {
  c10::InferenceMode inference;
  const int64_t L = model_->depth();
  if (!std::includes(set.begin(), set.end(), base.begin(), base.end())) {
    throw Error(cat("candidate ", to_string(set), " does not extend its base ", to_string(base)));
  }
  Entry* entry = cache_bytes_ > 0 ? entry_for(shard, images, base) : nullptr;
  set_modes(set);
  if (!entry) return stats_of(run(model_->embed(images), 0, L));  // uncached: all blocks
  LayerSet added;
  std::set_difference(set.begin(), set.end(), base.begin(), base.end(), std::back_inserter(added));
  if (added.empty()) return stats_of(entry->inputs[static_cast<size_t>(L)]);
  const int64_t d = added.front();
  return stats_of(run(entry->inputs[static_cast<size_t>(d)], d, L));
}

}  // namespace vitslim::search
