// `vitslim bench`: forward (and training-step) images/s of a model on random input, median over
// timed iterations: the full model, the pruned one, and both with the request's token merging.
// BenchRatios is what the comparison gives, with its keys of the --json file ("ratios") written
// and read back here.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "core/runtime.h"
#include "evaluation/settings.h"
#include "model/request.h"

namespace vitslim::evaluation {

// Pruned / full: what removing the request's layers buys (compared: false when none is removed);
// merged: the last row with token merging (pruned + ToMe, else full + ToMe) / full; full_merged:
// full + ToMe / full.
struct BenchRatios {
  bool compared = false;
  double params = 1, macs = 1, inference_speedup = 1, train_speedup = 1;
  bool trained = false;  // train_speedup was measured (--train)
  bool merged = false;
  std::string merged_model;  // the row `merged` compares
  double merged_macs = 1, merged_inference_speedup = 1;
  bool full_merged = false;
  double full_merged_macs = 1, full_merged_inference_speedup = 1;
};
// The "ratios" object of a bench JSON file, and back.
nlohmann::json ratios_json(const BenchRatios& ratios);
BenchRatios ratios_from_json(const nlohmann::json& j);
// Reads the ratios of a `vitslim bench --json` file; Error naming `what` and the path.
BenchRatios read_bench_ratios(const std::string& path, const std::string& what);

// What `vitslim bench` is given.
struct BenchInputs {
  const ModelRequest& model;
  const BenchConfig& bench;
  const ComputeConfig& compute;
  const RuntimeConfig& runtime;
};

BenchRatios run_bench(const BenchInputs& inputs);

}  // namespace vitslim::evaluation
