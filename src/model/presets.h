// Named model presets (DeiT sizes of docs/method.md section 1, the ViT variants of section 8 with
// the timm model each matches, small configs for Fashion-MNIST and tests) and the resolution of a
// ModelRequest into a ModelShape.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/normalisation.h"
#include "model/request.h"

namespace vitslim::model {

// Names accepted by --model (DeiT also with its _patch16_224 suffix).
std::vector<std::string> preset_names();
// The timm model a preset matches ("" for vitslim's own small shapes).
std::string preset_timm_name(const std::string& name);
// The normalisation its pretrained weights expect (timm's pretrained cfg mean/std, after scaling
// pixels to [0, 1]); nullopt for vitslim's own shapes and unknown names.
std::optional<Normalisation> preset_normalisation(const std::string& name);
// Throws vitslim::Error for an unknown name.
ModelShape preset(const std::string& name);

// Jobs that run without any model option use the small Fashion-MNIST ViT.
inline constexpr const char* kDefaultPreset = "vit_fmnist";
// Sets request.preset = name (and, with `announce`, says it runs with seeded random weights) when no
// preset, weights or shape flag is given.
bool use_default_preset(ModelRequest& request, const std::string& name = kDefaultPreset, bool announce = true);

// Writes the preset's values into every shape field the request leaves unset (for --dump-config).
void fill_from_preset(ModelRequest& request);

// What a weights file says about the shape; fields it cannot determine stay empty.
struct ShapeFromWeights {
  std::string file;
  std::optional<int64_t> img_size, patch_size, in_chans, embed_dim, depth, num_heads, num_classes;
  std::optional<double> mlp_ratio;
  // Variant features the tensors (or the metadata vitslim writes) show.
  std::optional<bool> class_token, distilled, no_embed_class, fc_norm, pre_norm, qkv_bias, qk_norm, layer_scale;
  std::optional<int64_t> reg_tokens;
  std::optional<int64_t> pos_embed_tokens;  // where no_embed_class stays open: decided by the image grid
  std::optional<GlobalPool> global_pool;
  std::optional<Activation> act_layer;
  std::optional<double> norm_eps;
};

// Preset, then explicit flags, then the weights; each flag the weights contradict is an error
// naming the flag and the file (except --num-classes with reset_head, and --img-size, which
// interpolates pos_embed). Unset and undeterminable fields are an error too.
ModelShape resolve_shape(const ModelRequest& request, const std::optional<ShapeFromWeights>& weights);

}  // namespace vitslim::model
