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

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <vector>

#include "core/shape.h"
#include "data/formats/dataset.h"
#include "data/image/transforms.h"
#include "data/settings.h"

namespace vitslim::data {

struct Batch {
  at::Tensor images;  // float [B, Cm, S, S]; uint8 [B, Cm, S, S] planes when built for a device (TrainPixels::Planes)
  at::Tensor labels;  // int64 [B]
  at::Tensor erase;   // int64 [B, 4]: each image's rectangle to erase (x, y, w, h; w == 0: none), planes only
};

// Reads `indices` from `dataset` and prepares them for a model of `shape` (evaluation input).
Batch load_batch(const Dataset& dataset, const std::vector<int64_t>& indices, const std::vector<double>& mean,
                 const std::vector<double>& std, const ModelShape& shape);

// As load_batch for image folders and shards (not fixed-size datasets), but the uint8 planes
// (uint8 [B, C, S, S]) for a PlaneNormaliser where the model is: a quarter of the bytes across PCIe.
Batch load_batch_planes(const Dataset& dataset, const std::vector<int64_t>& indices, const std::vector<double>& mean,
                        const std::vector<double>& std, const ModelShape& shape, bool pinned);

// As load_batch, but an unreadable image is never replaced by the next one: under --bad-images
// skip its row stays zero and readable[b] is 0 (counted in the dataset's BadImageLog); under
// fail it is an Error naming the file. For outputs that name each input (predict).
Batch load_batch_in_order(const Dataset& dataset, const std::vector<int64_t>& indices, const std::vector<double>& mean,
                          const std::vector<double>& std, const ModelShape& shape, std::vector<uint8_t>& readable);

// The train transform settings of a run: --aug, --aa, --reprob, --hflip, --scale, --ratio,
// --interpolation, --jpeg-dct-scaling, with the run's normalisation and model input size.
TransformSettings train_settings(const DataConfig& config, const std::vector<double>& mean,
                                 const std::vector<double>& std, const ModelShape& shape);

// What an augmented training batch holds: normalised and erased float images (the CPU), or the
// uint8 planes and each image's erase rectangle, a quarter of the bytes across PCIe, for
// PlaneNormaliser on the GPU.
enum class TrainPixels { Normalised, Planes };
struct TrainBatchOptions {
  TrainPixels pixels = TrainPixels::Normalised;
  bool pinned = false;    // page-locked memory
  bool parallel = false;  // the images spread over the intra-op threads
};

// Augmented training batch: image i of `indices` gets the train transform with Rng(seeds[i]).
// Sequential (the loader threads run several of these at once), or with `parallel` the images
// spread over the intra-op threads (built in the training thread: no loader threads). The same
// values either way.
Batch load_train_batch(const Dataset& dataset, const std::vector<int64_t>& indices, const std::vector<uint64_t>& seeds,
                       const TransformSettings& settings, const TrainBatchOptions& options = {});

// The device half of a TrainPixels::Planes batch, on the device the model is on: the
// normalisation through the Normaliser's own table (the CPU's floats, bit for bit), then each
// image's erase rectangle filled with N(0, 1) values drawn from `generator`. Only the erased
// values differ from the CPU's batch of the same seeds.
class PlaneNormaliser {
 public:
  PlaneNormaliser(const Normaliser& norm, c10::Device device);
  // planes: uint8 [B, C, S, S] on the device -> float [B, C, S, S]
  at::Tensor operator()(const at::Tensor& planes) const;
  // The same, then erase's rectangles (int64 [B, 4] on the host) filled from `generator`.
  at::Tensor operator()(const at::Tensor& planes, const at::Tensor& erase, at::Generator& generator) const;

 private:
  at::Tensor lut_;      // float [C * 256] on the device: channel c's value v at c * 256 + v
  at::Tensor offsets_;  // int32 [1, C, 1, 1] on the device: c * 256
};

}  // namespace vitslim::data
