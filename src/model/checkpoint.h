// Mapping between weight files and a VisionTransformer: infers the shape a state dict
// determines, adapts a checkpoint to the model (pos_embed interpolation for another image size,
// head re-initialisation for another class count, dropped attention of removed blocks), loads it
// strictly (one error listing missing, unexpected and mis-shaped keys), and exports .safetensors
// with timm key names and metadata naming the removed attention layers.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "model/presets.h"
#include "model/vit.h"
#include "model/weights.h"

namespace vitslim::model {

// Metadata keys vitslim writes into .safetensors files.
inline constexpr const char* kMetaRemovedLayers = "vitslim.removed_layers";  // "0,1,3"
inline constexpr const char* kMetaNumHeads = "vitslim.num_heads";
inline constexpr const char* kMetaImgSize = "vitslim.img_size";
inline constexpr const char* kMetaResidualFolded = "vitslim.residual_folded";  // "1": removed blocks are x -> x
// Token merging the model runs with (model/tome.h tome_to_text), written when it merges.
inline constexpr const char* kMetaTokenMerging = "vitslim.token_merging";
// Variant features the tensors cannot show (core/shape.h), written by every export.
inline constexpr const char* kMetaGlobalPool = "vitslim.global_pool";  // token | avg
inline constexpr const char* kMetaActLayer = "vitslim.act_layer";      // gelu | quick_gelu
inline constexpr const char* kMetaNormEps = "vitslim.norm_eps";
inline constexpr const char* kMetaClassNames = "vitslim.class_names";  // JSON array in label order (id2label)
// JSON: how the weights were made (job, settings, source commit, test top-1, weights_hash).
inline constexpr const char* kMetaProvenance = "vitslim.provenance";

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
// All parameters with timm names (float32, contiguous) + model_metadata + `extra`, written
// atomically (into `outputs` when given, as write_safetensors).
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
