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

// Measures and writes the trace (and JSON) named by `out`; `config_ini` is recorded in the trace.
// Runs on the device of `compute` (dist::open_device). Throws vitslim::Error on bad input, before
// anything is written.
void run_entropy(ModelRequest model_request, const DataConfig& data, const EntropyConfig& out,
                 const ComputeConfig& compute, const RuntimeConfig& runtime, const std::string& config_ini,
                 const dist::MpiSession& mpi);

}  // namespace vitslim::entropy
