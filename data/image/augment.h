// The per-image augmentations of the DeiT recipe on 8-bit images, with PIL's arithmetic so the
// results equal timm's on PIL images: RandAugment (timm's "rand-m9-mstd0.5-inc1" config strings,
// its 15 ops and their level-to-argument maps), horizontal flip, and the PIL primitives the ops
// are made of (affine warp with PIL's bicubic/bilinear sampling, lookup tables, histogram ops,
// ImageEnhance blends, the SMOOTH filter).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "data/image/image.h"
#include "data/image/resample.h"

namespace vitslim::data {

// timm's RandAugment config string: "rand" then -m<magnitude> -n<ops> -mstd<std> -mmax<max>
// -inc<0|1> -p<op probability>, e.g. rand-m9-mstd0.5-inc1 (DeiT).
struct RandAugmentConfig {
  double magnitude = 10;
  int64_t num_ops = 2;
  double magnitude_std = 0;  // > 100 or inf: uniform in [0, magnitude]
  double magnitude_max = 10;
  bool increasing = false;
  double prob = 0.5;
  std::string text;  // as given
};
RandAugmentConfig parse_rand_augment(const std::string& text);

enum class AugmentOp {
  AutoContrast,
  Equalize,
  Invert,
  Rotate,
  Posterize,
  Solarize,
  SolarizeAdd,
  Color,
  Contrast,
  Brightness,
  Sharpness,
  ShearX,
  ShearY,
  TranslateXRel,
  TranslateYRel
};
inline constexpr int kAugmentOps = 15;
const char* augment_op_name(AugmentOp op);

// What RandAugment's geometric ops need: the fill colour (timm: the dataset mean in 0..255) and
// the resampling filter.
struct AugmentContext {
  std::array<uint8_t, 3> fill{128, 128, 128};
  Filter filter = Filter::Bicubic;
};

// timm's RandAugment: `num_ops` ops drawn with replacement, each applied with probability `prob`
// at a magnitude ~ N(magnitude, magnitude_std) clipped to [0, magnitude_max].
void rand_augment(Image& image, const RandAugmentConfig& config, const AugmentContext& context, Rng& rng);
// One op at `level` (0..10 scale); signs of symmetric ops come from `rng` as in timm.
void apply_augment_op(Image& image, AugmentOp op, double level, bool increasing, const AugmentContext& context,
                      Rng& rng);

// --- PIL primitives (exposed for the golden tests) ---------------------------------------------
// Image.transform(size, AFFINE, (a, b, c, d, e, f), resample, fillcolor): output (x, y) samples
// the input at (a x' + b y' + c, d x' + e y' + f) with x' = x + 0.5, y' = y + 0.5.
Image affine(const Image& image, const std::array<double, 6>& matrix, Filter filter,
             const std::array<uint8_t, 3>& fill);
// Image.rotate(degrees, resample, fillcolor) about the centre, same size.
Image rotate(const Image& image, double degrees, Filter filter, const std::array<uint8_t, 3>& fill);
void apply_lut(Image& image, const std::array<uint8_t, 256>& lut);
void autocontrast(Image& image);
void equalize(Image& image);
void posterize(Image& image, int bits);  // bits 0 gives black, as PIL < 10 did
void solarize(Image& image, int threshold);
void solarize_add(Image& image, int add, int threshold = 128);
// ImageEnhance Color / Contrast / Brightness / Sharpness .enhance(factor).
void enhance_color(Image& image, double factor);
void enhance_contrast(Image& image, double factor);
void enhance_brightness(Image& image, double factor);
void enhance_sharpness(Image& image, double factor);
void flip_horizontal(Image& image);

}  // namespace vitslim::data
