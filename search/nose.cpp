// Implements the NOSE selection logic (see nose.h).
#include "search/nose.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>
#include <sstream>

#include "core/error.h"

namespace vitslim::search {

int64_t layers_for_ratio(double ratio, int64_t depth) {
  if (!(ratio > 0.0 && ratio < 1.0)) throw Error(cat("--ratios: ", ratio, " is not in (0, 1)"));
  return std::llround(ratio * static_cast<double>(depth));
}

std::string to_string(const LayerSet& set) {
  std::ostringstream out;
  out << "{";
  for (size_t i = 0; i < set.size(); ++i) out << (i ? "," : "") << set[i];
  out << "}";
  return out.str();
}

LayerSet with_layer(const LayerSet& set, int64_t layer) {
  LayerSet out = set;
  out.insert(std::upper_bound(out.begin(), out.end(), layer), layer);
  return out;
}

uint64_t mask_of(const LayerSet& set) {
  uint64_t mask = 0;
  for (int64_t b : set) mask |= uint64_t{1} << b;
  return mask;
}

LayerSet set_of_mask(uint64_t mask) {
  LayerSet set;
  for (int64_t b = 0; b < 64; ++b) {
    if (mask & (uint64_t{1} << b)) set.push_back(b);
  }
  return set;
}

std::vector<Evaluation> expand(const std::vector<LayerSet>& beams, const LayerSet& allowed) {
  std::vector<Evaluation> out;
  std::set<LayerSet> seen;
  for (const auto& beam : beams) {
    for (int64_t layer : allowed) {
      if (std::binary_search(beam.begin(), beam.end(), layer)) continue;
      LayerSet set = with_layer(beam, layer);
      if (seen.insert(set).second) out.push_back({set, beam});
    }
  }
  return out;
}

uint64_t binomial(int64_t n, int64_t k) {
  if (k < 0 || k > n) return 0;
  uint64_t r = 1;
  for (int64_t i = 1; i <= k; ++i) r = r * static_cast<uint64_t>(n - k + i) / static_cast<uint64_t>(i);
  return r;
}

std::vector<Evaluation> all_subsets(const LayerSet& allowed, int64_t count, int64_t limit) {
  const uint64_t total = binomial(static_cast<int64_t>(allowed.size()), count);
  if (total > static_cast<uint64_t>(limit)) {
    throw Error(cat("--exhaustive: ", total, " sets of ", count, " out of ", allowed.size(),
                    " layers exceed the limit of ", limit, "; use the greedy or beam search"));
  }
  std::vector<Evaluation> out;
  LayerSet current;
  std::function<void(size_t)> recurse = [&](size_t start) {
    if (static_cast<int64_t>(current.size()) == count) {
      out.push_back({current, {}});
      return;
    }
    for (size_t i = start; i < allowed.size(); ++i) {
      current.push_back(allowed[i]);
      recurse(i + 1);
      current.pop_back();
    }
  };
  recurse(0);
  return out;
}

std::vector<Scored> best(std::vector<Scored> scored, int64_t keep) {
  std::stable_sort(scored.begin(), scored.end(), [](const Scored& a, const Scored& b) {
    const double ta = std::fabs(a.te), tb = std::fabs(b.te);
    if (ta != tb) return ta < tb;
    return a.set < b.set;
  });
  if (static_cast<int64_t>(scored.size()) > keep) scored.resize(static_cast<size_t>(keep));
  return scored;
}

}  // namespace vitslim::search
