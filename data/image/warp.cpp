// Implements the geometric RandAugment ops with PIL's arithmetic (see augment.h): the affine
// sampler follows PIL's Geometry.c (pixel-centre mapping, edge handling, truncation to 8 bits)
// with bicubic and bilinear filters; rotations build PIL's matrix. Bicubic RGB warps run four
// pixels at a time with AVX2 where the CPU has it, byte-identical to the scalar path.
#include <cmath>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "data/image/augment.h"

namespace vitslim::data {
namespace {

// Loops compiled for AVX2 and the baseline, picked at load time.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VITSLIM_HOT __attribute__((target_clones("avx2", "default")))
#else
#define VITSLIM_HOT
#endif

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

// Python's round(x, 15) for the rotation matrix entries.
double round15(double v) { return std::nearbyint(v * 1e15) / 1e15; }

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

// Where four neighbouring output pixels sample: integer tap origins and fractions per lane.
struct Lanes4 {
  alignas(32) double dx[4], dy[4];
  int xi[4], yi[4];
  bool fast = true;         // all four inside the image with every tap in range
  bool contiguous = false;  // one source row, consecutive columns
};

inline Lanes4 locate4(const std::array<double, 6>& a, int64_t x, double yc, int64_t W, int64_t H) {
  Lanes4 lanes;
  for (int l = 0; l < 4; ++l) {
    const double xcl = x + l + 0.5;
    const double xin = a[0] * xcl + a[1] * yc + a[2];
    const double yin = a[3] * xcl + a[4] * yc + a[5];
    if (!(xin >= 0.0 && xin < W && yin >= 0.0 && yin < H)) {
      lanes.fast = false;
      return lanes;
    }
    const double xs = xin - 0.5, ys = yin - 0.5;
    lanes.xi[l] = floor_int(xs) - 1;
    lanes.yi[l] = floor_int(ys) - 1;
    lanes.dx[l] = xs - (lanes.xi[l] + 1);
    lanes.dy[l] = ys - (lanes.yi[l] + 1);
    if (lanes.xi[l] < 0 || lanes.xi[l] + 3 >= W || lanes.yi[l] < 0 || lanes.yi[l] + 3 >= H) lanes.fast = false;
  }
  const int* xi = lanes.xi;
  const int* yi = lanes.yi;
  lanes.contiguous = yi[1] == yi[0] && yi[2] == yi[0] && yi[3] == yi[0] && xi[1] == xi[0] + 1 && xi[2] == xi[0] + 2 &&
                     xi[3] == xi[0] + 3;
  return lanes;
}

// One pixel through the scalar sampler (outside: the fill colour).
inline void sample_one(const Image& im, const std::array<double, 6>& a, int64_t x, double yc,
                       const std::array<uint8_t, 3>& fill, uint8_t* px) {
  const double xc = x + 0.5;
  if (!sample_bicubic(im, a[0] * xc + a[1] * yc + a[2], a[3] * xc + a[4] * yc + a[5], px)) put_fill(px, 3, fill);
}

// Contiguous lanes: each source row's taps for all four lanes are 7 neighbouring pixels, read once.
// window[k][b][m]: source row yi + k, channel b, pixel xi + m.
VITSLIM_AVX2_INLINE void load_window(const Image& im, const Lanes4& lanes, bool rows_only, int32_t window[4][3][8]) {
  for (int k = 0; k < 4; ++k) {
    if (rows_only && k != 1) continue;
    const uint8_t* p = im.row(lanes.yi[0] + k) + lanes.xi[0] * 3;
    for (int m = 0; m < 7; ++m) {
      window[k][0][m] = p[m * 3];
      window[k][1][m] = p[m * 3 + 1];
      window[k][2][m] = p[m * 3 + 2];
    }
  }
}

// Channel b of four lanes from the window: the cubic over x of row yi + 1 (rows only, dy = 0),
// over y of column xi + 1 (columns only, dx = 0), or both.
VITSLIM_AVX2_INLINE __m256d window_channel(const int32_t window[4][3][8], int64_t b, __m256d vdx, __m256d vdy,
                                           bool rows_only, bool columns_only) {
  if (rows_only) {
    const int32_t* w = window[1][b];
    return cubic4(taps4(w, 0), taps4(w, 1), taps4(w, 2), taps4(w, 3), vdx);
  }
  if (columns_only) {
    return cubic4(taps4(window[0][b], 1), taps4(window[1][b], 1), taps4(window[2][b], 1), taps4(window[3][b], 1), vdy);
  }
  __m256d r[4];
  for (int k = 0; k < 4; ++k) {
    const int32_t* w = window[k][b];
    r[k] = cubic4(taps4(w, 0), taps4(w, 1), taps4(w, 2), taps4(w, 3), vdx);
  }
  return cubic4(r[0], r[1], r[2], r[3], vdy);
}

// One cubic of four lanes, each lane's taps gathered from its own position: over x along source
// row yi + row (along_y false), or over y along source column xi + column (along_y true).
VITSLIM_AVX2_INLINE __m256d row_cubic4(const Image& im, const Lanes4& lanes, int row, int column, int64_t b, __m256d d,
                                       bool along_y) {
  const uint8_t* t[4][4];
  for (int k = 0; k < 4; ++k) {
    for (int l = 0; l < 4; ++l) {
      t[k][l] = along_y ? im.row(lanes.yi[l] + k) + (lanes.xi[l] + column) * 3
                        : im.row(lanes.yi[l] + row) + (lanes.xi[l] + k) * 3;
    }
  }
  return cubic4(gather4(t[0], b), gather4(t[1], b), gather4(t[2], b), gather4(t[3], b), d);
}

VITSLIM_AVX2_INLINE __m256d gathered_channel(const Image& im, const Lanes4& lanes, int64_t b, __m256d vdx, __m256d vdy,
                                             bool rows_only, bool columns_only) {
  if (rows_only) return row_cubic4(im, lanes, 1, 0, b, vdx, false);
  if (columns_only) return row_cubic4(im, lanes, 0, 1, b, vdy, true);
  __m256d r[4];
  for (int k = 0; k < 4; ++k) r[k] = row_cubic4(im, lanes, k, 0, b, vdx, false);
  return cubic4(r[0], r[1], r[2], r[3], vdy);
}

// Four RGB output pixels of fast lanes.
VITSLIM_AVX2_INLINE void warp4(const Image& im, const Lanes4& lanes, bool rows_only, bool columns_only, uint8_t* o) {
  const __m256d zero = _mm256_setzero_pd(), top = _mm256_set1_pd(255.0);
  const __m256d vdx = _mm256_loadu_pd(lanes.dx), vdy = _mm256_loadu_pd(lanes.dy);
  alignas(32) int32_t window[4][3][8];
  if (lanes.contiguous) load_window(im, lanes, rows_only, window);
  alignas(16) int32_t result[3][4];
  for (int64_t b = 0; b < 3; ++b) {
    __m256d v = lanes.contiguous ? window_channel(window, b, vdx, vdy, rows_only, columns_only)
                                 : gathered_channel(im, lanes, b, vdx, vdy, rows_only, columns_only);
    v = _mm256_min_pd(_mm256_max_pd(v, zero), top);  // <= 0 -> 0, >= 255 -> 255, else truncated
    _mm_store_si128(reinterpret_cast<__m128i*>(result[b]), _mm256_cvttpd_epi32(v));
  }
  for (int l = 0; l < 4; ++l) {
    for (int b = 0; b < 3; ++b) o[l * 3 + b] = static_cast<uint8_t>(result[b][l]);
  }
}

// Bicubic affine warp of an RGB image, four output pixels at a time where all four sample inside
// the image with every tap in range (then no clipping rule applies); the rest go through
// sample_bicubic. `rows_only` (y maps to itself: dy = 0) and `columns_only` (dx = 0) evaluate only
// the cubic that can change the result, as the scalar paths do; all paths give PIL's bytes.
VITSLIM_AVX2 void warp_bicubic_rgb_avx2(const Image& im, const std::array<double, 6>& a,
                                        const std::array<uint8_t, 3>& fill, bool rows_only, bool columns_only,
                                        Image& out) {
  const int64_t W = im.width, H = im.height;
  for (int64_t y = 0; y < H; ++y) {
    uint8_t* o = out.row(y);
    const double yc = y + 0.5;
    int64_t x = 0;
    for (; x + 4 <= W; x += 4) {
      const Lanes4 lanes = locate4(a, x, yc, W, H);
      if (lanes.fast) {
        warp4(im, lanes, rows_only, columns_only, o + x * 3);
      } else {
        for (int l = 0; l < 4; ++l) sample_one(im, a, x + l, yc, fill, o + (x + l) * 3);
      }
    }
    for (; x < W; ++x) sample_one(im, a, x, yc, fill, o + x * 3);
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

}  // namespace vitslim::data
