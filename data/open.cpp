// Implements opening the dataset a config names (see open.h).
#include "data/open.h"

#include <filesystem>

#include "core/error.h"
#include "data/formats/folder.h"
#include "data/kinds.h"

namespace vitslim::data {

namespace fs = std::filesystem;

std::unique_ptr<Dataset> open_dataset(const DataConfig& c, const ModelShape& model, uint64_t seed,
                                      const RootShare& share) {
  const DataKindInfo& kind = c.kind();
  std::string path = c.path;
  if (kind.needs_files && path.empty()) {
    if (kind.default_path == nullptr) throw Error(cat("--data-path is required for --data-set ", kind.name));
    path = kind.default_path;
  }
  // Shards name their files by pattern or list: the reader checks them.
  if (kind.needs_files && kind.index != IndexSource::Shards && !fs::exists(path))
    throw Error(cat("--data-path ", path, ": does not exist"));
  std::unique_ptr<Dataset> d = kind.open({c, path, model, seed, share});
  d->set_skip_bad_images(c.bad_images == BadImages::Skip);
  d->set_eval_options({c.crop_pct, c.interpolation, c.dct_scaling ? kMaxJpegShrink : 1});
  return d;
}

std::unique_ptr<Dataset> open_image_files(const DataConfig& c, const std::string& images,
                                          const std::string& image_list) {
  auto d = read_image_files(images, image_list);
  d->set_skip_bad_images(c.bad_images == BadImages::Skip);
  d->set_eval_options({c.crop_pct, c.interpolation, c.dct_scaling ? kMaxJpegShrink : 1});
  return d;
}

Normalisation requested_normalisation(const DataConfig& c) {
  const bool preset = c.photos() && !c.preset_mean.empty();
  Normalisation n{!c.mean.empty() ? c.mean
                  : preset        ? c.preset_mean
                                  : c.kind().normalisation.mean,
                  !c.std.empty() ? c.std
                  : preset       ? c.preset_std
                                 : c.kind().normalisation.std};
  if (n.mean.size() != n.std.size()) throw Error("--mean and --std must have the same number of values");
  return n;
}

Normalisation normalisation(const DataConfig& c, const Dataset& dataset) {
  const Normalisation n = requested_normalisation(c);
  if (n.mean.size() != 1 && static_cast<int64_t>(n.mean.size()) != dataset.channels()) {
    throw Error(cat("--mean/--std have ", n.mean.size(), " values; ", dataset.name(), " has ", dataset.channels(),
                    " channels"));
  }
  return n;
}

}  // namespace vitslim::data
