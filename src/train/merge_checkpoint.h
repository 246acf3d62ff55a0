// `vitslim merge`: the compact model from a training checkpoint. Every block the run diluted must
// have reached lambda 0 (else a clear refusal naming the block and its lambda); their attention
// parameters are dropped, the compact model's logits are checked against the checkpoint model's at
// lambda 0 on random inputs (max abs diff <= 1e-5) before anything is written, and the export
// records the removed layers (and folding) in its metadata, so every vitslim job loads it as is.
// --fold-residual also folds the 2x factors into the weights (model/merge.h), checked the same way.
#pragma once

#include "core/runtime.h"
#include "dist/mpi_session.h"
#include "train/settings.h"

namespace vitslim::train {

// What `vitslim merge` is given.
struct MergeInputs {
  const MergeConfig& merge;
  const RuntimeConfig& runtime;
};

void run_merge(const MergeInputs& inputs, const dist::MpiSession& mpi);

}  // namespace vitslim::train
