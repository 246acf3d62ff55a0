// `vitslim entropy`: per-block entropy of the attention-branch and MLP-branch outputs and of the
// head logits over a calibration set (docs/method.md section 2), sharded over MPI ranks, merged
// exactly, written to an HDF5 trace (docs/hdf5-schema.md) and an optional JSON summary.
#pragma once

#include <string>

#include "core/runtime.h"
#include "data/settings.h"
#include "dist/mpi_session.h"
#include "entropy/settings.h"
#include "model/request.h"

namespace vitslim::entropy {

// What `vitslim entropy` is given; `config_ini` is recorded in the trace.
struct EntropyInputs {
  const ModelRequest& model;
  const DataConfig& data;
  const EntropyConfig& entropy;  // the outputs and the estimator
  const ComputeConfig& compute;
  const RuntimeConfig& runtime;
  std::string config_ini;
};

// Measures and writes the trace (and JSON) named by `inputs.entropy`, on the device of `compute`
// (dist::open_device). Throws vitslim::Error on bad input, before anything is written.
void run_entropy(const EntropyInputs& inputs, const dist::MpiSession& mpi);

}  // namespace vitslim::entropy
