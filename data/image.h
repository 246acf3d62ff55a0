// Decoded images as the per-image transforms see them: 8-bit, interleaved channels (HWC, 1 or 3
// channels, like a PIL "L" or "RGB" image), plus the pixel regions crops are made of. No LibTorch
// here: the transforms write their float output into plain buffers.
#pragma once

#include <cstdint>
#include <vector>

namespace vitslim::data {

struct Image {
  int64_t width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;  // [height, width, channels]

  Image() = default;
  Image(int64_t w, int64_t h, int64_t c) : width(w), height(h), channels(c), pixels(static_cast<size_t>(w * h * c)) {}
  uint8_t* row(int64_t y) { return pixels.data() + y * width * channels; }
  const uint8_t* row(int64_t y) const { return pixels.data() + y * width * channels; }
  int64_t row_bytes() const { return width * channels; }
};

// A rectangle of pixels: columns [x, x + w), rows [y, y + h).
struct Region {
  int64_t x = 0, y = 0, w = 0, h = 0;
};

// A sub-pixel box in an image's coordinates (PIL's resize `box`): [x0, x1) x [y0, y1).
struct Box {
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};

}  // namespace vitslim::data
