// NOSE selection logic (docs/method.md section 3), free of torch and MPI: how removal ratios become
// layer counts, which candidate sets a greedy/beam step or an exhaustive search evaluates, and
// how scored sets are ranked (smallest |TE|, ties broken by the lexicographically smaller set).
// A layer set is a sorted vector of block indices.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vitslim::search {

using LayerSet = std::vector<int64_t>;

// round(ratio * depth), halves away from zero: 0.4 of 12 -> 5 (4.8), 0.25 of 12 -> 3, 0.3 of 12 -> 4.
int64_t layers_for_ratio(double ratio, int64_t depth);

std::string to_string(const LayerSet& set);
LayerSet with_layer(const LayerSet& set, int64_t layer);  // sorted insert
uint64_t mask_of(const LayerSet& set);                    // bit b set for block b (depth <= 64)
LayerSet set_of_mask(uint64_t mask);

// One set to score and the already-scored set whose cached activations it starts from.
struct Evaluation {
  LayerSet set;
  LayerSet base;
};

// Expansions of every beam set by one allowed layer not in it, each set once (first base wins).
std::vector<Evaluation> expand(const std::vector<LayerSet>& beams, const LayerSet& allowed);
// Every subset of `allowed` with `count` layers, base {} (throws when more than `limit`).
std::vector<Evaluation> all_subsets(const LayerSet& allowed, int64_t count, int64_t limit);
uint64_t binomial(int64_t n, int64_t k);

struct Scored {
  LayerSet set;
  double entropy = 0;  // H(G | set skipped)
  double te = 0;       // H(G | full) - H(G | set skipped)
};
// Ranks by |te|, then set order; returns the first `keep`.
std::vector<Scored> best(std::vector<Scored> scored, int64_t keep);

}  // namespace vitslim::search
