// Implements batch preparation (see batch.h).
#include "data/loading/batch.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "core/cuda_device.h"
#include "core/error.h"

namespace vitslim::data {
namespace {

TransformSettings eval_settings(const Dataset& dataset, const std::vector<double>& mean, const std::vector<double>& std,
                                const ModelShape& shape) {
  TransformSettings s;
  s.size = shape.img_size;
  s.channels = shape.in_chans;
  s.mean = mean;
  s.std = std;
  s.crop_pct = dataset.eval_options().crop_pct;
  s.filter = dataset.eval_options().filter;
  s.max_dct_shrink = dataset.eval_options().max_dct_shrink;
  return s;
}

// Per-image eval transform of a variable-size dataset into [B, C, S, S] (zeros where nothing is
// written): load(b, settings, normaliser, pixels) fills image b's slot and returns its label.
template <typename Load>
Batch folder_batch(const Dataset& dataset, const std::vector<int64_t>& indices, const std::vector<double>& mean,
                   const std::vector<double>& std, const ModelShape& shape, Load&& load) {
  const int64_t B = static_cast<int64_t>(indices.size()), S = shape.img_size, C = shape.in_chans;
  const TransformSettings s = eval_settings(dataset, mean, std, shape);
  const Normaliser norm(mean, std, C);
  auto images = torch::zeros({B, C, S, S}, torch::kFloat);
  auto labels = torch::empty({B}, torch::kLong);
  float* out = images.data_ptr<float>();
  int64_t* lab = labels.data_ptr<int64_t>();
  at::parallel_for(0, B, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) lab[b] = load(b, s, norm, out + b * C * S * S);
  });
  return {images, labels, at::Tensor()};
}

}  // namespace

Batch load_batch(const Dataset& dataset, const std::vector<int64_t>& indices, const std::vector<double>& mean,
                 const std::vector<double>& std, const ModelShape& shape) {
  if (!dataset.fixed_size()) {
    // An unreadable image is replaced by the next readable one (Dataset::with_image).
    return folder_batch(dataset, indices, mean, std, shape,
                        [&](int64_t b, const TransformSettings& s, const Normaliser& norm, float* pixels) {
                          return dataset.with_image(indices[static_cast<size_t>(b)], [&](const SourceImage& source) {
                            eval_transform(source, s, norm, pixels);
                          });
                        });
  }
  const int64_t B = static_cast<int64_t>(indices.size());
  const int64_t C = dataset.channels(), H = dataset.height(), W = dataset.width();
  auto pixels = torch::empty({B, C, H, W}, torch::kUInt8);
  auto labels = torch::empty({B}, torch::kLong);
  uint8_t* dst = pixels.data_ptr<uint8_t>();
  int64_t* lab = labels.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b)
    lab[b] = dataset.read(indices[static_cast<size_t>(b)], dst + b * dataset.image_bytes());

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
  return {x.contiguous(), labels, at::Tensor()};
}

Batch load_batch_planes(const Dataset& dataset, const std::vector<int64_t>& indices, const std::vector<double>& mean,
                        const std::vector<double>& std, const ModelShape& shape, bool pinned) {
  if (dataset.fixed_size()) throw Error(cat("load_batch_planes: ", dataset.name(), " is a fixed-size dataset"));
  const int64_t B = static_cast<int64_t>(indices.size()), S = shape.img_size, C = shape.in_chans;
  const TransformSettings s = eval_settings(dataset, mean, std, shape);
  auto images = torch::zeros({B, C, S, S}, torch::TensorOptions(torch::kUInt8).pinned_memory(pinned));
  auto labels = torch::empty({B}, torch::TensorOptions(torch::kLong).pinned_memory(pinned));
  uint8_t* out = images.data_ptr<uint8_t>();
  int64_t* lab = labels.data_ptr<int64_t>();
  at::parallel_for(0, B, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      lab[b] = dataset.with_image(indices[static_cast<size_t>(b)], [&](const SourceImage& source) {
        eval_transform_planes(source, s, out + b * C * S * S);
      });
    }
  });
  return {images, labels, at::Tensor()};
}

Batch load_batch_in_order(const Dataset& dataset, const std::vector<int64_t>& indices, const std::vector<double>& mean,
                          const std::vector<double>& std, const ModelShape& shape, std::vector<uint8_t>& readable) {
  readable.assign(indices.size(), 1);
  if (dataset.fixed_size()) return load_batch(dataset, indices, mean, std, shape);
  return folder_batch(dataset, indices, mean, std, shape,
                      [&](int64_t b, const TransformSettings& s, const Normaliser& norm, float* pixels) {
                        const int64_t index = indices[static_cast<size_t>(b)];
                        try {
                          eval_transform(dataset.source(index), s, norm, pixels);
                        } catch (const BadImage& e) {
                          if (!dataset.skips_bad_images()) throw Error(cat(e.what(), " (--bad-images fail)"));
                          dataset.bad_images().record(e.what());
                          readable[static_cast<size_t>(b)] = 0;
                        }
                        return dataset.label(index);
                      });
}

TransformSettings train_settings(const DataConfig& c, const std::vector<double>& mean, const std::vector<double>& std,
                                 const ModelShape& shape) {
  TransformSettings s;
  s.size = shape.img_size;
  s.channels = shape.in_chans;
  s.filter = c.interpolation;
  s.mean = mean;
  s.std = std;
  s.scale_min = c.scale[0];
  s.scale_max = c.scale[1];
  s.ratio_min = c.ratio[0];
  s.ratio_max = c.ratio[1];
  s.hflip = c.hflip;
  s.rand_augment_on = c.auto_augment != "none";
  if (s.rand_augment_on) s.rand_augment = parse_rand_augment(c.auto_augment);
  s.erase_prob = c.reprob;
  s.crop_pct = c.crop_pct;
  s.max_dct_shrink = c.dct_scaling ? kMaxJpegShrink : 1;
  return s;
}

Batch load_train_batch(const Dataset& dataset, const std::vector<int64_t>& indices, const std::vector<uint64_t>& seeds,
                       const TransformSettings& s, const TrainBatchOptions& options) {
  if (seeds.size() != indices.size()) throw Error("load_train_batch: one seed per image is needed");
  const int64_t B = static_cast<int64_t>(indices.size()), S = s.size, C = s.channels;
  const bool planes = options.pixels == TrainPixels::Planes;
  const Normaliser norm(s.mean, s.std, C);
  const auto pinned = [&](at::ScalarType type) { return torch::TensorOptions(type).pinned_memory(options.pinned); };
  Batch batch{torch::empty({B, C, S, S}, pinned(planes ? torch::kUInt8 : torch::kFloat)),
              torch::empty({B}, pinned(torch::kLong)),
              planes ? torch::zeros({B, 4}, pinned(torch::kLong)) : at::Tensor()};
  int64_t* lab = batch.labels.data_ptr<int64_t>();
  const auto build = [&](int64_t lo, int64_t hi) {  // images [lo, hi)
    for (int64_t b = lo; b < hi; ++b) {
      lab[b] = dataset.with_image(indices[static_cast<size_t>(b)], [&](const SourceImage& source) {
        Rng rng(seeds[static_cast<size_t>(b)]);  // a substitute image gets the same stream
        if (!planes) {
          train_transform(source, s, norm, rng, batch.images.data_ptr<float>() + b * C * S * S);
          return;
        }
        const Region box = train_transform_planes(source, s, rng, batch.images.data_ptr<uint8_t>() + b * C * S * S);
        int64_t* e = batch.erase.data_ptr<int64_t>() + b * 4;
        e[0] = box.x, e[1] = box.y, e[2] = box.w, e[3] = box.h;
      });
    }
  };
  if (options.parallel) {
    at::parallel_for(0, B, 1, build);
  } else {
    build(0, B);
  }
  return batch;
}

PlaneNormaliser::PlaneNormaliser(const Normaliser& norm, c10::Device device) {
  const auto& table = norm.table();
  const int64_t channels = norm.channels();
  auto lut = torch::empty({channels * 256}, torch::kFloat);
  for (int64_t c = 0; c < channels; ++c) {
    const auto& row = table[static_cast<size_t>(c)];
    std::copy(row.begin(), row.end(), lut.data_ptr<float>() + c * 256);
  }
  lut_ = lut.to(device);
  offsets_ =
      torch::arange(channels, torch::TensorOptions(torch::kInt).device(device)).mul_(256).view({1, channels, 1, 1});
}

at::Tensor PlaneNormaliser::operator()(const at::Tensor& planes) const {
  const int64_t C = planes.size(1);
  if (C != offsets_.size(1)) throw Error(cat("normalise: ", C, " channels, expected ", offsets_.size(1)));
  return lut_.index_select(0, (planes.to(torch::kInt) + offsets_).reshape(-1)).view(planes.sizes());
}

at::Tensor PlaneNormaliser::operator()(const at::Tensor& planes, const at::Tensor& erase,
                                       at::Generator& generator) const {
  const int64_t B = planes.size(0), C = planes.size(1), H = planes.size(2), W = planes.size(3);
  auto x = (*this)(planes);                                    // [B, C, H, W]
  if (!erase.select(1, 2).gt(0).any().item<bool>()) return x;  // nothing erased (erase is on the host)
  const auto box = cuda::to_device(erase, planes.device());    // [B, 4]
  const auto column = [&](int64_t k) { return box.select(1, k).view({B, 1, 1}); };
  const auto ys = torch::arange(H, box.options()).view({1, H, 1}), xs = torch::arange(W, box.options()).view({1, 1, W});
  const auto inside =
      (xs >= column(0)) & (xs < column(0) + column(2)) & (ys >= column(1)) & (ys < column(1) + column(3));
  const auto noise = torch::randn({B, C, H, W}, generator, x.options());
  return torch::where(inside.unsqueeze(1), noise, x);  // [B, C, H, W]
}

}  // namespace vitslim::data
