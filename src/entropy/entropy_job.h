// `vitslim entropy`: per-block entropy of the attention-branch and MLP-branch outputs and of the
// head logits over a calibration set (method.md section 2), sharded over MPI ranks, merged
// exactly, written to an HDF5 trace (docs/hdf5-schema.md) and an optional JSON summary.
#pragma once

#include "core/config.h"
#include "dist/mpi_session.h"

namespace vitslim::entropy {

// Returns the process exit code (0). Throws vitslim::Error on bad input.
int run_entropy_job(const Config& config, const dist::MpiSession& mpi);

}  // namespace vitslim::entropy
