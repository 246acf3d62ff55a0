// The arithmetic of one optimizer step, apart from the trainer's bookkeeping so that a unit test
// (the golden test against PyTorch + timm) calls the very code training runs:
//   backward_step: accum_steps micro-batches, each forward (bf16 autocast on the CPU or CUDA when asked) ->
//     soft-target cross-entropy (mixed with a teacher's distillation term, distill.h) -> backward of loss /
//     accum_steps; gradients start afresh and, with a reducer, are averaged over ranks while backward runs;
//   update_step: global-norm clipping, AdamW at the step's learning rate, then the EMA, all
//     skipped on the device when the step's loss or gradients were not finite.
// Nothing here copies a value to the host: on a GPU the step is queued without waiting for it.
// The trainer reads losses and norms back at its sync points (every --log-every steps, before
// checkpoints) and makes the collective stop / non-finite decision there (agree_on_steps).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "dist/mpi_session.h"
#include "dist/reducer.h"
#include "model/vit.h"
#include "train/loss.h"
#include "train/optimizer.h"
#include "train/phases.h"

namespace vitslim::train {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

struct MicroBatch {
  at::Tensor images;   // [B, C, H, W] on the model's device, mixed
  at::Tensor targets;  // [B, K] soft targets
  at::Tensor teacher;  // [B, K] the teacher's logits on `images` (undefined: no distillation)
};

struct StepOptions {
  int64_t accum_steps = 1;
  double clip_grad = 0;     // 0: off
  double ema_decay = 0;     // 0: off
  bool bf16 = false;        // autocast (CPU or CUDA)
  DistillSettings distill;  // kind None: soft-target cross-entropy alone
};

struct StepLoss {
  at::Tensor loss;     // float64 [] on the device: mean over the micro-batches
  int64_t images = 0;  // this rank's
};

// `next(m)` gives micro-batch m; `seed_of(m)` seeds LibTorch's generator (drop-path) before it.
// `clock` (may be null) gets the forward, backward and all-reduce laps.
StepLoss backward_step(model::VisionTransformer& model, NamedTensors& params, const StepOptions& options,
                       const std::function<MicroBatch(int64_t)>& next, const std::function<uint64_t(int64_t)>& seed_of,
                       dist::GradientReducer* reducer, PhaseClock* clock = nullptr);

// float32 [] on the device: 1 when `loss` or `norm` is not finite, else 0.
at::Tensor not_finite(const at::Tensor& loss, const at::Tensor& norm);

// `norm`: the global gradient norm (grad_norm); where `found_inf` holds 1 nothing is updated.
// `clock` (may be null) gets the optimizer and EMA laps.
void update_step(NamedTensors& params, AdamW& optimizer, double lr, const at::Tensor& norm, const at::Tensor& found_inf,
                 const StepOptions& options, std::map<std::string, at::Tensor>& ema, PhaseClock* clock = nullptr);
// The EMA of the weights, ema <- ema + (1 - decay) (p - ema), left alone where found_inf holds 1
// (torch's skip: a step that did not update the weights does not move their average either).
void update_ema(NamedTensors& params, std::map<std::string, at::Tensor>& ema, double decay,
                const at::Tensor& found_inf);

// The collective decision at a sync point, the same on every rank: the largest stop signal any
// rank received, and the earliest step (-1: none) whose loss or gradient norm was not finite on
// some rank, with the lowest such rank.
struct StepFlags {
  int64_t stop_signal = 0;
  int64_t bad_loss_step = -1, bad_loss_rank = -1;
  int64_t bad_grad_step = -1, bad_grad_rank = -1;
  // The loss is named when its bad step comes first (or at the same step).
  bool loss_first() const { return bad_loss_step >= 0 && (bad_grad_step < 0 || bad_loss_step <= bad_grad_step); }
  // The earliest non-finite step, loss or gradient (-1: none).
  int64_t first_bad_step() const { return loss_first() ? bad_loss_step : bad_grad_step; }
};
// `bad_loss_step` / `bad_grad_step`: this rank's earliest non-finite step since the last sync
// point (-1: none). One MPI all-reduce of three integers.
StepFlags agree_on_steps(const dist::MpiSession& mpi, int64_t stop_signal, int64_t bad_loss_step,
                         int64_t bad_grad_step);

// A CollectiveError naming the step, its epoch and the rank when a loss or gradient was not
// finite (that step did not update the weights); `last_checkpoint` is named too when there is one.
void throw_if_not_finite(const StepFlags& flags, int64_t epoch, const std::string& last_checkpoint);

}  // namespace vitslim::train
