// The training trace, <out-dir>/train.h5 (docs/hdf5-schema.md, group /train): its series, their
// columns and attributes in one place. Rank 0 writes it; it is train.h5.partial until commit().
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/trace.h"

namespace vitslim::train {

struct TraceInfo {
  std::string path;        // train.h5
  std::string config_ini;  // the resolved configuration
  std::string shape;       // ModelShape::describe()
  int64_t depth = 0;
  std::vector<int64_t> dilute_layers;
  int world_size = 1;
  int64_t global_batch = 0;
  int64_t steps_per_epoch = 0;
};

struct StepRow {
  int64_t global_step = 0, epoch = 0;
  double loss = 0, lr = 0, grad_norm = 0, images_per_s = 0, data_seconds = 0, comm_wait_seconds = 0;
};

struct EpochRow {
  int64_t epoch = 0;
  double train_loss = 0, top1 = 0, top5 = 0, eval_loss = 0, seconds = 0;
  int64_t images = 0;
};

class TrainTrace {
 public:
  // On resume (resume_step > 0) the interrupted run's rows up to resume_step, and its first
  // `epochs_done` epochs, are carried over, so the file always describes one continuous run.
  TrainTrace(const TraceInfo& info, int64_t resume_step, int64_t epochs_done);
  void add_step(const StepRow& row, const std::vector<double>& lambdas);  // lambdas: [depth]; not flushed
  void flush();  // makes the rows added so far durable (the trainer's sync points)
  void add_entropy(const std::vector<double>& attn, const std::vector<double>& mlp);
  void add_epoch(const EpochRow& row, const std::vector<double>& lambdas);
  void commit();

 private:
  std::map<std::string, int64_t> widths() const;
  std::map<std::string, std::vector<double>> carried_rows(int64_t resume_step, int64_t epochs_done) const;
  void create_series(const TraceInfo& info);

  TraceInfo info_;
  std::unique_ptr<io::TraceFile> file_;
};

}  // namespace vitslim::train
