// Datasets vitslim reads at native resolution: Fashion-MNIST IDX files (gzipped as Debian's
// dataset-fashion-mnist ships them, or plain), CIFAR-10/100 binary, and a deterministic
// synthetic set for tests and benchmarks without data. Images are uint8 HWC-free planes
// [C, H, W]; labels are class indices. Wrong sizes, magic numbers or missing files are Errors
// naming the file. (ImageNet folders, augmentation and the threaded loader: data pipeline issue.)
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"

namespace vitslim::data {

inline constexpr const char* kFashionMnistDefaultPath = "/usr/share/datasets/fashion-mnist";

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual std::string name() const = 0;
  virtual int64_t size() const = 0;
  virtual int64_t channels() const = 0;
  virtual int64_t height() const = 0;
  virtual int64_t width() const = 0;
  virtual int64_t num_classes() const = 0;
  // Copies image `index` ([C, H, W] uint8) to `pixels` and returns its label.
  virtual int64_t read(int64_t index, uint8_t* pixels) const = 0;
  int64_t image_bytes() const { return channels() * height() * width(); }
};

// In-memory dataset of equally sized uint8 images (what every reader here produces).
class ArrayDataset : public Dataset {
 public:
  ArrayDataset(std::string name, int64_t channels, int64_t height, int64_t width, int64_t num_classes,
               std::vector<uint8_t> pixels, std::vector<int64_t> labels);
  std::string name() const override { return name_; }
  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  int64_t channels() const override { return c_; }
  int64_t height() const override { return h_; }
  int64_t width() const override { return w_; }
  int64_t num_classes() const override { return classes_; }
  int64_t read(int64_t index, uint8_t* pixels) const override;

 private:
  std::string name_;
  int64_t c_, h_, w_, classes_;
  std::vector<uint8_t> pixels_;
  std::vector<int64_t> labels_;
};

// Fashion-MNIST: <dir>/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz].
std::unique_ptr<Dataset> read_fashion_mnist(const std::string& dir, const std::string& split);
// One IDX file (gzipped or plain): dims and the raw uint8 payload; `magic` is 0x0803 or 0x0801.
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};
IdxArray read_idx(const std::string& path, int expected_dims);

// CIFAR-10: data_batch_{1..5}.bin / test_batch.bin; CIFAR-100: train.bin / test.bin (fine labels).
std::unique_ptr<Dataset> read_cifar(const std::string& dir, int classes, const std::string& split);

// Deterministic pseudo-random images and labels from (seed, index).
std::unique_ptr<Dataset> make_synthetic(int64_t size, int64_t channels, int64_t image_size, int64_t num_classes,
                                        uint64_t seed);

// Opens config.dataset at config.path (or its default); synthetic takes the model's shape.
std::unique_ptr<Dataset> open_dataset(const DataConfig& config, const ModelShape& model, uint64_t seed);

// Normalisation defaults per dataset (pixels scaled to [0,1] first).
std::vector<double> default_mean(const std::string& dataset);
std::vector<double> default_std(const std::string& dataset);

struct Normalisation {
  std::vector<double> mean, std;
};
// --mean/--std, or the dataset's defaults; checked against the images' channels (1 or C values).
Normalisation normalisation(const DataConfig& config, const Dataset& dataset);

// A seeded random choice of `count` distinct indices out of `size`, in a fixed order that does
// not depend on how the work is later split among ranks.
std::vector<int64_t> calibration_indices(int64_t size, int64_t count, uint64_t seed);

}  // namespace vitslim::data
