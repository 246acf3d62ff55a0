// Implements the RandAugment ops with PIL's arithmetic (see augment.h): the affine sampler
// follows PIL's Geometry.c (pixel-centre mapping, edge handling, truncation to 8 bits), the
// enhancers PIL's ImagingBlend (float alpha, truncation), the sharpness degenerate PIL's 3x3
// SMOOTH filter (float, +0.5 bias, border pixels kept), grey conversion PIL's L24 luma.
#include "data/augment.h"

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

inline int clip_index(int64_t v, int64_t size) { return static_cast<int>(v < 0 ? 0 : v < size ? v : size - 1); }
inline int floor_int(double v) { return v < 0.0 ? static_cast<int>(std::floor(v)) : static_cast<int>(v); }

#define VITSLIM_INLINE inline __attribute__((always_inline))

// PIL Geometry.c's BICUBIC(v, v1, v2, v3, v4, d).
VITSLIM_INLINE double cubic(double v1, double v2, double v3, double v4, double d) {
  const double p1 = v2;
  const double p2 = -v1 + v3;
  const double p3 = 2 * (v1 - v2) + v3 - v4;
  const double p4 = -v1 + v2 - v3 + v4;
  return p1 + d * (p2 + d * (p3 + d * p4));
}

VITSLIM_INLINE uint8_t to_u8_clamped(double v) { return v <= 0.0 ? 0 : v >= 255.0 ? 255 : static_cast<uint8_t>(v); }

// One row's value of channel b at the sample position (BICUBIC over x; with dx = 0 it is the
// second tap exactly, so the products are skipped).
VITSLIM_INLINE double row_value(const uint8_t* in, const int64_t* xs, int64_t b, double dx) {
  if (dx == 0) return in[xs[1] + b];
  return cubic(in[xs[0] + b], in[xs[1] + b], in[xs[2] + b], in[xs[3] + b], dx);
}

// PIL's bicubic_filter8/32RGB at (xin, yin); false outside the image. With dy = 0 the result is
// the second row exactly (translations and shears along x), so the other rows are skipped.
VITSLIM_INLINE bool sample_bicubic(const Image& im, double xin, double yin, uint8_t* out) {
  if (xin < 0.0 || xin >= im.width || yin < 0.0 || yin >= im.height) return false;
  xin -= 0.5;
  yin -= 0.5;
  int x = floor_int(xin), y = floor_int(yin);
  const double dx = xin - x, dy = yin - y;
  --x;
  --y;
  const int64_t C = im.channels;
  const int64_t xs[4] = {clip_index(x, im.width) * C, clip_index(x + 1, im.width) * C, clip_index(x + 2, im.width) * C,
                         clip_index(x + 3, im.width) * C};
  if (dy == 0 && y + 1 >= 0 && y + 1 < im.height) {
    const uint8_t* in = im.row(y + 1);
    for (int64_t b = 0; b < C; ++b) out[b] = to_u8_clamped(row_value(in, xs, b, dx));
    return true;
  }
  const uint8_t* rows[4];
  bool valid[4];
  for (int k = 0; k < 4; ++k) {
    valid[k] = k == 0 || (y + k >= 0 && y + k < im.height);
    rows[k] = valid[k] ? im.row(k == 0 ? clip_index(y, im.height) : y + k) : nullptr;
  }
  for (int64_t b = 0; b < C; ++b) {
    double v[4];
    v[0] = row_value(rows[0], xs, b, dx);
    for (int k = 1; k < 4; ++k) v[k] = valid[k] ? row_value(rows[k], xs, b, dx) : v[k - 1];
    out[b] = to_u8_clamped(cubic(v[0], v[1], v[2], v[3], dy));
  }
  return true;
}

// PIL's bilinear_filter8/32RGB.
VITSLIM_INLINE bool sample_bilinear(const Image& im, double xin, double yin, uint8_t* out) {
  if (xin < 0.0 || xin >= im.width || yin < 0.0 || yin >= im.height) return false;
  xin -= 0.5;
  yin -= 0.5;
  const int x = floor_int(xin), y = floor_int(yin);
  const double dx = xin - x, dy = yin - y;
  const int64_t C = im.channels;
  const int64_t x0 = clip_index(x, im.width) * C, x1 = clip_index(x + 1, im.width) * C;
  for (int64_t b = 0; b < C; ++b) {
    const uint8_t* in = im.row(clip_index(y, im.height));
    double v1 = in[x0 + b] + (in[x1 + b] - in[x0 + b]) * dx;
    double v2 = v1;
    if (y + 1 >= 0 && y + 1 < im.height) {
      in = im.row(y + 1);
      v2 = in[x0 + b] + (in[x1 + b] - in[x0 + b]) * dx;
    }
    out[b] = static_cast<uint8_t>(v1 + (v2 - v1) * dy);
  }
  return true;
}

// The fill colour into one pixel (grey images take the first value).
inline void put_fill(uint8_t* px, int64_t channels, const std::array<uint8_t, 3>& fill) {
  for (int64_t b = 0; b < channels; ++b) px[b] = fill[static_cast<size_t>(channels == 1 ? 0 : b)];
}

// A level fn's random sign (timm's _randomly_negate: negative when random() > 0.5).
double randomly_negate(double v, Rng& rng) { return rng.uniform() > 0.5 ? -v : v; }

// Python's round(x, 15) for the rotation matrix entries.
double round15(double v) { return std::nearbyint(v * 1e15) / 1e15; }

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

namespace {

// The warp loop with `sample` inlined.
template <bool (*sample)(const Image&, double, double, uint8_t*)>
void warp(const Image& im, const std::array<double, 6>& a, const std::array<uint8_t, 3>& fill, Image& out) {
  const int64_t C = im.channels;
  for (int64_t y = 0; y < im.height; ++y) {
    uint8_t* o = out.row(y);
    const double yc = y + 0.5;
    for (int64_t x = 0; x < im.width; ++x) {
      const double xc = x + 0.5;
      const double xin = a[0] * xc + a[1] * yc + a[2];
      const double yin = a[3] * xc + a[4] * yc + a[5];
      if (!sample(im, xin, yin, o + x * C)) {
        put_fill(o + x * C, C, fill);
      }
    }
  }
}

// Bicubic warps that move pixels along rows only (shear x, translate x: y maps to itself, so
// dy = 0 and only the row's own cubic counts) or along columns only (dx = 0: only the column
// cubic counts). Same arithmetic as sample_bicubic, without the work that cannot change the result.
VITSLIM_HOT void warp_rows_bicubic(const Image& im, const std::array<double, 6>& a, const std::array<uint8_t, 3>& fill,
                                   Image& out) {
  const int64_t C = im.channels, W = im.width;
  for (int64_t y = 0; y < im.height; ++y) {
    const uint8_t* in = im.row(y);
    uint8_t* o = out.row(y);
    const double yc = y + 0.5;
    for (int64_t x = 0; x < W; ++x) {
      const double xin = a[0] * (x + 0.5) + a[1] * yc + a[2];
      uint8_t* px = o + x * C;
      if (xin < 0.0 || xin >= W) {
        put_fill(px, C, fill);
        continue;
      }
      const double xs = xin - 0.5;
      const int xi = floor_int(xs);
      const double dx = xs - xi;
      const int64_t x0 = clip_index(xi - 1, W) * C, x1 = clip_index(xi, W) * C, x2 = clip_index(xi + 1, W) * C,
                    x3 = clip_index(xi + 2, W) * C;
      for (int64_t b = 0; b < C; ++b) px[b] = to_u8_clamped(cubic(in[x0 + b], in[x1 + b], in[x2 + b], in[x3 + b], dx));
    }
  }
}

VITSLIM_HOT void warp_columns_bicubic(const Image& im, const std::array<double, 6>& a,
                                      const std::array<uint8_t, 3>& fill, Image& out) {
  const int64_t C = im.channels, H = im.height;
  for (int64_t y = 0; y < H; ++y) {
    uint8_t* o = out.row(y);
    const double yc = y + 0.5;
    for (int64_t x = 0; x < im.width; ++x) {
      const double yin = a[3] * (x + 0.5) + a[4] * yc + a[5];
      uint8_t* px = o + x * C;
      if (yin < 0.0 || yin >= H) {
        put_fill(px, C, fill);
        continue;
      }
      const double ys = yin - 0.5;
      const int yi = floor_int(ys) - 1;
      const double dy = ys - (yi + 1);
      const uint8_t* r[4];
      r[0] = im.row(clip_index(yi, H)) + x * C;
      for (int k = 1; k < 4; ++k) r[k] = (yi + k >= 0 && yi + k < H) ? im.row(yi + k) + x * C : r[k - 1];
      for (int64_t b = 0; b < C; ++b) px[b] = to_u8_clamped(cubic(r[0][b], r[1][b], r[2][b], r[3][b], dy));
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
#define VITSLIM_AVX2 __attribute__((target("avx2")))
#define VITSLIM_AVX2_INLINE inline __attribute__((target("avx2"), always_inline))

// PIL's BICUBIC on four lanes, the same operations in the same order as cubic() (no FMA).
VITSLIM_AVX2_INLINE __m256d cubic4(__m256d v1, __m256d v2, __m256d v3, __m256d v4, __m256d d) {
  const __m256d p2 = _mm256_sub_pd(v3, v1);  // -v1 + v3
  const __m256d p3 = _mm256_sub_pd(_mm256_add_pd(_mm256_mul_pd(_mm256_set1_pd(2.0), _mm256_sub_pd(v1, v2)), v3), v4);
  const __m256d p4 = _mm256_add_pd(_mm256_sub_pd(_mm256_sub_pd(v2, v1), v3), v4);  // -v1 + v2 - v3 + v4
  return _mm256_add_pd(v2,
                       _mm256_mul_pd(d, _mm256_add_pd(p2, _mm256_mul_pd(d, _mm256_add_pd(p3, _mm256_mul_pd(d, p4))))));
}

// Byte `b` of the pixels at offsets o[0..3] of four lanes, as doubles.
VITSLIM_AVX2_INLINE __m256d gather4(const uint8_t* const* p, int64_t b) {
  return _mm256_cvtepi32_pd(_mm_set_epi32(p[3][b], p[2][b], p[1][b], p[0][b]));
}

// Four lanes' values of one tap: window pixels m .. m + 3.
VITSLIM_AVX2_INLINE __m256d taps4(const int32_t* window, int m) {
  return _mm256_cvtepi32_pd(_mm_loadu_si128(reinterpret_cast<const __m128i*>(window + m)));
}

// Bicubic affine warp of an RGB image, four output pixels at a time where all four sample inside
// the image with every tap in range (then no clipping rule applies); the rest go through
// sample_bicubic. `rows_only` (y maps to itself: dy = 0) and `columns_only` (dx = 0) evaluate only
// the cubic that can change the result, as the scalar paths do; all paths give PIL's bytes.
VITSLIM_AVX2 void warp_bicubic_rgb_avx2(const Image& im, const std::array<double, 6>& a,
                                        const std::array<uint8_t, 3>& fill, bool rows_only, bool columns_only,
                                        Image& out) {
  const int64_t W = im.width, H = im.height;
  const __m256d zero = _mm256_setzero_pd(), top = _mm256_set1_pd(255.0);
  for (int64_t y = 0; y < H; ++y) {
    uint8_t* o = out.row(y);
    const double yc = y + 0.5;
    int64_t x = 0;
    for (; x + 4 <= W; x += 4) {
      double dx[4], dy[4];
      int xi[4], yi[4];
      bool fast = true;
      for (int l = 0; l < 4; ++l) {
        const double xcl = x + l + 0.5;
        const double xin = a[0] * xcl + a[1] * yc + a[2];
        const double yin = a[3] * xcl + a[4] * yc + a[5];
        if (!(xin >= 0.0 && xin < W && yin >= 0.0 && yin < H)) {
          fast = false;
          break;
        }
        const double xs = xin - 0.5, ys = yin - 0.5;
        xi[l] = floor_int(xs) - 1;
        yi[l] = floor_int(ys) - 1;
        dx[l] = xs - (xi[l] + 1);
        dy[l] = ys - (yi[l] + 1);
        if (xi[l] < 0 || xi[l] + 3 >= W || yi[l] < 0 || yi[l] + 3 >= H) fast = false;
      }
      if (!fast) {
        for (int l = 0; l < 4; ++l) {
          const double xcl = x + l + 0.5;
          uint8_t* px = o + (x + l) * 3;
          if (!sample_bicubic(im, a[0] * xcl + a[1] * yc + a[2], a[3] * xcl + a[4] * yc + a[5], px)) {
            put_fill(px, 3, fill);
          }
        }
        continue;
      }
      const __m256d vdx = _mm256_loadu_pd(dx), vdy = _mm256_loadu_pd(dy);
      // Common case: the four lanes sample one source row at consecutive columns, so each source
      // row's taps for all four lanes are 7 neighbouring pixels, read once.
      const bool contiguous = yi[1] == yi[0] && yi[2] == yi[0] && yi[3] == yi[0] && xi[1] == xi[0] + 1 &&
                              xi[2] == xi[0] + 2 && xi[3] == xi[0] + 3;
      alignas(32) int32_t window[4][3][8];  // [source row yi + k][channel][pixel xi + m]
      if (contiguous) {
        for (int k = 0; k < 4; ++k) {
          if (rows_only && k != 1) continue;
          const uint8_t* p = im.row(yi[0] + k) + xi[0] * 3;
          for (int m = 0; m < 7; ++m) {
            window[k][0][m] = p[m * 3];
            window[k][1][m] = p[m * 3 + 1];
            window[k][2][m] = p[m * 3 + 2];
          }
        }
      }
      alignas(16) int32_t result[3][4];
      for (int64_t b = 0; b < 3; ++b) {
        __m256d v;
        if (contiguous && rows_only) {  // dy = 0: the cubic over x of row yi + 1
          const int32_t* w = window[1][b];
          v = cubic4(taps4(w, 0), taps4(w, 1), taps4(w, 2), taps4(w, 3), vdx);
        } else if (contiguous && columns_only) {  // dx = 0: the cubic over y of column xi + 1
          v = cubic4(taps4(window[0][b], 1), taps4(window[1][b], 1), taps4(window[2][b], 1), taps4(window[3][b], 1),
                     vdy);
        } else if (contiguous) {
          __m256d r[4];
          for (int k = 0; k < 4; ++k) {
            const int32_t* w = window[k][b];
            r[k] = cubic4(taps4(w, 0), taps4(w, 1), taps4(w, 2), taps4(w, 3), vdx);
          }
          v = cubic4(r[0], r[1], r[2], r[3], vdy);
        } else if (rows_only) {
          const uint8_t* t[4][4];
          for (int k = 0; k < 4; ++k) {
            for (int l = 0; l < 4; ++l) t[k][l] = im.row(yi[l] + 1) + (xi[l] + k) * 3;
          }
          v = cubic4(gather4(t[0], b), gather4(t[1], b), gather4(t[2], b), gather4(t[3], b), vdx);
        } else if (columns_only) {
          const uint8_t* t[4][4];
          for (int k = 0; k < 4; ++k) {
            for (int l = 0; l < 4; ++l) t[k][l] = im.row(yi[l] + k) + (xi[l] + 1) * 3;
          }
          v = cubic4(gather4(t[0], b), gather4(t[1], b), gather4(t[2], b), gather4(t[3], b), vdy);
        } else {
          __m256d r[4];
          for (int k = 0; k < 4; ++k) {
            const uint8_t* t[4][4];
            for (int j = 0; j < 4; ++j) {
              for (int l = 0; l < 4; ++l) t[j][l] = im.row(yi[l] + k) + (xi[l] + j) * 3;
            }
            r[k] = cubic4(gather4(t[0], b), gather4(t[1], b), gather4(t[2], b), gather4(t[3], b), vdx);
          }
          v = cubic4(r[0], r[1], r[2], r[3], vdy);
        }
        v = _mm256_min_pd(_mm256_max_pd(v, zero), top);  // <= 0 -> 0, >= 255 -> 255, else truncated
        _mm_store_si128(reinterpret_cast<__m128i*>(result[b]), _mm256_cvttpd_epi32(v));
      }
      for (int l = 0; l < 4; ++l) {
        uint8_t* px = o + (x + l) * 3;
        px[0] = static_cast<uint8_t>(result[0][l]);
        px[1] = static_cast<uint8_t>(result[1][l]);
        px[2] = static_cast<uint8_t>(result[2][l]);
      }
    }
    for (; x < W; ++x) {
      const double xcl = x + 0.5;
      uint8_t* px = o + x * 3;
      if (!sample_bicubic(im, a[0] * xcl + a[1] * yc + a[2], a[3] * xcl + a[4] * yc + a[5], px)) {
        put_fill(px, 3, fill);
      }
    }
  }
}
#endif

}  // namespace

Image affine(const Image& im, const std::array<double, 6>& a, Filter filter, const std::array<uint8_t, 3>& fill) {
  Image out(im.width, im.height, im.channels);
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2 && filter == Filter::Bicubic && im.channels == 3) {
    const bool rows_only = a[3] == 0 && a[4] == 1 && a[5] == 0;
    const bool columns_only = !rows_only && a[0] == 1 && a[1] == 0 && a[2] == 0;
    warp_bicubic_rgb_avx2(im, a, fill, rows_only, columns_only, out);
    return out;
  }
#endif
  if (filter == Filter::Bicubic && a[3] == 0 && a[4] == 1 && a[5] == 0) {
    warp_rows_bicubic(im, a, fill, out);
  } else if (filter == Filter::Bicubic && a[0] == 1 && a[1] == 0 && a[2] == 0) {
    warp_columns_bicubic(im, a, fill, out);
  } else if (filter == Filter::Bicubic) {
    warp<sample_bicubic>(im, a, fill, out);
  } else {
    warp<sample_bilinear>(im, a, fill, out);
  }
  return out;
}

Image rotate(const Image& im, double degrees, Filter filter, const std::array<uint8_t, 3>& fill) {
  degrees = std::fmod(degrees, 360.0);  // Python's angle % 360.0
  if (degrees < 0) degrees += 360.0;
  if (degrees == 0) return im;
  const double angle = -(degrees * (M_PI / 180.0));  // -math.radians(degrees)
  std::array<double, 6> m = {round15(std::cos(angle)),  round15(std::sin(angle)), 0.0,
                             round15(-std::sin(angle)), round15(std::cos(angle)), 0.0};
  const double cx = im.width / 2.0, cy = im.height / 2.0;
  m[2] = m[0] * -cx + m[1] * -cy + m[2] + cx;
  m[5] = m[3] * -cx + m[4] * -cy + m[5] + cy;
  return affine(im, m, filter, fill);
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

void apply_augment_op(Image& image, AugmentOp op, double level, bool increasing, const AugmentContext& ctx, Rng& rng) {
  const double l = level / kLevelDenominator;
  auto enhance_factor = [&]() {
    return increasing ? std::max(kEnhanceMin, 1.0 + randomly_negate(l * kEnhanceRange, rng)) : l * 1.8 + kEnhanceMin;
  };
  switch (op) {
    case AugmentOp::AutoContrast:
      autocontrast(image);
      break;
    case AugmentOp::Equalize:
      equalize(image);
      break;
    case AugmentOp::Invert: {
      std::array<uint8_t, 256> lut;
      for (int i = 0; i < 256; ++i) lut[static_cast<size_t>(i)] = static_cast<uint8_t>(255 - i);
      apply_lut(image, lut);
      break;
    }
    case AugmentOp::Rotate:
      image = rotate(image, randomly_negate(l * kRotateMaxDegrees, rng), ctx.filter, ctx.fill);
      break;
    case AugmentOp::Posterize: {
      const int keep = static_cast<int>(l * kPosterizeBitsRange);
      const int bits = increasing ? kPosterizeBitsRange - keep : keep;
      if (bits < 8) posterize(image, bits);
      break;
    }
    case AugmentOp::Solarize: {
      const int t = std::min(256, static_cast<int>(l * 256));
      solarize(image, increasing ? 256 - t : t);
      break;
    }
    case AugmentOp::SolarizeAdd:
      solarize_add(image, std::min(128, static_cast<int>(l * kSolarizeAddMax)));
      break;
    case AugmentOp::Color:
      enhance_color(image, enhance_factor());
      break;
    case AugmentOp::Contrast:
      enhance_contrast(image, enhance_factor());
      break;
    case AugmentOp::Brightness:
      enhance_brightness(image, enhance_factor());
      break;
    case AugmentOp::Sharpness:
      enhance_sharpness(image, enhance_factor());
      break;
    case AugmentOp::ShearX:
      image = affine(image, {1, randomly_negate(l * kShearMax, rng), 0, 0, 1, 0}, ctx.filter, ctx.fill);
      break;
    case AugmentOp::ShearY:
      image = affine(image, {1, 0, 0, randomly_negate(l * kShearMax, rng), 1, 0}, ctx.filter, ctx.fill);
      break;
    case AugmentOp::TranslateXRel:
      image = affine(image, {1, 0, randomly_negate(l * kTranslateMaxFraction, rng) * image.width, 0, 1, 0}, ctx.filter,
                     ctx.fill);
      break;
    case AugmentOp::TranslateYRel:
      image = affine(image, {1, 0, 0, 0, 1, randomly_negate(l * kTranslateMaxFraction, rng) * image.height}, ctx.filter,
                     ctx.fill);
      break;
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
