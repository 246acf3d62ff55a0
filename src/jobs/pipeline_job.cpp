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
#include "jobs/pipeline_report.h"
#include "model/checkpoint.h"
#include "model/presets.h"
#include "model/provenance.h"
#include "plan/planner.h"
#include "search/coordinator.h"
#include "train/train_checkpoint.h"
#include "train/train_summary.h"
#include "train/trainer.h"

namespace vitslim {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

constexpr double kPretrainWarmupEpochs = 0.3;
constexpr const char* kSettingsFile = "pipeline.ini";  // the resolved settings a rerun must match
constexpr double kFinetuneWarmupEpochs = 0.1;
constexpr double kLabelSmoothing = 0.1;
constexpr int64_t kCalibImages = 2048;
constexpr int64_t kEntropyTraceImages = 256;
constexpr int64_t kBenchBatch = 256;
constexpr int64_t kKeepCheckpoints = 2;
// A shipped checkpoint's test top-1, re-measured, may differ from its record by this much (other
// batch sizes sum in another order; 0.1 points = 10 of 10,000 images).
constexpr double kProvenanceTolerancePoints = 0.1;

// Thrown when a training stage stopped on SIGUSR1/SIGTERM: the pipeline ends here (exit 0) and the
// same command resumes it.
struct StoppedBySignal {
  std::string stage;
};

bool training_finished(const std::string& dir) {
  const auto path = fs::path(dir) / "train.json";
  return fs::exists(path) && train::read_train_summary(path.string()).finished;
}

std::string ratio_name(double ratio) {
  std::ostringstream out;
  out << ratio;
  return out.str();
}

EvalOutcome outcome_of(const evaluation::EvalCounts& n) { return {n.top1_percent(), n.top5_percent(), n.mean_loss()}; }

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
  void read_plan(const std::string& file);
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

void Pipeline::analyse() {
  stage("entropy", fs::exists(path("entropy.json")), [&] {
    Config c = stage_config("entropy");
    c.model.weights = pretrained_;
    c.data.calib_images = kCalibImages;
    c.entropy.out = path("entropy.h5");
    c.entropy.json = path("entropy.json");
    run_entropy_job(c, mpi_);
  });
  results_.search = search_stage(Criterion::Nose, p_.ratios, "search");
  for (Criterion criterion : p_.other_criteria()) {
    const std::string name = to_string(criterion);
    results_.criteria.emplace_back(name, search_stage(criterion, {p_.compared_ratio()}, "search-" + name));
  }
}

// One search stage: <stem>.json and <stem>.h5; every rank gets the selections.
search::SearchResult Pipeline::search_stage(Criterion criterion, const std::vector<double>& ratios,
                                            const std::string& stem) {
  const std::string json_file = path(stem + ".json");
  search::SearchResult result;
  const bool done = fs::exists(json_file);
  if (done) result = search::read_search_result(json_file, "pipeline: the finished search");
  stage(criterion == Criterion::Nose ? "search" : cat("search ", to_string(criterion)), done, [&] {
    Config c = stage_config("search");
    c.model.weights = pretrained_;
    c.data.calib_images = kCalibImages;
    c.search.criterion = criterion;
    c.search.ratios = ratios;
    c.search.out = path(stem + ".h5");
    c.search.json = json_file;
    result = run_search_job(c, mpi_);
  });
  return result;
}

// Unpruned, NOSE per ratio, NOSE + distillation and every other criterion at --compare-ratio.
std::vector<PipelineRun> Pipeline::plan_runs() {
  std::vector<PipelineRun> runs = {{"unpruned", "none", 0.0, {}, false}};
  const double compared = p_.compared_ratio();
  std::vector<int64_t> nose_compared;
  for (const search::Selection& s : results_.search.selections) {
    runs.push_back({"nose-" + ratio_name(s.ratio), "nose", s.ratio, s.layers, false});
    if (same_ratio(s.ratio, compared)) nose_compared = s.layers;
  }
  if (p_.distill.kind != Distill::None) {
    runs.push_back({"nose-" + ratio_name(compared) + "+kd", "nose", compared, nose_compared, true});
  }
  for (const auto& [name, result] : results_.criteria) {
    runs.push_back({name + "-" + ratio_name(compared), name, compared, result.selections.at(0).layers, false});
  }
  return runs;
}

// Seed k of a row: its own directory, seed --seed + k; the row's compact model and evaluation.
void Pipeline::finetune(const PipelineRun& run, int64_t seed_index) {
  const std::string tag = run.name + "-seed" + std::to_string(seed_index);
  const std::string dir = path("finetune-" + tag);
  std::optional<train::TrainResult> ran;  // empty: an earlier run finished this stage
  stage("finetune " + tag, training_finished(dir), [&] {
    Config c = train_config(dir, pretrained_, p_.finetune_epochs, p_.finetune_lr);
    c.runtime.seed = base_.runtime.seed + static_cast<uint64_t>(seed_index);
    c.train.warmup_epochs = kFinetuneWarmupEpochs;
    c.train.dilute_layers = run.layers;
    c.train.decay_epochs = p_.decay_epochs;
    c.train.lambda_per_step = true;
    if (run.distill) {
      c.train.teacher = kTeacherStart;  // the pretrained weights, before any attention dilutes
      c.train.distill = p_.distill;
    }
    ran = train(c, "finetune " + tag);
  });
  double step_seconds = 0, steps = 0;
  if (ran) {
    step_seconds = ran->step_seconds;
    steps = static_cast<double>(ran->global_step);
  } else if (mpi_.rank() == 0) {  // a stage an earlier run finished: its train.json (the report is rank 0's)
    const train::TrainSummary done = train::read_train_summary((fs::path(dir) / "train.json").string());
    step_seconds = done.step_seconds;
    steps = static_cast<double>(done.global_step);
  }
  results_.step_seconds[run.name].push_back(step_seconds / std::max(1.0, steps));
  std::string weights = (fs::path(dir) / "final.safetensors").string();
  if (!run.layers.empty()) {
    weights = compact_path(run, seed_index);
    merge(tag, dir, weights);
  }
  results_.evals[run.name].push_back(evaluate("eval " + tag, weights, path("eval-" + tag + ".json")));
  if (!run.layers.empty() && seed_index == 0) bench(run);
}

void Pipeline::merge(const std::string& name, const std::string& dir, const std::string& compact) {
  stage("merge " + name, fs::exists(compact), [&] {
    Config c = stage_config("merge");
    const auto steps = train::list_checkpoints(dir);
    if (steps.empty()) throw Error(cat("pipeline: ", dir, " has no checkpoint to merge"));
    c.merge.checkpoint = train::checkpoint_path(dir, steps.back());
    c.merge.out = compact;
    run_merge_job(c, mpi_);
  });
}

EvalOutcome Pipeline::evaluate(const std::string& name, const std::string& weights, const std::string& out,
                               const model::TomeRequest& tome) {
  const bool done = fs::exists(out);
  EvalOutcome outcome;
  if (done) outcome = outcome_of(evaluation::read_eval_result(out, "pipeline: the finished evaluation").counts);
  stage(name, done, [&] {
    Config c = stage_config("eval");
    c.model.weights = weights;
    c.model.tome = tome;
    c.data.split = "test";
    c.eval.images = p_.eval_images;
    c.eval.json = out;
    outcome = outcome_of(run_eval_job(c, mpi_).counts);
  });
  return outcome;
}

void Pipeline::bench(const PipelineRun& run) {
  const std::string out = path("bench-" + run.name + ".json");
  const bool done = fs::exists(out);
  if (done && mpi_.rank() == 0)
    results_.benches[run.name] = evaluation::read_bench_ratios(out, "pipeline: the finished bench");
  stage("bench " + run.name, done, [&] {
    if (mpi_.rank() != 0) return;
    Config c = stage_config("bench");
    c.model.removed_layers = run.layers;
    c.bench.batch_size = kBenchBatch;
    c.bench.iters = p_.bench_iters;
    c.bench.train = false;  // inference speed is what the compact model is for
    c.bench.json = out;
    results_.benches[run.name] = run_bench_job(c);
  });
}

// The sweep on the row's seed-0 model, on training images (the test split is what the report
// compares); reused from its JSON when an earlier run made it.
model::TomeRequest Pipeline::tune_merging(const PipelineRun& nose) {
  TomeRows& t = *results_.tome;
  const std::string out = path("tome-sweep-" + nose.name + ".json");
  const bool done = fs::exists(out);
  if (done) {
    const evaluation::TomePoint chosen = evaluation::read_tome_sweep(out, "pipeline: the finished tome-sweep").best();
    t.r = chosen.r;
    t.start = chosen.start;
  }
  stage("tome-sweep " + nose.name, done, [&] {
    Config c = stage_config("tome-sweep");
    c.model.weights = compact_path(nose, 0);
    c.data.split = "train";
    c.tome_sweep.r = p_.tome_sweep_r;
    c.tome_sweep.start = {0};
    c.tome_sweep.max_drop = p_.tome_max_drop;
    c.tome_sweep.speeds = p_.tome_speeds;
    c.tome_sweep.images = p_.tome_tune_images;
    c.tome_sweep.bench_batch = kBenchBatch;
    c.tome_sweep.bench_iters = p_.bench_iters;
    c.tome_sweep.json = out;
    c.tome_sweep.csv = path("tome-sweep-" + nose.name + ".csv");
    const evaluation::TomePoint chosen = run_tome_sweep_job(c, mpi_).best();
    t.r = chosen.r;
    t.start = chosen.start;
  });
  model::TomeRequest tome;
  tome.r = {t.r};
  tome.start = t.start;
  return tome;
}

void Pipeline::token_merging() {
  const PipelineRun* nose = nullptr;
  for (const PipelineRun& run : results_.runs) {
    if (run.choice == "nose" && run.ratio == largest_ratio() && !run.distill) nose = &run;
  }
  if (!p_.tome_rows || !nose) return;
  results_.tome =
      TomeRows{nose->name, 0, 0, {}, p_.tome_max_drop, p_.tome_tune_images, p_.tome_sweep_r, {}, {}, "", {}};
  TomeRows& t = *results_.tome;
  const model::TomeRequest tome = tune_merging(*nose);
  if (t.r == 0) {
    log_info(cat("pipeline: no r in {", join_list(p_.tome_sweep_r), "} is faster within ", p_.tome_max_drop,
                 " points; no ToMe rows"));
    return;
  }
  const ModelShape shape = model::preset(base_.model.preset);
  t.per_block = model::resolve_tome(tome, shape.depth).r;
  try {  // the unpruned model has more blocks that merge: the same r may not fit
    model::token_schedule(shape.num_tokens(), shape.num_prefix_tokens(),
                          std::vector<bool>(static_cast<size_t>(shape.depth), true),
                          model::resolve_tome(tome, shape.depth));
  } catch (const Error& e) {
    t.unpruned_note = e.what();
  }
  for (int64_t k = 0; k < p_.seeds; ++k) {
    const std::string seed = "-seed" + std::to_string(k);
    t.pruned.push_back(evaluate("eval " + nose->name + "+tome" + seed, compact_path(*nose, k),
                                path("eval-" + nose->name + "+tome" + seed + ".json"), tome));
    if (t.unpruned_note.empty()) {
      t.unpruned.push_back(
          evaluate("eval unpruned+tome" + seed, unpruned_path(k), path("eval-unpruned+tome" + seed + ".json"), tome));
    }
  }
  const std::string out = path("bench-" + nose->name + "+tome.json");
  const bool done = fs::exists(out);
  if (done && mpi_.rank() == 0) t.bench = evaluation::read_bench_ratios(out, "pipeline: the finished bench");
  stage("bench " + nose->name + "+tome", done, [&] {
    if (mpi_.rank() != 0) return;
    Config c = stage_config("bench");
    c.model.removed_layers = nose->layers;
    c.model.tome = tome;
    c.bench.batch_size = kBenchBatch;
    c.bench.iters = p_.bench_iters;
    c.bench.train = false;
    c.bench.json = out;
    t.bench = run_bench_job(c);
  });
}

void Pipeline::plan_stage() {
  if (p_.plan_target_speedup <= 0) return;
  const std::string dir = path("plan");
  const std::string file = (fs::path(dir) / "plan.json").string();
  stage("plan", fs::exists(file), [&] {
    Config c = stage_config("plan");
    c.model.weights = pretrained_;
    PlanConfig& plan = c.plan;
    plan.target_speedup = p_.plan_target_speedup;
    plan.runtimes = p_.plan_runtime;
    plan.max_ratio = largest_ratio();
    plan.search = path("search.json");
    plan.probe_steps = p_.steps_per_epoch > 0 ? std::min(p_.plan_probe_steps, p_.steps_per_epoch) : p_.plan_probe_steps;
    plan.probe_lr = p_.finetune_lr;
    plan.probe_images = p_.eval_images > 0 ? p_.eval_images : plan.probe_images;
    plan.out_dir = dir;
    run_plan_job(c, mpi_);  // a target not met is part of the report, not a failure
  });
  if (mpi_.rank() == 0) read_plan(file);
}

void Pipeline::read_plan(const std::string& file) {
  const json j = read_job_json(file, "plan", "pipeline: the finished plan");
  PlanSummary s;
  s.runtime = j.at("runtimes").at(0).get<std::string>();
  s.target = j.at("target").at("speedup").get<double>();
  s.met = j.at("met").get<bool>();
  const json& choice = j.at("choices").at(s.runtime);
  s.reason = choice.at("reason").get<std::string>();
  const json& cands = j.at("candidates");
  const auto top1 = [](const json& c) {
    return c.at("probe_top1").is_null() ? std::optional<double>() : c.at("probe_top1").get<double>();
  };
  if (!choice.at("chosen").is_null()) {
    const json& c = cands.at(choice.at("chosen").get<size_t>());
    s.chosen = c.at("label").get<std::string>();
    s.speedup = c.at("timings").at(s.runtime).at("speedup").get<double>();
    s.probe_top1 = top1(c);
  }
  if (!j.at("fixed_half").is_null()) {
    const json& c = cands.at(j.at("fixed_half").get<size_t>());
    s.fixed_half = c.at("label").get<std::string>();
    s.fixed_half_speedup = c.at("timings").at(s.runtime).at("speedup").get<double>();
    s.fixed_half_top1 = top1(c);
  }
  s.unpruned_top1 = top1(cands.at(0));
  results_.plan = s;
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
  ctx.pretrained = pretrained_;
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
