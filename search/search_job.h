// `vitslim search`: the NOSE search coordinator (method.md section 3). Greedy (or beam, or
// exhaustive) selection of the attention layers whose skipping changes the head's entropy least,
// every (candidate set, calibration shard) scored by whichever rank takes the shard next from a
// job-wide counter, statistics merged at rank 0 in shard order (identical for any rank count),
// every scored item and candidate appended to an HDF5 file that a killed search resumes from.
#pragma once

#include "core/config.h"
#include "dist/mpi_session.h"

namespace vitslim::search {

int run_search_job(const Config& config, const dist::MpiSession& mpi);

}  // namespace vitslim::search
