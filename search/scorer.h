// Scores NOSE candidate sets on one calibration shard: the head estimator's channel statistics
// with the set's attention layers skipped (identity residual). A prefix cache keeps, per shard,
// the input of every block for the set a candidate extends (its base); a candidate that differs
// from its base first at block d runs only blocks d..L-1 from the cached input of block d. The
// activations a candidate computes are kept too while the budget allows, so when it becomes the
// next step's base nothing is recomputed. The cache has a byte budget; a shard that does not fit is computed from the
// images (same numbers: the same operations on the same inputs). Every block run is counted.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

#include "entropy/channel_stats.h"
#include "model/vit.h"
#include "search/nose.h"
#include "search/settings.h"

namespace vitslim::search {

class PrefixScorer {
 public:
  // bf16: the blocks and the head run under bf16 autocast (the statistics stay float64).
  PrefixScorer(model::VisionTransformer model, Estimator estimator, int64_t cache_bytes, bool bf16 = false);

  // Statistics of the estimator over `images` ([B, Cin, H, W], shard `shard`) with `set` skipped;
  // `base` must be a subset of `set` (its activations are reused).
  entropy::ChannelStats evaluate(int64_t shard, const at::Tensor& images, const LayerSet& set, const LayerSet& base);

  int64_t block_forwards() const { return block_forwards_; }  // block runs, each over one shard
  int64_t channels() const;

 private:
  struct Entry {
    LayerSet base;
    std::vector<model::TokenStream> inputs;  // inputs[b]: input of block b; inputs[L]: after the last block
    // Per scored candidate (layer mask): its block inputs from its first differing block d + 1 on.
    std::map<uint64_t, std::pair<int64_t, std::vector<model::TokenStream>>> candidates;
    int64_t candidate_bytes = 0;
  };
  void set_modes(const LayerSet& skipped);
  entropy::ChannelStats stats_of(const model::TokenStream& tokens);  // [B, N', C] after the last block
  model::TokenStream run(model::TokenStream s, int64_t from, int64_t to);
  Entry* entry_for(int64_t shard, const at::Tensor& images, const LayerSet& base);
  int64_t boundary_bytes(const model::TokenStream& s) const;

  model::VisionTransformer model_;
  Estimator estimator_;
  int64_t cache_bytes_;
  bool bf16_;
  int64_t used_bytes_ = 0;
  int64_t block_forwards_ = 0;
  std::map<int64_t, Entry> cache_;
};

}  // namespace vitslim::search
