// Implements the training data of one rank (see batches.h).
#include "train/batches.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>

#include "core/cuda_device.h"

namespace vitslim::train {

namespace {

constexpr uint64_t kSaltMix = 0x6d69787570ULL;    // mixup / cutmix decisions
constexpr uint64_t kSaltAugment = 0x617567ULL;    // per-image augmentation streams
constexpr uint64_t kSaltErase = 0x6572617365ULL;  // the erased values drawn on a device (planes)

}  // namespace

TrainBatches::TrainBatches(const data::Dataset& train_set, const BatchSettings& settings)
    : set_(train_set),
      s_(settings),
      augment_(settings.data.train_augment()),
      threads_(settings.data.loader_threads(settings.pinned)),
      inline_(threads_ == 0),
      planes_(settings.planes && augment_),
      sampler_(data::make_sampler(train_set, settings.rank, settings.world_size, settings.seed, settings.repeated_aug,
                                  settings.data.shuffle_buffer)) {
  if (augment_) augment_settings_ = data::train_settings(s_.data, s_.norm.mean, s_.norm.std, s_.shape);
}

// Micro-batch b holds order[b * B, (b + 1) * B) (wrapping; an empty tail takes the first index, so
// every rank runs the same number of steps). Image i of it is sample number (b * B + i) * world +
// rank of the epoch, which seeds its augmentation: the same for any worker count and on resume.
data::Batch TrainBatches::make(const std::vector<int64_t>& order, int64_t epoch, int64_t b) const {
  const int64_t B = s_.data.batch_size, n = static_cast<int64_t>(order.size());
  const uint64_t seed = s_.seed ^ kSaltAugment;
  const int64_t lo = b * B, hi = std::min<int64_t>(lo + B, n);
  std::vector<int64_t> chunk;
  std::vector<uint64_t> seeds;
  for (int64_t i = lo; i < hi; ++i) {
    chunk.push_back(order[static_cast<size_t>(i % n)]);
    seeds.push_back(mix_seed(seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(i * s_.world_size + s_.rank)));
  }
  if (chunk.empty()) {
    chunk.push_back(order.front());
    seeds.push_back(mix_seed(seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(s_.rank)));
  }
  if (augment_) {
    const auto pixels = planes_ ? data::TrainPixels::Planes : data::TrainPixels::Normalised;
    return data::load_train_batch(set_, chunk, seeds, augment_settings_, {pixels, s_.pinned, inline_});
  }
  return data::load_batch(set_, chunk, s_.norm.mean, s_.norm.std, s_.shape);
}

void TrainBatches::start(int64_t epoch, int64_t first, int64_t count) {
  loader_.reset();
  auto order = sampler_->epoch_indices(epoch);
  auto build = [this, order = std::move(order), epoch](int64_t b) { return make(order, epoch, b); };
  loader_ = std::make_unique<data::Loader>(first, count, build, threads_, s_.data.prefetch);
}

MicroBatch TrainBatches::next(uint64_t stream, c10::Device device, double& seconds) {
  const auto start = std::chrono::steady_clock::now();
  auto batch = loader_->next();
  const auto mix = data::draw_mix(s_.mixup, batch.images.size(2), batch.images.size(3),
                                  mix_seed(s_.seed ^ kSaltMix, static_cast<uint64_t>(s_.rank), stream));
  // Copied on a side stream (a GPU), then mixed where the model is.
  MicroBatch out{cuda::to_device(batch.images, device), at::Tensor(), at::Tensor()};  // [B, C, H, W]
  if (batch.erase.defined()) {  // uint8 planes: normalised and erased here
    if (!plane_normaliser_) {
      const auto& a = augment_settings_;
      plane_normaliser_ = std::make_unique<data::PlaneNormaliser>(data::Normaliser(a.mean, a.std, a.channels), device);
    }
    auto generator =
        cuda::make_generator(device, mix_seed(s_.seed ^ kSaltErase, static_cast<uint64_t>(s_.rank), stream));
    out.images = (*plane_normaliser_)(out.images, batch.erase, generator);  // float [B, C, H, W]
  }
  out.targets = data::apply_mix(out.images, cuda::to_device(batch.labels, device), mix, s_.mixup);  // [B, K]
  seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

}  // namespace vitslim::train
