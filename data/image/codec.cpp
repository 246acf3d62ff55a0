// Implements JPEG/PNG reading (see codec.h). libjpeg reports fatal errors through a longjmp out
// of error_exit; every C++ object of a decode lives in the caller's frame and is constructed
// before setjmp, so the jump skips no destructor. Warnings are ignored except a premature end of
// the file, which is an error (PIL refuses truncated images the same way).
#include "data/image/codec.h"

#include <fcntl.h>
#include <png.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <iterator>

// jpeglib.h needs FILE and size_t declared first.
#include <jerror.h>
#include <jpeglib.h>

namespace vitslim::data {
namespace {

constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
constexpr size_t kPngHeaderBytes = 24;  // signature + IHDR length/type + width + height
constexpr int64_t kEdgeContext = 32;    // pixels decoded beyond a region's sides (>= one iMCU, 4:1:1 too)

uint32_t big_endian32(const uint8_t* b) {
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
}

bool is_png(const std::vector<uint8_t>& b) {
  return b.size() >= sizeof(kPngSignature) && std::equal(std::begin(kPngSignature), std::end(kPngSignature), b.begin());
}
bool is_jpeg(const std::vector<uint8_t>& b) { return b.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF; }

// PIL's CMYK;I unpacking then cmyk2rgb: libjpeg returns Adobe-inverted CMYK bytes.
uint8_t cmyk_channel(uint8_t raw_c, uint8_t raw_k) {
  const int c = 255 - raw_c;
  const int nk = raw_k;  // 255 - K with K = 255 - raw_k
  int tmp = c * nk + 128;
  const int scaled = ((tmp >> 8) + tmp) >> 8;
  return static_cast<uint8_t>(std::clamp(nk - scaled, 0, 255));
}

struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  bool damaged = false;
  char message[JMSG_LENGTH_MAX] = {0};
};

void jpeg_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Warnings that mean the entropy-coded data is damaged (PIL refuses such files); others, like
// extraneous bytes before a marker, are common in ImageNet and harmless.
void jpeg_emit_message(j_common_ptr cinfo, int level) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  if (level >= 0) return;
  const int code = cinfo->err->msg_code;
  if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE || code == JWRN_MUST_RESYNC) {
    if (!err->damaged) (*cinfo->err->format_message)(cinfo, err->message);
    err->damaged = true;
  }
}

// A complete JPEG ends with the end-of-image marker, possibly followed by a little padding.
bool has_end_marker(const std::vector<uint8_t>& b) {
  constexpr size_t kTrailingSlack = 1024;
  const size_t from = b.size() > kTrailingSlack ? b.size() - kTrailingSlack : 2;
  for (size_t i = b.size() - 1; i > from; --i) {
    if (b[i] == 0xD9 && b[i - 1] == 0xFF) return true;
  }
  return false;
}

// Everything one JPEG decode touches, constructed before setjmp.
struct JpegJob {
  jpeg_decompress_struct cinfo{};
  JpegError err;
  std::vector<uint8_t> row;  // one decoded scanline (CMYK before conversion)
  Image out;
  bool created = false;
  ~JpegJob() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
  // Error handlers, source and header; call after setjmp(err.jump) in the caller's frame.
  void read_header(const std::vector<uint8_t>& bytes) {
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jpeg_error_exit;
    err.mgr.emit_message = jpeg_emit_message;
    jpeg_create_decompress(&cinfo);
    created = true;
    jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
    jpeg_read_header(&cinfo, TRUE);
  }
};

// The image size as libjpeg itself reads it (jpeg_read_header), so that the size used to plan a
// crop is the one the decoder will produce, whatever bytes a damaged header holds.
void jpeg_header_size(const std::vector<uint8_t>& bytes, const std::string& name, int64_t& width, int64_t& height) {
  JpegJob job;
  if (setjmp(job.err.jump)) throw BadImage(cat("image ", name, ": corrupt JPEG header (", job.err.message, ")"));
  job.read_header(bytes);
  width = job.cinfo.image_width;
  height = job.cinfo.image_height;
  if (width <= 0 || height <= 0) throw BadImage(cat("image ", name, ": JPEG of size 0"));
}

void copy_converted(const uint8_t* src, uint8_t* dst, int64_t width, int components, int64_t channels) {
  if (components == 4) {  // CMYK -> RGB (or grey through PIL's L conversion of that RGB)
    for (int64_t x = 0; x < width; ++x) {
      const uint8_t* p = src + 4 * x;
      const uint8_t r = cmyk_channel(p[0], p[3]), g = cmyk_channel(p[1], p[3]), b = cmyk_channel(p[2], p[3]);
      if (channels == 3) {
        dst[3 * x] = r, dst[3 * x + 1] = g, dst[3 * x + 2] = b;
      } else {
        dst[x] = static_cast<uint8_t>((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
      }
    }
  } else if (components == channels) {
    std::copy_n(src, width * channels, dst);
  } else if (components == 1) {  // grey -> RGB
    for (int64_t x = 0; x < width; ++x) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = src[x];
  } else {  // RGB -> grey (PIL's ITU-R 601-2 luma)
    for (int64_t x = 0; x < width; ++x) {
      const uint8_t* p = src + 3 * x;
      dst[x] = static_cast<uint8_t>((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
    }
  }
}

// Decodes rows/columns [sy0, sy1) x [sx0, sx1) of the image shrunk by `shrink`; the decoded
// image may start left of sx0 (iMCU alignment), reported through `x_offset`.
Image decode_jpeg(const std::vector<uint8_t>& bytes, const std::string& name, int shrink, int64_t sx0, int64_t sx1,
                  int64_t sy0, int64_t sy1, int64_t channels, int64_t& x_offset) {
  JpegJob job;
  Image& out = job.out;
  if (setjmp(job.err.jump)) {
    throw BadImage(cat("image ", name, ": corrupt JPEG (", job.err.message, ")"));
  }
  job.read_header(bytes);
  const J_COLOR_SPACE in_space = job.cinfo.jpeg_color_space;
  int components = 3;
  if (in_space == JCS_CMYK || in_space == JCS_YCCK) {
    job.cinfo.out_color_space = JCS_CMYK;
    components = 4;
  } else if (in_space == JCS_GRAYSCALE) {
    job.cinfo.out_color_space = JCS_GRAYSCALE;
    components = 1;
  } else {
    job.cinfo.out_color_space = JCS_RGB;
  }
  job.cinfo.scale_num = 1;
  job.cinfo.scale_denom = static_cast<unsigned>(shrink);
  jpeg_start_decompress(&job.cinfo);
  const int64_t out_w = job.cinfo.output_width, out_h = job.cinfo.output_height;
  const int64_t y1 = std::min(sy1, out_h);
  // Fancy (smoothed) chroma upsampling reads one chroma sample beyond each pixel pair: decode an
  // iMCU more on both sides, so the region's edge pixels equal those of a full decode.
  const int64_t x0 = std::max<int64_t>(0, sx0 - kEdgeContext), x1 = std::min(sx1 + kEdgeContext, out_w);
  JDIMENSION xoff = static_cast<JDIMENSION>(x0), cw = static_cast<JDIMENSION>(x1 - x0);
  if (x0 > 0 || x1 < out_w) jpeg_crop_scanline(&job.cinfo, &xoff, &cw);
  x_offset = xoff;
  const int64_t width = job.cinfo.output_width;  // after the crop: cw
  out = Image(width, y1 - sy0, channels);
  job.row.resize(static_cast<size_t>(width * components));
  if (sy0 > 0) jpeg_skip_scanlines(&job.cinfo, static_cast<JDIMENSION>(sy0));
  for (int64_t y = 0; y < out.height; ++y) {
    JSAMPROW rows[1] = {components == channels ? out.row(y) : job.row.data()};
    if (jpeg_read_scanlines(&job.cinfo, rows, 1) != 1) {
      throw BadImage(cat("image ", name, ": JPEG ended early"));
    }
    if (components != channels) copy_converted(job.row.data(), out.row(y), width, components, channels);
  }
  if (job.err.damaged) throw BadImage(cat("image ", name, ": corrupt JPEG data (", job.err.message, ")"));
  jpeg_abort_decompress(&job.cinfo);
  return std::move(out);
}

Image decode_png(const std::vector<uint8_t>& bytes, const std::string& name, int64_t channels) {
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  struct Free {
    png_image* p;
    ~Free() { png_image_free(p); }
  } release{&png};
  if (!png_image_begin_read_from_memory(&png, bytes.data(), bytes.size())) {
    throw BadImage(cat("image ", name, ": corrupt PNG (", png.message, ")"));
  }
  // Read with alpha when there is one, then drop it (PIL's convert("RGB") ignores alpha).
  const bool alpha = (png.format & PNG_FORMAT_FLAG_ALPHA) != 0;
  const bool colour = channels == 3;
  png.format = colour ? (alpha ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB) : (alpha ? PNG_FORMAT_GA : PNG_FORMAT_GRAY);
  const int64_t stored = (colour ? 3 : 1) + (alpha ? 1 : 0);
  std::vector<uint8_t> buffer(PNG_IMAGE_SIZE(png));
  if (!png_image_finish_read(&png, nullptr, buffer.data(), 0, nullptr)) {
    throw BadImage(cat("image ", name, ": corrupt PNG (", png.message, ")"));
  }
  Image out(png.width, png.height, channels);
  const int64_t n = out.width * out.height;
  for (int64_t i = 0; i < n; ++i)
    std::copy_n(&buffer[static_cast<size_t>(i * stored)], channels, &out.pixels[static_cast<size_t>(i * channels)]);
  return out;
}

Image crop_pixels(const Image& src, int64_t x0, int64_t x1, int64_t y0, int64_t y1, int64_t channels) {
  Image out(x1 - x0, y1 - y0, channels);
  for (int64_t y = y0; y < y1; ++y) {
    copy_converted(src.row(y) + x0 * src.channels, out.row(y - y0), out.width, static_cast<int>(src.channels),
                   channels);
  }
  return out;
}

}  // namespace

// Opened without blocking and checked to be a regular file first: a FIFO named like an image (in
// a folder or a list) would otherwise block the loader forever.
SourceImage SourceImage::from_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw BadImage(cat("image ", path, ": cannot open"));
  struct stat st {};
  std::vector<uint8_t> bytes;
  const char* problem = nullptr;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    problem = S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file (a FIFO, socket or device)";
  } else if (st.st_size <= 0) {
    problem = "empty file";
  } else {
    bytes.resize(static_cast<size_t>(st.st_size));
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::read(fd, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    if (done != bytes.size()) problem = "read error (the file changed size or could not be read)";
  }
  ::close(fd);
  if (problem) throw BadImage(cat("image ", path, ": ", problem));
  return from_bytes(std::move(bytes), path);
}

SourceImage SourceImage::from_bytes(std::vector<uint8_t> bytes, std::string name) {
  SourceImage s;
  s.name_ = std::move(name);
  if (is_jpeg(bytes)) {
    s.format_ = Format::Jpeg;
    if (!has_end_marker(bytes)) throw BadImage(cat("image ", s.name_, ": truncated JPEG (no end-of-image marker)"));
    jpeg_header_size(bytes, s.name_, s.width_, s.height_);
  } else if (is_png(bytes)) {
    s.format_ = Format::Png;
    if (bytes.size() < kPngHeaderBytes) throw BadImage(cat("image ", s.name_, ": truncated PNG header"));
    if (std::memcmp(&bytes[12], "IHDR", 4) != 0) throw BadImage(cat("image ", s.name_, ": PNG without IHDR first"));
    s.width_ = big_endian32(&bytes[16]);
    s.height_ = big_endian32(&bytes[20]);
    if (s.width_ <= 0 || s.height_ <= 0) throw BadImage(cat("image ", s.name_, ": PNG of size 0"));
  } else {
    throw BadImage(cat("image ", s.name_, ": not a JPEG or PNG file"));
  }
  if (s.width_ * s.height_ > kMaxImagePixels) {
    throw BadImage(cat("image ", s.name_, ": ", s.width_, "x", s.height_, " is more than ", kMaxImagePixels,
                       " pixels (decompression bomb?)"));
  }
  s.bytes_ = std::move(bytes);
  return s;
}

SourceImage SourceImage::from_pixels(Image image, std::string name) {
  SourceImage s;
  s.name_ = std::move(name);
  s.width_ = image.width;
  s.height_ = image.height;
  s.pixels_ = std::move(image);
  return s;
}

DecodedRegion SourceImage::decode(const Region& r, int64_t channels, int max_shrink, int64_t min_width,
                                  int64_t min_height) const {
  if (r.w <= 0 || r.h <= 0 || r.x < 0 || r.y < 0 || r.x + r.w > width_ || r.y + r.h > height_) {
    throw Error(
        cat("image ", name_, ": region ", r.x, ",", r.y, " ", r.w, "x", r.h, " outside ", width_, "x", height_));
  }
  DecodedRegion out;
  if (format_ == Format::Pixels) {
    out.image = crop_pixels(pixels_, r.x, r.x + r.w, r.y, r.y + r.h, channels);
    out.box = {0, 0, static_cast<double>(r.w), static_cast<double>(r.h)};
    return out;
  }
  if (format_ == Format::Png) {
    Image all = decode_png(bytes_, name_, channels);
    if (all.width != width_ || all.height != height_)
      throw BadImage(cat("image ", name_, ": PNG header/data size mismatch"));
    out.image = crop_pixels(all, r.x, r.x + r.w, r.y, r.y + r.h, channels);
    out.box = {0, 0, static_cast<double>(r.w), static_cast<double>(r.h)};
    return out;
  }
  int shrink = 1;
  while (shrink * 2 <= std::min(max_shrink, kMaxJpegShrink) && r.w / (shrink * 2) >= min_width &&
         r.h / (shrink * 2) >= min_height) {
    shrink *= 2;
  }
  if (shrink == 1) {
    int64_t x_offset = 0;
    Image rows = decode_jpeg(bytes_, name_, 1, r.x, r.x + r.w, r.y, r.y + r.h, channels, x_offset);
    if (x_offset == r.x && rows.width == r.w) {
      out.image = std::move(rows);
    } else {  // iMCU-aligned columns around the region: keep exactly the region (PIL crops first)
      out.image = crop_pixels(rows, r.x - x_offset, r.x - x_offset + r.w, 0, rows.height, channels);
    }
    out.box = {0, 0, static_cast<double>(r.w), static_cast<double>(r.h)};
    return out;
  }
  // libjpeg's scaled size is ceil(size / shrink); the region maps to fractional coordinates.
  const double s = shrink;
  const int64_t sx0 = static_cast<int64_t>(r.x / s), sy0 = static_cast<int64_t>(r.y / s);
  const int64_t sx1 = static_cast<int64_t>(std::ceil((r.x + r.w) / s));
  const int64_t sy1 = static_cast<int64_t>(std::ceil((r.y + r.h) / s));
  int64_t x_offset = 0;
  Image rows = decode_jpeg(bytes_, name_, shrink, sx0, sx1, sy0, sy1, channels, x_offset);
  const int64_t keep_x1 = std::min(sx1 - x_offset, rows.width);
  out.image = crop_pixels(rows, sx0 - x_offset, keep_x1, 0, rows.height, channels);
  out.box = {r.x / s - sx0, r.y / s - sy0, (r.x + r.w) / s - sx0, (r.y + r.h) / s - sy0};
  out.box.x1 = std::min(out.box.x1, static_cast<double>(out.image.width));
  out.box.y1 = std::min(out.box.y1, static_cast<double>(out.image.height));
  return out;
}

Image SourceImage::decode_all(int64_t channels) const { return decode({0, 0, width_, height_}, channels).image; }

}  // namespace vitslim::data
