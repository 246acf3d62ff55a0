// How a training run's numbers follow from its settings and its data: the micro-batch, steps per
// epoch and global batch, the learning-rate and lambda schedules, and the optimizer and mixup
// options. Pure functions, so a unit test can check every rule without a model.
#pragma once

#include <cstdint>
#include <string>

#include "data/loading/mixup.h"
#include "train/optimizer.h"
#include "train/schedule.h"
#include "train/settings.h"

namespace vitslim::train {

struct TrainPlan {
  int64_t micro_batch = 0;      // images per rank per forward pass (--batch-size)
  int64_t steps_per_epoch = 0;  // optimizer steps
  int64_t global_batch = 0;     // micro_batch x accum_steps x world size
  LrSchedule lr;
  LambdaSchedule lambda;
};

// `samples_per_rank`: images each rank gets per epoch. Throws naming the flag when one step does
// not fit into an epoch or --steps-per-epoch asks for more than one pass gives.
TrainPlan make_plan(const TrainConfig& t, int64_t batch_size, int64_t samples_per_rank, int world_size);

// One log line: diluting blocks, batches, steps, epochs, peak learning rate.
std::string describe_plan(const TrainPlan& plan, const TrainConfig& t);

AdamWOptions adamw_options(const TrainConfig& t);
data::MixupOptions mixup_options(const TrainConfig& t, int64_t num_classes);

}  // namespace vitslim::train
