// Implements the training plan (see plan.h).
#include "train/plan.h"

#include <cmath>

#include "core/error.h"
#include "core/options.h"

namespace vitslim::train {

TrainPlan make_plan(const TrainConfig& t, int64_t batch_size, int64_t samples_per_rank, int world_size) {
  TrainPlan plan;
  plan.micro_batch = batch_size;
  const int64_t per_step = batch_size * t.accum_steps;
  const int64_t full = t.drop_last ? samples_per_rank / per_step : (samples_per_rank + per_step - 1) / per_step;
  if (full == 0) {
    throw Error(cat("--batch-size ", batch_size, " x --accum-steps ", t.accum_steps, " is more than the ",
                    samples_per_rank, " images each of the ", world_size, " rank(s) gets per epoch"));
  }
  if (t.steps_per_epoch > full) {
    throw Error(cat("--steps-per-epoch ", t.steps_per_epoch, " is more than the ", full,
                    " steps one pass over the training split gives"));
  }
  plan.steps_per_epoch = t.steps_per_epoch > 0 ? t.steps_per_epoch : full;
  plan.global_batch = per_step * world_size;
  // DeiT scales the peak learning rate with the global batch; warm-up start and floor are absolute.
  plan.lr.peak = scaled_lr(t.lr, plan.global_batch);
  plan.lr.warmup_lr = t.warmup_lr;
  plan.lr.min_lr = t.min_lr;
  plan.lr.warmup_steps =
      static_cast<int64_t>(std::llround(t.warmup_epochs * static_cast<double>(plan.steps_per_epoch)));
  plan.lr.total_steps = t.epochs * plan.steps_per_epoch;
  plan.lambda.decay_epochs = t.resolved_decay_epochs();
  plan.lambda.steps_per_epoch = plan.steps_per_epoch;
  plan.lambda.per_step = t.lambda_per_step;
  return plan;
}

std::string describe_plan(const TrainPlan& plan, const TrainConfig& t) {
  return cat("diluting blocks ", join_list(t.dilute_layers), " (lambda 0 at epoch ", fmt(plan.lambda.decay_epochs),
             "); per rank ", plan.micro_batch, " x ", t.accum_steps, " accumulation, global batch ", plan.global_batch,
             ", ", plan.steps_per_epoch, " steps/epoch x ", t.epochs, " epochs, peak lr ", fmt(plan.lr.peak, 3));
}

AdamWOptions adamw_options(const TrainConfig& t) {
  AdamWOptions adam;
  adam.weight_decay = t.weight_decay;
  adam.beta1 = t.beta1;
  adam.beta2 = t.beta2;
  adam.eps = t.eps;
  return adam;
}

data::MixupOptions mixup_options(const TrainConfig& t, int64_t num_classes) {
  data::MixupOptions mixup;
  mixup.mixup_alpha = t.mixup;
  mixup.cutmix_alpha = t.cutmix;
  mixup.prob = t.mixup_prob;
  mixup.switch_prob = t.mixup_switch_prob;
  mixup.smoothing = t.smoothing;
  mixup.num_classes = num_classes;
  return mixup;
}

}  // namespace vitslim::train
