// Implements batch mixup / cutmix and smoothed soft targets (see mixup.h).
#include "data/loading/mixup.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "core/rng.h"

namespace vitslim::data {

namespace {

double beta_sample(double alpha, std::mt19937_64& rng) {
  std::gamma_distribution<double> gamma(alpha, 1.0);
  const double a = gamma(rng), b = gamma(rng);
  return a + b > 0 ? a / (a + b) : 0.5;
}

}  // namespace

MixDecision draw_mix(const MixupOptions& o, int64_t height, int64_t width, uint64_t seed) {
  MixDecision mix;
  if (!o.active()) return mix;
  std::mt19937_64 rng(splitmix64(seed));
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  double lam = 1.0;
  if (o.mixup_alpha > 0 && o.cutmix_alpha > 0) {
    mix.cutmix = unit(rng) < o.switch_prob;
    lam = beta_sample(mix.cutmix ? o.cutmix_alpha : o.mixup_alpha, rng);
  } else if (o.mixup_alpha > 0) {
    lam = beta_sample(o.mixup_alpha, rng);
  } else {
    mix.cutmix = true;
    lam = beta_sample(o.cutmix_alpha, rng);
  }
  if (!(unit(rng) < o.prob)) return MixDecision{};
  mix.lam = lam;
  if (mix.cutmix) {
    // Box of area (1 - lam) centred uniformly, clipped to the image; lam corrected to the clip.
    const double ratio = std::sqrt(1.0 - lam);
    const auto cut_h = static_cast<int64_t>(static_cast<double>(height) * ratio);
    const auto cut_w = static_cast<int64_t>(static_cast<double>(width) * ratio);
    std::uniform_int_distribution<int64_t> cy_dist(0, height - 1), cx_dist(0, width - 1);
    const int64_t cy = cy_dist(rng), cx = cx_dist(rng);
    mix.y0 = std::clamp<int64_t>(cy - cut_h / 2, 0, height);
    mix.y1 = std::clamp<int64_t>(cy + cut_h / 2, 0, height);
    mix.x0 = std::clamp<int64_t>(cx - cut_w / 2, 0, width);
    mix.x1 = std::clamp<int64_t>(cx + cut_w / 2, 0, width);
    const auto area = static_cast<double>((mix.y1 - mix.y0) * (mix.x1 - mix.x0));
    mix.lam = 1.0 - area / static_cast<double>(height * width);
  }
  return mix;
}

at::Tensor smooth_one_hot(const at::Tensor& labels, int64_t num_classes, double smoothing) {
  const double off = smoothing / static_cast<double>(num_classes);
  const double on = 1.0 - smoothing + off;
  auto targets = torch::full({labels.size(0), num_classes}, off,
                             torch::TensorOptions().dtype(torch::kFloat32).device(labels.device()));  // [B, K]
  targets.scatter_(1, labels.view({-1, 1}), on);
  return targets;
}

at::Tensor apply_mix(at::Tensor& images, const at::Tensor& labels, const MixDecision& mix, const MixupOptions& o) {
  torch::NoGradGuard no_grad;
  auto targets = smooth_one_hot(labels, o.num_classes, o.smoothing);  // [B, K]
  if (mix.lam >= 1.0) return targets;
  auto reversed = images.flip(0);  // [B, C, H, W], a copy
  if (mix.cutmix) {
    using torch::indexing::Slice;
    const auto box =
        std::vector<at::indexing::TensorIndex>{Slice(), Slice(), Slice(mix.y0, mix.y1), Slice(mix.x0, mix.x1)};
    images.index_put_(box, reversed.index(box));
  } else {
    images.mul_(mix.lam).add_(reversed, 1.0 - mix.lam);
  }
  return targets.mul(mix.lam).add_(targets.flip(0), 1.0 - mix.lam);
}

}  // namespace vitslim::data
