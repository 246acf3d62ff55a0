// The driver of `vitslim pipeline` (jobs/pipeline_job.cpp): the Pipeline class, which runs the
// method's stages in order with configurations derived from its own, each stage through the same
// typed entry its job uses (jobs/entries.h), and the constants the stages share. The stages
// themselves (analysis, fine-tuning rows, merge, evaluation, bench, token merging, plan) are in
// pipeline_stages.cpp; setup, resume checks and the report in pipeline_job.cpp.
#pragma once

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/dir_lock.h"
#include "core/log.h"
#include "dist/mpi_session.h"
#include "evaluation/eval_result.h"
#include "jobs/config.h"
#include "jobs/pipeline_report.h"
#include "jobs/settings.h"
#include "model/presets.h"
#include "model/provenance.h"
#include "plan/planner.h"
#include "search/result.h"
#include "train/trainer.h"

namespace vitslim::pipeline {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

inline constexpr double kPretrainWarmupEpochs = 0.3;
inline constexpr const char* kSettingsFile = "pipeline.ini";  // the resolved settings a rerun must match
inline constexpr double kFinetuneWarmupEpochs = 0.1;
inline constexpr double kLabelSmoothing = 0.1;
inline constexpr int64_t kCalibImages = 2048;
inline constexpr int64_t kEntropyTraceImages = 256;
inline constexpr int64_t kBenchBatch = 256;
inline constexpr int64_t kKeepCheckpoints = 2;
// A shipped checkpoint's test top-1, re-measured, may differ from its record by this much (other
// batch sizes sum in another order; 0.1 points = 10 of 10,000 images).
inline constexpr double kProvenanceTolerancePoints = 0.1;

// Thrown when a training stage stopped on SIGUSR1/SIGTERM: the pipeline ends here (exit 0) and the
// same command resumes it.
struct StoppedBySignal {
  std::string stage;
};

// Whether the training stage in `dir` finished (its train.json says so).
bool training_finished(const std::string& dir);
// A ratio as the row names show it (0.5, 0.25).
std::string ratio_name(double ratio);
EvalOutcome outcome_of(const evaluation::EvalCounts& counts);

class Pipeline {
 public:
  Pipeline(const Config& config, const dist::MpiSession& mpi) : base_(config), p_(base_.pipeline), mpi_(mpi) {
    // The pipeline names the weights it starts from itself (shipped, given, or pretrained here).
    model::use_default_preset(base_.model, model::kDefaultPreset, false);
    const ModelRequest& m = base_.model;
    const bool as_preset = !m.img_size && !m.patch_size && !m.in_chans && !m.embed_dim && !m.depth && !m.num_heads &&
                           !m.num_classes && !m.mlp_ratio;
    shipped_ = as_preset ? shipped_checkpoint(m.preset) : "";
  }
  void run();

 private:
  std::string path(const std::string& name) const { return (fs::path(p_.out_dir) / name).string(); }
  // Runs `stage` unless `done` says its result exists; records the seconds it took.
  template <typename Stage>
  void stage(const std::string& name, bool done, Stage&& body);
  // A stage's configuration: the pipeline's own with job = `job` (each stage then checks it with
  // that job's validate before running).
  Config stage_config(const std::string& job) const;
  Config train_config(const std::string& dir, const std::string& weights, int64_t epochs, double lr) const;
  train::TrainResult train(const Config& c, const std::string& stage_name);
  void pretrain();
  // The default model on its dataset, asked for no other start: a shipped checkpoint applies.
  bool wants_shipped() const {
    return p_.weights.empty() && !p_.pretrain_epochs && !shipped_.empty() &&
           base_.data.dataset == data::DataKind::FashionMnist;
  }
  bool uses_shipped() const;  // ... and it is there
  void trust(const std::string& weights, bool required);
  void check_pretrained_top1();
  void analyse();
  search::SearchResult search_stage(Criterion criterion, const std::vector<double>& ratios, const std::string& stem);
  double largest_ratio() const { return *std::max_element(p_.ratios.begin(), p_.ratios.end()); }
  std::vector<PipelineRun> plan_runs();
  void finetune(const PipelineRun& run, int64_t seed_index);
  void merge(const std::string& name, const std::string& dir, const std::string& compact);
  // With `tome`: evaluated with that token merging.
  EvalOutcome evaluate(const std::string& name, const std::string& weights, const std::string& out,
                       const model::TomeRequest& tome = {});
  void bench(const PipelineRun& run);
  // NOSE at the largest ratio + token merging tuned by tome-sweep, and the unpruned model with it.
  void token_merging();
  // vitslim plan on the starting weights with the search's NOSE order; its answer from plan.json.
  void plan_stage();
  PlanSummary summarise_plan(const plan::PlanResult& result) const;
  model::TomeRequest tune_merging(const PipelineRun& nose);
  std::string compact_path(const PipelineRun& run, int64_t seed) const {
    return path("compact-" + run.name + "-seed" + std::to_string(seed) + ".safetensors");
  }
  std::string unpruned_path(int64_t seed) const {
    return (fs::path(path("finetune-unpruned-seed" + std::to_string(seed))) / "final.safetensors").string();
  }
  std::unique_ptr<DirLock> out_lock_;  // rank 0: --out-dir is this pipeline's alone
  void report();
  void check_settings();

  Config base_;
  const PipelineConfig& p_;
  const dist::MpiSession& mpi_;
  std::string pretrained_;
  std::string shipped_;  // the shipped checkpoint of the preset as it is (vit_fmnist, vit_fmnist12), else ""
  std::optional<model::Provenance> provenance_;  // of the starting weights, when they carry one
  PipelineResults results_;
  Clock::time_point started_ = Clock::now();
};

template <typename Stage>
void Pipeline::stage(const std::string& name, bool done, Stage&& body) {
  if (done) {
    log_info(cat("pipeline: ", name, ": done earlier, reusing ", p_.out_dir));
    results_.stages[name] = "reused";
    return;
  }
  log_info(cat("pipeline: ", name));
  const auto t0 = Clock::now();
  body();
  mpi_.barrier();  // rank-0-only writers (merge, bench, reports) finish before anyone reads
  results_.stages[name] = std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace vitslim::pipeline
