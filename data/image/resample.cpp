// Implements the PIL-compatible resampler (see resample.h). Coefficients follow PIL's
// precompute_coeffs / normalize_coeffs_8bpc; the passes keep Pillow 13's order and rounding. The
// column pass is an AVX2 kernel (picked at run time, with a portable fallback); colour rows are
// filtered as columns of a transposed copy.
#include "data/image/resample.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <string>
#include <vector>

#include "core/error.h"

namespace vitslim::data {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;
constexpr int32_t kHalf = 1 << (kPrecisionBits - 1);

double bicubic_kernel(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

double bilinear_kernel(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

// Fixed-point taps of every output position along one axis.
struct Coefficients {
  int64_t taps = 0;            // stride of `k`
  std::vector<int64_t> first;  // first input index per output
  std::vector<int64_t> count;  // number of inputs per output
  std::vector<int32_t> k;      // [out, taps]
};

Coefficients coefficients(int64_t in_size, float in0, float in1, int64_t out_size, Filter filter) {
  const double support_base = filter == Filter::Bicubic ? 2.0 : 1.0;
  double (*kernel)(double) = filter == Filter::Bicubic ? bicubic_kernel : bilinear_kernel;
  const double scale = static_cast<double>(in1 - in0) / static_cast<double>(out_size);
  const double filterscale = std::max(scale, 1.0);
  const double support = support_base * filterscale;
  Coefficients c;
  c.taps = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  c.first.resize(static_cast<size_t>(out_size));
  c.count.resize(static_cast<size_t>(out_size));
  c.k.assign(static_cast<size_t>(out_size * c.taps), 0);
  std::vector<double> w(static_cast<size_t>(c.taps));
  const double inv_filterscale = 1.0 / filterscale;
  for (int64_t xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const int64_t xmin = std::max<int64_t>(0, static_cast<int64_t>(center - support + 0.5));
    const int64_t xmax = std::min<int64_t>(in_size, static_cast<int64_t>(center + support + 0.5)) - xmin;
    double ww = 0.0;
    for (int64_t x = 0; x < xmax; ++x) {
      w[static_cast<size_t>(x)] = kernel((x + xmin - center + 0.5) * inv_filterscale);
      ww += w[static_cast<size_t>(x)];
    }
    for (int64_t x = 0; x < xmax; ++x) {
      double v = ww != 0.0 ? w[static_cast<size_t>(x)] / ww : w[static_cast<size_t>(x)];
      c.k[static_cast<size_t>(xx * c.taps + x)] =
          static_cast<int32_t>(v < 0 ? -0.5 + v * (1 << kPrecisionBits) : 0.5 + v * (1 << kPrecisionBits));
    }
    c.first[static_cast<size_t>(xx)] = xmin;
    c.count[static_cast<size_t>(xx)] = std::max<int64_t>(xmax, 0);
  }
  return c;
}

inline uint8_t clip8(int32_t ss) { return static_cast<uint8_t>(std::clamp(ss >> kPrecisionBits, 0, 255)); }

// Horizontal pass over input rows [y0, y1) for output columns [ox0, ox1) (grey images).
void horizontal_grey(const Image& src, int64_t y0, int64_t y1, const Coefficients& c, int64_t ox0, int64_t ox1,
                     Image& dst) {
  for (int64_t y = y0; y < y1; ++y) {
    const uint8_t* in = src.row(y);
    uint8_t* out = dst.row(y - y0);
    for (int64_t xx = ox0; xx < ox1; ++xx) {
      const int32_t* k = &c.k[static_cast<size_t>(xx * c.taps)];
      const uint8_t* p = in + c.first[static_cast<size_t>(xx)];
      int32_t ss = kHalf;
      for (int64_t x = 0; x < c.count[static_cast<size_t>(xx)]; ++x) ss += p[x] * k[x];
      out[xx - ox0] = clip8(ss);
    }
  }
}

// Pixel transpose of rows [y0, y1) of an RGB image: dst(x, y - y0) = src(y, x). Four source
// rows at a time, so each destination row gets 12 contiguous bytes per visit.
void transpose_rgb(const Image& src, int64_t y0, int64_t y1, Image& dst) {
  constexpr int64_t kBlock = 64;
  const int64_t dst_stride = dst.row_bytes();
  for (int64_t bx = 0; bx < src.width; bx += kBlock) {
    const int64_t ex = std::min(bx + kBlock, src.width);
    int64_t y = y0;
    for (; y + 4 <= y1; y += 4) {
      const uint8_t* r0 = src.row(y) + bx * 3;
      const uint8_t* r1 = src.row(y + 1) + bx * 3;
      const uint8_t* r2 = src.row(y + 2) + bx * 3;
      const uint8_t* r3 = src.row(y + 3) + bx * 3;
      uint8_t* out = dst.pixels.data() + bx * dst_stride + (y - y0) * 3;
      for (int64_t x = bx; x < ex; ++x, r0 += 3, r1 += 3, r2 += 3, r3 += 3, out += dst_stride) {
        uint8_t block[12] = {r0[0], r0[1], r0[2], r1[0], r1[1], r1[2], r2[0], r2[1], r2[2], r3[0], r3[1], r3[2]};
        std::memcpy(out, block, sizeof(block));
      }
    }
    for (; y < y1; ++y) {
      const uint8_t* in = src.row(y) + bx * 3;
      uint8_t* out = dst.pixels.data() + bx * dst_stride + (y - y0) * 3;
      for (int64_t x = bx; x < ex; ++x, in += 3, out += dst_stride) {
        out[0] = in[0];
        out[1] = in[1];
        out[2] = in[2];
      }
    }
  }
}

// One output row of the vertical pass: out[i] = clip8(kHalf + sum_t rows[t][i] * k[t]), i < n.
void vertical_row_generic(const uint8_t* const* rows, const int32_t* k, int64_t taps, int64_t n, uint8_t* out) {
  constexpr int64_t kChunk = 256;
  int32_t acc[kChunk];
  for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
    const int64_t m = std::min(kChunk, n - i0);
    for (int64_t j = 0; j < m; ++j) acc[j] = kHalf;
    for (int64_t t = 0; t < taps; ++t) {
      const uint8_t* in = rows[t] + i0;
      for (int64_t j = 0; j < m; ++j) acc[j] += in[j] * k[t];
    }
    for (int64_t j = 0; j < m; ++j) out[i0 + j] = clip8(acc[j]);
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
// The same with AVX2: 64 bytes at a time, the accumulators in registers over all taps.
__attribute__((target("avx2"))) void vertical_row_avx2(const uint8_t* const* rows, const int32_t* k, int64_t taps,
                                                       int64_t n, uint8_t* out) {
  constexpr int kVectors = 8;  // independent accumulators hide the multiply latency
  constexpr int64_t kBytes = 8 * kVectors;
  if (n < kBytes) {
    vertical_row_generic(rows, k, taps, n, out);
    return;
  }
  for (int64_t i = 0; i < n; i += kBytes) {
    const int64_t i0 = std::min(i, n - kBytes);  // the last chunk overlaps the previous one
    __m256i acc[kVectors];
    for (auto& a : acc) a = _mm256_set1_epi32(kHalf);
    for (int64_t t = 0; t < taps; ++t) {
      const __m256i kt = _mm256_set1_epi32(k[t]);
      const uint8_t* in = rows[t] + i0;
      for (int j = 0; j < kVectors; ++j) {
        const __m256i x = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(in + 8 * j)));
        acc[j] = _mm256_add_epi32(acc[j], _mm256_mullo_epi32(x, kt));
      }
    }
    alignas(32) int32_t sums[kBytes];
    for (int j = 0; j < kVectors; ++j) _mm256_store_si256(reinterpret_cast<__m256i*>(sums + 8 * j), acc[j]);
    for (int j = 0; j < kBytes; ++j) out[i0 + j] = clip8(sums[j]);
  }
}
#endif

// Vertical pass: output rows [oy0, oy1); `src` row 0 is input row `row_offset`.
void vertical(const Image& src, int64_t row_offset, const Coefficients& c, int64_t oy0, int64_t oy1, Image& dst) {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool avx2 = __builtin_cpu_supports("avx2");
#else
  constexpr bool avx2 = false;
#endif
  const int64_t n = src.row_bytes();
  std::vector<const uint8_t*> rows(static_cast<size_t>(c.taps));
  for (int64_t yy = oy0; yy < oy1; ++yy) {
    const int32_t* k = &c.k[static_cast<size_t>(yy * c.taps)];
    const int64_t first = c.first[static_cast<size_t>(yy)] - row_offset;
    const int64_t taps = c.count[static_cast<size_t>(yy)];
    for (int64_t t = 0; t < taps; ++t) rows[static_cast<size_t>(t)] = src.row(first + t);
#if defined(__x86_64__) && defined(__GNUC__)
    if (avx2 && taps <= 64) {
      vertical_row_avx2(rows.data(), k, taps, n, dst.row(yy - oy0));
      continue;
    }
#endif
    vertical_row_generic(rows.data(), k, taps, n, dst.row(yy - oy0));
  }
}

// Output range [o0, o1) of one axis and the input range [i0, i1) its taps read.
struct Span {
  int64_t o0, o1, i0, i1;
};
Span span(const Coefficients& c, int64_t o0, int64_t o1) {
  Span s{o0, o1, c.first[static_cast<size_t>(o0)], 0};
  for (int64_t o = o0; o < o1; ++o)
    s.i1 = std::max(s.i1, c.first[static_cast<size_t>(o)] + c.count[static_cast<size_t>(o)]);
  return s;
}

// Horizontal pass of rows [y0, y1) of `src` (whose column 0 is input column `col_offset`) for
// output columns [ox0, ox1).
Image horizontal_pass(const Image& src, int64_t y0, int64_t y1, const Coefficients& ch, int64_t col_offset, int64_t ox0,
                      int64_t ox1) {
  Image rows(ox1 - ox0, y1 - y0, src.channels);
  if (src.channels == 1) {
    Coefficients shifted = ch;
    for (auto& f : shifted.first) f -= col_offset;
    horizontal_grey(src, y0, y1, shifted, ox0, ox1, rows);
  } else {
    // Colour rows filter fastest as columns: transpose, run the vectorised column pass, transpose back.
    Image columns(y1 - y0, src.width, src.channels);
    transpose_rgb(src, y0, y1, columns);
    Image filtered(y1 - y0, ox1 - ox0, src.channels);
    vertical(columns, col_offset, ch, ox0, ox1, filtered);
    transpose_rgb(filtered, 0, filtered.height, rows);
  }
  return rows;
}

}  // namespace

Image resample(const Image& src, const Box& box, int64_t out_w, int64_t out_h, Filter filter, Region window) {
  if (window.w == 0 && window.h == 0) window = {0, 0, out_w, out_h};
  if (out_w <= 0 || out_h <= 0 || window.x < 0 || window.y < 0 || window.x + window.w > out_w ||
      window.y + window.h > out_h || src.channels <= 0) {
    throw Error(cat("resample: bad output ", out_w, "x", out_h, " window ", window.x, ",", window.y, " ", window.w, "x",
                    window.h));
  }
  if (src.channels != 1 && src.channels != 3) throw Error(cat("resample: ", src.channels, " channels (1 or 3)"));
  // PIL passes the box as C floats.
  const float bx0 = static_cast<float>(box.x0), bx1 = static_cast<float>(box.x1);
  const float by0 = static_cast<float>(box.y0), by1 = static_cast<float>(box.y1);
  const bool need_h = out_w != src.width || bx0 != 0 || bx1 != out_w;
  const bool need_v = out_h != src.height || by0 != 0 || by1 != out_h;
  const int64_t C = src.channels;
  if (!need_h && !need_v) {
    Image out(window.w, window.h, C);
    for (int64_t y = 0; y < window.h; ++y)
      std::copy_n(src.row(window.y + y) + window.x * C, out.row_bytes(), out.row(y));
    return out;
  }
  const Coefficients ch = need_h ? coefficients(src.width, bx0, bx1, out_w, filter) : Coefficients{};
  const Coefficients cv = need_v ? coefficients(src.height, by0, by1, out_h, filter) : Coefficients{};
  if (!need_v) return horizontal_pass(src, window.y, window.y + window.h, ch, 0, window.x, window.x + window.w);
  const Span rows = span(cv, window.y, window.y + window.h);
  // Pillow 13 runs the vertical pass first when it shrinks and the horizontal one enlarges
  // (observed on its output; Pillow <= 12 and Pillow-SIMD always go horizontal first). The order
  // changes the 8-bit rounding in between, so it is followed here.
  const bool vertical_first = need_h && (by1 - by0) > out_h && (bx1 - bx0) < out_w;
  if (!vertical_first) {
    Image temp = need_h ? horizontal_pass(src, rows.i0, rows.i1, ch, 0, window.x, window.x + window.w)
                        : Image(window.w, rows.i1 - rows.i0, C);
    if (!need_h) {
      for (int64_t y = rows.i0; y < rows.i1; ++y) {
        std::copy_n(src.row(y) + window.x * C, temp.row_bytes(), temp.row(y - rows.i0));
      }
    }
    Image out(window.w, window.h, C);
    vertical(temp, rows.i0, cv, window.y, window.y + window.h, out);
    return out;
  }
  // Vertical first over the columns the window's horizontal taps read.
  const Span cols = span(ch, window.x, window.x + window.w);
  Image strip(cols.i1 - cols.i0, rows.i1 - rows.i0, C);
  for (int64_t y = rows.i0; y < rows.i1; ++y)
    std::copy_n(src.row(y) + cols.i0 * C, strip.row_bytes(), strip.row(y - rows.i0));
  Image temp(strip.width, window.h, C);
  vertical(strip, rows.i0, cv, window.y, window.y + window.h, temp);
  return horizontal_pass(temp, 0, temp.height, ch, cols.i0, window.x, window.x + window.w);
}

}  // namespace vitslim::data
