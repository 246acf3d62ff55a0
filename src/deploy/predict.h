// `vitslim predict`: a model over image files (a file, a folder searched recursively, or a list)
// or a dataset split; writes one CSV row per image in input order (file, true label when known,
// the top-k classes with softmax probabilities, like timm's inference script) and optionally the
// logits or the pooled features as .safetensors. Images are batched over MPI ranks in rounds
// (round r: rank k takes the k-th batch), gathered on rank 0 in input order. Unreadable images
// follow --bad-images: skip leaves them out of every output (one counted warning), fail stops.
#pragma once

#include "core/runtime.h"
#include "data/settings.h"
#include "deploy/settings.h"
#include "dist/mpi_session.h"
#include "model/request.h"

namespace vitslim::deploy {

// What `vitslim predict` is given.
struct PredictInputs {
  const ModelRequest& model;
  const DataConfig& data;
  const PredictConfig& predict;
  const ComputeConfig& compute;
  const RuntimeConfig& runtime;
};

// The model runs on the device of `compute` (dist::open_device); outputs are written on rank 0.
void run_predict(const PredictInputs& inputs, const dist::MpiSession& mpi);

}  // namespace vitslim::deploy
