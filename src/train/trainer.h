// `vitslim train`: data-parallel fine-tuning with dilution learning (method.md sections 4-5).
// The blocks named by --remove-layers dilute, x = (2 - lambda) x + lambda Attn(LN1 x), with
// lambda going 1 -> 0 on its schedule; when it reaches 0 they switch to Removed (no attention
// parameters or compute) for the rest of training. Each rank trains on its share of every global
// batch; gradients are averaged by the bucketed reducer during backward. Outputs in --out-dir:
// checkpoints/ (atomic, rolling, resumable bit-exactly), train.h5 (per-step and per-epoch trace),
// best.safetensors (best top-1 among epochs at lambda 0), final.safetensors (+ final-ema when
// EMA is on) and train.json. SIGUSR1/SIGTERM: checkpoint at the next step and exit 0.
#pragma once

#include "core/config.h"
#include "dist/mpi_session.h"

namespace vitslim::train {

int run_train_job(const Config& config, const dist::MpiSession& mpi);

}  // namespace vitslim::train
