// Implements the portable seeded shuffle (see rng.h).
#include "core/rng.h"

#include <numeric>
#include <utility>

namespace vitslim {

uint64_t uniform_below(uint64_t& state, uint64_t bound) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  while (true) {
    state = splitmix64(state);
    if (state < limit) return state % bound;
  }
}

std::vector<int64_t> shuffled_prefix(int64_t n, int64_t count, uint64_t seed) {
  std::vector<int64_t> all(static_cast<size_t>(n));
  std::iota(all.begin(), all.end(), 0);
  uint64_t state = seed;
  for (int64_t i = 0; i < count && i + 1 < n; ++i) {
    const auto j = i + static_cast<int64_t>(uniform_below(state, static_cast<uint64_t>(n - i)));
    std::swap(all[static_cast<size_t>(i)], all[static_cast<size_t>(j)]);
  }
  all.resize(static_cast<size_t>(count));
  return all;
}

}  // namespace vitslim
