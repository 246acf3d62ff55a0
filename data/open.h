// Opening what a DataConfig names: the dataset of --data-set at --data-path through its kind's
// reader (data/kinds.h), or loose image files, with the --bad-images policy and the evaluation
// transform set; and the normalisation that applies to it. No torch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/normalisation.h"
#include "core/shape.h"
#include "data/formats/dataset.h"
#include "data/settings.h"

namespace vitslim::data {

// Opens config.dataset at config.path (or its default) with the reader of its row in
// data/kinds.cpp; synthetic takes the model's shape, wds its class count. Image folders and shards are listed by rank 0
// and handed to the others by `share` (data/formats/item_index.h; empty: this process lists).
std::unique_ptr<Dataset> open_dataset(const DataConfig& config, const ModelShape& model, uint64_t seed,
                                      const RootShare& share = {});
// Unlabelled image files (data/formats/folder.h read_image_files) with the config's --bad-images policy and
// evaluation transform.
std::unique_ptr<Dataset> open_image_files(const DataConfig& config, const std::string& images,
                                          const std::string& image_list);

// --mean/--std, else for photos (image folders, image files) the model preset's pretrained
// normalisation where it has one (DataConfig::preset_mean), else the dataset's defaults.
Normalisation requested_normalisation(const DataConfig& config);
// The same, checked against the images' channels (1 or C values).
Normalisation normalisation(const DataConfig& config, const Dataset& dataset);

}  // namespace vitslim::data
