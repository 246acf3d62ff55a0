// Settings of fine-tuning with dilution learning (docs/method.md sections 4-5) and merging, each field declared once
// with its option. Defaults are the DeiT recipe; the data part's batch_size is the per-rank batch, so the global batch
// is batch x ranks x accum_steps.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/options.h"
#include "core/runtime.h"

namespace vitslim {

// Knowledge distillation from a frozen teacher (train/distill.h).
enum class Distill { None, Soft, Hard };
inline const EnumNames<Distill> kDistillNames = {
    {Distill::None, "none"}, {Distill::Soft, "soft"}, {Distill::Hard, "hard"}};
inline const char* to_string(Distill d) { return enum_name(kDistillNames, d); }
inline constexpr const char* kTeacherStart = "start";  // --teacher start: the weights the run starts from

// How the student learns from a teacher's logits (train/loss.h), declared once for the train and
// pipeline jobs.
struct DistillSettings {
  Distill kind = Distill::None;
  double alpha = 0.5;  // weight of the distillation term (DeiT: 0.5)
  double tau = 1.0;    // softmax temperature of soft distillation (DeiT: 1.0)

  void declare(Options& o, const std::string& what) {
    o.add_enum("distill", kind, what + ": soft (KL at --distill-tau), hard (the teacher's arg-max class, DeiT's), none",
               kDistillNames);
    o.add("distill-alpha", alpha, "loss = (1 - alpha) CE + alpha distillation", closed(0, 1));
    o.add("distill-tau", tau, "temperature of soft distillation (the KL is scaled by tau^2)", positive());
  }
};

struct TrainConfig {
  std::vector<int64_t> dilute_layers;  // blocks whose attention dilutes into identity and is removed
  int64_t epochs = 30;
  std::optional<double> decay_epochs;  // lambda = max(0, 1 - epoch / decay_epochs); default 0.75 x epochs
  bool lambda_per_step = false;        // interpolate lambda per step instead of per epoch
  int64_t steps_per_epoch = 0;         // 0: one pass over the training split
  double lr = 5e-4;                    // per 512 images of global batch (scaled linearly)
  double warmup_lr = 1e-6;
  double min_lr = 1e-5;
  double warmup_epochs = 5;
  double weight_decay = 0.05;  // not on 1-D parameters, pos_embed, cls_token
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double clip_grad = 0;     // global L2 norm; 0: off
  int64_t accum_steps = 1;  // micro-batches per optimizer step
  double ema_decay = 0;     // model EMA (0: off; DeiT: 0.99996)
  double smoothing = 0.1;   // label smoothing
  double mixup = 0.8, cutmix = 1.0, mixup_prob = 1.0, mixup_switch_prob = 0.5;
  int64_t repeated_aug = 1;  // DeiT's repeated augmentation (3 for ImageNet)
  std::string teacher;       // weights file, or kTeacherStart; empty: none
  DistillSettings distill;   // kind None: no teacher
  bool drop_last = true;
  int64_t eval_images = 0;       // first N test images per evaluation (0: all)
  int64_t entropy_images = 256;  // calibration images for the per-epoch entropy trace (0: off)
  std::string out_dir = "runs/train";
  int64_t checkpoint_steps = 0;     // also checkpoint every N optimizer steps (0: epoch ends only)
  int64_t keep_last = 3;            // rolling checkpoints kept
  bool resume = false;              // continue from the latest checkpoint in out_dir
  int64_t bucket_mb = 25;           // gradient all-reduce bucket size
  double collective_timeout = 600;  // seconds a collective may take before the job stops (0: none)
  double first_bucket_mb = 1;       // smaller first bucket: the first all-reduce starts early
  bool bf16 = false;                // bf16 autocast (CPU or CUDA)
  int64_t log_every = 50;           // sync point: losses read back, trace written, stop signals agreed
  bool profile = false;             // per-phase step times (train/phases.h): printed, and in train.json

  double resolved_decay_epochs() const { return decay_epochs ? *decay_epochs : 0.75 * static_cast<double>(epochs); }

  void declare(Options& o) {
    o.group("train", "Training (DeiT recipe; --remove-layers names the blocks that dilute)");
    o.add("epochs", epochs, "training epochs", positive());
    o.add("decay-epochs", decay_epochs,
          "lambda = max(0, 1 - epoch / decay-epochs) (default 0.75 x epochs; paper 299 of 400)", positive());
    o.add_switch("lambda-per-step", lambda_per_step, "interpolate lambda per step instead of per epoch");
    o.add("steps-per-epoch", steps_per_epoch, "optimizer steps per epoch (0: one pass over the split)", at_least(0));
    o.add("lr", lr, "learning rate per 512 images of global batch", positive());
    o.add("warmup-lr", warmup_lr, "learning rate at step 0", at_least(0));
    o.add("min-lr", min_lr, "floor of the cosine schedule", at_least(0));
    o.add("warmup-epochs", warmup_epochs, "linear warm-up length", at_least(0));
    o.add("weight-decay", weight_decay, "AdamW decoupled decay (none on 1-D parameters, pos_embed, cls_token)",
          at_least(0));
    o.add("beta1", beta1, "AdamW beta1", half_open(0, 1));
    o.add("beta2", beta2, "AdamW beta2", half_open(0, 1));
    o.add("opt-eps", eps, "AdamW epsilon", positive());
    o.add("clip-grad", clip_grad, "clip the global gradient norm (0: off)", at_least(0));
    o.add("accum-steps", accum_steps, "micro-batches per optimizer step", positive());
    o.add("model-ema", ema_decay, "EMA decay of the weights (0: off; DeiT 0.99996)", half_open(0, 1));
    o.add("smoothing", smoothing, "label smoothing", half_open(0, 1));
    o.add("mixup", mixup, "mixup alpha (0: off)", at_least(0));
    o.add("cutmix", cutmix, "cutmix alpha (0: off)", at_least(0));
    o.add("mixup-prob", mixup_prob, "probability of mixing a batch", closed(0, 1));
    o.add("mixup-switch-prob", mixup_switch_prob, "probability of cutmix instead of mixup when both are on",
          closed(0, 1));
    o.add("repeated-aug", repeated_aug,
          "repeated augmentation: each image this many times per epoch, on different ranks (DeiT: 3)", positive());
    o.add_path("teacher", teacher,
               "frozen teacher of --distill: a weights file, or 'start' for the weights the run starts from (before "
               "any attention dilutes)",
               PathRole::InputFile);
    distill.declare(o, "distillation from --teacher");
    o.add_switch("drop-last", drop_last, "drop the last incomplete global batch of an epoch");
    o.add("eval-images", eval_images, "test images per evaluation (0: all)", at_least(0));
    o.add("entropy-images", entropy_images, "calibration images of the per-epoch entropy trace (0: off)", at_least(0));
    o.add_path("out-dir", out_dir, "checkpoints, train.h5, train.json, best.safetensors and final.safetensors",
               PathRole::OutputDir);
    o.add("checkpoint-steps", checkpoint_steps, "also checkpoint every N optimizer steps (0: at epoch ends only)",
          at_least(0));
    o.add("keep-last", keep_last, "rolling checkpoints kept", positive());
    o.add_switch("resume", resume, "continue from the latest checkpoint in --out-dir");
    o.add("bucket-mb", bucket_mb, "gradient all-reduce bucket size (MiB)", positive());
    o.add("first-bucket-mb", first_bucket_mb,
          "size of the first bucket (MiB), so the first all-reduce starts early in backward", positive());
    o.add("collective-timeout", collective_timeout,
          "seconds a gradient all-reduce or any other collective (the ranks' agreement at sync points, the "
          "evaluation's sums) may stay unfinished before every rank stops with an error naming the rank and "
          "step or call (0: wait forever)",
          at_least(0));
    o.add_switch("bf16", bf16, kBf16Help);
    o.add("log-every", log_every,
          "every N steps: read losses back from the device, write the trace, agree on stop signals and "
          "non-finite steps, print progress",
          positive());
    o.add_switch("profile", profile,
                 "time each phase of the step (data, teacher, forward, backward, all-reduce wait, optimizer, EMA, "
                 "trace and sync) and print a per-phase table at the end (also with --quiet) and in train.json's "
                 "\"phases\"; on a GPU each phase waits for the device, which slows the run");
  }
  void validate() const {
    if (warmup_epochs >= static_cast<double>(epochs)) {
      throw Error(cat("--warmup-epochs ", warmup_epochs, " must be shorter than --epochs ", epochs));
    }
    if (out_dir.empty()) throw Error("--out-dir is required");
    if (distill.kind != Distill::None && teacher.empty()) {
      throw Error(cat("--distill ", to_string(distill.kind), " needs --teacher FILE or --teacher start"));
    }
    if (distill.kind == Distill::None && !teacher.empty()) {
      throw Error(cat("--teacher ", teacher, " is used only with --distill soft or --distill hard"));
    }
  }
};

// Turning a trainer checkpoint whose diluted blocks reached lambda 0 into the compact model.
struct MergeConfig {
  std::string checkpoint;      // <out-dir>/checkpoints/step-N.safetensors
  std::string out;             // compact .safetensors
  bool fold_residual = false;  // fold the 2x factors into the weights (model/merge.h)
  int64_t check_images = 8;    // random inputs of the equivalence check
  std::string json;

  void declare(Options& o) {
    o.group("merge", "Merge");
    o.add_path("checkpoint", checkpoint, "training checkpoint (<out-dir>/checkpoints/step-N.safetensors)",
               PathRole::InputFile);
    o.add_path("out", out, "compact model (.safetensors)", PathRole::OutputFile);
    o.add_switch("fold-residual", fold_residual,
                 "fold the 2x residual factors into the weights: removed blocks become plain MLP blocks");
    o.add("check-images", check_images,
          "random inputs on which the compact model must reproduce the checkpoint's logits", positive());
    o.add_path("json", json, "JSON summary", PathRole::OutputFile);
  }
  void validate() const {
    if (checkpoint.empty()) throw Error("merge: --checkpoint is required");
    if (out.empty()) throw Error("merge: --out is required");
  }
};

}  // namespace vitslim
