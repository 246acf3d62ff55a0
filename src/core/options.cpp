// Implements option parsing (see options.h): per-job option groups, `--config FILE` INI files
// (sections are for readability; keys are the long flag names, command line wins), and the
// translation into the typed Config tree.
#include "core/options.h"

#include <boost/program_options.hpp>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace vitslim {
namespace po = boost::program_options;

const std::vector<std::pair<std::string, std::string>>& job_list() {
  static const std::vector<std::pair<std::string, std::string>> kJobs = {
      {"entropy", "per-block entropy of attention and MLP branches over calibration images"},
      {"search", "NOSE: choose attention layers to remove by transfer entropy, over MPI ranks"},
      {"eval", "top-1/top-5 accuracy on a data split, sharded over MPI ranks"},
      {"convert", "import a .pth/.safetensors checkpoint and export timm-named .safetensors"},
      {"bench", "full vs attention-removed model: parameters, multiply-adds, images/s, peak memory"},
      {"train", "fine-tune data-parallel while chosen attention layers dilute into identity, then export"},
      {"merge", "turn a training checkpoint at lambda 0 into the compact model (checked), optionally folded"},
      {"bench-data", "input pipeline speed: JPEG decode, DeiT train/eval transforms, threaded loader (images/s)"},
      {"pipeline", "the whole method end to end: pretrain, entropy, search, dilute, merge, evaluate, report"},
  };
  return kJobs;
}

namespace {

struct Raw {
  std::string remove_layers, mean, std_, ratios = "0.25,0.5", layers, pipeline_ratios = "0.25,0.5";
  std::string scale = "0.08,1", ratio = "0.75,1.3333333333333333";
  std::optional<double> decay_epochs;
};

po::options_description model_options(Config& c, Raw& raw) {
  po::options_description o("Model (a preset, explicit flags, or both; weights fill the rest)");
  o.add_options()
      ("model", po::value(&c.model.preset),
       "preset: deit_tiny, deit_small, deit_base (patch16_224), vit_fmnist, vit_test")
      ("img-size", po::value<int64_t>(), "input resolution (pixels)")
      ("patch-size", po::value<int64_t>(), "patch size (pixels)")
      ("in-chans", po::value<int64_t>(), "input channels")
      ("embed-dim", po::value<int64_t>(), "embedding width C")
      ("depth", po::value<int64_t>(), "number of blocks")
      ("num-heads", po::value<int64_t>(), "attention heads")
      ("mlp-ratio", po::value<double>(), "MLP hidden width / C")
      ("num-classes", po::value<int64_t>(), "classes of the head")
      ("drop-path", po::value(&c.model.drop_path)->default_value(0.0), "stochastic depth rate")
      ("weights", po::value(&c.model.weights),
       ".pth (torch.save zip, {'model': ...} or flat) or .safetensors; none: seeded random init")
      ("reset-head", po::value(&c.model.reset_head)->implicit_value(true)->default_value(false),
       "re-initialise the head when the weights have another class count")
      ("remove-layers", po::value(&raw.remove_layers),
       "blocks whose attention is removed (x -> 2x): 0,1,3 or SEARCH.json@RATIO (a search result)");
  return o;
}

po::options_description data_options(Config& c, Raw& raw) {
  po::options_description o("Data");
  o.add_options()
      ("data-set", po::value(&c.data.dataset)->default_value(c.data.dataset),
       "fashion-mnist | cifar10 | cifar100 | imagenet | folder | synthetic")
      ("data-path", po::value(&c.data.path),
       "dataset folder (default for fashion-mnist: /usr/share/datasets/fashion-mnist; imagenet: the folder "
       "holding train/ and val/)")
      ("data-split", po::value(&c.data.split)->default_value(c.data.split), "train | test")
      ("calib-images", po::value(&c.data.calib_images)->default_value(c.data.calib_images),
       "calibration images (a seeded random subset of the split)")
      ("batch-size", po::value(&c.data.batch_size)->default_value(c.data.batch_size),
       "images per forward pass")
      ("mean", po::value(&raw.mean), "per-channel mean after scaling to [0,1] (default: dataset's)")
      ("std", po::value(&raw.std_), "per-channel std after scaling to [0,1] (default: dataset's)")
      ("class-index", po::value(&c.data.class_index),
       "imagenet/folder: file naming the classes in label order (one folder name per line, or JSON "
       "{\"0\": [\"n01440764\", ...]}); default: sorted folder names")
      ("bad-images", po::value(&c.data.bad_images)->default_value(c.data.bad_images),
       "unreadable images, empty class folders, short CIFAR files: skip (counted warning) | fail")
      ("crop-pct", po::value(&c.data.crop_pct)->default_value(c.data.crop_pct),
       "image folders, evaluation: resize the shorter side to size / crop-pct, then centre crop")
      ("interpolation", po::value(&c.data.interpolation)->default_value(c.data.interpolation),
       "image folders: bicubic | bilinear (PIL's, antialiased)")
      ("jpeg-dct-scaling", po::value(&c.data.dct_scaling)->implicit_value(true)->default_value(c.data.dct_scaling),
       "decode large JPEG crops at 1/2, 1/4 or 1/8 in the DCT domain when still >= the model's size");
  return o;
}

po::options_description augment_options(Config& c, Raw& raw) {
  DataConfig& d = c.data;
  po::options_description o("Training images (per-image DeiT augmentation, threaded loader)");
  o.add_options()
      ("aug", po::value(&d.augment)->default_value(d.augment),
       "deit: RandomResizedCrop + flip + RandAugment + random erasing | none | auto (deit for image folders)")
      ("aa", po::value(&d.auto_augment)->default_value(d.auto_augment), "RandAugment config (timm syntax) or none")
      ("reprob", po::value(&d.reprob)->default_value(d.reprob), "random erasing probability (per-pixel values)")
      ("hflip", po::value(&d.hflip)->default_value(d.hflip), "horizontal flip probability")
      ("scale", po::value(&raw.scale)->default_value(raw.scale), "RandomResizedCrop area range")
      ("ratio", po::value(&raw.ratio)->default_value(raw.ratio), "RandomResizedCrop aspect-ratio range")
      ("workers", po::value(&d.workers)->default_value(d.workers),
       "loader threads per rank (0: load in the training thread)")
      ("prefetch", po::value(&d.prefetch)->default_value(d.prefetch), "batches prepared ahead per loader thread");
  return o;
}

po::options_description runtime_options(Config& c) {
  po::options_description o("Runtime");
  o.add_options()
      ("threads", po::value(&c.runtime.threads)->default_value(0),
       "compute threads per process (0: all cores, shared among the ranks of a node)")
      ("seed", po::value(&c.runtime.seed)->default_value(0), "seed of initialisation and sampling")
      ("quiet", po::value(&c.runtime.quiet)->implicit_value(true)->default_value(false),
       "no progress lines")
      ("config", po::value<std::string>(), "INI file with any of these options (flags win)")
      ("dump-config", "print the resolved configuration as INI and exit")
      ("help,h", "this help");
  return o;
}

po::options_description train_options(Config& c, Raw& raw) {
  TrainConfig& t = c.train;
  po::options_description o("Training (DeiT recipe; --remove-layers names the blocks that dilute)");
  auto flag = [](bool& field) { return po::value(&field)->implicit_value(true)->default_value(field); };
  o.add_options()
      ("epochs", po::value(&t.epochs)->default_value(t.epochs), "training epochs")
      ("decay-epochs", po::value<double>()->notifier([&raw](double v) { raw.decay_epochs = v; }),
       "lambda = max(0, 1 - epoch / decay-epochs) (default 0.75 x epochs; paper 299 of 400)")
      ("lambda-per-step", flag(t.lambda_per_step), "interpolate lambda per step instead of per epoch")
      ("steps-per-epoch", po::value(&t.steps_per_epoch)->default_value(t.steps_per_epoch),
       "optimizer steps per epoch (0: one pass over the split)")
      ("lr", po::value(&t.lr)->default_value(t.lr, "5e-4"), "learning rate per 512 images of global batch")
      ("warmup-lr", po::value(&t.warmup_lr)->default_value(t.warmup_lr, "1e-6"), "learning rate at step 0")
      ("min-lr", po::value(&t.min_lr)->default_value(t.min_lr, "1e-5"), "floor of the cosine schedule")
      ("warmup-epochs", po::value(&t.warmup_epochs)->default_value(t.warmup_epochs), "linear warm-up length")
      ("weight-decay", po::value(&t.weight_decay)->default_value(t.weight_decay),
       "AdamW decoupled decay (none on 1-D parameters, pos_embed, cls_token)")
      ("beta1", po::value(&t.beta1)->default_value(t.beta1), "AdamW beta1")
      ("beta2", po::value(&t.beta2)->default_value(t.beta2), "AdamW beta2")
      ("opt-eps", po::value(&t.eps)->default_value(t.eps, "1e-8"), "AdamW epsilon")
      ("clip-grad", po::value(&t.clip_grad)->default_value(t.clip_grad), "clip the global gradient norm (0: off)")
      ("accum-steps", po::value(&t.accum_steps)->default_value(t.accum_steps), "micro-batches per optimizer step")
      ("model-ema", po::value(&t.ema_decay)->default_value(t.ema_decay),
       "EMA decay of the weights (0: off; DeiT 0.99996)")
      ("smoothing", po::value(&t.smoothing)->default_value(t.smoothing), "label smoothing")
      ("mixup", po::value(&t.mixup)->default_value(t.mixup), "mixup alpha (0: off)")
      ("cutmix", po::value(&t.cutmix)->default_value(t.cutmix), "cutmix alpha (0: off)")
      ("mixup-prob", po::value(&t.mixup_prob)->default_value(t.mixup_prob), "probability of mixing a batch")
      ("mixup-switch-prob", po::value(&t.mixup_switch_prob)->default_value(t.mixup_switch_prob),
       "probability of cutmix instead of mixup when both are on")
      ("repeated-aug", po::value(&t.repeated_aug)->default_value(t.repeated_aug),
       "repeated augmentation: each image this many times per epoch, on different ranks (DeiT: 3)")
      ("drop-last", flag(t.drop_last), "drop the last incomplete global batch of an epoch")
      ("eval-images", po::value(&t.eval_images)->default_value(t.eval_images),
       "test images per evaluation (0: all)")
      ("entropy-images", po::value(&t.entropy_images)->default_value(t.entropy_images),
       "calibration images of the per-epoch entropy trace (0: off)")
      ("out-dir", po::value(&t.out_dir)->default_value(t.out_dir),
       "checkpoints, train.h5, train.json, best.safetensors and final.safetensors")
      ("checkpoint-steps", po::value(&t.checkpoint_steps)->default_value(t.checkpoint_steps),
       "also checkpoint every N optimizer steps (0: at epoch ends only)")
      ("keep-last", po::value(&t.keep_last)->default_value(t.keep_last), "rolling checkpoints kept")
      ("resume", flag(t.resume), "continue from the latest checkpoint in --out-dir")
      ("bucket-mb", po::value(&t.bucket_mb)->default_value(t.bucket_mb), "gradient all-reduce bucket size (MiB)")
      ("first-bucket-mb", po::value(&t.first_bucket_mb)->default_value(t.first_bucket_mb),
       "size of the first bucket (MiB), so the first all-reduce starts early in backward")
      ("device", po::value(&t.device)->default_value(t.device), "cpu | cuda (one GPU per rank)")
      ("bf16", flag(t.bf16), "bf16 autocast (CUDA)")
      ("log-every", po::value(&t.log_every)->default_value(t.log_every),
       "progress line every N steps when stderr is not a terminal");
  return o;
}

po::options_description job_options(const std::string& job, Config& c, Raw& raw) {
  po::options_description all;
  if (job != "bench-data") all.add(model_options(c, raw));
  if (job == "entropy") {
    all.add(data_options(c, raw));
    po::options_description o("Entropy output");
    o.add_options()
        ("out", po::value(&c.entropy.out)->default_value(c.entropy.out), "HDF5 trace")
        ("json", po::value(&c.entropy.json), "JSON summary")
        ("trace-points", po::value(&c.entropy.trace_points)->default_value(c.entropy.trace_points),
         "running estimates appended to the trace while the job runs");
    all.add(o);
  } else if (job == "search") {
    all.add(data_options(c, raw));
    po::options_description o("Search (NOSE)");
    o.add_options()
        ("ratios", po::value(&raw.ratios)->default_value(raw.ratios),
         "removal ratios of depth; layers = round(ratio x depth), e.g. 0.4 of 12 -> 5")
        ("beam", po::value(&c.search.beam)->default_value(c.search.beam), "sets kept per step (1: greedy)")
        ("exhaustive", po::value(&c.search.exhaustive)->implicit_value(true)->default_value(false),
         "score every subset of each requested size (small depths)")
        ("layers", po::value(&raw.layers), "candidate blocks, comma-separated (default: all)")
        ("estimator", po::value(&c.search.estimator)->default_value(c.search.estimator),
         "head output G: logits, or cls (final-norm CLS feature)")
        ("cache-mb", po::value(&c.search.cache_mb)->default_value(c.search.cache_mb),
         "prefix-cache budget per process in MiB (0: recompute everything)")
        ("out", po::value(&c.search.out)->default_value(c.search.out),
         "HDF5 result file; an unfinished one (<out>.partial) is resumed")
        ("json", po::value(&c.search.json), "JSON result (feeds vitslim train)");
    all.add(o);
  } else if (job == "eval") {
    c.data.split = "test";
    all.add(data_options(c, raw));
    po::options_description o("Evaluation");
    o.add_options()
        ("eval-images", po::value(&c.eval.images)->default_value(c.eval.images), "first N images of the split (0: all)")
        ("json", po::value(&c.eval.json), "JSON result");
    all.add(o);
  } else if (job == "convert") {
    po::options_description o("Convert output");
    o.add_options()("out", po::value(&c.convert.out), ".safetensors file (timm key names)");
    all.add(o);
  } else if (job == "bench") {
    po::options_description o("Benchmark");
    o.add_options()
        ("batch-size", po::value(&c.bench.batch_size)->default_value(c.bench.batch_size), "batch")
        ("warmup", po::value(&c.bench.warmup)->default_value(c.bench.warmup), "untimed iterations")
        ("iters", po::value(&c.bench.iters)->default_value(c.bench.iters), "timed iterations (median reported)")
        ("device", po::value(&c.bench.device)->default_value(c.bench.device), "cpu | cuda")
        ("bf16", po::value(&c.bench.bf16)->implicit_value(true)->default_value(false), "bf16 autocast (CUDA)")
        ("train", po::value(&c.bench.train)->implicit_value(true)->default_value(true),
         "also time a training step (forward + backward); --train=false to skip")
        ("json", po::value(&c.bench.json), "write the result as JSON");
    all.add(o);
  } else if (job == "train") {
    all.add(data_options(c, raw));
    all.add(augment_options(c, raw));
    all.add(train_options(c, raw));
  } else if (job == "bench-data") {
    all.add(data_options(c, raw));
    all.add(augment_options(c, raw));
    po::options_description o("Data benchmark (images/s per thread: decode, train and eval transforms, loader)");
    o.add_options()
        ("img-size", po::value<int64_t>(), "output side of the transforms (default 224)")
        ("images", po::value(&c.bench_data.images)->default_value(c.bench_data.images), "images timed per round")
        ("rounds", po::value(&c.bench_data.rounds)->default_value(c.bench_data.rounds), "rounds (best reported)")
        ("json", po::value(&c.bench_data.json), "write the result as JSON");
    all.add(o);
  } else if (job == "pipeline") {
    all.add(data_options(c, raw));
    all.add(augment_options(c, raw));
    PipelineConfig& p = c.pipeline;
    po::options_description o("Pipeline (every stage resumes from its files in --out-dir)");
    o.add_options()
        ("out-dir", po::value(&p.out_dir)->default_value(p.out_dir), "all stages' outputs and report.md / report.json")
        ("pretrained", po::value(&p.weights), "start from these weights instead of pretraining")
        ("pretrain-epochs", po::value(&p.pretrain_epochs)->default_value(p.pretrain_epochs), "pretraining from scratch")
        ("finetune-epochs", po::value(&p.finetune_epochs)->default_value(p.finetune_epochs),
         "dilution fine-tuning per run (the unpruned baseline gets the same)")
        ("decay-epochs", po::value(&p.decay_epochs)->default_value(p.decay_epochs),
         "lambda goes 1 -> 0 per step over this many fine-tuning epochs")
        ("ratios", po::value(&raw.pipeline_ratios)->default_value(raw.pipeline_ratios), "NOSE removal ratios")
        ("ablation", po::value(&p.ablation)->implicit_value(true)->default_value(true),
         "also fine-tune a random and a first-k choice at the largest ratio")
        ("pretrain-lr", po::value(&p.pretrain_lr)->default_value(p.pretrain_lr, "8e-3"), "per 512 images")
        ("finetune-lr", po::value(&p.finetune_lr)->default_value(p.finetune_lr, "4e-3"), "per 512 images")
        ("steps-per-epoch", po::value(&p.steps_per_epoch)->default_value(p.steps_per_epoch),
         "optimizer steps per training epoch (0: one pass over the split)")
        ("eval-images", po::value(&p.eval_images)->default_value(p.eval_images), "test images per evaluation (0: all)")
        ("bench-iters", po::value(&p.bench_iters)->default_value(p.bench_iters), "timed iterations of the benchmark");
    all.add(o);
  } else if (job == "merge") {
    po::options_description o("Merge");
    o.add_options()
        ("checkpoint", po::value(&c.merge.checkpoint), "training checkpoint (<out-dir>/checkpoints/step-N.safetensors)")
        ("out", po::value(&c.merge.out), "compact model (.safetensors)")
        ("fold-residual", po::value(&c.merge.fold_residual)->implicit_value(true)->default_value(false),
         "fold the 2x residual factors into the weights: removed blocks become plain MLP blocks")
        ("check-images", po::value(&c.merge.check_images)->default_value(c.merge.check_images),
         "random inputs on which the compact model must reproduce the checkpoint's logits")
        ("json", po::value(&c.merge.json), "JSON summary");
    all.add(o);
  }
  all.add(runtime_options(c));
  return all;
}

// INI: `key = value` lines, `[section]` headers and `#`/`;` comments; returns `--key=value` args.
std::vector<std::string> read_ini(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(cat("--config ", path, ": cannot open file"));
  std::vector<std::string> args;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    size_t b = line.find_first_not_of(" \t\r");
    if (b == std::string::npos || line[b] == '#' || line[b] == ';' || line[b] == '[') continue;
    size_t eq = line.find('=');
    if (eq == std::string::npos) {
      throw Error(cat("--config ", path, ":", number, ": expected 'key = value', got '", line, "'"));
    }
    auto trim = [](std::string s) {
      size_t s0 = s.find_first_not_of(" \t\r");
      size_t s1 = s.find_last_not_of(" \t\r");
      return s0 == std::string::npos ? std::string() : s.substr(s0, s1 - s0 + 1);
    };
    std::string key = trim(line.substr(0, eq));
    std::string value = trim(line.substr(eq + 1));
    if (key == "config") throw Error(cat("--config ", path, ":", number, ": nested config files"));
    args.push_back("--" + key + "=" + value);
  }
  return args;
}

// --remove-layers FILE@RATIO: the layers `vitslim search --json FILE` selected for RATIO.
template <typename T>
void take(const po::variables_map& vm, const char* name, std::optional<T>& field) {
  if (vm.count(name)) field = vm[name].as<T>();
}

}  // namespace

std::vector<int64_t> layers_from_search(const std::string& spec) {
  const size_t at = spec.rfind('@');
  const std::string path = spec.substr(0, at);
  const auto ratios = parse_double_list(spec.substr(at + 1), "--remove-layers FILE@RATIO");
  if (ratios.size() != 1) throw Error(cat("--remove-layers ", spec, ": expected FILE@RATIO, e.g. search.json@0.5"));
  const double ratio = ratios[0];
  std::ifstream in(path);
  if (!in) throw Error(cat("--remove-layers ", path, ": cannot open search result"));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat("--remove-layers ", path, ": not JSON (", e.what(), ")"));
  }
  if (!j.is_object() || j.value("job", "") != "search" || !j.contains("selections")) {
    throw Error(cat("--remove-layers ", path, ": not a `vitslim search --json` result"));
  }
  std::string known;
  try {
    for (const auto& sel : j["selections"]) {
      const double r = sel.at("ratio").get<double>();
      if (std::fabs(r - ratio) < 1e-9) return sel.at("layers").get<std::vector<int64_t>>();
      known += cat(known.empty() ? "" : ", ", r);
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat("--remove-layers ", path, ": malformed selections (", e.what(), ")"));
  }
  throw Error(cat("--remove-layers ", path, ": no selection for ratio ", ratio, " (has ", known, ")"));
}

ParsedCommand parse_options(int argc, const char* const argv[]) {
  ParsedCommand result;
  if (argc < 2) throw Error("no job given; run `vitslim --help` for the list of jobs");
  std::string job = argv[1];
  bool known = false;
  for (const auto& [name, _] : job_list()) known |= name == job;
  if (!known) throw Error(cat("unknown job '", job, "'; run `vitslim --help` for the list of jobs"));

  Config& c = result.config;
  c.job = job;
  Raw raw;
  po::options_description options = job_options(job, c, raw);
  po::variables_map vm;
  try {
    std::vector<std::string> args(argv + 2, argv + argc);
    po::store(po::command_line_parser(args).options(options).run(), vm);
    if (vm.count("config")) {
      std::string path = vm["config"].as<std::string>();
      po::store(po::command_line_parser(read_ini(path)).options(options).run(), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw Error(cat("vitslim ", job, ": ", e.what()));
  }
  if (vm.count("help")) {
    std::ostringstream text;
    text << "usage: vitslim " << job << " [options]\n\n" << options;
    result.help = true;
    result.help_text = text.str();
    return result;
  }
  result.dump_config = vm.count("dump-config") > 0;

  ModelRequest& m = c.model;
  take(vm, "img-size", m.img_size);
  take(vm, "patch-size", m.patch_size);
  take(vm, "in-chans", m.in_chans);
  take(vm, "embed-dim", m.embed_dim);
  take(vm, "depth", m.depth);
  take(vm, "num-heads", m.num_heads);
  take(vm, "mlp-ratio", m.mlp_ratio);
  take(vm, "num-classes", m.num_classes);
  auto& layers = job == "train" ? c.train.dilute_layers : m.removed_layers;
  layers = raw.remove_layers.find('@') != std::string::npos ? layers_from_search(raw.remove_layers)
                                                             : parse_int_list(raw.remove_layers, "--remove-layers");
  c.train.decay_epochs = raw.decay_epochs;
  c.pipeline.ratios = parse_double_list(raw.pipeline_ratios, "--ratios");
  c.data.mean = parse_double_list(raw.mean, "--mean");
  c.search.ratios = parse_double_list(raw.ratios, "--ratios");
  c.search.layers = parse_int_list(raw.layers, "--layers");
  c.data.std = parse_double_list(raw.std_, "--std");
  c.data.scale = parse_double_list(raw.scale, "--scale");
  c.data.ratio = parse_double_list(raw.ratio, "--ratio");
  validate(c);
  return result;
}

}  // namespace vitslim
