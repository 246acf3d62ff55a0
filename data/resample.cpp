// Implements the PIL-compatible resampler (see resample.h). Coefficients follow PIL's
// precompute_coeffs / normalize_coeffs_8bpc; the passes keep its order and rounding. The
// vertical pass runs over whole rows so the compiler vectorises the multiply-accumulate.
#include "data/resample.h"

#include <algorithm>
#include <cmath>
#include <cstring>
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
  int64_t taps = 0;               // stride of `k`
  std::vector<int64_t> first;     // first input index per output
  std::vector<int64_t> count;     // number of inputs per output
  std::vector<int32_t> k;         // [out, taps]
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

// The hot loops are compiled twice, for AVX2 and for the baseline, and picked at load time.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VITSLIM_HOT __attribute__((target_clones("avx2", "default")))
#else
#define VITSLIM_HOT
#endif

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

// Pixel transpose of rows [y0, y1) of an RGB image: dst(x, y - y0) = src(y, x); cache-blocked.
void transpose_rgb(const Image& src, int64_t y0, int64_t y1, Image& dst) {
  constexpr int64_t kBlock = 32;
  const int64_t dst_stride = dst.row_bytes();
  for (int64_t by = y0; by < y1; by += kBlock) {
    for (int64_t bx = 0; bx < src.width; bx += kBlock) {
      const int64_t ey = std::min(by + kBlock, y1), ex = std::min(bx + kBlock, src.width);
      for (int64_t y = by; y < ey; ++y) {
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
}

// Vertical pass: output rows [oy0, oy1); `src` row 0 is input row `row_offset`.
VITSLIM_HOT void vertical(const Image& src, int64_t row_offset, const Coefficients& c, int64_t oy0, int64_t oy1,
                          Image& dst) {
  const int64_t n = src.row_bytes();
  std::vector<int32_t> acc(static_cast<size_t>(n));
  for (int64_t yy = oy0; yy < oy1; ++yy) {
    std::fill(acc.begin(), acc.end(), kHalf);
    const int32_t* k = &c.k[static_cast<size_t>(yy * c.taps)];
    const int64_t first = c.first[static_cast<size_t>(yy)] - row_offset;
    for (int64_t y = 0; y < c.count[static_cast<size_t>(yy)]; ++y) {
      const uint8_t* in = src.row(first + y);
      const int32_t ky = k[y];
      int32_t* a = acc.data();
      for (int64_t i = 0; i < n; ++i) a[i] += in[i] * ky;
    }
    uint8_t* out = dst.row(yy - oy0);
    for (int64_t i = 0; i < n; ++i) out[i] = clip8(acc[static_cast<size_t>(i)]);
  }
}

}  // namespace

Image resample(const Image& src, const Box& box, int64_t out_w, int64_t out_h, Filter filter, Region window) {
  if (window.w == 0 && window.h == 0) window = {0, 0, out_w, out_h};
  if (out_w <= 0 || out_h <= 0 || window.x < 0 || window.y < 0 || window.x + window.w > out_w ||
      window.y + window.h > out_h || src.channels <= 0) {
    throw Error(cat("resample: bad output ", out_w, "x", out_h, " window ", window.x, ",", window.y, " ", window.w, "x",
                    window.h));
  }
  // PIL passes the box as C floats.
  const float bx0 = static_cast<float>(box.x0), bx1 = static_cast<float>(box.x1);
  const float by0 = static_cast<float>(box.y0), by1 = static_cast<float>(box.y1);
  const bool need_h = out_w != src.width || bx0 != 0 || bx1 != out_w;
  const bool need_v = out_h != src.height || by0 != 0 || by1 != out_h;

  // Input rows the vertical pass reads for the window's rows.
  Coefficients cv;
  int64_t row0 = window.y, row1 = window.y + window.h;
  if (need_v) {
    cv = coefficients(src.height, by0, by1, out_h, filter);
    row0 = cv.first[static_cast<size_t>(window.y)];
    row1 = 0;
    for (int64_t yy = window.y; yy < window.y + window.h; ++yy) {
      row1 = std::max(row1, cv.first[static_cast<size_t>(yy)] + cv.count[static_cast<size_t>(yy)]);
    }
  }
  Image rows(window.w, row1 - row0, src.channels);
  if (need_h) {
    Coefficients ch = coefficients(src.width, bx0, bx1, out_w, filter);
    if (src.channels != 1 && src.channels != 3) throw Error(cat("resample: ", src.channels, " channels (1 or 3)"));
    if (src.channels == 1) {
      horizontal_grey(src, row0, row1, ch, window.x, window.x + window.w, rows);
    } else {
      // Colour rows filter fastest as columns: transpose, run the vectorised column pass, transpose back.
      Image columns(row1 - row0, src.width, src.channels);
      transpose_rgb(src, row0, row1, columns);
      Image filtered(row1 - row0, window.w, src.channels);
      vertical(columns, 0, ch, window.x, window.x + window.w, filtered);
      transpose_rgb(filtered, 0, filtered.height, rows);
    }
  } else {
    for (int64_t y = row0; y < row1; ++y) {
      std::copy_n(src.row(y) + window.x * src.channels, rows.row_bytes(), rows.row(y - row0));
    }
  }
  if (!need_v) return rows;
  Image out(window.w, window.h, src.channels);
  vertical(rows, row0, cv, window.y, window.y + window.h, out);
  return out;
}

Filter parse_filter(const std::string& name) {
  if (name == "bicubic") return Filter::Bicubic;
  if (name == "bilinear") return Filter::Bilinear;
  throw Error(cat("--interpolation ", name, ": expected bicubic or bilinear"));
}

}  // namespace vitslim::data
