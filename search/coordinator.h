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

// One requested ratio's answer.
struct Selection {
  double ratio = 0;
  int64_t count = 0;            // round(ratio x depth) layers
  std::vector<int64_t> layers;  // ascending
  double te = 0;                // H(G | full) - H(G | layers skipped)
  double entropy = 0;           // H(G | layers skipped)
};
struct SearchResult {
  double full_entropy = 0;            // H(G | full model)
  std::vector<Selection> selections;  // per --ratios entry, in its order
};

// Runs the search and writes its files (rank 0); throws vitslim::Error on bad input. The result
// is rank 0's (other ranks get an empty one).
SearchResult run_search(const SearchInputs& inputs, const dist::MpiSession& mpi);

}  // namespace vitslim::search
