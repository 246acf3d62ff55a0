// Implements the prefix-cached candidate scorer (see scorer.h).
#include "search/scorer.h"

#include <torch/torch.h>

#include <algorithm>

#include "core/error.h"
#include "model/autocast.h"

namespace vitslim::search {

PrefixScorer::PrefixScorer(model::VisionTransformer model, Estimator estimator, int64_t cache_bytes, bool bf16)
    : model_(std::move(model)), estimator_(estimator), cache_bytes_(cache_bytes), bf16_(bf16) {}

int64_t PrefixScorer::channels() const {
  return estimator_ == Estimator::Logits ? model_->shape().output_dim() : model_->shape().embed_dim;
}

void PrefixScorer::set_modes(const LayerSet& skipped) {
  for (int64_t b = 0; b < model_->depth(); ++b) {
    if (model::is_removed(model_->block(b)->mode())) continue;  // already gone (x -> 2x)
    const bool skip = std::binary_search(skipped.begin(), skipped.end(), b);
    model_->set_mode(b, skip ? model::AttentionMode::Skipped : model::AttentionMode::Full);
  }
}

model::TokenStream PrefixScorer::run(model::TokenStream s, int64_t from, int64_t to) {
  block_forwards_ += to - from;
  model::Bf16Autocast autocast(model_->device().type(), bf16_);
  return model_->run_blocks(std::move(s), from, to);
}

entropy::ChannelStats PrefixScorer::stats_of(const model::TokenStream& tokens) {
  torch::Tensor rows;  // [B, K] or [B, C]
  {
    model::Bf16Autocast autocast(model_->device().type(), bf16_);
    rows = estimator_ == Estimator::Logits ? model_->logits(tokens) : model_->pool(tokens);
  }
  entropy::ChannelStats stats(channels());
  stats.add(rows);
  return stats;
}

int64_t PrefixScorer::boundary_bytes(const model::TokenStream& s) const {
  const auto bytes = [](const at::Tensor& t) { return t.defined() ? t.numel() * t.element_size() : 0; };
  return static_cast<int64_t>(bytes(s.x) + bytes(s.size));
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
    Entry fresh;
    fresh.base = base;
    fresh.inputs.resize(static_cast<size_t>(L + 1));
    it = cache_.emplace(shard, std::move(fresh)).first;
    it->second.inputs[0] = {model_->embed(images), {}};
  } else if (it->second.base == base) {
    return &it->second;
  } else {
    // inputs[b] depends on the modes of blocks < b only: valid up to the first differing block.
    Entry& entry = it->second;
    const LayerSet& old = entry.base;
    LayerSet diff;
    std::set_symmetric_difference(old.begin(), old.end(), base.begin(), base.end(), std::back_inserter(diff));
    start = diff.front();
    auto kept = entry.candidates.find(mask_of(base));
    if (std::includes(base.begin(), base.end(), old.begin(), old.end()) && kept != entry.candidates.end()) {
      // The new base was scored as a candidate of the old one: its activations are all here.
      auto& [from, tensors] = kept->second;
      for (size_t i = 0; i < tensors.size(); ++i) entry.inputs[static_cast<size_t>(from) + 1 + i] = tensors[i];
      start = L;
    }
    used_bytes_ -= entry.candidate_bytes;
    entry.candidates.clear();
    entry.candidate_bytes = 0;
  }
  Entry& entry = it->second;
  entry.base = base;
  set_modes(base);
  model::TokenStream x = entry.inputs[static_cast<size_t>(start)];
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
  if (!entry) return stats_of(run({model_->embed(images), {}}, 0, L));  // uncached: all blocks
  LayerSet added;
  std::set_difference(set.begin(), set.end(), base.begin(), base.end(), std::back_inserter(added));
  if (added.empty()) return stats_of(entry->inputs[static_cast<size_t>(L)]);
  const int64_t d = added.front();
  model::TokenStream x = entry->inputs[static_cast<size_t>(d)];
  const int64_t keep_bytes = (L - d) * boundary_bytes(x);
  const bool keep = used_bytes_ + keep_bytes <= cache_bytes_;
  std::vector<model::TokenStream> outputs;
  for (int64_t b = d; b < L; ++b) {
    x = run(x, b, b + 1);
    if (keep) outputs.push_back(x);
  }
  if (keep) {
    used_bytes_ += keep_bytes;
    entry->candidate_bytes += keep_bytes;
    entry->candidates[mask_of(set)] = {d, std::move(outputs)};
  }
  return stats_of(x);
}

}  // namespace vitslim::search
