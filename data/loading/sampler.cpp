// Implements the distributed / repeated-augmentation sampler (see sampler.h).
#include "data/loading/sampler.h"

#include <numeric>
#include <utility>

#include "core/error.h"
#include "core/rng.h"
#include "data/formats/dataset.h"

namespace vitslim::data {

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

ShardSampler::ShardSampler(std::vector<int64_t> bounds, int rank, int world_size, uint64_t seed, int64_t repeats,
                           int64_t buffer)
    : bounds_(std::move(bounds)), rank_(rank), world_(world_size), seed_(seed), repeats_(repeats), buffer_(buffer) {
  const int64_t shards = static_cast<int64_t>(bounds_.size()) - 1;
  if (shards < world_size) {
    throw Error(cat("--data-set wds: ", shards, " shard(s) cannot feed ", world_size,
                    " ranks (every rank reads whole shards); write smaller shards (make-shards --shard-size)"));
  }
  if (repeats <= 0) throw Error("sampler: repeats must be positive");
  const int64_t n = bounds_.back();
  per_rank_ = repeats == 1 ? (n + world_ - 1) / world_ : n / world_;
  if (per_rank_ == 0) throw Error(cat("sampler: ", n, " images cannot feed ", world_size, " ranks"));
}

std::vector<int64_t> ShardSampler::epoch_indices(int64_t epoch) const {
  constexpr uint64_t kSaltBuffer = 0x627566ULL;
  const int64_t shards = static_cast<int64_t>(bounds_.size()) - 1;
  const auto order = shuffled_prefix(shards, shards, mix_seed(seed_, static_cast<uint64_t>(epoch)));
  std::vector<int64_t> stream;
  for (int64_t k = rank_; k < shards; k += world_) {
    const auto s = static_cast<size_t>(order[static_cast<size_t>(k)]);
    for (int64_t i = bounds_[s]; i < bounds_[s + 1]; ++i) stream.insert(stream.end(), static_cast<size_t>(repeats_), i);
  }
  std::vector<int64_t> out;
  if (buffer_ <= 1) {
    out = std::move(stream);
  } else {
    out.reserve(stream.size());
    uint64_t state = mix_seed(seed_ ^ kSaltBuffer, static_cast<uint64_t>(epoch), static_cast<uint64_t>(rank_));
    std::vector<int64_t> held;
    held.reserve(static_cast<size_t>(std::min<int64_t>(buffer_, static_cast<int64_t>(stream.size()))));
    for (const int64_t i : stream) {
      if (static_cast<int64_t>(held.size()) < buffer_) {
        held.push_back(i);
        continue;
      }
      const auto j = static_cast<size_t>(uniform_below(state, held.size()));
      out.push_back(held[j]);
      held[j] = i;
    }
    while (!held.empty()) {  // drain in random order
      const auto j = static_cast<size_t>(uniform_below(state, held.size()));
      out.push_back(held[j]);
      held[j] = held.back();
      held.pop_back();
    }
  }
  std::vector<int64_t> mine(static_cast<size_t>(per_rank_));
  for (int64_t k = 0; k < per_rank_; ++k) mine[static_cast<size_t>(k)] = out[static_cast<size_t>(k) % out.size()];
  return mine;
}

std::unique_ptr<Sampler> make_sampler(const Dataset& dataset, int rank, int world_size, uint64_t seed, int64_t repeats,
                                      int64_t shuffle_buffer) {
  auto bounds = dataset.shard_bounds();
  if (!bounds.empty()) {
    return std::make_unique<ShardSampler>(std::move(bounds), rank, world_size, seed, repeats, shuffle_buffer);
  }
  return std::make_unique<DistributedSampler>(dataset.size(), rank, world_size, seed, repeats);
}

}  // namespace vitslim::data
