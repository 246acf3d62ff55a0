// Implements the distributed / repeated-augmentation sampler and the portable seeded shuffles
// (see sampler.h).
#include "data/sampler.h"

#include <numeric>
#include <utility>

#include "core/error.h"

namespace vitslim::data {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
  return splitmix64(splitmix64(splitmix64(splitmix64(a) ^ b) ^ c) ^ d);
}

namespace {
// Uniform integer in [0, bound) without modulo bias: draws above the largest multiple of bound
// are rejected.
uint64_t uniform_below(uint64_t& state, uint64_t bound) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  while (true) {
    state = splitmix64(state);
    if (state < limit) return state % bound;
  }
}
}  // namespace

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

DistributedSampler::DistributedSampler(int64_t dataset_size, int rank, int world_size, uint64_t seed, int64_t repeats,
                                       bool shuffle)
    : size_(dataset_size), rank_(rank), world_(world_size), seed_(seed), repeats_(repeats), shuffle_(shuffle) {
  if (dataset_size <= 0) throw Error("sampler: the dataset is empty");
  if (world_size <= 0 || rank < 0 || rank >= world_size)
    throw Error(cat("sampler: bad rank ", rank, " of ", world_size));
  if (repeats <= 0) throw Error("sampler: repeats must be positive");
  // Without repetition: ceil(N / world) with padding (every sample seen); with it, as DeiT's
  // RASampler, floor(N / world) so an epoch costs what it would without repetition.
  per_rank_ = repeats == 1 ? (size_ + world_ - 1) / world_ : size_ / world_;
  if (per_rank_ == 0) throw Error(cat("sampler: ", size_, " images cannot feed ", world_size, " ranks"));
}

std::vector<int64_t> DistributedSampler::epoch_indices(int64_t epoch) const {
  std::vector<int64_t> order;
  if (shuffle_) {
    order = shuffled_prefix(size_, size_, mix_seed(seed_, static_cast<uint64_t>(epoch)));
  } else {
    order.resize(static_cast<size_t>(size_));
    std::iota(order.begin(), order.end(), 0);
  }
  const int64_t expanded = size_ * repeats_;
  const int64_t padded = (expanded + world_ - 1) / world_ * world_;
  std::vector<int64_t> mine;
  mine.reserve(static_cast<size_t>(per_rank_));
  for (int64_t k = rank_; k < padded && static_cast<int64_t>(mine.size()) < per_rank_; k += world_) {
    const int64_t e = k % expanded;  // padding wraps around to the start
    mine.push_back(order[static_cast<size_t>(e / repeats_)]);
  }
  return mine;
}

}  // namespace vitslim::data
