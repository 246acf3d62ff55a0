// The plan's probe of one block set: --probe-steps steps of dilution fine-tuning from the plan's
// weights on the training split (lambda 1 -> 0 over the first half), then top-1 on the first
// --probe-images test images at each token-merging r. Kept in <out-dir>/probes/<set>/ (the training
// resumes from its checkpoint, finished evaluations are read back), so a rerun costs nothing.
#pragma once

#include <cstdint>
#include <vector>

#include "dist/mpi_session.h"
#include "plan/planner.h"

namespace vitslim::plan {

// Top-1 (percent) of the probe of `blocks` (none: the unpruned model) at each r of `rs`.
std::vector<double> probe_block_set(const PlanInputs& inputs, const std::vector<int64_t>& blocks,
                                    const std::vector<int64_t>& rs, const dist::MpiSession& mpi);

}  // namespace vitslim::plan
