// The Trainer of run_training (trainer.h), shared by its three files: trainer.cpp (the order of
// things: the loop, the sync points, the epoch ends, the final exports), trainer_setup.cpp (the
// model, data, optimisation and resume) and trainer_files.cpp (checkpoints, train.json and the
// provenance of final.safetensors). Internal to the train layer.
#pragma once

#include "train/trainer.h"

#include <torch/cuda.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "core/background.h"
#include "core/cpu_memory.h"
#include "core/dir_lock.h"
#include "core/error.h"
#include "core/json_text.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/signals.h"
#include "core/version.h"
#include "data/formats/dataset.h"
#include "data/open.h"
#include "dist/communicator.h"
#include "dist/gpu_select.h"
#include "dist/mpi_session.h"
#include "dist/reducer.h"
#include "entropy/branch_stats.h"
#include "evaluation/evaluate.h"
#include "model/autocast.h"
#include "model/checkpoint.h"
#include "model/presets.h"
#include "train/batches.h"
#include "train/dilution.h"
#include "train/distill.h"
#include "train/phases.h"
#include "train/plan.h"
#include "train/resume.h"
#include "train/step.h"
#include "train/sync_point.h"
#include "train/train_summary.h"
#include "train/train_trace.h"

namespace vitslim::train {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

inline constexpr int64_t kMiB = 1 << 20;
// Salts that separate the random streams drawn from (seed, rank, step).
inline constexpr uint64_t kSaltTorch = 0x746f726368ULL;  // drop-path (LibTorch's generator)
inline constexpr uint64_t kEntropySeedSalt = 0x656e74ULL;

inline double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

class Trainer {
 public:
  Trainer(const TrainInputs& inputs, const dist::MpiSession& mpi) : c_(inputs), t_(c_.train), mpi_(mpi) {}
  TrainResult run();

 private:
  void setup();
  void setup_model();
  void setup_data();
  void setup_optimisation();
  void resume_or_start();
  void broadcast_weights();
  TrainResult run_steps();
  void apply_lambda(double lambda);
  void rebuild_parameters();
  bool train_step(int64_t epoch);
  bool sync_due() const;
  void end_epoch(int64_t epoch, double train_loss, double seconds, int64_t images);
  void record_epoch(const EpochRow& row, const std::vector<double>& lambdas);
  void save_checkpoint();
  // A deployable model file in --out-dir: parameters (or their EMA), removed layers in the metadata.
  // On a GPU written by rank 0's background writer from a host snapshot, on the CPU now.
  void export_model(const std::string& name, bool ema, const std::map<std::string, std::string>& metadata = {});
  // final.safetensors' provenance (model::kMetaProvenance): what made it and its last evaluation.
  std::map<std::string, std::string> provenance();
  void write_summary(bool finished);
  TrainSummary summary(bool finished);
  double current_lambda(int64_t epoch) const { return plan_.lambda.at(epoch, state_.global_step); }
  StepOptions step_options() const { return {t_.accum_steps, t_.clip_grad, t_.ema_decay, t_.bf16, t_.distill}; }
  // What teaches this run, for its identity: empty without distillation.
  std::string teacher_identity() const {
    if (!teacher_) return "";
    return cat(to_string(t_.distill.kind), " distillation (alpha ", fmt(t_.distill.alpha), ", tau ",
               fmt(t_.distill.tau), ") from teacher ", teacher_->fingerprint());
  }

  TrainInputs c_;
  const TrainConfig& t_;
  const dist::MpiSession& mpi_;
  std::unique_ptr<dist::Communicator> comm_;
  torch::Device device_{torch::kCPU};
  model::VisionTransformer model_{nullptr};
  std::unique_ptr<Teacher> teacher_;  // --distill soft|hard
  std::unique_ptr<data::Dataset> train_set_, eval_set_;
  Normalisation norm_;
  std::unique_ptr<TrainBatches> batches_;
  std::unique_ptr<AdamW> optimizer_;
  std::unique_ptr<dist::GradientReducer> reducer_;
  NamedTensors params_;
  std::map<std::string, torch::Tensor> ema_;
  TrainPlan plan_;
  model::TrainState state_;
  std::unique_ptr<DirLock> out_lock_;                   // rank 0: --out-dir is this run's alone
  std::unique_ptr<dist::CollectiveDeadline> deadline_;  // MPI collectives end after --collective-timeout
  BackgroundTask writer_;                               // rank 0, GPU runs: checkpoints, exports
  std::unique_ptr<TrainTrace> trace_;
  std::unique_ptr<ProgressLine> progress_;
  std::unique_ptr<PhaseClock> phases_;  // --profile, else disabled
  int64_t eval_images_ = 0;
  std::vector<int64_t> entropy_indices_;
  std::unique_ptr<SyncPoint> sync_;  // made once the run's plan and state are known
  double last_top1_ = -1;
  int stop_signal_ = 0;
  bool first_batch_seen_ = false;
  // --resume found the last checkpoint of a run whose final.safetensors and finished train.json
  // are there: its outputs are kept as they are and nothing runs.
  bool finished_earlier_ = false;
  double rss_start_mib_ = -1;  // resident memory when the first step starts
  Clock::time_point started_ = Clock::now();
};

}  // namespace vitslim::train
