// Datasets vitslim reads: Fashion-MNIST IDX files (gzipped as Debian's dataset-fashion-mnist
// ships them, or plain), CIFAR-10/100 binary, a deterministic synthetic set for tests and
// benchmarks without data (all in memory at native resolution, uint8 planes [C, H, W]), and image
// folders (ImageNet's train/<wnid>/*.JPEG layout or any class-per-folder tree, decoded per image,
// see data/formats/folder.h). Every image is also reachable as a SourceImage for the per-image transforms.
// Wrong sizes, magic numbers or missing files are Errors naming the file; unreadable images go
// through the --bad-images policy (skip: counted warning and the next image; fail: an Error).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "core/shape.h"
#include "data/formats/item_index.h"
#include "data/image/codec.h"
#include "data/image/resample.h"

namespace vitslim::data {

inline constexpr const char* kFashionMnistDefaultPath = "/usr/share/datasets/fashion-mnist";

// Unreadable images met while loading, shared by the loader threads: each file is named in a
// warning the first time (up to kNamedBadImages names), all are counted.
class BadImageLog {
 public:
  static constexpr int64_t kNamedBadImages = 20;
  void record(const std::string& message);
  int64_t count() const;
  // One warning line with the count, when there was any.
  // `consequence`: what became of them.
  void summarise(const std::string& dataset,
                 const std::string& consequence = "each was replaced by the next readable image") const;

 private:
  mutable std::mutex mutex_;
  std::set<std::string> seen_;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual std::string name() const = 0;
  virtual int64_t size() const = 0;
  virtual int64_t channels() const = 0;
  // Image size; 0 when images differ in size (image folders: only per-image transforms apply).
  virtual int64_t height() const = 0;
  virtual int64_t width() const = 0;
  virtual int64_t num_classes() const = 0;
  bool fixed_size() const { return height() > 0 && width() > 0; }
  // Copies image `index` ([C, H, W] uint8) to `pixels` and returns its label (fixed-size only).
  virtual int64_t read(int64_t index, uint8_t* pixels) const = 0;
  virtual int64_t label(int64_t index) const = 0;
  // Image `index` for the per-image transforms (a file is read, not yet decoded).
  virtual SourceImage source(int64_t index) const;
  // What names image `index` in outputs: its file (image folders) or "<name>#<index>".
  virtual std::string item_name(int64_t index) const { return cat(name(), "#", index); }
  int64_t image_bytes() const { return channels() * height() * width(); }
  // Shard datasets: the index of each shard's first image, then size(); empty when not sharded.
  virtual std::vector<int64_t> shard_bounds() const { return {}; }
  // "<name>: N images, K classes, CxHxW": what ranks must agree on before they share work.
  std::string size_summary() const {
    return cat(name(), ": ", size(), " images, ", num_classes(), " classes, ", channels(), "x", height(), "x", width());
  }

  // Calls use(source(i)) for i = index and, under --bad-images skip, the following images when
  // one is unreadable (BadImage from source() or from use); returns the label of the image used.
  // Under fail, or when every candidate is unreadable, throws an Error naming the file.
  int64_t with_image(int64_t index, const std::function<void(const SourceImage&)>& use) const;
  void set_skip_bad_images(bool skip) { skip_bad_ = skip; }
  bool skips_bad_images() const { return skip_bad_; }
  BadImageLog& bad_images() const { return bad_images_; }

  // How variable-size images become evaluation inputs (--crop-pct, --interpolation,
  // --jpeg-dct-scaling); open_dataset sets them from the config.
  struct EvalOptions {
    double crop_pct = 0.875;
    Filter filter = Filter::Bicubic;
    int max_dct_shrink = 8;
  };
  void set_eval_options(const EvalOptions& options) { eval_options_ = options; }
  const EvalOptions& eval_options() const { return eval_options_; }

 private:
  bool skip_bad_ = true;
  EvalOptions eval_options_;
  mutable BadImageLog bad_images_;
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
  int64_t label(int64_t index) const override;

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
// With skip_bad, a missing file or a trailing partial record is a warning (the rest is used).
std::unique_ptr<Dataset> read_cifar(const std::string& dir, int classes, const std::string& split,
                                    bool skip_bad = false);

// Deterministic pseudo-random images and labels from (seed, index), made when read (no memory held).
std::unique_ptr<Dataset> make_synthetic(int64_t size, int64_t channels, int64_t image_size, int64_t num_classes,
                                        uint64_t seed);

// A seeded random choice of `count` distinct indices out of `size`, in a fixed order that does
// not depend on how the work is later split among ranks.
std::vector<int64_t> calibration_indices(int64_t size, int64_t count, uint64_t seed);

}  // namespace vitslim::data
