// Training checkpoints: the whole state needed to continue bit-exactly, in one .safetensors file
// written atomically (temporary file, fsync, rename) under <out-dir>/checkpoints/:
//   model/<name>                 every parameter (timm names)
//   optim/exp_avg/<name>, optim/exp_avg_sq/<name>   AdamW moments
//   ema/<name>                   model EMA (when on)
// and the metadata key "vitslim.train_state": JSON with epoch, step in epoch, global step,
// per-block attention mode and lambda, best accuracy so far, world size, seed and the resolved
// configuration, next to the model description (vitslim.num_heads, ...). Every random draw of training is a function of
// (seed, rank, step), so no generator state needs saving. Files are named step-<global step>.safetensors; the last K
// are kept.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "model/weights/weights.h"

namespace vitslim::model {

struct TrainState {
  int64_t epoch = 0;               // epoch to run next (or the one in progress)
  int64_t step_in_epoch = 0;       // optimizer steps of `epoch` already done
  int64_t global_step = 0;         // optimizer steps done in total
  std::vector<std::string> modes;  // per block: Full, Diluting, Removed
  std::vector<double> lambdas;     // per block
  double best_top1 = -1;           // best top-1 among epochs with every diluted block at lambda 0
  int64_t best_epoch = -1;
  double epoch_loss_sum = 0;  // this epoch so far: summed step losses, images, seconds
  int64_t epoch_images = 0;
  double epoch_seconds = 0;
  double step_seconds = 0;             // every optimizer step so far (no evaluation or checkpoints)
  std::vector<int64_t> dilute_layers;  // what the run dilutes
  int64_t global_batch = 0;
  int world_size = 1;
  uint64_t seed = 0;
  std::string teacher;  // distillation identity (kind, alpha, tau, teacher hash); empty: none
  std::string config;   // resolved INI of the run that wrote it
};

struct Checkpoint {
  std::string path;
  TrainState state;
  std::map<std::string, at::Tensor> tensors;    // by full key (model/..., optim/..., ema/...)
  std::map<std::string, std::string> metadata;  // the file's metadata (model description too)
};

inline constexpr const char* kModelPrefix = "model/";
inline constexpr const char* kOptimPrefix = "optim/";
inline constexpr const char* kEmaPrefix = "ema/";
inline constexpr const char* kTrainStateKey = "vitslim.train_state";

// The checkpoint's model tensors as a weights file (model/ prefix stripped; the metadata without
// the training state), which model::build_model loads.
StateDict checkpoint_model_weights(const Checkpoint& checkpoint);

std::string checkpoint_dir(const std::string& out_dir);
std::string checkpoint_path(const std::string& out_dir, int64_t global_step);

// model_metadata: the model description (model::model_metadata) stored beside the state, so a
// checkpoint alone rebuilds its model.
void write_checkpoint(const std::string& path, const TrainState& state,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      std::map<std::string, std::string> model_metadata = {});
Checkpoint read_checkpoint(const std::string& path);
// What a checkpoint holds, on the CPU: parameters (model/), AdamW moments (optim/, as AdamW names
// them) and the EMA (ema/).
std::vector<std::pair<std::string, at::Tensor>> checkpoint_tensors(
    const std::vector<std::pair<std::string, at::Tensor>>& params,
    const std::vector<std::pair<std::string, at::Tensor>>& optimizer_state,
    const std::map<std::string, at::Tensor>& ema);
// Steps of the checkpoints in <out-dir>/checkpoints, ascending.
std::vector<int64_t> list_checkpoints(const std::string& out_dir);
// Deletes all but the newest `keep` checkpoints.
void prune_checkpoints(const std::string& out_dir, int64_t keep);

}  // namespace vitslim::model
