// The dataset kinds vitslim reads (`--data-set`), one row each in one table (kinds.cpp): the name,
// what the images are (fixed-size arrays in memory, photos read per image, generated), the default
// folder and normalisation, the reader that opens it, and what `index` and `make-shards` can do
// with it. Adding a format is a reader, one enum value and one row (and its file in CMake); every
// question about a kind goes through its row, never through a comparison of names. No torch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/normalisation.h"
#include "core/options.h"
#include "data/formats/item_index.h"

namespace vitslim {
struct DataConfig;
struct ModelShape;
}  // namespace vitslim

namespace vitslim::data {

class Dataset;

enum class DataKind { FashionMnist, Cifar10, Cifar100, Imagenet, Folder, Wds, Synthetic };

// What `vitslim index` lists for a kind (and what --index caches): nothing, a class-per-folder
// tree, or the samples of WebDataset shards.
enum class IndexSource { None, Folder, Shards };

// Everything a reader needs to open the split a config names.
struct OpenRequest {
  const DataConfig& config;
  std::string path;  // --data-path, or the kind's default
  const ModelShape& model;
  uint64_t seed;
  const RootShare& share;
};
using Opener = std::unique_ptr<Dataset> (*)(const OpenRequest&);

struct DataKindInfo {
  DataKind kind;
  const char* name;          // the --data-set value
  bool photos;               // images of any size, read and decoded per image (the DeiT transforms apply)
  bool image_folder;         // a class-per-folder tree: --class-index applies, make-shards reads it
  bool imagenet_layout;      // train/ and val/ below --data-path (the ImageNet convention)
  IndexSource index;         // what --index and `vitslim index` record
  bool needs_files;          // false: generated, no --data-path
  const char* default_path;  // used when --data-path is empty; nullptr: --data-path required
  Normalisation normalisation;
  Opener open;
};

// The row of `kind` (every kind has one).
const DataKindInfo& kind_info(DataKind kind);
// The --data-set names, in the table's order (parsing, help and to_string).
const EnumNames<DataKind>& data_kind_names();
const char* kind_name(DataKind kind);

}  // namespace vitslim::data
