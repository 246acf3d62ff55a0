// Per-step schedules of the fine-tuning recipe (docs/method.md sections 4-5), pure functions of the
// step so that a resumed run reproduces them exactly:
//  - learning rate: linear warm-up from warmup_lr to the peak, then cosine down to min_lr;
//  - dilution lambda: max(0, 1 - epoch / decay_epochs) with the 0-based epoch (per epoch), or
//    with the fractional epoch step / steps_per_epoch (per-step interpolation).
#pragma once

#include <cstdint>

namespace vitslim::train {

struct LrSchedule {
  double peak = 5e-4;  // after scaling by the global batch
  double warmup_lr = 1e-6;
  double min_lr = 1e-5;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  double at(int64_t step) const;
};

struct LambdaSchedule {
  double decay_epochs = 1;
  int64_t steps_per_epoch = 1;
  bool per_step = false;
  // lambda in [0, 1] for optimizer step `step` of epoch `epoch`.
  double at(int64_t epoch, int64_t step) const;
};

// The DeiT rule: lr scales linearly with the global batch, quoted per 512 images.
inline constexpr double kLrReferenceBatch = 512.0;
double scaled_lr(double lr_per_512, int64_t global_batch);

}  // namespace vitslim::train
