// Tests the prefix-cached NOSE scorer (search/scorer.h): every candidate's statistics are the same
// with no cache, with a cache that holds everything (hits reuse cached block inputs) and with a
// budget too small for any shard (overflow: computed from the images), and the cache saves work.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

#include "core/options.h"
#include "model/checkpoint.h"
#include "search/ledger.h"
#include "search/scorer.h"

namespace s = vitslim::search;

namespace {

vitslim::model::VisionTransformer test_model() {
  vitslim::ModelRequest r;
  r.preset = "vit_test";
  auto model = vitslim::model::build_model(r, 3);
  model->eval();
  return model;
}

struct Scores {
  std::vector<std::vector<double>> stats;  // per (step, shard): serialized statistics
  int64_t block_forwards = 0;
};

// A greedy-like sequence: the full model, then sets growing by one layer from their base, each on
// two shards, in the order the search evaluates them.
Scores score(int64_t cache_bytes) {
  s::PrefixScorer scorer(test_model(), vitslim::Estimator::Logits, cache_bytes);
  torch::manual_seed(7);
  const std::vector<torch::Tensor> shards = {torch::randn({4, 3, 32, 32}), torch::randn({3, 3, 32, 32})};
  const std::vector<std::pair<s::LayerSet, s::LayerSet>> steps = {
      {{}, {}}, {{1}, {}}, {{2}, {}}, {{0}, {}}, {{1, 2}, {1}}, {{0, 1}, {1}}, {{0, 1, 2}, {0, 1}}};
  Scores out;
  for (const auto& [set, base] : steps) {
    for (size_t k = 0; k < shards.size(); ++k) {
      out.stats.push_back(scorer.evaluate(static_cast<int64_t>(k), shards[k], set, base).serialize());
    }
  }
  out.block_forwards = scorer.block_forwards();
  return out;
}

}  // namespace

TEST(Scorer, CacheHitsAndOverflowGiveTheNumbersOfNoCache) {
  const Scores none = score(0);
  const Scores all = score(int64_t{1} << 30);
  const Scores tiny = score(1024);  // smaller than one shard's activations
  ASSERT_EQ(none.stats.size(), all.stats.size());
  for (size_t i = 0; i < none.stats.size(); ++i) {
    EXPECT_EQ(all.stats[i], none.stats[i]) << "cache hit, item " << i;
    EXPECT_EQ(tiny.stats[i], none.stats[i]) << "cache overflow, item " << i;
  }
  EXPECT_LT(all.block_forwards, none.block_forwards);  // the cache saved block runs
  EXPECT_EQ(tiny.block_forwards, none.block_forwards);
}

// A search resumes only from items scored under the same settings: every data option (crop-pct,
// interpolation, exact mean/std, ...), the seed and the estimator change the fingerprint.
TEST(Ledger, FingerprintCoversEverySettingThatCanChangeAScore) {
  auto model = test_model();
  const s::SearchInputs base;
  const std::string reference = s::fingerprint(model, base);
  EXPECT_EQ(s::fingerprint(model, base), reference);
  vitslim::Options declared;
  vitslim::DataConfig probe;
  probe.declare(declared);
  for (const auto& option : declared.all()) {
    for (const auto& sample : option.samples()) {
      s::SearchInputs changed = base;
      vitslim::Options o;
      changed.data.declare(o);
      try {
        o.find(option.flag)->parse(sample);
      } catch (const vitslim::Error&) {
        continue;  // a sample outside this option's range
      }
      if (o.find(option.flag)->text() == declared.find(option.flag)->text()) continue;  // the default itself
      EXPECT_NE(s::fingerprint(model, changed), reference) << "--" << option.flag << " " << sample;
    }
  }
  s::SearchInputs mean = base;
  mean.data.mean = {0.2860400000001};
  s::SearchInputs mean2 = base;
  mean2.data.mean = {0.2860400000002};
  EXPECT_NE(s::fingerprint(model, mean), s::fingerprint(model, mean2));
  s::SearchInputs seed = base;
  seed.runtime.seed = 7;
  EXPECT_NE(s::fingerprint(model, seed), reference);
  s::SearchInputs estimator = base;
  estimator.search.estimator = vitslim::Estimator::Pooled;
  EXPECT_NE(s::fingerprint(model, estimator), reference);
}
