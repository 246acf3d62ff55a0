// Resizing with PIL's arithmetic, so that vitslim's crops equal torchvision's on PIL images:
// separable convolution (horizontal pass first, rounded to 8 bits, then vertical), a filter
// support widened by the downscale factor (antialiasing), per-output coefficients normalised to
// sum 1 and rounded to 22-bit fixed point, and the bicubic kernel with a = -0.5. OpenCV's
// INTER_CUBIC (a = -0.75, no antialiasing) gives different pixels, which is why this is written
// here rather than taken from OpenCV.
#pragma once

#include <cstdint>
#include <string>

#include "core/options.h"
#include "data/image/image.h"

namespace vitslim::data {

enum class Filter { Bilinear, Bicubic };

// Image.resize((out_w, out_h), filter, box) of `src`, producing only `window` of the out_w x out_h
// result (a resize followed by a crop, without computing the pixels the crop drops; every
// produced pixel is exactly the one the full resize would have). An empty window means all.
Image resample(const Image& src, const Box& box, int64_t out_w, int64_t out_h, Filter filter, Region window = {});

// The --interpolation names.
inline const EnumNames<Filter> kFilterNames = {{Filter::Bicubic, "bicubic"}, {Filter::Bilinear, "bilinear"}};

}  // namespace vitslim::data
