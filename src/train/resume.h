// Resuming a training run from its checkpoints (train_checkpoint.h holds the file format): which
// checkpoint to take, whether it belongs to this run, and putting its state back into the model,
// parameters, optimizer and EMA.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "model/vit.h"
#include "model/weights/train_checkpoint.h"
#include "train/optimizer.h"
#include "train/step.h"

namespace vitslim::train {

// The newest checkpoint in out_dir that reads back; newer unreadable ones are renamed
// <file>.unreadable so that pruning never mistakes them for the newest. nullopt: none. Throws
// when checkpoints exist but `resume` is off, or when none of them reads back.
std::optional<model::Checkpoint> newest_checkpoint(const std::string& out_dir, bool resume);

// What a resumed run must share with the run that wrote the checkpoint.
struct RunIdentity {
  std::vector<int64_t> dilute_layers;
  uint64_t seed = 0;
  int64_t global_batch = 0;
  int world_size = 1;
  std::string teacher;  // distillation identity (empty: none)
  std::string config;
};
// Another selection, seed, global batch or teacher would silently train something else: an error. Another
// rank count or other settings are named in a warning.
void check_resume_settings(const model::Checkpoint& ckpt, const RunIdentity& run);

// The checkpoint's per-block modes and lambdas onto `model` (same depth, else an error).
void restore_modes(const model::Checkpoint& ckpt, model::VisionTransformer& model);
// Epoch, steps, best accuracy and the running epoch sums.
void restore_progress(const model::TrainState& from, model::TrainState& to);
// Parameters (shapes checked), EMA (when `ema_on`) and AdamW moments, moved to `device`.
void restore_tensors(const model::Checkpoint& ckpt, NamedTensors& params, bool ema_on, c10::Device device,
                     AdamW& optimizer, std::map<std::string, at::Tensor>& ema);

// Every rank gets rank 0's parameter values (in place).
void broadcast_parameters(dist::Communicator& comm, NamedTensors& params);

}  // namespace vitslim::train
