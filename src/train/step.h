// The arithmetic of one optimizer step, apart from the trainer's bookkeeping so that a unit test
// (the golden test against PyTorch + timm) calls the very code training runs:
//   backward_step: accum_steps micro-batches, each forward (bf16 autocast on CUDA when asked) ->
//     soft-target cross-entropy -> backward of loss / accum_steps; gradients start afresh and, with a
//     reducer, are averaged over ranks while backward runs;
//   update_step: global-norm clipping, AdamW at the step's learning rate, then the EMA.
// Between the two the trainer makes its collective stop / non-finite decision.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "dist/communicator.h"
#include "dist/reducer.h"
#include "model/vit.h"
#include "train/optimizer.h"

namespace vitslim::train {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

struct MicroBatch {
  at::Tensor images;   // [B, C, H, W] on the model's device, mixed
  at::Tensor targets;  // [B, K] soft targets
};

struct StepOptions {
  int64_t accum_steps = 1;
  double clip_grad = 0;  // 0: off
  double ema_decay = 0;  // 0: off
  bool bf16 = false;     // CUDA autocast
};

struct StepLoss {
  double loss = 0;     // mean over the micro-batches
  int64_t images = 0;  // this rank's
};

// `next(m)` gives micro-batch m; `seed_of(m)` seeds LibTorch's generator (drop-path) before it.
StepLoss backward_step(model::VisionTransformer& model, NamedTensors& params, const StepOptions& options,
                       const std::function<MicroBatch(int64_t)>& next, const std::function<uint64_t(int64_t)>& seed_of,
                       dist::GradientReducer* reducer);

// `norm`: the global gradient norm (grad_norm), already checked finite on every rank.
void update_step(NamedTensors& params, AdamW& optimizer, double lr, double norm, const StepOptions& options,
                 std::map<std::string, at::Tensor>& ema);

// The collective decision after backward: the largest stop signal any rank received, and the
// 1-based rank of one with a non-finite loss or gradient norm (0: none); the same on every rank.
struct StepFlags {
  int64_t stop_signal = 0, bad_loss_rank = 0, bad_grad_rank = 0;
};
StepFlags agree_on_step(dist::Communicator& comm, c10::Device device, int rank, int64_t stop_signal, double loss,
                        double norm);

// A CollectiveError naming the step and the rank when a loss or gradient was not finite (the
// weights were not updated); `last_checkpoint` is named too when there is one.
void throw_if_not_finite(const StepFlags& flags, int64_t epoch, int64_t global_step,
                         const std::string& last_checkpoint);

}  // namespace vitslim::train
