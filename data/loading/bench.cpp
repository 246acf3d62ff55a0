// Implements `vitslim bench-data` (see bench.h): on the image files of a folder or the samples of
// WebDataset shards. Each measurement runs `rounds` times
// over the same images and reports the best round (the machine's noise only slows rounds down).
#include "data/loading/bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_text.h"
#include "core/log.h"
#include "core/rng.h"
#include "data/formats/folder.h"
#include "data/formats/shards.h"
#include "data/loading/batch.h"
#include "data/loading/loader.h"

namespace vitslim::data {
namespace fs = std::filesystem;
namespace {

constexpr int64_t kDefaultSize = 224;
constexpr uint64_t kBenchSeed = 0x62656e6368ULL;

std::vector<std::string> image_files(const std::string& root) {
  std::vector<std::string> files;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file() && is_image_name(it->path().filename().string())) files.push_back(it->path().string());
  }
  if (ec) throw Error(cat("--data-path ", root, ": cannot list (", ec.message(), ")"));
  std::sort(files.begin(), files.end());
  return files;
}

// Best images/s over `rounds` passes of `per_image` over `count` images.
double best_rate(int64_t rounds, int64_t count, const std::function<void(int64_t)>& per_image) {
  double best = 0;
  for (int64_t r = 0; r < rounds; ++r) {
    const auto start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < count; ++i) per_image(i);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, static_cast<double>(count) / s);
  }
  return best;
}

}  // namespace

namespace {

// The benchmark's files as a dataset, for the loader.
class Files : public Dataset {
 public:
  explicit Files(std::vector<std::string> f) : f_(std::move(f)) {}
  std::string name() const override { return "bench files"; }
  int64_t size() const override { return static_cast<int64_t>(f_.size()); }
  int64_t channels() const override { return 3; }
  int64_t height() const override { return 0; }
  int64_t width() const override { return 0; }
  int64_t num_classes() const override { return 1; }
  int64_t read(int64_t, uint8_t*) const override { throw Error("bench files: per-image reads only"); }
  int64_t label(int64_t) const override { return 0; }
  SourceImage source(int64_t i) const override { return SourceImage::from_file(f_[static_cast<size_t>(i)]); }

 private:
  std::vector<std::string> f_;
};

// The images to time: every image file below --data-path, or the samples of WebDataset shards
// (--data-set wds), whose images are read from the shard files by offset.
std::unique_ptr<Dataset> bench_images(const DataConfig& data) {
  if (data.kind().index == IndexSource::Shards) {
    return read_shards({data.path, data.split, data.index, 0, data.bad_images == BadImages::Skip});
  }
  std::vector<std::string> files = image_files(data.path);
  if (files.empty()) throw Error(cat("--data-path ", data.path, ": no .jpg/.jpeg/.png files"));
  return std::make_unique<Files>(std::move(files));
}

struct LoaderRate {
  int64_t batch = 0;
  double images_per_s = 0, waited = 0;
};

// Batches of --batch-size train images from --workers threads over the first `count` images:
// the best of `rounds` passes, each through a fresh loader (start-up and drain included).
LoaderRate time_loader(const Dataset& dataset, int64_t count, const DataConfig& data, const TransformSettings& train,
                       int64_t rounds) {
  LoaderRate rate;
  rate.batch = std::min(data.batch_size, count);
  const int64_t B = rate.batch;
  const int64_t batches = std::max<int64_t>(1, count / B);
  auto make = [&](int64_t b) {
    std::vector<int64_t> idx;
    std::vector<uint64_t> seeds;
    for (int64_t i = 0; i < B; ++i) {
      idx.push_back((b * B + i) % count);
      seeds.push_back(mix_seed(kBenchSeed, static_cast<uint64_t>(b * B + i)));
    }
    return load_train_batch(dataset, idx, seeds, train);
  };
  for (int64_t r = 0; r < rounds; ++r) {
    double waited = 0;
    const auto start = std::chrono::steady_clock::now();
    {
      Loader loader(0, batches, make, data.loader_threads(false), data.prefetch);
      for (int64_t b = 0; b < batches; ++b) {
        loader.next();
        waited += loader.last_wait_seconds();
      }
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double per_s = static_cast<double>(batches * B) / seconds;
    if (per_s > rate.images_per_s) {
      rate.images_per_s = per_s;
      rate.waited = waited;
    }
  }
  return rate;
}

struct Rates {
  double decode = 0, train = 0, eval = 0;
  LoaderRate loader;
};

void report(const Rates& r, const DataConfig& data, const BenchDataConfig& bench, int64_t count, int64_t size) {
  std::printf("bench-data (%lld images, %lldx%lld output, best of %lld rounds)\n", static_cast<long long>(count),
              static_cast<long long>(size), static_cast<long long>(size), static_cast<long long>(bench.rounds));
  std::printf("  decode (read + full decode), 1 thread   %8.1f images/s\n", r.decode);
  std::printf("  train transform (DeiT), 1 thread        %8.1f images/s\n", r.train);
  std::printf("  eval transform, 1 thread                %8.1f images/s\n", r.eval);
  std::printf("  loader, %lld worker(s), batch %lld        %8.1f images/s\n",
              static_cast<long long>(data.loader_threads(false)), static_cast<long long>(r.loader.batch),
              r.loader.images_per_s);
  if (bench.json.empty()) return;
  const nlohmann::json j = {{"images", count},
                            {"source", data.kind().index == IndexSource::Shards ? "wds" : "files"},
                            {"img_size", size},
                            {"rounds", bench.rounds},
                            {"decode_per_s", r.decode},
                            {"train_per_s", r.train},
                            {"eval_per_s", r.eval},
                            {"loader_workers", data.loader_threads(false)},
                            {"loader_batch", r.loader.batch},
                            {"loader_per_s", r.loader.images_per_s},
                            {"loader_wait_s", r.loader.waited},
                            {"dct_scaling", data.dct_scaling},
                            {"aa", data.auto_augment}};
  write_file_atomic(bench.json, json_text(j) + "\n");
}

}  // namespace

void run_bench_data(const BenchDataInputs& in) {
  const DataConfig& data = in.data;
  const BenchDataConfig& bench = in.bench;
  const std::optional<int64_t> img_size = in.img_size;
  const std::unique_ptr<Dataset> images = bench_images(data);
  const int64_t count = std::min<int64_t>(bench.images, images->size());
  ModelShape shape;
  shape.img_size = img_size.value_or(kDefaultSize);
  shape.in_chans = 3;
  const std::vector<double> mean = data.mean.empty() ? kImagenetNormalisation.mean : data.mean;
  const std::vector<double> stdev = data.std.empty() ? kImagenetNormalisation.std : data.std;
  const TransformSettings train = train_settings(data, mean, stdev, shape);
  const TransformSettings& eval = train;
  const Normaliser norm(mean, stdev, shape.in_chans);
  std::vector<float> out(static_cast<size_t>(shape.in_chans * shape.img_size * shape.img_size));
  for (int64_t i = 0; i < count; ++i) images->source(i).decode_all(3);  // every image must decode; warms the cache
  log_info(cat("bench-data: ", count, " images from ", data.path,
               data.kind().index == IndexSource::Shards ? " (shards)" : "", ", output ", shape.img_size, "x",
               shape.img_size, ", ", bench.rounds, " rounds (best reported), one thread"));
  const int64_t rounds = bench.rounds;
  Rates r;
  r.decode = best_rate(rounds, count, [&](int64_t i) { images->source(i).decode_all(3); });
  r.train = best_rate(rounds, count, [&](int64_t i) {
    Rng rng(mix_seed(kBenchSeed, static_cast<uint64_t>(i)));
    train_transform(images->source(i), train, norm, rng, out.data());
  });
  r.eval = best_rate(rounds, count, [&](int64_t i) { eval_transform(images->source(i), eval, norm, out.data()); });
  r.loader = time_loader(*images, count, data, train, rounds);
  report(r, data, bench, count, shape.img_size);
}

}  // namespace vitslim::data
