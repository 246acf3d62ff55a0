// Image files as the folder datasets read them: JPEG through libjpeg-turbo, PNG through libpng
// (ImageNet hides a PNG among its .JPEG files, so the format comes from the bytes, never the
// name). The size is known from the header before anything is decoded, so a random crop decodes
// only its region: rows above it are skipped (jpeg_skip_scanlines), rows below are never read,
// and columns outside it are not transformed (jpeg_crop_scanline). When the output is much
// smaller than the region, the JPEG is scaled down in the DCT domain (1/2, 1/4, 1/8).
// Pixels match PIL's `Image.open(f).convert("RGB")`: grayscale is replicated, CMYK/YCCK
// (Adobe polarity) is converted with PIL's formula, PNG alpha is dropped.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/image/image.h"

namespace vitslim::data {

// An image file that cannot be decoded: corrupt, truncated, not an image. The message names it.
class BadImage : public Error {
 public:
  using Error::Error;
};

// A crop of a source image as the resampler takes it: `image` holds the decoded pixels and
// `box` is the requested region in their coordinates (fractional after a DCT-domain shrink).
struct DecodedRegion {
  Image image;
  Box box;
};

class SourceImage {
 public:
  // Reads a file and its header (BadImage when it is not a readable JPEG or PNG).
  static SourceImage from_file(const std::string& path);
  static SourceImage from_bytes(std::vector<uint8_t> bytes, std::string name);
  // Pixels already in memory (the array datasets); decode() crops them.
  static SourceImage from_pixels(Image image, std::string name);

  int64_t width() const { return width_; }
  int64_t height() const { return height_; }
  const std::string& name() const { return name_; }
  // The encoded file as read (empty for pixels already in memory).
  const std::vector<uint8_t>& bytes() const { return bytes_; }

  // Decodes `region` (full-resolution pixels, inside the image) with `channels` output channels
  // (3: RGB; 1: only for in-memory grey images). A JPEG may be shrunk by s in {2, 4, 8} in the
  // DCT domain where the shrunk region still has at least `min_width` x `min_height` pixels and
  // s <= max_shrink (1: never).
  DecodedRegion decode(const Region& region, int64_t channels, int max_shrink = 1, int64_t min_width = 0,
                       int64_t min_height = 0) const;
  // The whole image.
  Image decode_all(int64_t channels) const;

 private:
  enum class Format { Jpeg, Png, Pixels };
  Format format_ = Format::Pixels;
  std::string name_;
  std::vector<uint8_t> bytes_;
  Image pixels_;
  int64_t width_ = 0, height_ = 0;
};

// The largest DCT-domain shrink libjpeg offers (scale 1/8).
inline constexpr int kMaxJpegShrink = 8;

// Images larger than this many pixels are refused as bad input (decompression bombs), as PIL does.
inline constexpr int64_t kMaxImagePixels = 178956970;

}  // namespace vitslim::data
