// `vitslim export`: any model vitslim loads (full, compact, folded, or a training checkpoint with
// its diluting blocks at a chosen lambda) as ONNX (deploy/onnx_export.h) or timm-named
// .safetensors, with the preprocessing it expects in the file's metadata, and optionally a sample
// of seeded random inputs with the model's logits for checking the file in another runtime.
#pragma once

#include <string>
#include <vector>

#include "core/runtime.h"
#include "deploy/settings.h"
#include "model/request.h"

namespace vitslim::dist {
class MpiSession;
}

namespace vitslim::deploy {

// How images become the model's input: recorded in the exported file's metadata.
struct Preprocessing {
  std::vector<double> mean, std;  // per channel, pixels scaled to [0, 1]
  double crop_pct = 0;            // resize the shorter side to size / crop_pct, centre crop
  std::string interpolation;      // "bicubic" / "bilinear"
};

// What `vitslim export` is given.
struct ExportInputs {
  const ModelRequest& model;
  const ExportConfig& export_model;
  Preprocessing preprocessing;
  const ComputeConfig& compute;
  const RuntimeConfig& runtime;
};

// Writes --out (and --sample, its logits computed on the device of `compute`); nothing is written
// when an input or the device is bad.
void run_export(const ExportInputs& inputs, const dist::MpiSession& mpi);

}  // namespace vitslim::deploy
