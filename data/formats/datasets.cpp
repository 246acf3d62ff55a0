// Implements the dataset readers (see dataset.h): IDX through zlib (gzread reads gzipped and
// plain files alike), CIFAR binary records, the synthetic generator, the bad-image policy and the
// defaults. Image folders are in folder.cpp.
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include "core/cpu_memory.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "data/formats/dataset.h"
#include "data/formats/folder.h"
#include "data/formats/shards.h"

namespace vitslim::data {
namespace fs = std::filesystem;
namespace {

constexpr int kIdxUbyte = 0x08;
constexpr uint64_t kIdxMaxBytes = uint64_t{16} << 30;  // far above any IDX data set
constexpr uint64_t kMaxDeflateRatio = 1032;            // gzip cannot expand a byte into more
constexpr size_t kIdxChunk = size_t{64} << 20;         // data is read (and allocated) this much at a time
constexpr int64_t kCifarSide = 32;
constexpr int64_t kCifarChannels = 3;
constexpr int64_t kCifarImageBytes = kCifarChannels * kCifarSide * kCifarSide;
constexpr int kCifar10Batches = 5;

uint32_t big_endian(const uint8_t* b) {
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
}

// First of `names` that exists in dir.
std::string find_file(const std::string& dir, const std::vector<std::string>& names) {
  for (const auto& n : names) {
    fs::path p = fs::path(dir) / n;
    if (fs::exists(p)) return p.string();
  }
  throw Error(cat("dataset ", dir, ": none of ", names.front(), (names.size() > 1 ? " (or .gz)" : ""), " found"));
}

}  // namespace

ArrayDataset::ArrayDataset(std::string name, int64_t channels, int64_t height, int64_t width, int64_t num_classes,
                           std::vector<uint8_t> pixels, std::vector<int64_t> labels)
    : name_(std::move(name)),
      c_(channels),
      h_(height),
      w_(width),
      classes_(num_classes),
      pixels_(std::move(pixels)),
      labels_(std::move(labels)) {}

int64_t ArrayDataset::read(int64_t index, uint8_t* pixels) const {
  if (index < 0 || index >= size()) throw Error(cat(name_, ": image index ", index, " out of range"));
  const int64_t n = image_bytes();
  std::copy_n(pixels_.begin() + index * n, n, pixels);
  return labels_[static_cast<size_t>(index)];
}

int64_t ArrayDataset::label(int64_t index) const {
  if (index < 0 || index >= size()) throw Error(cat(name_, ": image index ", index, " out of range"));
  return labels_[static_cast<size_t>(index)];
}

SourceImage Dataset::source(int64_t index) const {
  const int64_t C = channels(), H = height(), W = width();
  std::vector<uint8_t> planes(static_cast<size_t>(C * H * W));
  read(index, planes.data());
  Image image(W, H, C);  // [C, H, W] -> [H, W, C]
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t i = 0; i < H * W; ++i)
      image.pixels[static_cast<size_t>(i * C + c)] = planes[static_cast<size_t>(c * H * W + i)];
  }
  return SourceImage::from_pixels(std::move(image), cat(name(), " image ", index));
}

int64_t Dataset::with_image(int64_t index, const std::function<void(const SourceImage&)>& use) const {
  constexpr int64_t kMaxSubstitutes = 64;  // consecutive unreadable images before giving up
  const int64_t n = size();
  for (int64_t k = 0; k < std::min(n, kMaxSubstitutes); ++k) {
    const int64_t i = (index + k) % n;
    try {
      use(source(i));
      return label(i);
    } catch (const BadImage& e) {
      if (!skip_bad_) throw Error(cat(e.what(), " (--bad-images fail)"));
      bad_images_.record(e.what());
    }
  }
  throw Error(cat(name(), ": ", std::min(n, kMaxSubstitutes), " consecutive unreadable images from index ", index,
                  " (see the warnings); is this a folder of images?"));
}

void BadImageLog::record(const std::string& message) {
  bool named = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!seen_.insert(message).second) return;
    named = static_cast<int64_t>(seen_.size()) <= kNamedBadImages;
  }
  if (named) log_warn(cat("skipping unreadable image: ", message));
}

int64_t BadImageLog::count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int64_t>(seen_.size());
}

void BadImageLog::summarise(const std::string& dataset, const std::string& consequence) const {
  const int64_t n = count();
  if (n > 0) {
    log_warn(cat(dataset, ": skipped ", n, " unreadable image(s)",
                 n > kNamedBadImages ? cat(" (the first ", kNamedBadImages, " are named above)") : std::string(), "; ",
                 consequence));
  }
}

IdxArray read_idx(const std::string& path, int expected_dims) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw Error(cat("IDX file ", path, ": cannot open"));
  struct Closer {
    gzFile f;
    ~Closer() { gzclose(f); }
  } closer{f};
  auto read_exact = [&](void* dst, size_t n) {
    size_t done = 0;
    while (done < n) {
      int got = gzread(f, static_cast<char*>(dst) + done, static_cast<unsigned>(std::min<size_t>(n - done, 1u << 30)));
      if (got <= 0) {
        int errnum = 0;
        const char* msg = gzerror(f, &errnum);
        throw Error(cat("IDX file ", path, ": truncated or corrupt (", errnum ? msg : "unexpected end of data", ")"));
      }
      done += static_cast<size_t>(got);
    }
  };
  uint8_t magic[4];
  read_exact(magic, 4);
  if (magic[0] != 0 || magic[1] != 0 || magic[2] != kIdxUbyte || magic[3] != expected_dims) {
    throw Error(cat("IDX file ", path, ": bad magic 0x", std::hex, big_endian(magic), ", expected 0x",
                    (kIdxUbyte << 8) | expected_dims, " (unsigned bytes, ", std::dec, expected_dims, " dims)"));
  }
  IdxArray out;
  uint64_t total = 1;
  for (int d = 0; d < expected_dims; ++d) {
    uint8_t b[4];
    read_exact(b, 4);
    out.dims.push_back(big_endian(b));
    if (__builtin_mul_overflow(total, uint64_t{big_endian(b)}, &total) || total > kIdxMaxBytes) {
      throw Error(cat("IDX file ", path, ": header declares an implausible size (corrupt header?)"));
    }
  }
  if (total == 0) throw Error(cat("IDX file ", path, ": holds no data"));
  // The header's size against the file's, before anything is allocated; a gzipped file is then
  // read a chunk at a time, so a lie costs no more memory than the data that is really there.
  std::error_code ec;
  const uint64_t file_bytes = fs::file_size(path, ec);
  if (ec) throw Error(cat("IDX file ", path, ": ", ec.message()));
  const uint64_t header_bytes = 4 * (1 + static_cast<uint64_t>(expected_dims));
  const bool plain = gzdirect(f) != 0;
  if ((plain && file_bytes < header_bytes + total) || (!plain && total / kMaxDeflateRatio > file_bytes)) {
    throw Error(cat("IDX file ", path, ": truncated (the header declares ", total, " bytes of data, the ",
                    plain ? "file holds " : "compressed file holds ", file_bytes, ")"));
  }
  while (out.data.size() < total) {
    const size_t at = out.data.size();
    out.data.resize(at + static_cast<size_t>(std::min<uint64_t>(kIdxChunk, total - at)));
    read_exact(out.data.data() + at, out.data.size() - at);
  }
  uint8_t extra;
  if (gzread(f, &extra, 1) > 0) throw Error(cat("IDX file ", path, ": longer than its header says"));
  return out;
}

std::unique_ptr<Dataset> read_fashion_mnist(const std::string& dir, const std::string& split) {
  if (!fs::is_directory(dir)) throw Error(cat("--data-path ", dir, ": not a directory"));
  const std::string prefix = split == "train" ? "train" : "t10k";
  auto images = read_idx(find_file(dir, {prefix + "-images-idx3-ubyte", prefix + "-images-idx3-ubyte.gz"}), 3);
  std::string label_path = find_file(dir, {prefix + "-labels-idx1-ubyte", prefix + "-labels-idx1-ubyte.gz"});
  auto labels = read_idx(label_path, 1);
  if (labels.dims[0] != images.dims[0]) {
    throw Error(cat("Fashion-MNIST ", dir, ": ", images.dims[0], " images but ", labels.dims[0], " labels"));
  }
  std::vector<int64_t> y(labels.data.begin(), labels.data.end());
  for (int64_t v : y) {
    if (v >= 10) throw Error(cat("Fashion-MNIST labels ", label_path, ": label ", v, " is not in 0..9"));
  }
  return std::make_unique<ArrayDataset>("fashion-mnist " + split, 1, images.dims[1], images.dims[2], 10,
                                        std::move(images.data), std::move(y));
}

std::unique_ptr<Dataset> read_cifar(const std::string& dir, int classes, const std::string& split, bool skip_bad) {
  if (!fs::is_directory(dir)) throw Error(cat("--data-path ", dir, ": not a directory"));
  std::vector<std::string> files;
  if (classes == 10) {
    if (split == "train") {
      for (int b = 1; b <= kCifar10Batches; ++b) files.push_back(cat("data_batch_", b, ".bin"));
    } else {
      files.push_back("test_batch.bin");
    }
  } else {
    files.push_back(split == "train" ? "train.bin" : "test.bin");
  }
  const int64_t label_bytes = classes == 10 ? 1 : 2;  // CIFAR-100: coarse, fine
  const int64_t record = label_bytes + kCifarImageBytes;
  std::vector<uint8_t> pixels;
  std::vector<int64_t> labels;
  for (const auto& name : files) {
    std::string path = (fs::path(dir) / name).string();
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) {
      if (!skip_bad) throw Error(cat("CIFAR-", classes, " file ", path, ": cannot open"));
      log_warn(cat("CIFAR-", classes, " file ", path, ": cannot open; skipped (--bad-images skip)"));
      continue;
    }
    const int64_t bytes = in.tellg();
    if (bytes <= 0 || bytes % record != 0) {
      const std::string problem = cat("CIFAR-", classes, " file ", path, ": size ", bytes, " is not a multiple of the ",
                                      record, "-byte record (wrong file or truncated)");
      if (!skip_bad || bytes < record) throw Error(problem);
      log_warn(cat(problem, "; using its ", bytes / record, " whole records (--bad-images skip)"));
    }
    in.seekg(0);
    std::vector<uint8_t> raw(static_cast<size_t>(bytes));
    in.read(reinterpret_cast<char*>(raw.data()), bytes);
    for (int64_t r = 0; r < bytes / record; ++r) {
      const uint8_t* rec = raw.data() + r * record;
      int64_t label = rec[label_bytes - 1];
      if (label >= classes) throw Error(cat("CIFAR-", classes, " file ", path, ": record ", r, " has label ", label));
      labels.push_back(label);
      pixels.insert(pixels.end(), rec + label_bytes, rec + record);
    }
  }
  if (labels.empty()) throw Error(cat("CIFAR-", classes, " ", dir, ": no readable ", split, " file"));
  return std::make_unique<ArrayDataset>(cat("cifar", classes, " ", split), kCifarChannels, kCifarSide, kCifarSide,
                                        classes, std::move(pixels), std::move(labels));
}

namespace {

// Image i and its label are a function of (seed, i), made when read: no memory held, whatever the size.
class SyntheticDataset : public Dataset {
 public:
  SyntheticDataset(int64_t size, int64_t channels, int64_t image_size, int64_t num_classes, uint64_t seed)
      : size_(size), c_(channels), s_(image_size), classes_(num_classes), seed_(seed) {}
  std::string name() const override { return "synthetic"; }
  int64_t size() const override { return size_; }
  int64_t channels() const override { return c_; }
  int64_t height() const override { return s_; }
  int64_t width() const override { return s_; }
  int64_t num_classes() const override { return classes_; }
  int64_t read(int64_t index, uint8_t* pixels) const override {
    uint64_t state = first_state(index);
    for (int64_t k = 0; k < image_bytes(); ++k) {
      state = splitmix64(state);
      pixels[k] = static_cast<uint8_t>(state >> 56);
    }
    return label(index);
  }
  int64_t label(int64_t index) const override {
    return static_cast<int64_t>(first_state(index) % static_cast<uint64_t>(classes_));
  }

 private:
  uint64_t first_state(int64_t index) const {
    if (index < 0 || index >= size_) throw Error(cat("synthetic: image index ", index, " out of range"));
    return splitmix64(seed_ ^ splitmix64(static_cast<uint64_t>(index)));
  }
  int64_t size_, c_, s_, classes_;
  uint64_t seed_;
};

}  // namespace

std::unique_ptr<Dataset> make_synthetic(int64_t size, int64_t channels, int64_t image_size, int64_t num_classes,
                                        uint64_t seed) {
  return std::make_unique<SyntheticDataset>(size, channels, image_size, num_classes, seed);
}

std::vector<int64_t> calibration_indices(int64_t size, int64_t count, uint64_t seed) {
  if (count > size) throw Error(cat("--calib-images ", count, " is more than the ", size, " images the data has"));
  // The list of `size` indices is held while it is shuffled (synthetic data is as large as asked for).
  const double bytes = static_cast<double>(size) * sizeof(int64_t), memory = physical_memory_bytes();
  if (memory > 0 && bytes > memory / 2) {
    throw Error(cat("--calib-images ", count, ": the list of ", size, " image indices alone takes ",
                    fmt(bytes / 1e9, 6), " GB, more than half of this machine's ", fmt(memory / 1e9, 3),
                    " GB of memory"));
  }
  return shuffled_prefix(size, count, seed);
}

}  // namespace vitslim::data
