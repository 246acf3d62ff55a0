// `vitslim pipeline`: the method end to end on one dataset (default Fashion-MNIST with the
// vit_fmnist preset): start from pretrained weights (the shipped converged vit_fmnist, whose
// provenance is checked, or --pretrained), or pretrain from scratch (--pretrain-epochs); entropy;
// the NOSE search per ratio and the other --criteria at the largest ratio; dilution fine-tuning of
// every row (unpruned, NOSE per ratio, NOSE + distillation from the starting weights, each other
// criterion), each repeated for --seeds seeds; merge, evaluation on the test split, benchmark, the
// plan for a measured speed-up (vitslim plan with the search's order), and a report with mean and std over the seeds
// (jobs/pipeline_report.h). Stages run in-process with configurations derived from the pipeline's own and pass their
// typed results on in memory; each stage's files in --out-dir mark it done, so a rerun resumes, and a reused stage's
// result is read back from its file.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "core/atomic_file.h"
#include "core/dir_lock.h"
#include "core/error.h"
#include "core/json_text.h"
#include "core/log.h"
#include "dist/gpu_select.h"
#include "dist/mpi_session.h"
#include "jobs/common.h"
#include "jobs/entries.h"
#include "jobs/job.h"
#include "jobs/pipeline.h"
#include "jobs/pipeline_report.h"
#include "model/checkpoint.h"
#include "model/presets.h"
#include "model/provenance.h"
#include "model/weights/train_checkpoint.h"
#include "plan/planner.h"
#include "search/coordinator.h"
#include "train/train_summary.h"
#include "train/trainer.h"

namespace vitslim {
namespace pipeline {
namespace {

// The report records the starting weights relative to the working directory when they lie inside
// it: the shipped checkpoint's compiled-in path is this machine's absolute one, and reports get
// committed (results/budget/).
std::string recorded_path(const std::string& path) {
  std::error_code ec;
  const fs::path cwd = fs::current_path(ec);
  if (ec) return path;
  const fs::path rel = fs::proximate(path, cwd, ec);
  if (ec || rel.empty() || *rel.begin() == "..") return path;
  return rel.string();
}

}  // namespace

Config Pipeline::stage_config(const std::string& job) const {
  Config c = base_;
  c.job = job;
  return c;
}

Config Pipeline::train_config(const std::string& dir, const std::string& weights, int64_t epochs, double lr) const {
  Config c = stage_config("train");
  c.model.weights = weights;
  TrainConfig& t = c.train;
  t.epochs = epochs;
  t.lr = lr;
  t.mixup = 0;  // a small ViT for a few epochs: mixup and cutmix only slow it down
  t.cutmix = 0;
  t.smoothing = kLabelSmoothing;
  t.eval_images = p_.eval_images;
  t.steps_per_epoch = p_.steps_per_epoch;
  t.entropy_images = kEntropyTraceImages;
  t.out_dir = dir;
  t.resume = true;  // an interrupted pipeline continues the run from its checkpoint
  t.keep_last = kKeepCheckpoints;
  return c;
}

train::TrainResult Pipeline::train(const Config& c, const std::string& stage_name) {
  train::TrainResult result = run_train_job(c, mpi_);
  if (!result.finished) throw StoppedBySignal{stage_name};
  return result;
}

// The default model on its dataset, asked for no other start: the shipped checkpoint.
bool Pipeline::uses_shipped() const { return wants_shipped() && fs::exists(shipped_); }

// Weights carrying a provenance record must still be what it describes; the shipped checkpoint
// must carry one.
void Pipeline::trust(const std::string& weights, bool required) {
  provenance_ = model::read_provenance(weights);
  if (!provenance_) {
    if (required)
      throw Error(cat(weights, ": no provenance metadata (", model::kMetaProvenance,
                      "); remake it with scripts/pretrain_fmnist.sh"));
    return;
  }
  ModelRequest request = base_.model;
  request.weights = weights;
  auto model = model::build_model(request, base_.runtime.seed);
  model::check_provenance(*provenance_, weights, model, data::kind_name(base_.data.dataset));
  log_info(cat("pipeline: ", weights, ": made by vitslim ", provenance_->job, " at ", provenance_->commit, ", ",
               provenance_->epochs, " epochs, seed ", provenance_->seed, ", recorded test top-1 ",
               fmt(provenance_->top1), "%; tensors check out"));
}

void Pipeline::pretrain() {
  if (!p_.weights.empty() || uses_shipped()) {
    pretrained_ = p_.weights.empty() ? shipped_ : p_.weights;
    if (!fs::exists(pretrained_)) throw Error(cat("pipeline: the shipped checkpoint ", pretrained_, " is missing"));
    trust(pretrained_, uses_shipped());
    return;
  }
  if (wants_shipped()) {
    log_warn(cat("pipeline: no shipped checkpoint ", shipped_, " (make it with scripts/pretrain_fmnist.sh --model ",
                 base_.model.preset, " --install); pretraining from scratch for ", kScratchPretrainEpochs, " epochs"));
  }
  const std::string dir = path("pretrain");
  pretrained_ = (fs::path(dir) / "final.safetensors").string();
  stage("pretrain", training_finished(dir), [&] {
    Config c = train_config(dir, "", p_.pretrain_epochs.value_or(kScratchPretrainEpochs), p_.pretrain_lr);
    c.train.warmup_epochs = kPretrainWarmupEpochs;
    train(c, "pretrain");
  });
}

// The starting weights evaluate to what their provenance records (same test images).
void Pipeline::check_pretrained_top1() {
  if (!provenance_) return;
  const int64_t images = p_.eval_images > 0 ? p_.eval_images : provenance_->eval_images;
  const double top1 = results_.pretrained.top1;
  model::check_recorded_top1(*provenance_, pretrained_, top1, images, kProvenanceTolerancePoints);
}

void Pipeline::report() {
  if (mpi_.rank() != 0) return;
  ReportContext ctx;
  ctx.out_dir = p_.out_dir;
  ctx.preset = base_.model.preset;
  ctx.shape = model::preset(base_.model.preset).describe();
  ctx.dataset = base_.data.dataset;
  ctx.pretrained = recorded_path(pretrained_);
  ctx.config_ini = config_to_ini(base_);
  ctx.world_size = mpi_.world_size();
  ctx.pretrained_here = p_.weights.empty() && !uses_shipped();
  ctx.pretrain_epochs = p_.pretrain_epochs.value_or(kScratchPretrainEpochs);
  if (provenance_) {
    ctx.provenance =
        cat("made by `vitslim ", provenance_->job, "` at commit ", provenance_->commit, ", ", provenance_->epochs,
            " epochs, seed ", provenance_->seed, ", recorded test top-1 ", fmt(provenance_->top1), "%");
  }
  ctx.finetune_epochs = p_.finetune_epochs;
  ctx.decay_epochs = p_.decay_epochs;
  ctx.seeds = p_.seeds;
  ctx.first_seed = base_.runtime.seed;
  ctx.seconds = std::chrono::duration<double>(Clock::now() - started_).count();
  write_pipeline_report(ctx, results_);
}

// Stages are reused by their files, so a rerun must ask for the same thing: the resolved settings
// are kept in pipeline.ini and a different request is refused rather than mixed with old results.
void Pipeline::check_settings() {
  if (mpi_.rank() != 0) return;
  const std::string file = path(kSettingsFile);
  Config mine = base_;
  mine.runtime.threads = 0;  // how fast, not what: may differ between runs
  mine.runtime.quiet = false;
  const std::string settings = config_to_ini(mine);
  if (fs::exists(file)) {
    std::ifstream in(file);
    std::stringstream old;
    old << in.rdbuf();
    if (old.str() != settings) {
      throw Error(cat("--out-dir ", p_.out_dir, " holds a pipeline run with other settings (", file,
                      "); rerun with the same settings to resume it, or choose another --out-dir"));
    }
    return;
  }
  write_file_atomic(file, settings);
}

void Pipeline::run() {
  dist::open_device(base_.compute, mpi_);  // a bad --device stops here, before --out-dir exists
  // Read now, not when the ToMe stage comes after hours of fine-tuning.
  if (!p_.tome_speeds.empty()) evaluation::read_speed_table(p_.tome_speeds, "--tome-speeds");
  if (mpi_.rank() == 0)
    out_lock_ = std::make_unique<DirLock>(p_.out_dir, "--out-dir", std::vector<std::string>{kSettingsFile});
  check_settings();
  mpi_.barrier();
  pretrain();
  results_.pretrained = evaluate("eval pretrained", pretrained_, path("eval-pretrained.json"));
  check_pretrained_top1();
  analyse();
  results_.runs = plan_runs();
  for (int64_t k = 0; k < p_.seeds; ++k) {
    for (const PipelineRun& run : results_.runs) finetune(run, k);
  }
  token_merging();
  plan_stage();
  report();
  log_info(cat("pipeline: done in ", fmt(std::chrono::duration<double>(Clock::now() - started_).count(), 4),
               " s; report in ", path("report.md")));
}

}  // namespace pipeline

namespace {

using pipeline::Pipeline;
using pipeline::StoppedBySignal;

void declare(Options& o, Config& c) {
  c.model.declare(o, "the pipeline");
  o.refuse("weights",
           "pipeline: --weights is not used; give the weights to start from as --pretrained (their "
           "provenance is checked)");
  o.add_refused("remove-layers", "not used: the search chooses the layers",
                "pipeline: the search chooses the layers; --remove-layers is not used");
  c.data.declare(o);
  c.data.declare_augment(o);
  c.pipeline.declare(o);
  c.compute.declare(o);
  c.runtime.declare(o);
}

void validate(const Config& c) {
  c.model.validate(c.model.removed_layers);
  c.data.validate();
  c.pipeline.validate();
}

JobResult run(const Config& config, const dist::MpiSession& mpi) {
  Pipeline pipeline(config, mpi);
  try {
    pipeline.run();
    return {};
  } catch (const StoppedBySignal& stop) {
    log_info(cat("pipeline: stopped by a signal during ", stop.stage, "; run the same command to resume"));
    JobResult stopped;
    stopped.stopped_by_signal = true;
    return stopped;
  }
}

}  // namespace

Job pipeline_job() {
  Job job =
      make_job("pipeline", "the whole method end to end: pretrain, entropy, search, dilute, merge, evaluate, report",
               declare, validate, run, "--out-dir={out}");
  job.stops_at_signal = true;
  return job;
}

}  // namespace vitslim
