// Named model presets (DeiT sizes of docs/method.md section 1 plus small configs for Fashion-MNIST
// and tests) and the resolution of a ModelRequest into a ModelShape.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "model/request.h"

namespace vitslim::model {

// Names accepted by --model (with and without the _patch16_224 suffix for DeiT).
std::vector<std::string> preset_names();
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
};

// Preset, then explicit flags, then the weights; each flag the weights contradict is an error
// naming the flag and the file (except --num-classes with reset_head, and --img-size, which
// interpolates pos_embed). Unset and undeterminable fields are an error too.
ModelShape resolve_shape(const ModelRequest& request, const std::optional<ShapeFromWeights>& weights);

}  // namespace vitslim::model
