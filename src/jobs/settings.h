// Settings of the pipeline job, which composes the other jobs, each field declared once with its
// option.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/options.h"

namespace vitslim {

// The shipped converged vit_fmnist (pretrained/README.md; scripts/pretrain_fmnist.sh remakes it).
#ifndef VITSLIM_PRETRAINED_DIR
#define VITSLIM_PRETRAINED_DIR "pretrained"
#endif
inline constexpr const char* kShippedFmnist = VITSLIM_PRETRAINED_DIR "/vit_fmnist.safetensors";
inline constexpr int64_t kScratchPretrainEpochs = 3;  // another model or dataset without --pretrained

// The whole method on one dataset (default Fashion-MNIST): pretrained weights (the shipped
// converged vit_fmnist, --pretrained, or pretraining from scratch), entropy, NOSE search, dilution
// fine-tuning per ratio plus ablations, merge, evaluation, benchmark, report. Resumable by stage.
struct PipelineConfig {
  std::string out_dir = "runs/pipeline";
  std::string weights;                     // start from these weights instead of pretraining
  std::optional<int64_t> pretrain_epochs;  // pretrain from scratch (default: the shipped checkpoint)
  int64_t finetune_epochs = 2;
  double decay_epochs = 0.5;                 // lambda 1 -> 0 per step over this many fine-tuning epochs
  std::vector<double> ratios = {0.25, 0.5};  // NOSE removal ratios, each fine-tuned
  bool ablation = true;                      // random and first-k choices at the largest ratio
  double pretrain_lr = 8e-3;                 // per 512 images
  double finetune_lr = 4e-3;
  int64_t steps_per_epoch = 0;  // optimizer steps per epoch (0: one pass)
  int64_t eval_images = 0;      // test images per evaluation (0: all)
  int64_t bench_iters = 10;

  void declare(Options& o) {
    o.group("pipeline", "Pipeline (every stage resumes from its files in --out-dir)");
    o.add_path("out-dir", out_dir, "all stages' outputs and report.md / report.json", PathRole::OutputDir);
    o.add_path("pretrained", weights,
               "start from these weights (default for vit_fmnist on fashion-mnist: the shipped " +
                   std::string(kShippedFmnist) + ", whose provenance is checked)",
               PathRole::InputFile);
    o.add("pretrain-epochs", pretrain_epochs,
          "pretrain from scratch for this many epochs instead (default " + std::to_string(kScratchPretrainEpochs) +
              " for models and datasets that have no shipped checkpoint)",
          positive());
    o.add("finetune-epochs", finetune_epochs, "dilution fine-tuning per run (the unpruned baseline gets the same)",
          positive());
    o.add("decay-epochs", decay_epochs, "lambda goes 1 -> 0 per step over this many fine-tuning epochs", positive());
    o.add("ratios", ratios, "NOSE removal ratios", open(0, 1));
    o.add_switch("ablation", ablation, "also fine-tune a random and a first-k choice at the largest ratio");
    o.add("pretrain-lr", pretrain_lr, "per 512 images", positive());
    o.add("finetune-lr", finetune_lr, "per 512 images", positive());
    o.add("steps-per-epoch", steps_per_epoch, "optimizer steps per training epoch (0: one pass over the split)",
          at_least(0));
    o.add("eval-images", eval_images, "test images per evaluation (0: all)", at_least(0));
    o.add("bench-iters", bench_iters, "timed iterations of the benchmark", positive());
  }
  void validate() const {
    if (out_dir.empty()) throw Error("--out-dir is required");
    if (!(decay_epochs < static_cast<double>(finetune_epochs))) {
      throw Error(cat("--decay-epochs ", decay_epochs, " must be in (0, --finetune-epochs ", finetune_epochs,
                      "): the removed blocks need training after lambda reaches 0"));
    }
    if (ratios.empty()) throw Error("--ratios: at least one ratio is required");
    if (pretrain_epochs && !weights.empty()) {
      throw Error("--pretrained and --pretrain-epochs exclude each other: start from weights, or pretrain them");
    }
  }
};

}  // namespace vitslim
