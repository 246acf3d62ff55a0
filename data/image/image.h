// Decoded images as the per-image transforms see them: 8-bit, interleaved channels (HWC, 1 or 3
// channels, like a PIL "L" or "RGB" image), plus the pixel regions crops are made of. No LibTorch
// here: the transforms write their float output into plain buffers.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace vitslim::data {

// Leaves new elements uninitialised (every image buffer is fully written before it is read), so
// allocating an image does not cost a memset.
template <class T>
struct UninitialisedAllocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = UninitialisedAllocator<U>;
  };
  UninitialisedAllocator() = default;
  template <class U>
  UninitialisedAllocator(const UninitialisedAllocator<U>&) {}
  template <class U>
  void construct(U* p) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};
using Pixels = std::vector<uint8_t, UninitialisedAllocator<uint8_t>>;

struct Image {
  int64_t width = 0, height = 0, channels = 0;
  Pixels pixels;  // [height, width, channels]

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
