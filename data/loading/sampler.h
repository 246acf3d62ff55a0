// Distributed sampling for training (DeiT semantics): each epoch a permutation of the dataset
// seeded by (seed, epoch), optionally repeated-augmentation (every index `repeats` times in a
// row, so its copies land on different ranks and get different augmentations), padded to a
// multiple of the world size and dealt round-robin to the ranks. With repeats > 1 each rank
// keeps the first floor(N / world) indices, so an epoch is as long as without repetition.
// Everything is a pure function of (seed, epoch, rank, world): resuming at (epoch, position)
// is taking the same list from `position`.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/rng.h"

namespace vitslim::data {

class Dataset;

// What a rank visits each epoch; a pure function of (seed, epoch, rank, world).
class Sampler {
 public:
  virtual ~Sampler() = default;
  // Indices this rank visits in `epoch`, in order (samples_per_rank() of them).
  virtual std::vector<int64_t> epoch_indices(int64_t epoch) const = 0;
  virtual int64_t samples_per_rank() const = 0;
};

class DistributedSampler : public Sampler {
 public:
  DistributedSampler(int64_t dataset_size, int rank, int world_size, uint64_t seed, int64_t repeats = 1,
                     bool shuffle = true);
  std::vector<int64_t> epoch_indices(int64_t epoch) const override;
  int64_t samples_per_rank() const override { return per_rank_; }

 private:
  int64_t size_;
  int rank_, world_;
  uint64_t seed_;
  int64_t repeats_;
  bool shuffle_;
  int64_t per_rank_;
};

// WebDataset order: each epoch the shards are shuffled (seeded by seed and epoch) and dealt
// round-robin to the ranks; a rank streams its shards in that order, every sample `repeats`
// times in a row, through a shuffle buffer of `buffer` positions (webdataset's: fill it, then
// each incoming sample replaces a randomly drawn one that is emitted; 0 or 1: stream order),
// seeded by (seed, epoch, rank). Every rank visits ceil(N / world) samples (N / world with
// repeats, as DistributedSampler): a shorter stream wraps around, a longer one is cut. The
// buffer holds positions, not images, so it costs 8 bytes a slot; reads stay within the shards
// the buffer spans. `bounds`: each shard's first index, then N. Needs a shard per rank.
class ShardSampler : public Sampler {
 public:
  ShardSampler(std::vector<int64_t> bounds, int rank, int world_size, uint64_t seed, int64_t repeats, int64_t buffer);
  std::vector<int64_t> epoch_indices(int64_t epoch) const override;
  int64_t samples_per_rank() const override { return per_rank_; }

 private:
  std::vector<int64_t> bounds_;
  int rank_, world_;
  uint64_t seed_;
  int64_t repeats_, buffer_, per_rank_;
};

// ShardSampler for shard datasets, DistributedSampler (shuffled) for the others.
std::unique_ptr<Sampler> make_sampler(const Dataset& dataset, int rank, int world_size, uint64_t seed, int64_t repeats,
                                      int64_t shuffle_buffer);

}  // namespace vitslim::data
