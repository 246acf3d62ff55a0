// Implements the learning-rate and dilution schedules (see schedule.h).
#include "train/schedule.h"

#include <algorithm>
#include <cmath>

namespace vitslim::train {

double LrSchedule::at(int64_t step) const {
  if (step < warmup_steps) {
    return warmup_lr + (peak - warmup_lr) * static_cast<double>(step) / static_cast<double>(warmup_steps);
  }
  const int64_t span = std::max<int64_t>(1, total_steps - warmup_steps);
  const double t = std::min(1.0, static_cast<double>(step - warmup_steps) / static_cast<double>(span));
  return min_lr + 0.5 * (peak - min_lr) * (1.0 + std::cos(M_PI * t));
}

double LambdaSchedule::at(int64_t epoch, int64_t step) const {
  const double progress =
      per_step ? static_cast<double>(step) / static_cast<double>(steps_per_epoch) : static_cast<double>(epoch);
  return std::max(0.0, 1.0 - progress / decay_epochs);
}

double scaled_lr(double lr_per_512, int64_t global_batch) {
  return lr_per_512 * static_cast<double>(global_batch) / kLrReferenceBatch;
}

}  // namespace vitslim::train
