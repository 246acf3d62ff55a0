// Per-channel input normalisation (pixels scaled to [0,1] first, then (x - mean) / std) and the
// one copy of the ImageNet constants that the dataset table, the model presets and the image
// transforms share. No torch.
#pragma once

#include <vector>

namespace vitslim {

struct Normalisation {
  std::vector<double> mean, std;  // 1 value (grey) or one per channel
};

// timm's IMAGENET_DEFAULT_MEAN / IMAGENET_DEFAULT_STD.
inline const Normalisation kImagenetNormalisation{{0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}};

}  // namespace vitslim
