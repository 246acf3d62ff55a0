// What `vitslim eval` measured, and its file format: the counts summed over the ranks (EvalCounts)
// and what they were measured on (EvalResult), written as the --json file (the pipeline's
// eval-*.json) and read back from it here, next to the type, so its keys are spelled once.
// Torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vitslim::evaluation {

struct EvalCounts {
  int64_t images = 0;
  int64_t top1 = 0;
  int64_t top5 = 0;
  double loss_sum = 0;  // sum of per-image cross-entropy

  double top1_percent() const { return 100.0 * static_cast<double>(top1) / static_cast<double>(images); }
  double top5_percent() const { return 100.0 * static_cast<double>(top5) / static_cast<double>(images); }
  double mean_loss() const { return loss_sum / static_cast<double>(images); }
};

struct EvalResult {
  EvalCounts counts;                          // loss_sum complete on rank 0 only
  std::string shape, weights, token_merging;  // the model ("" token_merging: none)
  std::vector<int64_t> removed_layers;
  std::string data_set, split;
  std::vector<double> mean, std;
  bool bf16 = false;
  std::string device;  // cpu | cuda
  int world_size = 1;
  double seconds = 0;
};

// The --json file's text (one JSON object and a newline).
std::string eval_json_text(const EvalResult& result);
// Reads a `vitslim eval --json` file back; Error naming `what` and the path when it is missing,
// malformed or another job's.
EvalResult read_eval_result(const std::string& path, const std::string& what);

}  // namespace vitslim::evaluation
