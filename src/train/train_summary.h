// train.json: the report of a training run, rewritten atomically at every checkpoint and at the
// end (`finished` true only then). Scripts and people read it; the pipeline gets TrainResult from
// a run it makes and reads the file only for a run an earlier process finished.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace vitslim::train {

struct TrainSummary {
  bool finished = false;
  int stopped_by_signal = 0;
  int64_t epoch = 0, global_step = 0, epochs = 0, steps_per_epoch = 0, global_batch = 0;
  int world_size = 1;
  std::vector<int64_t> dilute_layers, removed_layers;
  std::vector<std::string> modes;
  double last_loss = 0, last_top1 = -1, best_top1 = -1;
  int64_t best_epoch = -1;
  double seconds = 0, rss_start_mib = -1, rss_peak_mib = -1;
  double step_seconds = 0;  // in optimizer steps: seconds minus set-up, evaluation and checkpoints
  std::string checkpoint;
  std::map<std::string, double> phases;  // --profile: seconds per phase and "steps" (phases.h); empty: off
};

void write_train_summary(const std::string& path, const TrainSummary& s);
// Reads train.json back (the scalars; `phases` too): a run finished in an earlier process. Throws
// Error naming the file when it is missing, not JSON or lacks a field.
TrainSummary read_train_summary(const std::string& path);

}  // namespace vitslim::train
