// `vitslim pipeline`: the method end to end on one dataset (default Fashion-MNIST with the
// vit_fmnist preset): pretrain from scratch (or --pretrained), entropy, NOSE search per ratio,
// dilution fine-tuning per ratio plus the unpruned model and (at the largest ratio) a random and
// a first-k choice with the same budget, merge, evaluation on the test split, benchmark, and a
// report (report.md + report.json). It composes the other jobs in-process with configurations
// derived from its own; each stage's files in --out-dir mark it done, so a rerun resumes.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/version.h"
#include "data/sampler.h"
#include "dist/mpi_session.h"
#include "jobs/common.h"
#include "jobs/job.h"
#include "model/presets.h"
#include "search/result_file.h"
#include "train/train_checkpoint.h"

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
constexpr double kGoalPoints = 0.5;  // issue goal: half the attention removed within 0.5 top-1 points

// Thrown when a training stage stopped on SIGUSR1/SIGTERM: the pipeline ends here (exit 0) and the
// same command resumes it.
struct StoppedBySignal {
  std::string stage;
};

// One fine-tuning run of the comparison.
struct Run {
  std::string name;    // unpruned, nose-0.5, random-0.5, first-0.5, ...
  std::string choice;  // none | nose | random | first
  double ratio = 0;
  std::vector<int64_t> layers;
};

json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(cat("pipeline: cannot read ", path));
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw Error(cat("pipeline: ", path, " is not JSON (", e.what(), ")"));
  }
}

bool training_finished(const std::string& dir) {
  const auto path = fs::path(dir) / "train.json";
  if (!fs::exists(path)) return false;
  return read_json(path.string()).value("finished", false);
}

std::string ratio_name(double ratio) {
  std::ostringstream out;
  out << ratio;
  return out.str();
}

class Pipeline {
 public:
  Pipeline(const Config& config, const dist::MpiSession& mpi) : base_(config), p_(base_.pipeline), mpi_(mpi) {
    model::use_default_preset(base_.model);
  }
  void run();

 private:
  std::string path(const std::string& name) const { return (fs::path(p_.out_dir) / name).string(); }
  // Runs `stage` unless `done` says its result exists; records the seconds it took.
  template <typename Stage>
  void stage(const std::string& name, bool done, Stage&& body);
  Config train_config(const std::string& dir, const std::string& weights, int64_t epochs, double lr) const;
  // A stage's configuration: the pipeline's own with job = `job`.
  Config stage_config(const std::string& job) const;
  // Validates `c` as its job would and runs it: the stage's typed result.
  JobResult run_job(const Config& c) const;
  void pretrain();
  void analyse();
  std::vector<Run> plan_runs();
  void finetune(const Run& run);
  void evaluate(const std::string& name, const std::string& weights);
  void bench(const Run& run);
  void report(const std::vector<Run>& runs);
  void check_settings();

  Config base_;
  const PipelineConfig& p_;
  const dist::MpiSession& mpi_;
  std::string pretrained_;
  json stages_ = json::object();
  Clock::time_point started_ = Clock::now();
};

template <typename Stage>
void Pipeline::stage(const std::string& name, bool done, Stage&& body) {
  if (done) {
    log_info(cat("pipeline: ", name, ": done earlier, reusing ", p_.out_dir));
    stages_[name] = "reused";
    return;
  }
  log_info(cat("pipeline: ", name));
  const auto t0 = Clock::now();
  body();
  mpi_.barrier();  // rank-0-only writers (merge, bench, reports) finish before anyone reads
  stages_[name] = std::chrono::duration<double>(Clock::now() - t0).count();
}

Config Pipeline::stage_config(const std::string& job) const {
  Config c = base_;
  c.job = job;
  return c;
}

JobResult Pipeline::run_job(const Config& c) const {
  const Job& job = find_job(c.job);
  job.validate(c);
  return job.run(c, mpi_);
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
  t.keep_last = 2;
  return c;
}

void Pipeline::pretrain() {
  if (!p_.weights.empty()) {
    pretrained_ = p_.weights;
    return;
  }
  const std::string dir = path("pretrain");
  pretrained_ = (fs::path(dir) / "final.safetensors").string();
  stage("pretrain", training_finished(dir), [&] {
    Config c = train_config(dir, "", p_.pretrain_epochs, p_.pretrain_lr);
    c.train.warmup_epochs = kPretrainWarmupEpochs;
    if (run_job(c).stopped_by_signal) throw StoppedBySignal{"pretrain"};
  });
}

void Pipeline::analyse() {
  stage("entropy", fs::exists(path("entropy.json")), [&] {
    Config c = stage_config("entropy");
    c.model.weights = pretrained_;
    c.data.calib_images = kCalibImages;
    c.entropy.out = path("entropy.h5");
    c.entropy.json = path("entropy.json");
    run_job(c);
  });
  stage("search", fs::exists(path("search.json")), [&] {
    Config c = stage_config("search");
    c.model.weights = pretrained_;
    c.data.calib_images = kCalibImages;
    c.search.ratios = p_.ratios;
    c.search.out = path("search.h5");
    c.search.json = path("search.json");
    run_job(c);
  });
}

std::vector<Run> Pipeline::plan_runs() {
  std::vector<Run> runs = {{"unpruned", "none", 0.0, {}}};
  for (double r : p_.ratios) {
    runs.push_back(
        {"nose-" + ratio_name(r), "nose", r, search::layers_from_search(path("search.json") + "@" + ratio_name(r))});
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

void Pipeline::finetune(const Run& run) {
  const std::string dir = path("finetune-" + run.name);
  stage("finetune " + run.name, training_finished(dir), [&] {
    Config c = train_config(dir, pretrained_, p_.finetune_epochs, p_.finetune_lr);
    c.train.warmup_epochs = kFinetuneWarmupEpochs;
    c.train.dilute_layers = run.layers;
    c.train.decay_epochs = p_.decay_epochs;
    c.train.lambda_per_step = true;
    if (run_job(c).stopped_by_signal) throw StoppedBySignal{"finetune " + run.name};
  });
  if (run.layers.empty()) {
    evaluate(run.name, (fs::path(dir) / "final.safetensors").string());
    return;
  }
  const std::string compact = path("compact-" + run.name + ".safetensors");
  stage("merge " + run.name, fs::exists(compact), [&] {
    Config c = stage_config("merge");
    const auto steps = train::list_checkpoints(dir);
    if (steps.empty()) throw Error(cat("pipeline: ", dir, " has no checkpoint to merge"));
    c.merge.checkpoint = train::checkpoint_path(dir, steps.back());
    c.merge.out = compact;
    run_job(c);
  });
  evaluate(run.name, compact);
  bench(run);
}

void Pipeline::evaluate(const std::string& name, const std::string& weights) {
  const std::string out = path("eval-" + name + ".json");
  stage("eval " + name, fs::exists(out), [&] {
    Config c = stage_config("eval");
    c.model.weights = weights;
    c.data.split = "test";
    c.eval.images = p_.eval_images;
    c.eval.json = out;
    run_job(c);
  });
}

void Pipeline::bench(const Run& run) {
  const std::string out = path("bench-" + run.name + ".json");
  stage("bench " + run.name, fs::exists(out), [&] {
    if (mpi_.rank() != 0) return;
    Config c = stage_config("bench");
    c.model.removed_layers = run.layers;
    c.bench.batch_size = kBenchBatch;
    c.bench.iters = p_.bench_iters;
    c.bench.train = false;  // inference speed is what the compact model is for
    c.bench.json = out;
    run_job(c);
  });
}

void Pipeline::report(const std::vector<Run>& runs) {
  if (mpi_.rank() != 0) return;
  const json unpruned = read_json(path("eval-unpruned.json"));
  const double base_top1 = unpruned.at("top1").get<double>();
  json rows = json::array();
  std::ostringstream md;
  const ModelShape shape = model::preset(base_.model.preset);
  md << "# vitslim pipeline report\n\n"
     << "Model `" << base_.model.preset << "` (" << shape.describe() << ") on " << base_.data.dataset << ", "
     << mpi_.world_size() << " process(es). Produced by `vitslim pipeline` " << kVersion << " on " << utc_timestamp()
     << ".\n\n";
  if (p_.weights.empty()) {
    const json pre = read_json(path("eval-pretrained.json"));
    md << "Pretrained from scratch for " << p_.pretrain_epochs << " epochs: top-1 " << fmt(pre.at("top1").get<double>())
       << "%.\n";
  }
  md << "Every row below is fine-tuned for " << p_.finetune_epochs << " epochs from the same pretrained weights; "
     << "diluted blocks go from lambda 1 to 0 over the first " << fmt(p_.decay_epochs)
     << " epoch(s) and are removed for the rest.\n\n"
     << "| run | attention removed | top-1 (%) | vs unpruned (points) | params | MACs/img | inference speed-up |\n"
     << "|---|---|---|---|---|---|---|\n";
  for (const Run& run : runs) {
    const json ev = read_json(path("eval-" + run.name + ".json"));
    const double top1 = ev.at("top1").get<double>();
    json row = {
        {"run", run.name}, {"choice", run.choice},  {"ratio", run.ratio},    {"removed_layers", run.layers},
        {"top1", top1},    {"top5", ev.at("top5")}, {"loss", ev.at("loss")}, {"delta_points", top1 - base_top1}};
    std::string params = "1.000x", macs = "1.000x", speed = "1.000x";
    if (!run.layers.empty()) {
      const json b = read_json(path("bench-" + run.name + ".json"));
      const json& ratios = b.at("ratios");
      row["bench"] = ratios;
      params = fmt(ratios.at("params").get<double>(), 3) + "x";
      macs = fmt(ratios.at("macs").get<double>(), 3) + "x";
      speed = fmt(ratios.at("inference_speedup").get<double>(), 3) + "x";
    }
    rows.push_back(row);
    md << "| " << run.name << " | " << (run.layers.empty() ? std::string("none") : join_list(run.layers)) << " | "
       << fmt(top1) << " | " << (run.layers.empty() ? std::string("-") : fmt(top1 - base_top1, 3)) << " | " << params
       << " | " << macs << " | " << speed << " |\n";
  }
  // The goal: half of the attention layers removed by NOSE within kGoalPoints of the unpruned.
  json goal;
  for (const json& row : rows) {
    if (row.at("choice") == "nose" && std::fabs(row.at("ratio").get<double>() - 0.5) < 1e-9) {
      const double delta = row.at("delta_points").get<double>();
      goal = {{"run", row.at("run")},
              {"delta_points", delta},
              {"limit_points", -kGoalPoints},
              {"met", delta >= -kGoalPoints}};
      md << "\nHalf of the attention layers removed by NOSE: " << fmt(delta, 3) << " points against the unpruned "
         << "model (goal: no worse than -" << kGoalPoints << ") -> " << (delta >= -kGoalPoints ? "met" : "not met")
         << ".\n";
    }
  }
  const json search = read_json(path("search.json"));
  md << "\nNOSE selections (transfer entropy to the logits; smaller |TE| = removable):\n\n"
     << "| ratio | layers | TE |\n|---|---|---|\n";
  for (const json& s : search.at("selections")) {
    md << "| " << s.at("ratio").get<double>() << " | " << join_list(s.at("layers").get<std::vector<int64_t>>()) << " | "
       << fmt(s.at("te").get<double>()) << " |\n";
  }
  md << "\nFigures (made from the HDF5 traces by `scripts/plot_pipeline.py " << p_.out_dir << "`):\n\n"
     << "![entropy per block](plots/entropy.png)\n\n![NOSE search](plots/search.png)\n\n"
     << "![dilution fine-tuning](plots/training.png)\n\n"
     << "Stage seconds (\"reused\": done by an earlier, interrupted run): `" << stages_.dump() << "`\n";
  const double seconds = std::chrono::duration<double>(Clock::now() - started_).count();
  json j = {{"program", "vitslim"},
            {"version", kVersion},
            {"job", "pipeline"},
            {"model", base_.model.preset},
            {"data_set", base_.data.dataset},
            {"pretrained", pretrained_},
            {"runs", rows},
            {"goal", goal},
            {"selections", search.at("selections")},
            {"stages", stages_},
            {"seconds", seconds},
            {"config", config_to_ini(base_)}};
  write_file_atomic(path("report.json"), j.dump(2) + "\n");
  write_file_atomic(path("report.md"), md.str());
  std::printf("%s", md.str().c_str());
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
  if (mpi_.rank() == 0) {
    std::error_code ec;
    fs::create_directories(p_.out_dir, ec);
    if (ec) throw Error(cat("--out-dir ", p_.out_dir, ": cannot create (", ec.message(), ")"));
  }
  check_settings();
  mpi_.barrier();
  pretrain();
  if (p_.weights.empty()) evaluate("pretrained", pretrained_);
  analyse();
  const auto runs = plan_runs();
  for (const Run& run : runs) finetune(run);
  report(runs);
  log_info(cat("pipeline: done in ", fmt(std::chrono::duration<double>(Clock::now() - started_).count(), 4),
               " s; report in ", path("report.md")));
}

void declare(Options& o, Config& c) {
  c.model.declare(o);
  declare_remove_layers(o, c.model.removed_layers, "not used: the search chooses the layers");
  c.data.declare(o);
  c.data.declare_augment(o);
  c.pipeline.declare(o);
  c.runtime.declare(o);
}

void validate(const Config& c) {
  c.model.validate(c.model.removed_layers);
  c.data.validate();
  c.pipeline.validate();
  if (!c.model.removed_layers.empty()) {
    throw Error("pipeline: the search chooses the layers; --remove-layers is not used");
  }
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
  Job job;
  job.name = "pipeline";
  job.summary = "the whole method end to end: pretrain, entropy, search, dilute, merge, evaluate, report";
  job.declare = declare;
  job.validate = validate;
  job.run = run;
  job.launch_outputs = "--out-dir={out}";
  return job;
}

}  // namespace vitslim
