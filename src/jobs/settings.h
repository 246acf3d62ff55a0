// Settings of the pipeline job, which composes the other jobs, each field declared once with its
// option.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/options.h"
#include "search/settings.h"
#include "train/settings.h"

namespace vitslim {

// The shipped converged vit_fmnist (pretrained/README.md; scripts/pretrain_fmnist.sh remakes it).
#ifndef VITSLIM_PRETRAINED_DIR
#define VITSLIM_PRETRAINED_DIR "pretrained"
#endif
inline constexpr const char* kShippedFmnist = VITSLIM_PRETRAINED_DIR "/vit_fmnist.safetensors";
// The shipped checkpoint of a Fashion-MNIST preset (vit_fmnist, vit_fmnist12: pretrained/<preset>.
// safetensors, whether or not it is there yet); "" for other presets.
inline std::string shipped_checkpoint(const std::string& preset) {
  if (preset != "vit_fmnist" && preset != "vit_fmnist12") return "";
  return std::string(VITSLIM_PRETRAINED_DIR) + "/" + preset + ".safetensors";
}
inline constexpr int64_t kScratchPretrainEpochs = 3;  // another model or dataset without --pretrained

// Two removal ratios name the same row (ratios come from flags and JSON as decimals).
inline bool same_ratio(double a, double b) { return std::fabs(a - b) < 1e-9; }

// The whole method on one dataset (default Fashion-MNIST): pretrained weights (the shipped
// converged vit_fmnist, --pretrained, or pretraining from scratch), entropy, the NOSE search and
// the other criteria, dilution fine-tuning per ratio (NOSE, NOSE with distillation from the
// starting weights, each other criterion at the largest ratio, the unpruned model), each repeated
// per seed, merge, evaluation, benchmark, report. Resumable by stage.
struct PipelineConfig {
  std::string out_dir = "runs/pipeline";
  std::string weights;                     // start from these weights instead of pretraining
  std::optional<int64_t> pretrain_epochs;  // pretrain from scratch (default: the shipped checkpoint)
  int64_t finetune_epochs = 2;
  double decay_epochs = 0.5;                         // lambda 1 -> 0 per step over this many fine-tuning epochs
  std::vector<double> ratios = {0.25, 0.5};          // NOSE removal ratios, each fine-tuned
  std::string criteria = "cosine,random,first";      // other criteria at compare_ratio ("none": NOSE alone)
  double compare_ratio = 0;                          // the other criteria's and the kd row's ratio (0: the largest)
  int64_t seeds = 1;                                 // fine-tunings per row, seeds --seed, --seed + 1, ...
  DistillSettings distill{Distill::Soft, 0.5, 1.0};  // the NOSE + distillation row (none: no such row)
  double pretrain_lr = 8e-3;                         // per 512 images
  double finetune_lr = 4e-3;
  int64_t steps_per_epoch = 0;  // optimizer steps per epoch (0: one pass)
  int64_t eval_images = 0;      // test images per evaluation (0: all)
  int64_t bench_iters = 10;
  bool tome_rows = true;  // NOSE + ToMe and unpruned + ToMe rows
  std::vector<int64_t> tome_sweep_r = {1, 2, 3, 4, 6};
  double tome_max_drop = 0.3;
  int64_t tome_tune_images = 10000;  // training images the ToMe sweep tunes on
  std::string tome_speeds;           // the sweep's images/s from this CSV (tome-sweep --speeds)
  double plan_target_speedup = 1.2;  // the plan stage's target (0: no plan stage)
  std::string plan_runtime = "libtorch";
  int64_t plan_probe_steps = 50;

  void declare(Options& o) {
    o.group("pipeline", "Pipeline (every stage resumes from its files in --out-dir)");
    o.add_path("out-dir", out_dir, "all stages' outputs and report.md / report.json", PathRole::OutputDir);
    o.add_path("pretrained", weights,
               "start from these weights (default for vit_fmnist on fashion-mnist: the shipped " +
                   std::string(kShippedFmnist) + ", whose provenance is checked; likewise vit_fmnist12)",
               PathRole::InputFile);
    o.add("pretrain-epochs", pretrain_epochs,
          "pretrain from scratch for this many epochs instead (default " + std::to_string(kScratchPretrainEpochs) +
              " for models and datasets that have no shipped checkpoint)",
          positive());
    o.add("finetune-epochs", finetune_epochs, "dilution fine-tuning per run (the unpruned baseline gets the same)",
          positive());
    o.add("decay-epochs", decay_epochs, "lambda goes 1 -> 0 per step over this many fine-tuning epochs", positive());
    o.add("ratios", ratios, "NOSE removal ratios", open(0, 1));
    o.add("criteria", criteria,
          "other selection criteria (search --criterion) fine-tuned at the largest ratio, comma-separated, or none",
          {"none", "cosine,bi,entropy,random,first", "random"});
    o.add("compare-ratio", compare_ratio,
          "the ratio at which the other --criteria and the NOSE + distillation row are fine-tuned, one of --ratios "
          "(0: the largest)",
          half_open(0, 1));
    o.add("seeds", seeds, "repeat every fine-tuning with this many seeds (--seed, --seed + 1, ...); mean and std",
          positive());
    distill.declare(o, "the NOSE + distillation row at the largest ratio, taught by the starting weights");
    o.add("pretrain-lr", pretrain_lr, "per 512 images", positive());
    o.add("finetune-lr", finetune_lr, "per 512 images", positive());
    o.add("steps-per-epoch", steps_per_epoch, "optimizer steps per training epoch (0: one pass over the split)",
          at_least(0));
    o.add("eval-images", eval_images, "test images per evaluation (0: all)", at_least(0));
    o.add("bench-iters", bench_iters, "timed iterations of the benchmark", positive());
    o.add_switch("tome-rows", tome_rows,
                 "tune token merging for NOSE at the largest ratio (tome-sweep on its seed-0 model) and add "
                 "NOSE + ToMe and unpruned + ToMe rows at the chosen r");
    o.add("tome-sweep-r", tome_sweep_r, "values of r the ToMe rows' sweep tries", positive());
    o.add("tome-max-drop", tome_max_drop, "accuracy budget of the ToMe choice: top-1 points below r = 0", at_least(0));
    o.add("tome-tune-images", tome_tune_images,
          "first N training-split images the ToMe sweep measures top-1 on (the test split stays for the report)",
          positive());
    o.add_path("tome-speeds", tome_speeds,
               "the ToMe sweep takes each point's images/s from this CSV (tome-sweep --speeds) instead of timing it",
               PathRole::InputFile);
    o.add("plan-target-speedup", plan_target_speedup,
          "the plan stage (vitslim plan on the starting weights, NOSE order of the search): measured speed-up to "
          "reach (0: no plan stage)",
          at_least(0));
    o.add("plan-runtime", plan_runtime, "the plan stage's --runtime", {"libtorch,onnxruntime"});
    o.add("plan-probe-steps", plan_probe_steps,
          "the plan stage's --probe-steps (at most --steps-per-epoch when that is set)", positive());
  }
  // --criteria as enums (nose excluded; it is always run).
  std::vector<Criterion> other_criteria() const { return parse_criteria_list(criteria, "--criteria"); }
  // --compare-ratio, or the largest of --ratios.
  double compared_ratio() const {
    return compare_ratio > 0 ? compare_ratio : *std::max_element(ratios.begin(), ratios.end());
  }
  void validate() const {
    if (out_dir.empty()) throw Error("--out-dir is required");
    if (!(decay_epochs < static_cast<double>(finetune_epochs))) {
      throw Error(cat("--decay-epochs ", decay_epochs, " must be in (0, --finetune-epochs ", finetune_epochs,
                      "): the removed blocks need training after lambda reaches 0"));
    }
    if (ratios.empty()) throw Error("--ratios: at least one ratio is required");
    if (compare_ratio > 0 &&
        std::none_of(ratios.begin(), ratios.end(), [&](double r) { return same_ratio(r, compare_ratio); })) {
      throw Error(cat("--compare-ratio ", compare_ratio, " is not one of --ratios ", join_list(ratios)));
    }
    other_criteria();  // throws naming --criteria
    if (plan_target_speedup > 0 && plan_target_speedup <= 1) {
      throw Error(cat("--plan-target-speedup ", plan_target_speedup, ": a speed-up above 1, or 0 for no plan stage"));
    }
    if (pretrain_epochs && !weights.empty()) {
      throw Error("--pretrained and --pretrain-epochs exclude each other: start from weights, or pretrain them");
    }
  }
};

}  // namespace vitslim
