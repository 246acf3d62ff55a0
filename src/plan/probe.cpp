// Implements the plan's probes (see probe.h).
#include "plan/probe.h"

#include <filesystem>

#include "core/error.h"
#include "evaluation/evaluate.h"
#include "train/trainer.h"

namespace vitslim::plan {

namespace fs = std::filesystem;

namespace {

constexpr double kProbeDecay = 0.5;  // lambda 1 -> 0 over the first half of the probe
constexpr double kProbeWarmup = 0.1;
constexpr double kProbeSmoothing = 0.1;

TrainConfig probe_training(const PlanConfig& p, const std::vector<int64_t>& blocks, const std::string& dir) {
  TrainConfig t;
  t.dilute_layers = blocks;
  t.epochs = 1;
  t.steps_per_epoch = p.probe_steps;
  t.decay_epochs = kProbeDecay;
  t.lambda_per_step = true;
  t.warmup_epochs = kProbeWarmup;
  t.lr = p.probe_lr;
  t.mixup = 0;
  t.cutmix = 0;
  t.smoothing = kProbeSmoothing;
  t.eval_images = p.probe_images;
  t.entropy_images = 0;
  t.out_dir = dir;
  t.resume = true;  // an interrupted plan continues its probe
  t.keep_last = 1;
  return t;
}

}  // namespace

std::vector<double> probe_block_set(const PlanInputs& in, const std::vector<int64_t>& blocks,
                                    const std::vector<int64_t>& rs, const dist::MpiSession& mpi) {
  const PlanConfig& p = in.plan;
  std::string name = "unpruned";
  if (!blocks.empty()) {
    name = "remove";
    for (int64_t b : blocks) name += cat("-", b);
  }
  const std::string dir = (fs::path(p.out_dir) / "probes" / name).string();
  const fs::path summary = fs::path(dir) / "train.json";
  const bool finished =
      fs::exists(summary) &&
      parse_json_text(read_text_file(summary.string(), "probe summary"), summary.string()).value("finished", false);
  if (!finished) {
    train::TrainInputs t{in.model, in.data, probe_training(p, blocks, dir), in.compute, in.runtime, ""};
    t.data.split = "train";
    t.config_ini = in.train_ini(t.model, t.data, t.train);
    train::TrainResult r;
    try {
      r = train::run_training(t, mpi);
    } catch (const Error& e) {  // the trainer names its own flags; the plan user gave --probe-*
      throw Error(cat("--probe-steps ", p.probe_steps, " (the probe in ", dir, "): ", e.what()));
    }
    if (!r.finished) throw Error(cat("plan: the probe in ", dir, " stopped early; rerun the plan to resume it"));
  }
  mpi.barrier();  // rank 0 writes final.safetensors
  std::vector<double> top1;
  for (int64_t r : rs) {
    const std::string out = (fs::path(dir) / cat("eval-r", r, ".json")).string();
    if (fs::exists(out)) {
      top1.push_back(evaluation::read_eval_result(out, "plan: the probe evaluation").counts.top1_percent());
      continue;
    }
    ModelRequest m = in.model;
    m.weights = (fs::path(dir) / "final.safetensors").string();
    m.tome.r = {r};
    m.tome.start = p.tome_start;
    DataConfig d = in.data;
    d.split = "test";
    EvalConfig e;
    e.images = p.probe_images;
    e.json = out;
    top1.push_back(evaluation::run_eval({m, d, e, in.compute, in.runtime}, mpi).counts.top1_percent());
  }
  return top1;
}

}  // namespace vitslim::plan
