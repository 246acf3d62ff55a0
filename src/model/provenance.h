// The provenance a weights file carries in its metadata (model::kMetaProvenance, written by the
// train job into final.safetensors): the job, vitslim version and source commit, dataset, seed,
// the resolved settings, the last test-split evaluation and the hash of the tensors. A shipped
// checkpoint is trusted only when its tensors still hash to the recorded value and, where the
// test split is evaluated in full, its top-1 agrees with the record.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "model/vit.h"

namespace vitslim::model {

struct Provenance {
  std::string job, version, commit, dataset, tensors, settings;
  uint64_t seed = 0;
  int64_t epochs = 0;
  int64_t eval_images = 0;  // test images of the recorded evaluation
  double top1 = -1;         // percent
};

// The file's provenance, nullopt when it has none; a record that does not parse is an Error
// naming the file.
std::optional<Provenance> read_provenance(const std::string& path);

// Throws an Error naming `path` unless `model` (built from it) hashes to the recorded tensors and
// the record is of `dataset`.
void check_provenance(const Provenance& p, const std::string& path, VisionTransformer& model,
                      const std::string& dataset);

// Throws an Error naming `path` when `top1` measured on `images` test images disagrees with the
// record by more than `tolerance_points`; does nothing when the image counts differ.
void check_recorded_top1(const Provenance& p, const std::string& path, double top1, int64_t images,
                         double tolerance_points);

}  // namespace vitslim::model
