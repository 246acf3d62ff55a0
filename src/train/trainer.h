// `vitslim train`: data-parallel fine-tuning with dilution learning (docs/method.md sections 4-5).
// The blocks named by --remove-layers dilute, x = (2 - lambda) x + lambda Attn(LN1 x), with
// lambda going 1 -> 0 on its schedule; when it reaches 0 they switch to Removed (no attention
// parameters or compute) for the rest of training. Each rank trains on its share of every global
// batch; gradients are averaged by the bucketed reducer during backward. Outputs in --out-dir:
// checkpoints/ (atomic, rolling, resumable bit-exactly), train.h5 (per-step and per-epoch trace),
// best.safetensors (best top-1 among epochs at lambda 0), final.safetensors (+ final-ema when
// EMA is on) and train.json. SIGUSR1/SIGTERM: checkpoint at the next step and exit 0.
#pragma once

#include <string>

#include "core/runtime.h"
#include "data/settings.h"
#include "dist/mpi_session.h"
#include "model/request.h"
#include "train/settings.h"

namespace vitslim::train {

// The parts of the configuration a training run uses; `config_ini` goes into checkpoints and traces.
struct TrainInputs {
  ModelRequest model;
  DataConfig data;
  TrainConfig train;
  ComputeConfig compute;
  RuntimeConfig runtime;
  std::string config_ini;
};

// How a run ended: every epoch done (final exports written), or stopped by SIGUSR1/SIGTERM after a
// checkpoint (resume with --resume).
struct TrainResult {
  bool finished = false;
  int stop_signal = 0;
  std::string out_dir;
  double best_top1 = -1;    // at lambda 0; -1: no such epoch
  double step_seconds = 0;  // spent in optimizer steps (train.json's step_seconds)
  int64_t global_step = 0;  // optimizer steps taken, resumed ones included
};

TrainResult run_training(const TrainInputs& inputs, const dist::MpiSession& mpi);

}  // namespace vitslim::train
