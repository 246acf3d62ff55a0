// `vitslim pipeline`: the method end to end on one dataset (default Fashion-MNIST with the
// vit_fmnist preset): start from pretrained weights (the shipped converged vit_fmnist, whose
// provenance is checked, or --pretrained), or pretrain from scratch (--pretrain-epochs), entropy, NOSE search per
// ratio, dilution fine-tuning per ratio plus the unpruned model and (at the largest ratio) a random and a first-k
// choice with the same budget, merge, evaluation on the test split, benchmark, and a report (jobs/pipeline_report.h).
// Stages run in-process with configurations derived from the pipeline's own and pass their typed results on in memory;
// each stage's files in --out-dir mark it done, so a rerun resumes, and a reused stage's result is read back from its
// file.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/atomic_file.h"
#include "core/dir_lock.h"
#include "core/error.h"
#include "core/json_text.h"
#include "core/log.h"
#include "data/sampler.h"
#include "dist/mpi_session.h"
#include "entropy/measure.h"
#include "jobs/common.h"
#include "jobs/job.h"
#include "jobs/pipeline_report.h"
#include "model/checkpoint.h"
#include "model/convert_bench.h"
#include "model/presets.h"
#include "model/provenance.h"
#include "search/coordinator.h"
#include "train/evaluate.h"
#include "train/merge_checkpoint.h"
#include "train/train_checkpoint.h"
#include "train/trainer.h"

namespace vitslim {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

constexpr uint64_t kAblationSalt = 0x72616e64ULL;  // the random choice of the ablation
constexpr double kPretrainWarmupEpochs = 0.3;
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

json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(cat("pipeline: cannot read ", path));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_json_text(text, cat("pipeline: ", path));
}

bool training_finished(const std::string& dir) {
  const auto path = fs::path(dir) / "train.json";
  return fs::exists(path) && read_json(path.string()).value("finished", false);
}

std::string ratio_name(double ratio) {
  std::ostringstream out;
  out << ratio;
  return out.str();
}

// Results of stages an earlier, interrupted run finished, from their files.
EvalOutcome read_eval(const std::string& path) {
  const json j = read_json(path);
  return {j.at("top1").get<double>(), j.at("top5").get<double>(), j.at("loss").get<double>()};
}
model::BenchRatios read_bench(const std::string& path) {
  const json r = read_json(path).at("ratios");
  model::BenchRatios b;
  b.compared = true;
  b.params = r.at("params").get<double>();
  b.macs = r.at("macs").get<double>();
  b.inference_speedup = r.at("inference_speedup").get<double>();
  return b;
}
search::SearchResult read_search(const std::string& path) {
  const json j = read_json(path);
  search::SearchResult out;
  out.full_entropy = j.at("full_entropy").get<double>();
  for (const json& s : j.at("selections")) {
    out.selections.push_back({s.at("ratio").get<double>(), s.at("count").get<int64_t>(),
                              s.at("layers").get<std::vector<int64_t>>(), s.at("te").get<double>(),
                              s.at("entropy").get<double>()});
  }
  return out;
}

class Pipeline {
 public:
  Pipeline(const Config& config, const dist::MpiSession& mpi) : base_(config), p_(base_.pipeline), mpi_(mpi) {
    model::use_default_preset(base_.model);
    const ModelRequest& m = base_.model;
    shipped_shape_ = m.preset == "vit_fmnist" && !m.img_size && !m.patch_size && !m.in_chans && !m.embed_dim &&
                     !m.depth && !m.num_heads && !m.num_classes && !m.mlp_ratio;
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
  void train(const Config& c, const std::string& stage_name);
  void pretrain();
  bool uses_shipped() const;
  void trust(const std::string& weights, bool required);
  void check_pretrained_top1();
  void analyse();
  void share_search();
  std::vector<PipelineRun> plan_runs();
  void finetune(const PipelineRun& run);
  void merge(const PipelineRun& run, const std::string& dir, const std::string& compact);
  void evaluate(const std::string& name, const std::string& weights);
  void bench(const PipelineRun& run);
  std::unique_ptr<DirLock> out_lock_;  // rank 0: --out-dir is this pipeline's alone
  void report();
  void check_settings();

  Config base_;
  const PipelineConfig& p_;
  const dist::MpiSession& mpi_;
  std::string pretrained_;
  bool shipped_shape_ = false;                   // the vit_fmnist preset as it is (a checkpoint of it is shipped)
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

void Pipeline::train(const Config& c, const std::string& stage_name) {
  find_job("train").validate(c);
  const train::TrainResult result = train::run_training({c.model, c.data, c.train, c.runtime, config_to_ini(c)}, mpi_);
  if (!result.finished) throw StoppedBySignal{stage_name};
}

// The default model on its dataset, asked for no other start: the shipped checkpoint.
bool Pipeline::uses_shipped() const {
  return p_.weights.empty() && !p_.pretrain_epochs && shipped_shape_ && base_.data.dataset == "fashion-mnist";
}

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
  model::check_provenance(*provenance_, weights, model, base_.data.dataset);
  log_info(cat("pipeline: ", weights, ": made by vitslim ", provenance_->job, " at ", provenance_->commit, ", ",
               provenance_->epochs, " epochs, seed ", provenance_->seed, ", recorded test top-1 ",
               fmt(provenance_->top1), "%; tensors check out"));
}

void Pipeline::pretrain() {
  if (!p_.weights.empty() || uses_shipped()) {
    pretrained_ = p_.weights.empty() ? kShippedFmnist : p_.weights;
    if (!fs::exists(pretrained_)) throw Error(cat("pipeline: the shipped checkpoint ", pretrained_, " is missing"));
    trust(pretrained_, uses_shipped());
    return;
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
    find_job("entropy").validate(c);
    entropy::run_entropy(c.model, c.data, c.entropy, c.runtime, config_to_ini(c), mpi_);
  });
  const bool searched = fs::exists(path("search.json"));
  if (searched) results_.search = read_search(path("search.json"));
  stage("search", searched, [&] {
    Config c = stage_config("search");
    c.model.weights = pretrained_;
    c.data.calib_images = kCalibImages;
    c.search.ratios = p_.ratios;
    c.search.out = path("search.h5");
    c.search.json = path("search.json");
    find_job("search").validate(c);
    results_.search = search::run_search({c.model, c.data, c.search, c.runtime, config_to_ini(c)}, mpi_);
    share_search();
  });
}

// Rank 0 holds the search result; every rank fine-tunes with its layers.
void Pipeline::share_search() {
  std::vector<int64_t> packed;  // per ratio: count, then the layers
  for (const auto& s : results_.search.selections) {
    packed.push_back(static_cast<int64_t>(s.layers.size()));
    packed.insert(packed.end(), s.layers.begin(), s.layers.end());
  }
  packed = mpi_.broadcast(packed);
  if (mpi_.rank() == 0) return;
  results_.search.selections.clear();
  for (size_t i = 0, r = 0; i < packed.size(); ++r) {
    const auto n = static_cast<size_t>(packed[i++]);
    std::vector<int64_t> layers(packed.begin() + static_cast<std::ptrdiff_t>(i),
                                packed.begin() + static_cast<std::ptrdiff_t>(i + n));
    results_.search.selections.push_back({p_.ratios.at(r), static_cast<int64_t>(n), layers, 0, 0});
    i += n;
  }
}

std::vector<PipelineRun> Pipeline::plan_runs() {
  std::vector<PipelineRun> runs = {{"unpruned", "none", 0.0, {}}};
  for (const search::Selection& s : results_.search.selections) {
    runs.push_back({"nose-" + ratio_name(s.ratio), "nose", s.ratio, s.layers});
  }
  if (p_.ablation) {
    const double r = *std::max_element(p_.ratios.begin(), p_.ratios.end());
    const auto k = static_cast<int64_t>(runs.back().layers.size());
    const int64_t depth = model::preset(base_.model.preset).depth;
    // A seeded random choice of the same size, and the first k blocks.
    std::vector<int64_t> random = data::shuffled_prefix(depth, k, data::mix_seed(base_.runtime.seed, kAblationSalt));
    std::sort(random.begin(), random.end());
    std::vector<int64_t> first(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i) first[static_cast<size_t>(i)] = i;
    runs.push_back({"random-" + ratio_name(r), "random", r, random});
    runs.push_back({"first-" + ratio_name(r), "first", r, first});
  }
  return runs;
}

void Pipeline::finetune(const PipelineRun& run) {
  const std::string dir = path("finetune-" + run.name);
  stage("finetune " + run.name, training_finished(dir), [&] {
    Config c = train_config(dir, pretrained_, p_.finetune_epochs, p_.finetune_lr);
    c.train.warmup_epochs = kFinetuneWarmupEpochs;
    c.train.dilute_layers = run.layers;
    c.train.decay_epochs = p_.decay_epochs;
    c.train.lambda_per_step = true;
    train(c, "finetune " + run.name);
  });
  if (run.layers.empty()) {
    evaluate(run.name, (fs::path(dir) / "final.safetensors").string());
    return;
  }
  const std::string compact = path("compact-" + run.name + ".safetensors");
  merge(run, dir, compact);
  evaluate(run.name, compact);
  bench(run);
}

void Pipeline::merge(const PipelineRun& run, const std::string& dir, const std::string& compact) {
  stage("merge " + run.name, fs::exists(compact), [&] {
    Config c = stage_config("merge");
    const auto steps = train::list_checkpoints(dir);
    if (steps.empty()) throw Error(cat("pipeline: ", dir, " has no checkpoint to merge"));
    c.merge.checkpoint = train::checkpoint_path(dir, steps.back());
    c.merge.out = compact;
    find_job("merge").validate(c);
    train::run_merge(c.merge, c.runtime, mpi_);
  });
}

void Pipeline::evaluate(const std::string& name, const std::string& weights) {
  const std::string out = path("eval-" + name + ".json");
  const bool done = fs::exists(out);
  if (done) results_.evals[name] = read_eval(out);
  stage("eval " + name, done, [&] {
    Config c = stage_config("eval");
    c.model.weights = weights;
    c.data.split = "test";
    c.eval.images = p_.eval_images;
    c.eval.json = out;
    find_job("eval").validate(c);
    const train::EvalCounts n = train::run_eval(c.model, c.data, c.eval, c.runtime, mpi_);
    results_.evals[name] = {n.top1_percent(), n.top5_percent(), n.mean_loss()};
  });
}

void Pipeline::bench(const PipelineRun& run) {
  const std::string out = path("bench-" + run.name + ".json");
  const bool done = fs::exists(out);
  if (done && mpi_.rank() == 0) results_.benches[run.name] = read_bench(out);
  stage("bench " + run.name, done, [&] {
    if (mpi_.rank() != 0) return;
    Config c = stage_config("bench");
    c.model.removed_layers = run.layers;
    c.bench.batch_size = kBenchBatch;
    c.bench.iters = p_.bench_iters;
    c.bench.train = false;  // inference speed is what the compact model is for
    c.bench.json = out;
    find_job("bench").validate(c);
    results_.benches[run.name] = model::run_bench(c.model, c.bench, c.runtime);
  });
}

// The starting weights evaluate to what their provenance records (same test images).
void Pipeline::check_pretrained_top1() {
  if (!provenance_) return;
  const int64_t images = p_.eval_images > 0 ? p_.eval_images : provenance_->eval_images;
  const double top1 = results_.evals.at("pretrained").top1;
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
  ctx.seconds = std::chrono::duration<double>(Clock::now() - started_).count();
  write_pipeline_report(ctx, results_);
}

// Stages are reused by their files, so a rerun must ask for the same thing: the resolved settings
// are kept in pipeline.ini and a different request is refused rather than mixed with old results.
void Pipeline::check_settings() {
  if (mpi_.rank() != 0) return;
  const std::string file = path("pipeline.ini");
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
  if (mpi_.rank() == 0) out_lock_ = std::make_unique<DirLock>(p_.out_dir, "--out-dir");  // creates it
  check_settings();
  mpi_.barrier();
  pretrain();
  evaluate("pretrained", pretrained_);
  check_pretrained_top1();
  analyse();
  results_.runs = plan_runs();
  for (const PipelineRun& run : results_.runs) finetune(run);
  report();
  log_info(cat("pipeline: done in ", fmt(std::chrono::duration<double>(Clock::now() - started_).count(), 4),
               " s; report in ", path("report.md")));
}

void declare(Options& o, Config& c) {
  c.model.declare(o);
  o.add_refused("remove-layers", "not used: the search chooses the layers",
                "pipeline: the search chooses the layers; --remove-layers is not used");
  c.data.declare(o);
  c.data.declare_augment(o);
  c.pipeline.declare(o);
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
