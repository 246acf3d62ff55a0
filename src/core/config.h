// The configuration tree of vitslim: one struct per option group, filled once by parse_options()
// (core/options.h) from the command line and an optional INI file, checked once by validate(),
// then passed down as typed parts. No torch here: every stage can include it cheaply.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vitslim {

// Shape of a VisionTransformer, fully resolved (method.md section 1).
struct ModelShape {
  int64_t img_size = 224;
  int64_t patch_size = 16;
  int64_t in_chans = 3;
  int64_t embed_dim = 192;
  int64_t depth = 12;
  int64_t num_heads = 3;
  double mlp_ratio = 4.0;
  int64_t num_classes = 1000;

  int64_t grid() const { return img_size / patch_size; }
  int64_t num_tokens() const { return grid() * grid() + 1; }  // patches + CLS
  bool operator==(const ModelShape& o) const;
  std::string describe() const;
};

// What the user asked for: a preset and/or explicit fields; unset fields come from the preset,
// then from the weights file, then from defaults (see model/resolve.h).
struct ModelRequest {
  std::string preset;  // empty: none
  std::optional<int64_t> img_size, patch_size, in_chans, embed_dim, depth, num_heads, num_classes;
  std::optional<double> mlp_ratio;
  double drop_path = 0.0;
  std::string weights;         // .pth / .safetensors; empty: seeded random initialisation
  bool reset_head = false;     // re-initialise the head when the class count differs
  std::vector<int64_t> removed_layers;  // blocks whose attention is removed (x -> 2x)
};

struct DataConfig {
  std::string dataset = "fashion-mnist";  // fashion-mnist | cifar10 | cifar100 | imagenet | folder | synthetic
  std::string path;                       // empty: dataset default (see data/dataset.h)
  std::string split = "train";            // train | test (imagenet: val)
  int64_t calib_images = 1024;
  int64_t batch_size = 64;
  std::vector<double> mean;  // per channel, after scaling pixels to [0,1]; empty: dataset default
  std::vector<double> std;
  // Image folders (imagenet, folder) and the per-image transforms (data/transforms.h).
  std::string class_index;           // optional file naming the classes in label order
  std::string bad_images = "skip";   // skip | fail: unreadable images, empty class folders, short files
  std::string augment = "auto";      // train transform: deit | none | auto (deit for image folders)
  std::string auto_augment = "rand-m9-mstd0.5-inc1";  // timm RandAugment string, or none
  double reprob = 0.25;              // random erasing probability (pixel mode)
  double hflip = 0.5;
  std::vector<double> scale = {0.08, 1.0};             // RandomResizedCrop area range
  std::vector<double> ratio = {3.0 / 4.0, 4.0 / 3.0};  // RandomResizedCrop aspect range
  double crop_pct = 0.875;           // eval: resize to size / crop_pct, centre crop
  std::string interpolation = "bicubic";
  bool dct_scaling = true;           // JPEG DCT-domain downscaling of large crops
  int64_t workers = 4;               // training loader threads per rank
  int64_t prefetch = 2;              // batches prepared ahead per worker
  bool image_folder() const { return dataset == "imagenet" || dataset == "folder"; }
  bool train_augment() const { return augment == "deit" || (augment == "auto" && image_folder()); }
};

struct RuntimeConfig {
  int threads = 0;  // 0: all available cores (divided among ranks on one node)
  uint64_t seed = 0;
  bool quiet = false;
};

struct EntropyConfig {
  std::string out = "entropy.h5";  // HDF5 trace
  std::string json;                // optional JSON summary
  int64_t trace_points = 10;       // running estimates written while the job runs
};

struct SearchConfig {
  std::vector<double> ratios = {0.25, 0.5};  // removal ratios of depth, each in (0, 1)
  int64_t beam = 1;                          // sets kept per step (1: greedy)
  bool exhaustive = false;                   // every subset of the requested sizes
  std::vector<int64_t> layers;               // candidate blocks (empty: all)
  std::string estimator = "logits";          // logits | cls
  int64_t cache_mb = 1024;                   // prefix-cache budget per process (0: no cache)
  std::string out = "search.h5";
  std::string json;
};

struct EvalConfig {
  int64_t images = 0;  // first N images of the split (0: all)
  std::string json;
};

struct BenchDataConfig {
  int64_t images = 256;  // images per timed round
  int64_t rounds = 3;
  std::string json;
};

struct ConvertConfig {
  std::string out;  // .safetensors
};

struct BenchConfig {
  int64_t batch_size = 32;
  int64_t warmup = 2;
  int64_t iters = 5;
  std::string device = "cpu";  // cpu | cuda
  bool bf16 = false;           // bf16 autocast (CUDA)
  bool train = true;           // also time a training step (forward + backward)
  std::string json;
};

// Fine-tuning with dilution learning (method.md sections 4-5). Defaults are the DeiT recipe;
// `data.batch_size` is the per-rank batch, so the global batch is batch x ranks x accum_steps.
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
  double clip_grad = 0;        // global L2 norm; 0: off
  int64_t accum_steps = 1;     // micro-batches per optimizer step
  double ema_decay = 0;        // model EMA (0: off; DeiT: 0.99996)
  double smoothing = 0.1;      // label smoothing
  double mixup = 0.8, cutmix = 1.0, mixup_prob = 1.0, mixup_switch_prob = 0.5;
  int64_t repeated_aug = 1;    // DeiT's repeated augmentation (3 for ImageNet)
  bool drop_last = true;
  int64_t eval_images = 0;     // first N test images per evaluation (0: all)
  int64_t entropy_images = 256;  // calibration images for the per-epoch entropy trace (0: off)
  std::string out_dir = "runs/train";
  int64_t checkpoint_steps = 0;  // also checkpoint every N optimizer steps (0: epoch ends only)
  int64_t keep_last = 3;         // rolling checkpoints kept
  bool resume = false;           // continue from the latest checkpoint in out_dir
  int64_t bucket_mb = 25;        // gradient all-reduce bucket size
  double first_bucket_mb = 1;    // smaller first bucket: the first all-reduce starts early
  std::string device = "cpu";    // cpu | cuda
  bool bf16 = false;             // bf16 autocast (CUDA)
  int64_t log_every = 50;        // plain progress line every N steps when stderr is not a terminal

  double resolved_decay_epochs() const { return decay_epochs ? *decay_epochs : 0.75 * static_cast<double>(epochs); }
};

// Turning a trainer checkpoint whose diluted blocks reached lambda 0 into the compact model.
struct MergeConfig {
  std::string checkpoint;       // <out-dir>/checkpoints/step-N.safetensors
  std::string out;              // compact .safetensors
  bool fold_residual = false;   // fold the 2x factors into the weights (model/merge.h)
  int64_t check_images = 8;     // random inputs of the equivalence check
  std::string json;
};

// The whole method on one dataset (default Fashion-MNIST): pretrain, entropy, NOSE search, dilution
// fine-tuning per ratio plus ablations, merge, evaluation, benchmark, report. Resumable by stage.
struct PipelineConfig {
  std::string out_dir = "runs/pipeline";
  std::string weights;                       // start from these weights instead of pretraining
  int64_t pretrain_epochs = 3;
  int64_t finetune_epochs = 2;
  double decay_epochs = 0.5;                 // lambda 1 -> 0 per step over this many fine-tuning epochs
  std::vector<double> ratios = {0.25, 0.5};  // NOSE removal ratios, each fine-tuned
  bool ablation = true;                      // random and first-k choices at the largest ratio
  double pretrain_lr = 8e-3;                 // per 512 images
  double finetune_lr = 4e-3;
  int64_t steps_per_epoch = 0;               // optimizer steps per epoch (0: one pass)
  int64_t eval_images = 0;                   // test images per evaluation (0: all)
  int64_t bench_iters = 10;
};

struct Config {
  std::string job;
  ModelRequest model;
  DataConfig data;
  RuntimeConfig runtime;
  EntropyConfig entropy;
  SearchConfig search;
  EvalConfig eval;
  ConvertConfig convert;
  BenchConfig bench;
  BenchDataConfig bench_data;
  TrainConfig train;
  MergeConfig merge;
  PipelineConfig pipeline;
};

// Every cross-field check in one place; throws vitslim::Error naming the flag.
void validate(const Config& config);

// The resolved configuration as INI text (what --dump-config prints and traces store).
std::string config_to_ini(const Config& config);

// Comma-separated list parsing shared by flags and INI values; `what` names the flag.
std::vector<double> parse_double_list(const std::string& text, const std::string& what);
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& what);
// The inverse: "0,1,3" (what flags, INI files and file metadata use).
std::string join_list(const std::vector<int64_t>& values);
std::string join_list(const std::vector<double>& values);

}  // namespace vitslim
