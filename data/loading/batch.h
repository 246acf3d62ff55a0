// Turning dataset images into model input batches:
// - fixed-size datasets (Fashion-MNIST, CIFAR, synthetic) without augmentation: uint8
//   [B, C, H, W] -> float [B, Cm, S, S], scaled to [0,1], normalised per channel, grey replicated
//   to 3 channels (or colour averaged to 1) when the model wants it, resized bicubically
//   (torch) to the model's resolution when it differs;
// - image folders, evaluation: the per-image eval transform (resize, centre crop; transforms.h),
//   images spread over the intra-op threads;
// - training with --aug deit (any dataset): the per-image DeiT train transform, each image with
//   its own random stream (seeded from seed, epoch and sample position by the caller).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "core/shape.h"
#include "data/formats/dataset.h"
#include "data/image/transforms.h"
#include "data/settings.h"

namespace vitslim::data {

struct Batch {
  at::Tensor images;  // float [B, Cm, S, S]
  at::Tensor labels;  // int64 [B]
};

// Reads `indices` from `dataset` and prepares them for a model of `shape` (evaluation input).
Batch load_batch(const Dataset& dataset, const std::vector<int64_t>& indices, const std::vector<double>& mean,
                 const std::vector<double>& std, const ModelShape& shape);

// As load_batch, but an unreadable image is never replaced by the next one: under --bad-images
// skip its row stays zero and readable[b] is 0 (counted in the dataset's BadImageLog); under
// fail it is an Error naming the file. For outputs that name each input (predict).
Batch load_batch_in_order(const Dataset& dataset, const std::vector<int64_t>& indices, const std::vector<double>& mean,
                          const std::vector<double>& std, const ModelShape& shape, std::vector<uint8_t>& readable);

// The train transform settings of a run: --aug, --aa, --reprob, --hflip, --scale, --ratio,
// --interpolation, --jpeg-dct-scaling, with the run's normalisation and model input size.
TransformSettings train_settings(const DataConfig& config, const std::vector<double>& mean,
                                 const std::vector<double>& std, const ModelShape& shape);

// Augmented training batch: image i of `indices` gets the train transform with Rng(seeds[i]).
// Sequential (the loader threads run several of these at once), or with `parallel` the images
// spread over the intra-op threads (built in the training thread: no loader threads). The same
// values either way. `pinned` asks for page-locked memory.
Batch load_train_batch(const Dataset& dataset, const std::vector<int64_t>& indices, const std::vector<uint64_t>& seeds,
                       const TransformSettings& settings, bool pinned = false, bool parallel = false);

}  // namespace vitslim::data
