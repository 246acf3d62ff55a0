// The per-image transforms of the DeiT recipe (docs/method.md section 5), as timm builds them with
// create_transform on PIL images:
//   train: RandomResizedCrop(size, scale, ratio, bicubic) -> horizontal flip -> RandAugment ->
//          ToTensor + Normalize -> RandomErasing (pixel mode, per-pixel N(0, 1) values)
//   eval:  Resize(floor(size / crop_pct), bicubic, shorter side) -> CenterCrop(size) -> Normalize
// The crop decides what is decoded (see codec.h), so a JPEG is decoded only where the crop looks.
// Output is float [C, size, size] written to a caller's buffer.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "core/normalisation.h"
#include "core/rng.h"
#include "data/image/augment.h"
#include "data/image/codec.h"
#include "data/image/resample.h"

namespace vitslim::data {

struct TransformSettings {
  int64_t size = 224;    // output side
  int64_t channels = 3;  // output channels (grey sources are replicated)
  Filter filter = Filter::Bicubic;
  std::vector<double> mean = kImagenetNormalisation.mean, std = kImagenetNormalisation.std;  // 1 or `channels` values
  // train
  double scale_min = 0.08, scale_max = 1.0;
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;
  double hflip = 0.5;
  bool rand_augment_on = true;
  RandAugmentConfig rand_augment;
  double erase_prob = 0.25;
  // eval
  double crop_pct = 0.875;
  // JPEG DCT-domain shrink by up to this factor (1: off) while the shrunk crop stays >= size.
  int max_dct_shrink = 8;
};

// timm's RandomResizedCropAndInterpolation.get_params for an image of width x height.
Region random_resized_crop(int64_t width, int64_t height, const TransformSettings& s, Rng& rng);

// The eval geometry: the resized size (shorter side floor(size / crop_pct), torchvision's
// rounding) and the centre window of it that is kept.
struct EvalGeometry {
  int64_t resized_w = 0, resized_h = 0;
  Region window;
};
EvalGeometry eval_geometry(int64_t width, int64_t height, const TransformSettings& s);

// uint8 HWC -> float CHW, (v / 255 - mean) / std in float32 as ToTensor + Normalize compute it.
class Normaliser {
 public:
  Normaliser(const std::vector<double>& mean, const std::vector<double>& std, int64_t channels);
  void operator()(const Image& image, float* out) const;
  // Its table: table()[c][v] is the float of value v in channel c (what a device normalises by).
  const std::vector<std::array<float, 256>>& table() const { return lut_; }
  int64_t channels() const { return channels_; }

 private:
  int64_t channels_;
  std::vector<std::array<float, 256>> lut_;  // per channel
};

// timm RandomErasing(probability, mode="pixel") on one normalised image [C, H, W]: draw_erase
// picks the rectangle (empty, w == 0, when the image is kept or no attempt fits), fill_normal
// writes its N(0, 1) values from the same stream; random_erase does both.
Region draw_erase(int64_t height, int64_t width, double probability, Rng& rng);
void fill_normal(float* image, int64_t channels, int64_t height, int64_t width, const Region& box, Rng& rng);
void random_erase(float* image, int64_t channels, int64_t height, int64_t width, double probability, Rng& rng);

// The uint8 image the train transform produces before normalisation (what the golden tests see).
Image train_image(const SourceImage& source, const TransformSettings& s, Rng& rng);
Image eval_image(const SourceImage& source, const TransformSettings& s);

// Full transforms into out[C, size, size].
void train_transform(const SourceImage& source, const TransformSettings& s, const Normaliser& norm, Rng& rng,
                     float* out);
void eval_transform(const SourceImage& source, const TransformSettings& s, const Normaliser& norm, float* out);
// The train transform stopped before normalisation, for a device that normalises and erases:
// the uint8 image as planes into out[C, size, size] and the rectangle to erase (the same draws
// as train_transform, which also draws the erased values).
Region train_transform_planes(const SourceImage& source, const TransformSettings& s, Rng& rng, uint8_t* out);
// The eval transform before normalisation: the uint8 image as planes into out[C, size, size].
void eval_transform_planes(const SourceImage& source, const TransformSettings& s, uint8_t* out);

// The timm fill colour of RandAugment's geometric ops: round(255 * mean), per channel.
std::array<uint8_t, 3> augment_fill(const std::vector<double>& mean);

}  // namespace vitslim::data
