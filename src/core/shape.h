// The shape of a VisionTransformer, fully resolved (docs/method.md section 1). It lives in core
// because both the model and the data layer (input size, channels, classes) need it; no torch.
#pragma once

#include <cstdint>
#include <string>

namespace vitslim {

struct ModelShape {
  int64_t img_size = 224;
  int64_t patch_size = 16;
  int64_t in_chans = 3;
  int64_t embed_dim = 192;
  int64_t depth = 12;
  int64_t num_heads = 3;
  double mlp_ratio = 4.0;
  int64_t num_classes = 1000;

  int64_t grid() const { return img_size / patch_size; }
  int64_t num_tokens() const { return grid() * grid() + 1; }  // patches + CLS
  bool operator==(const ModelShape& o) const;
  std::string describe() const;
};

}  // namespace vitslim
