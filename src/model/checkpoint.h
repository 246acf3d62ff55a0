// Mapping between weight files and a VisionTransformer: infers the shape a state dict
// determines, adapts a checkpoint to the model (pos_embed interpolation for another image size,
// head re-initialisation for another class count, dropped attention of removed blocks), loads it
// strictly (one error listing missing, unexpected and mis-shaped keys), and exports .safetensors
// with timm key names and metadata naming the removed attention layers.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/presets.h"
#include "model/vit.h"
#include "model/weights/weights.h"

namespace vitslim::model {

// The side of a square grid of `tokens` patches; nullopt when `tokens` is not a square.
std::optional<int64_t> grid_side(int64_t tokens);
ShapeFromWeights shape_from_weights(const StateDict& weights);
// Removed layers recorded in the file's metadata (empty if none).
std::vector<int64_t> removed_layers_from_metadata(const StateDict& weights);

struct LoadOptions {
  bool reset_head = false;  // keep the model's fresh head when the class count differs
};

// Adapts and copies `weights` into `model`; throws Error naming weights.file on any mismatch.
void load_weights(VisionTransformer& model, StateDict weights, const LoadOptions& options = {});

// The metadata that makes a weights file self-describing: removed layers, heads, image size,
// whether the residual factors are folded, token merging.
std::map<std::string, std::string> model_metadata(VisionTransformer& model);
// What export_safetensors writes, taken now: every parameter with its timm name as float32 in
// host memory (from a GPU a copy: a snapshot that can be written later, e.g. on a background
// thread while training goes on; on the CPU the live tensors) + model_metadata + `extra`.
// `replace`: tensors used in place of the parameters of the same name (an EMA of them).
struct ModelFile {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  std::map<std::string, std::string> metadata;
};
ModelFile model_file(VisionTransformer& model, const std::map<std::string, std::string>& extra = {},
                     const std::map<std::string, at::Tensor>* replace = nullptr);
// Writes `file` atomically (into `outputs` when given, as write_safetensors).
void write_model_file(const ModelFile& file, const std::string& path, OutputSet* outputs = nullptr);
// write_model_file(model_file(model, extra), path, outputs).
void export_safetensors(VisionTransformer& model, const std::string& path,
                        const std::map<std::string, std::string>& extra = {}, OutputSet* outputs = nullptr);
// FNV-1a over every parameter's name, shape and float32 bytes, as 16 hex digits: which weights
// these are (a teacher's identity, a shipped checkpoint's provenance).
std::string weights_hash(VisionTransformer& model);

// Builds a model for `shape`, applies removed layers, seeds init with `seed`, loads weights if
// `request.weights` is set, and sets token merging (--tome-* if given, else what the weights
// file records). The one entry point jobs use.
VisionTransformer build_model(const ModelRequest& request, uint64_t seed);
// The same from weights already in memory (request.weights is ignored; weights.file names them).
VisionTransformer build_model(const ModelRequest& request, uint64_t seed, StateDict weights);

}  // namespace vitslim::model
