// Settings of the pipeline job, which composes the other jobs, each field declared once with its
// option.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/options.h"

namespace vitslim {

// The whole method on one dataset (default Fashion-MNIST): pretrain, entropy, NOSE search, dilution
// fine-tuning per ratio plus ablations, merge, evaluation, benchmark, report. Resumable by stage.
struct PipelineConfig {
  std::string out_dir = "runs/pipeline";
  std::string weights;  // start from these weights instead of pretraining
  int64_t pretrain_epochs = 3;
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
    o.add_path("pretrained", weights, "start from these weights instead of pretraining", PathRole::InputFile);
    o.add("pretrain-epochs", pretrain_epochs, "pretraining from scratch", positive());
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
  }
};

}  // namespace vitslim
