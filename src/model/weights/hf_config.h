// A transformers config.json as vitslim reads it (model/weights/hf_checkpoint.cpp): the fields
// that shape a ViT, with the defaults of the transformers config class of its model_type where
// the file is silent (a saved config leaves out what equals its class's default). Torch-free.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace vitslim::model {

// What config.json says, with the defaults of the transformers config class where it is silent.
struct HfConfig {
  std::string file;
  std::string model_type;  // vit, deit, dinov2, dinov2_with_registers, clip_vision_model (CLIP: its vision_config)
  std::string architecture;
  int64_t heads = 12;
  double eps = 1e-12;
  std::string act = "gelu";
  int64_t image_size = 224, patch_size = 16, channels = 3;
  std::optional<int64_t> hidden, layers, intermediate;
  int64_t registers = 0;
  bool swiglu = false;
  std::map<int64_t, std::string> id2label;
};

// Reads and checks `file`; Error naming it and the field when a value is wrong, or when the
// model_type is not a ViT vitslim reads (vit, deit, dinov2, dinov2_with_registers, clip,
// clip_vision_model).
HfConfig read_hf_config(const std::string& file);

}  // namespace vitslim::model
