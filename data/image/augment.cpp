// Implements the RandAugment ops with PIL's arithmetic (see augment.h): the affine sampler
// follows PIL's Geometry.c (pixel-centre mapping, edge handling, truncation to 8 bits), the
// enhancers PIL's ImagingBlend (float alpha, truncation), the sharpness degenerate PIL's 3x3
// SMOOTH filter (float, +0.5 bias, border pixels kept), grey conversion PIL's L24 luma.
#include "data/image/augment.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <regex>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "core/error.h"

namespace vitslim::data {
namespace {

constexpr double kLevelDenominator = 10.0;  // timm's _LEVEL_DENOM
constexpr double kRotateMaxDegrees = 30.0;
constexpr double kShearMax = 0.3;
constexpr double kTranslateMaxFraction = 0.45;
constexpr double kEnhanceRange = 0.9;  // increasing: 1 +- 0.9 level
constexpr double kEnhanceMin = 0.1;
constexpr int kPosterizeBitsRange = 4;
constexpr int kSolarizeAddMax = 110;
constexpr double kUniformMagnitudeStd = 100;  // mstd above this: uniform magnitude
constexpr float kSmoothCentre = 5.0f / 13.0f, kSmoothSide = 1.0f / 13.0f;

uint8_t luma(const uint8_t* p) {
  return static_cast<uint8_t>((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
}

// Byte loops compiled for AVX2 and the baseline, picked at load time.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VITSLIM_HOT __attribute__((target_clones("avx2", "default")))
#else
#define VITSLIM_HOT
#endif

// PIL's ImagingBlend(degenerate, image, alpha) into `image`; `degenerate` is a buffer or, when
// null, the constant `level` everywhere (the same arithmetic without the buffer).
VITSLIM_HOT void blend_into(const uint8_t* degenerate, int level, Image& image, double factor) {
  const float alpha = static_cast<float>(factor);
  uint8_t* out = image.pixels.data();
  const size_t n = image.pixels.size();
  if (alpha == 1.0f) return;
  if (alpha == 0.0f) {
    for (size_t i = 0; i < n; ++i) out[i] = degenerate ? degenerate[i] : static_cast<uint8_t>(level);
    return;
  }
  if (alpha >= 0 && alpha <= 1.0f) {
    for (size_t i = 0; i < n; ++i) {
      const int a = degenerate ? degenerate[i] : level, b = out[i];
      out[i] = static_cast<uint8_t>(static_cast<int>(a + alpha * (b - a)));
    }
  } else {
    for (size_t i = 0; i < n; ++i) {
      const int a = degenerate ? degenerate[i] : level, b = out[i];
      float t = a + alpha * (b - a);
      t = t <= 0.0f ? 0.0f : t;
      t = t >= 255.0f ? 255.0f : t;
      out[i] = static_cast<uint8_t>(static_cast<int>(t));
    }
  }
}

std::array<int64_t, 256> histogram(const Image& image, int64_t channel) {
  std::array<int64_t, 256> h{};
  const int64_t c = image.channels, n = image.width * image.height;
  const uint8_t* p = image.pixels.data() + channel;
  for (int64_t i = 0; i < n; ++i) ++h[p[i * c]];
  return h;
}

void apply_channel_luts(Image& image, const std::vector<std::array<uint8_t, 256>>& luts) {
  const int64_t c = image.channels, n = image.width * image.height;
  uint8_t* p = image.pixels.data();
  if (c == 3) {
    const auto &l0 = luts[0], &l1 = luts[1], &l2 = luts[2];
    for (int64_t i = 0; i < n; ++i, p += 3) {
      p[0] = l0[p[0]];
      p[1] = l1[p[1]];
      p[2] = l2[p[2]];
    }
  } else {
    for (int64_t i = 0; i < n * c; ++i) p[i] = luts[static_cast<size_t>(i % c)][p[i]];
  }
}

// A level fn's random sign (timm's _randomly_negate: negative when random() > 0.5).
double randomly_negate(double v, Rng& rng) { return rng.uniform() > 0.5 ? -v : v; }

}  // namespace

RandAugmentConfig parse_rand_augment(const std::string& text) {
  RandAugmentConfig c;
  c.text = text;
  auto fail = [&](const std::string& why) {
    return Error(cat("--aa ", text, ": ", why, " (expected e.g. rand-m9-mstd0.5-inc1)"));
  };
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t dash = text.find('-', start);
    parts.push_back(text.substr(start, dash == std::string::npos ? std::string::npos : dash - start));
    if (dash == std::string::npos) break;
    start = dash + 1;
  }
  if (parts.empty() || parts[0] != "rand") throw fail("only RandAugment ('rand-...') is supported");
  static const std::regex kSection(R"(([a-z]+)([0-9.]+|inf))");
  for (size_t i = 1; i < parts.size(); ++i) {
    std::smatch m;
    if (!std::regex_match(parts[i], m, kSection)) throw fail(cat("cannot read section '", parts[i], "'"));
    const std::string key = m[1], value = m[2];
    const double v = value == "inf" ? std::numeric_limits<double>::infinity() : std::stod(value);
    if (key == "m") {
      c.magnitude = v;
    } else if (key == "n") {
      c.num_ops = static_cast<int64_t>(v);
    } else if (key == "mstd") {
      c.magnitude_std = v > kUniformMagnitudeStd ? std::numeric_limits<double>::infinity() : v;
    } else if (key == "mmax") {
      c.magnitude_max = v;
    } else if (key == "inc") {
      c.increasing = v != 0;
    } else if (key == "p") {
      c.prob = v;
    } else {
      throw fail(cat("unknown section '", key, "'"));
    }
  }
  if (c.num_ops < 0 || c.prob < 0 || c.prob > 1 || c.magnitude < 0 || c.magnitude_max <= 0) {
    throw fail("values out of range");
  }
  return c;
}

const char* augment_op_name(AugmentOp op) {
  static const char* kNames[kAugmentOps] = {"AutoContrast", "Equalize",    "Invert", "Rotate",        "Posterize",
                                            "Solarize",     "SolarizeAdd", "Color",  "Contrast",      "Brightness",
                                            "Sharpness",    "ShearX",      "ShearY", "TranslateXRel", "TranslateYRel"};
  return kNames[static_cast<int>(op)];
}

void apply_lut(Image& image, const std::array<uint8_t, 256>& lut) {
  for (auto& p : image.pixels) p = lut[p];
}

void autocontrast(Image& image) {
  std::vector<std::array<uint8_t, 256>> luts(static_cast<size_t>(image.channels));
  for (int64_t c = 0; c < image.channels; ++c) {
    const auto h = histogram(image, c);
    int lo = 0, hi = 255;
    while (lo < 256 && h[static_cast<size_t>(lo)] == 0) ++lo;
    while (hi >= 0 && h[static_cast<size_t>(hi)] == 0) --hi;
    auto& lut = luts[static_cast<size_t>(c)];
    if (hi <= lo) {
      for (int i = 0; i < 256; ++i) lut[static_cast<size_t>(i)] = static_cast<uint8_t>(i);
    } else {
      const double scale = 255.0 / (hi - lo);
      const double offset = -lo * scale;
      for (int i = 0; i < 256; ++i) {
        const int v = static_cast<int>(i * scale + offset);
        lut[static_cast<size_t>(i)] = static_cast<uint8_t>(std::clamp(v, 0, 255));
      }
    }
  }
  apply_channel_luts(image, luts);
}

void equalize(Image& image) {
  std::vector<std::array<uint8_t, 256>> luts(static_cast<size_t>(image.channels));
  for (int64_t c = 0; c < image.channels; ++c) {
    const auto h = histogram(image, c);
    auto& lut = luts[static_cast<size_t>(c)];
    int64_t nonzero = 0, total = 0, last = 0;
    for (int64_t v : h) {
      if (v) {
        ++nonzero;
        total += v;
        last = v;
      }
    }
    const int64_t step = nonzero <= 1 ? 0 : (total - last) / 255;
    if (step == 0) {
      for (int i = 0; i < 256; ++i) lut[static_cast<size_t>(i)] = static_cast<uint8_t>(i);
      continue;
    }
    int64_t n = step / 2;
    for (int i = 0; i < 256; ++i) {
      lut[static_cast<size_t>(i)] = static_cast<uint8_t>(std::min<int64_t>(n / step, 255));
      n += h[static_cast<size_t>(i)];
    }
  }
  apply_channel_luts(image, luts);
}

void posterize(Image& image, int bits) {
  const int mask = bits >= 8 ? 0xFF : bits <= 0 ? 0 : (~((1 << (8 - bits)) - 1)) & 0xFF;
  std::array<uint8_t, 256> lut;
  for (int i = 0; i < 256; ++i) lut[static_cast<size_t>(i)] = static_cast<uint8_t>(i & mask);
  apply_lut(image, lut);
}

void solarize(Image& image, int threshold) {
  std::array<uint8_t, 256> lut;
  for (int i = 0; i < 256; ++i) lut[static_cast<size_t>(i)] = static_cast<uint8_t>(i < threshold ? i : 255 - i);
  apply_lut(image, lut);
}

void solarize_add(Image& image, int add, int threshold) {
  std::array<uint8_t, 256> lut;
  for (int i = 0; i < 256; ++i)
    lut[static_cast<size_t>(i)] = static_cast<uint8_t>(i < threshold ? std::min(255, i + add) : i);
  apply_lut(image, lut);
}

void enhance_color(Image& image, double factor) {
  if (image.channels != 3) return;  // PIL: the L -> L degenerate is the image itself
  Pixels grey(image.pixels.size());
  for (size_t i = 0; i < grey.size(); i += 3) grey[i] = grey[i + 1] = grey[i + 2] = luma(&image.pixels[i]);
  blend_into(grey.data(), 0, image, factor);
}

void enhance_contrast(Image& image, double factor) {
  std::array<int64_t, 256> h{};
  const int64_t n = image.width * image.height;
  if (image.channels == 3) {
    for (size_t i = 0; i < image.pixels.size(); i += 3) ++h[luma(&image.pixels[i])];
  } else {
    h = histogram(image, 0);
  }
  double sum = 0;
  for (int i = 0; i < 256; ++i) sum += static_cast<double>(i) * static_cast<double>(h[static_cast<size_t>(i)]);
  const uint8_t mean = static_cast<uint8_t>(static_cast<int>(sum / static_cast<double>(n) + 0.5));
  blend_into(nullptr, mean, image, factor);
}

void enhance_brightness(Image& image, double factor) { blend_into(nullptr, 0, image, factor); }

VITSLIM_HOT void enhance_sharpness(Image& image, double factor) {
  Pixels smooth = image.pixels;  // border rows and columns stay as they are
  const int64_t C = image.channels, W = image.width;
  for (int64_t y = 1; y + 1 < image.height; ++y) {
    const uint8_t* __restrict below = image.row(y + 1);
    const uint8_t* __restrict mid = image.row(y);
    const uint8_t* __restrict above = image.row(y - 1);
    uint8_t* __restrict out = smooth.data() + y * W * C;
    // PIL's ImagingFilter3x3 order: +0.5, then the row below, this row, the row above.
    for (int64_t i = C; i < (W - 1) * C; ++i) {
      float ss = 0.5f;
      ss += static_cast<float>(below[i - C]) * kSmoothSide + static_cast<float>(below[i]) * kSmoothSide +
            static_cast<float>(below[i + C]) * kSmoothSide;
      ss += static_cast<float>(mid[i - C]) * kSmoothSide + static_cast<float>(mid[i]) * kSmoothCentre +
            static_cast<float>(mid[i + C]) * kSmoothSide;
      ss += static_cast<float>(above[i - C]) * kSmoothSide + static_cast<float>(above[i]) * kSmoothSide +
            static_cast<float>(above[i + C]) * kSmoothSide;
      ss = ss < 0.0f ? 0.0f : ss;
      ss = ss > 255.0f ? 255.0f : ss;
      out[i] = static_cast<uint8_t>(ss);
    }
  }
  blend_into(smooth.data(), 0, image, factor);
}

void flip_horizontal(Image& image) {
  const int64_t C = image.channels, W = image.width;
  for (int64_t y = 0; y < image.height; ++y) {
    uint8_t* r = image.row(y);
    for (int64_t x = 0; x < W / 2; ++x) {
      for (int64_t b = 0; b < C; ++b) std::swap(r[x * C + b], r[(W - 1 - x) * C + b]);
    }
  }
}

namespace {

void invert(Image& image) {
  std::array<uint8_t, 256> lut;
  for (int i = 0; i < 256; ++i) lut[static_cast<size_t>(i)] = static_cast<uint8_t>(255 - i);
  apply_lut(image, lut);
}

// Rotate, shear and translate at level l in [0, 1] (a random sign each); false for other ops.
bool geometric_op(Image& image, AugmentOp op, double l, const AugmentContext& ctx, Rng& rng) {
  switch (op) {
    case AugmentOp::Rotate:
      image = rotate(image, randomly_negate(l * kRotateMaxDegrees, rng), ctx.filter, ctx.fill);
      return true;
    case AugmentOp::ShearX:
      image = affine(image, {1, randomly_negate(l * kShearMax, rng), 0, 0, 1, 0}, ctx.filter, ctx.fill);
      return true;
    case AugmentOp::ShearY:
      image = affine(image, {1, 0, 0, randomly_negate(l * kShearMax, rng), 1, 0}, ctx.filter, ctx.fill);
      return true;
    case AugmentOp::TranslateXRel:
      image = affine(image, {1, 0, randomly_negate(l * kTranslateMaxFraction, rng) * image.width, 0, 1, 0}, ctx.filter,
                     ctx.fill);
      return true;
    case AugmentOp::TranslateYRel:
      image = affine(image, {1, 0, 0, 0, 1, randomly_negate(l * kTranslateMaxFraction, rng) * image.height}, ctx.filter,
                     ctx.fill);
      return true;
    default:
      return false;
  }
}

}  // namespace

void apply_augment_op(Image& image, AugmentOp op, double level, bool increasing, const AugmentContext& ctx, Rng& rng) {
  const double l = level / kLevelDenominator;
  if (geometric_op(image, op, l, ctx, rng)) return;
  auto enhance_factor = [&]() {
    return increasing ? std::max(kEnhanceMin, 1.0 + randomly_negate(l * kEnhanceRange, rng)) : l * 1.8 + kEnhanceMin;
  };
  switch (op) {
    case AugmentOp::AutoContrast:
      return autocontrast(image);
    case AugmentOp::Equalize:
      return equalize(image);
    case AugmentOp::Invert:
      return invert(image);
    case AugmentOp::Posterize: {
      const int keep = static_cast<int>(l * kPosterizeBitsRange);
      const int bits = increasing ? kPosterizeBitsRange - keep : keep;
      if (bits < 8) posterize(image, bits);
      return;
    }
    case AugmentOp::Solarize: {
      const int t = std::min(256, static_cast<int>(l * 256));
      return solarize(image, increasing ? 256 - t : t);
    }
    case AugmentOp::SolarizeAdd:
      return solarize_add(image, std::min(128, static_cast<int>(l * kSolarizeAddMax)));
    case AugmentOp::Color:
      return enhance_color(image, enhance_factor());
    case AugmentOp::Contrast:
      return enhance_contrast(image, enhance_factor());
    case AugmentOp::Brightness:
      return enhance_brightness(image, enhance_factor());
    case AugmentOp::Sharpness:
      return enhance_sharpness(image, enhance_factor());
    default:
      return;
  }
}

void rand_augment(Image& image, const RandAugmentConfig& c, const AugmentContext& ctx, Rng& rng) {
  for (int64_t i = 0; i < c.num_ops; ++i) {
    const auto op = static_cast<AugmentOp>(rng.randint(0, kAugmentOps - 1));
    if (c.prob < 1.0 && rng.uniform() > c.prob) continue;
    double magnitude = c.magnitude;
    if (std::isinf(c.magnitude_std)) {
      magnitude = rng.uniform(0, magnitude);
    } else if (c.magnitude_std > 0) {
      magnitude = rng.normal(magnitude, c.magnitude_std);
    }
    magnitude = std::clamp(magnitude, 0.0, c.magnitude_max);
    apply_augment_op(image, op, magnitude, c.increasing, ctx, rng);
  }
}

}  // namespace vitslim::data
