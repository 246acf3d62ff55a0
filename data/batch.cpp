// Implements batch preparation (see batch.h).
#include "data/batch.h"

#include <torch/torch.h>

#include "core/error.h"

namespace vitslim::data {

Batch load_batch(const Dataset& dataset, const std::vector<int64_t>& indices, const std::vector<double>& mean,
                 const std::vector<double>& std, const ModelShape& shape) {
  const int64_t B = static_cast<int64_t>(indices.size());
  const int64_t C = dataset.channels(), H = dataset.height(), W = dataset.width();
  auto pixels = torch::empty({B, C, H, W}, torch::kUInt8);
  auto labels = torch::empty({B}, torch::kLong);
  uint8_t* dst = pixels.data_ptr<uint8_t>();
  int64_t* lab = labels.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) lab[b] = dataset.read(indices[static_cast<size_t>(b)], dst + b * dataset.image_bytes());

  if (mean.size() != 1 && static_cast<int64_t>(mean.size()) != C) {
    throw Error(cat("--mean/--std have ", mean.size(), " values but ", dataset.name(), " has ", C, " channels"));
  }
  auto m = torch::tensor(mean, torch::kFloat).view({1, -1, 1, 1});
  auto s = torch::tensor(std, torch::kFloat).view({1, -1, 1, 1});
  auto x = (pixels.to(torch::kFloat).div_(255.0) - m) / s;  // [B, C, H, W]
  if (C != shape.in_chans) {
    if (C == 1) {
      x = x.expand({B, shape.in_chans, H, W}).contiguous();
    } else if (shape.in_chans == 1) {
      x = x.mean(1, true);
    } else {
      throw Error(cat(dataset.name(), " has ", C, " channels; the model takes ", shape.in_chans));
    }
  }
  if (H != shape.img_size || W != shape.img_size) {
    namespace F = torch::nn::functional;
    x = F::interpolate(x, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{shape.img_size, shape.img_size})
                              .mode(torch::kBicubic)
                              .align_corners(false));
  }
  return {x.contiguous(), labels};
}

}  // namespace vitslim::data
