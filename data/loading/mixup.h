// Batch-level mixup / cutmix with label smoothing, producing soft targets (timm's Mixup in
// "batch" mode, docs/method.md section 5): per batch, with probability `prob`, either mixup (blend
// with the reversed batch, lam ~ Beta(mixup, mixup)) or cutmix (a box of the reversed batch
// pasted in, lam ~ Beta(cutmix, cutmix), then corrected to the box's true area); with both on,
// cutmix is chosen with probability `switch_prob`. Targets: smoothed one-hot y (off = s / K,
// on = 1 - s + off), mixed as lam * y + (1 - lam) * y.flip(0). The decision is drawn on the host;
// the mixing runs wherever the batch is (the trainer mixes on the GPU).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace vitslim::data {

struct MixupOptions {
  double mixup_alpha = 0.8;
  double cutmix_alpha = 1.0;
  double prob = 1.0;
  double switch_prob = 0.5;
  double smoothing = 0.1;
  int64_t num_classes = 1000;
  bool active() const { return (mixup_alpha > 0 || cutmix_alpha > 0) && prob > 0; }
};

// What one batch gets: lam = 1 means unmixed.
struct MixDecision {
  double lam = 1.0;
  bool cutmix = false;
  int64_t y0 = 0, y1 = 0, x0 = 0, x1 = 0;  // cutmix box [y0, y1) x [x0, x1)
};

// Draws the decision for an image of height x width from `seed` (one seed per batch and rank).
MixDecision draw_mix(const MixupOptions& options, int64_t height, int64_t width, uint64_t seed);

// Mixes images [B, C, H, W] in place and returns soft targets [B, K] (float32).
at::Tensor apply_mix(at::Tensor& images, const at::Tensor& labels, const MixDecision& mix, const MixupOptions& options);

// Smoothed one-hot targets [B, K] of labels [B].
at::Tensor smooth_one_hot(const at::Tensor& labels, int64_t num_classes, double smoothing);

}  // namespace vitslim::data
