// `vitslim search`: the NOSE search coordinator (docs/method.md section 3). Greedy (or beam, or
// exhaustive) selection of the attention layers whose skipping changes the head's entropy least,
// every (candidate set, calibration shard) scored by whichever rank takes the shard next from a
// job-wide counter, statistics merged at rank 0 in shard order (identical for any rank count),
// every scored item and candidate appended to an HDF5 file that a killed search resumes from.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/runtime.h"
#include "data/settings.h"
#include "dist/mpi_session.h"
#include "model/request.h"
#include "search/result.h"
#include "search/settings.h"

namespace vitslim::search {

// The parts of the configuration a search uses; `config_ini` is recorded in the result file.
struct SearchInputs {
  ModelRequest model;
  DataConfig data;
  SearchConfig search;
  ComputeConfig compute;
  RuntimeConfig runtime;
  std::string config_ini;
};

// Runs the search and writes its files (rank 0); throws vitslim::Error on bad input. Every rank
// returns rank 0's result.
SearchResult run_search(const SearchInputs& inputs, const dist::MpiSession& mpi);

}  // namespace vitslim::search
