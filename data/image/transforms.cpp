// Implements the train/eval transforms (see transforms.h). Random draws follow timm's order:
// crop (area, log-ratio, top, left), flip, RandAugment, erasing.
#include "data/image/transforms.h"

#include <cmath>

#include "core/error.h"

namespace vitslim::data {
namespace {

constexpr int kCropAttempts = 10;
constexpr int kEraseAttempts = 10;
constexpr double kEraseMinArea = 0.02, kEraseMaxArea = 1.0 / 3.0;
constexpr double kEraseMinAspect = 0.3;

// Python's round(): halves to even.
int64_t round_half_even(double v) { return static_cast<int64_t>(std::nearbyint(v)); }

}  // namespace

Region random_resized_crop(int64_t width, int64_t height, const TransformSettings& s, Rng& rng) {
  const double area = static_cast<double>(width * height);
  const double log_lo = std::log(s.ratio_min), log_hi = std::log(s.ratio_max);
  for (int attempt = 0; attempt < kCropAttempts; ++attempt) {
    const double target_area = rng.uniform(s.scale_min, s.scale_max) * area;
    const double aspect = std::exp(rng.uniform(log_lo, log_hi));
    const int64_t w = round_half_even(std::sqrt(target_area * aspect));
    const int64_t h = round_half_even(std::sqrt(target_area / aspect));
    if (w <= width && h <= height && w > 0 && h > 0) {
      const int64_t top = rng.randint(0, height - h);
      const int64_t left = rng.randint(0, width - w);
      return {left, top, w, h};
    }
  }
  // Fallback: a centre crop at the nearest allowed aspect ratio.
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  int64_t w = width, h = height;
  if (in_ratio < s.ratio_min) {
    h = round_half_even(static_cast<double>(w) / s.ratio_min);
  } else if (in_ratio > s.ratio_max) {
    w = round_half_even(static_cast<double>(h) * s.ratio_max);
  }
  return {(width - w) / 2, (height - h) / 2, w, h};
}

EvalGeometry eval_geometry(int64_t width, int64_t height, const TransformSettings& s) {
  const int64_t resize = static_cast<int64_t>(std::floor(static_cast<double>(s.size) / s.crop_pct));
  EvalGeometry g;
  if (width <= height) {
    g.resized_w = resize;
    g.resized_h =
        static_cast<int64_t>(static_cast<double>(resize) * static_cast<double>(height) / static_cast<double>(width));
  } else {
    g.resized_h = resize;
    g.resized_w =
        static_cast<int64_t>(static_cast<double>(resize) * static_cast<double>(width) / static_cast<double>(height));
  }
  if (g.resized_w < s.size || g.resized_h < s.size) {
    throw Error(cat("--crop-pct ", s.crop_pct, " resizes below the ", s.size, "-pixel crop"));
  }
  // torchvision CenterCrop: int(round((resized - size) / 2.0)).
  g.window = {round_half_even(static_cast<double>(g.resized_w - s.size) / 2.0),
              round_half_even(static_cast<double>(g.resized_h - s.size) / 2.0), s.size, s.size};
  return g;
}

Normaliser::Normaliser(const std::vector<double>& mean, const std::vector<double>& std, int64_t channels)
    : channels_(channels), lut_(static_cast<size_t>(channels)) {
  if (mean.size() != std.size() || (mean.size() != 1 && static_cast<int64_t>(mean.size()) != channels)) {
    throw Error(cat("--mean/--std: ", mean.size(), " and ", std.size(), " values for ", channels, " channels"));
  }
  for (int64_t c = 0; c < channels; ++c) {
    const size_t k = mean.size() == 1 ? 0 : static_cast<size_t>(c);
    const float m = static_cast<float>(mean[k]), sd = static_cast<float>(std[k]);
    for (int v = 0; v < 256; ++v)
      lut_[static_cast<size_t>(c)][static_cast<size_t>(v)] = (static_cast<float>(v) / 255.0f - m) / sd;
  }
}

void Normaliser::operator()(const Image& image, float* out) const {
  if (image.channels != channels_) throw Error(cat("normalise: ", image.channels, " channels, expected ", channels_));
  const int64_t plane = image.width * image.height;
  for (int64_t c = 0; c < channels_; ++c) {
    const auto& lut = lut_[static_cast<size_t>(c)];
    const uint8_t* p = image.pixels.data() + c;
    float* o = out + c * plane;
    for (int64_t i = 0; i < plane; ++i) o[i] = lut[p[i * channels_]];
  }
}

Region draw_erase(int64_t height, int64_t width, double probability, Rng& rng) {
  if (rng.uniform() > probability) return {};
  const double area = static_cast<double>(height * width);
  const double log_lo = std::log(kEraseMinAspect), log_hi = std::log(1.0 / kEraseMinAspect);
  for (int attempt = 0; attempt < kEraseAttempts; ++attempt) {
    const double target_area = rng.uniform(kEraseMinArea, kEraseMaxArea) * area;
    const double aspect = std::exp(rng.uniform(log_lo, log_hi));
    const int64_t h = round_half_even(std::sqrt(target_area * aspect));
    const int64_t w = round_half_even(std::sqrt(target_area / aspect));
    if (w < width && h < height) {
      const int64_t top = rng.randint(0, height - h), left = rng.randint(0, width - w);
      return {left, top, w, h};
    }
  }
  return {};
}

void fill_normal(float* image, int64_t channels, int64_t height, int64_t width, const Region& box, Rng& rng) {
  // N(0, 1) values, two per Box-Muller draw (in float: they are noise, not a reproduced stream).
  float spare = 0;
  bool have_spare = false;
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t y = box.y; y < box.y + box.h; ++y) {
      float* row = image + (c * height + y) * width;
      for (int64_t x = box.x; x < box.x + box.w; ++x) {
        if (have_spare) {
          row[x] = spare;
          have_spare = false;
          continue;
        }
        const float radius = std::sqrt(-2.0f * std::log(static_cast<float>(1.0 - rng.uniform())));
        const float angle = static_cast<float>(2.0 * M_PI * rng.uniform());
        row[x] = radius * std::cos(angle);
        spare = radius * std::sin(angle);
        have_spare = true;
      }
    }
  }
}

void random_erase(float* image, int64_t channels, int64_t height, int64_t width, double probability, Rng& rng) {
  const Region box = draw_erase(height, width, probability, rng);
  if (box.w > 0) fill_normal(image, channels, height, width, box, rng);
}

std::array<uint8_t, 3> augment_fill(const std::vector<double>& mean) {
  std::array<uint8_t, 3> fill{};
  for (size_t c = 0; c < 3; ++c) {
    const double m = mean.size() == 1 ? mean[0] : mean[std::min(c, mean.size() - 1)];
    fill[c] = static_cast<uint8_t>(std::min<int64_t>(255, round_half_even(255.0 * m)));
  }
  return fill;
}

Image train_image(const SourceImage& source, const TransformSettings& s, Rng& rng) {
  const Region crop = random_resized_crop(source.width(), source.height(), s, rng);
  DecodedRegion region = source.decode(crop, s.channels, s.max_dct_shrink, s.size, s.size);
  Image image = resample(region.image, region.box, s.size, s.size, s.filter);
  if (rng.uniform() < s.hflip) flip_horizontal(image);
  if (s.rand_augment_on) {
    AugmentContext context{augment_fill(s.mean), s.filter};
    rand_augment(image, s.rand_augment, context, rng);
  }
  return image;
}

Image eval_image(const SourceImage& source, const TransformSettings& s) {
  const EvalGeometry g = eval_geometry(source.width(), source.height(), s);
  DecodedRegion all =
      source.decode({0, 0, source.width(), source.height()}, s.channels, s.max_dct_shrink, g.resized_w, g.resized_h);
  return resample(all.image, all.box, g.resized_w, g.resized_h, s.filter, g.window);
}

void train_transform(const SourceImage& source, const TransformSettings& s, const Normaliser& norm, Rng& rng,
                     float* out) {
  Image image = train_image(source, s, rng);
  norm(image, out);
  if (s.erase_prob > 0) random_erase(out, s.channels, s.size, s.size, s.erase_prob, rng);
}

namespace {
// uint8 HWC -> uint8 CHW, `channels` of them.
void write_planes(const Image& image, int64_t channels, uint8_t* out) {
  if (image.channels != channels) throw Error(cat("transform: ", image.channels, " channels, expected ", channels));
  const int64_t plane = image.width * image.height;
  for (int64_t c = 0; c < channels; ++c) {
    const uint8_t* p = image.pixels.data() + c;
    uint8_t* o = out + c * plane;
    for (int64_t i = 0; i < plane; ++i) o[i] = p[i * channels];
  }
}
}  // namespace

Region train_transform_planes(const SourceImage& source, const TransformSettings& s, Rng& rng, uint8_t* out) {
  write_planes(train_image(source, s, rng), s.channels, out);
  return s.erase_prob > 0 ? draw_erase(s.size, s.size, s.erase_prob, rng) : Region{};
}

void eval_transform_planes(const SourceImage& source, const TransformSettings& s, uint8_t* out) {
  write_planes(eval_image(source, s), s.channels, out);
}

void eval_transform(const SourceImage& source, const TransformSettings& s, const Normaliser& norm, float* out) {
  norm(eval_image(source, s), out);
}

}  // namespace vitslim::data
