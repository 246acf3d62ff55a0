// The training data of one rank: its share of every epoch (DistributedSampler, with repeated
// augmentation; ShardSampler's shard streams for WebDataset shards), the threaded loader that builds the epoch's
// micro-batches ahead (per-image DeiT augmentation or plain resizing), and mixup/cutmix per micro-batch. Every random
// draw is a function of (seed, epoch, sample position) or (seed, rank, micro-batch stream), so any number of loader
// threads and any resume give the same batches. On a GPU, batches cross PCIe as uint8 planes
// and are normalised, erased (their own seeded generator) and mixed there.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "core/shape.h"
#include "data/formats/dataset.h"
#include "data/loading/batch.h"
#include "data/loading/loader.h"
#include "data/loading/mixup.h"
#include "data/loading/sampler.h"
#include "data/settings.h"
#include "train/step.h"

namespace vitslim::train {

struct BatchSettings {
  DataConfig data;  // batch size, augmentation, workers, prefetch
  Normalisation norm;
  ModelShape shape;
  data::MixupOptions mixup;
  uint64_t seed = 0;
  int rank = 0, world_size = 1;
  int64_t repeated_aug = 1;
  bool pinned = false;  // pinned host memory (CUDA training)
  // Augmented batches cross as uint8 planes, normalised and erased where the model is (CUDA
  // training: a quarter of the bytes). The CPU keeps building float batches.
  bool planes = false;
};

class TrainBatches {
 public:
  TrainBatches(const data::Dataset& train_set, const BatchSettings& settings);
  int64_t samples_per_rank() const { return sampler_->samples_per_rank(); }
  // Starts the loader on `epoch` at micro-batch `first`, for `count` micro-batches.
  void start(int64_t epoch, int64_t first, int64_t count);
  // The next micro-batch on `device`, mixed there with random stream `stream` (global
  // micro-batch number); the seconds spent waiting for and moving it are added to `seconds`.
  MicroBatch next(uint64_t stream, c10::Device device, double& seconds);
  void stop() { loader_.reset(); }

 private:
  data::Batch make(const std::vector<int64_t>& order, int64_t epoch, int64_t batch_number) const;

  const data::Dataset& set_;
  BatchSettings s_;
  bool augment_ = false;
  int64_t threads_ = 0;  // loader threads
  bool inline_ = false;  // no loader thread: batches built in the training thread, over the intra-op threads
  bool planes_ = false;  // augmented batches as uint8 planes (BatchSettings::planes)
  data::TransformSettings augment_settings_;
  std::unique_ptr<data::PlaneNormaliser> plane_normaliser_;  // made on the first batch's device
  std::unique_ptr<data::Sampler> sampler_;
  std::unique_ptr<data::Loader> loader_;
};

}  // namespace vitslim::train
