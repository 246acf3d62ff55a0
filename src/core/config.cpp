// Implements validation and INI rendering of the configuration tree (see config.h).
#include "core/config.h"

#include <cmath>
#include <cstdlib>
#include <set>
#include <sstream>

#include "core/error.h"
#include "data/augment.h"

namespace vitslim {

bool ModelShape::operator==(const ModelShape& o) const {
  return img_size == o.img_size && patch_size == o.patch_size && in_chans == o.in_chans &&
         embed_dim == o.embed_dim && depth == o.depth && num_heads == o.num_heads &&
         mlp_ratio == o.mlp_ratio && num_classes == o.num_classes;
}

std::string ModelShape::describe() const {
  return cat("img ", img_size, ", patch ", patch_size, ", in_chans ", in_chans, ", dim ", embed_dim,
             ", depth ", depth, ", heads ", num_heads, ", mlp_ratio ", mlp_ratio, ", classes ",
             num_classes);
}

namespace {

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, ',')) {
    size_t b = item.find_first_not_of(" \t");
    size_t e = item.find_last_not_of(" \t");
    parts.push_back(b == std::string::npos ? "" : item.substr(b, e - b + 1));
  }
  return parts;
}

void require_positive(std::optional<int64_t> v, const char* flag) {
  if (v && *v <= 0) throw Error(cat("--", flag, " must be positive, got ", *v));
}

template <typename T>
std::string join(const std::vector<T>& v) {
  std::ostringstream out;
  for (size_t i = 0; i < v.size(); ++i) out << (i ? "," : "") << v[i];
  return out.str();
}

void validate_train(const TrainConfig& t) {
  auto positive = [](double v, const char* flag) {
    if (!(v > 0) || !std::isfinite(v)) throw Error(cat("--", flag, " must be positive, got ", v));
  };
  auto non_negative = [](double v, const char* flag) {
    if (!(v >= 0) || !std::isfinite(v)) throw Error(cat("--", flag, " must be >= 0, got ", v));
  };
  auto probability = [](double v, const char* flag) {
    if (!(v >= 0 && v <= 1)) throw Error(cat("--", flag, " must be in [0, 1], got ", v));
  };
  positive(static_cast<double>(t.epochs), "epochs");
  if (t.decay_epochs) positive(*t.decay_epochs, "decay-epochs");
  non_negative(static_cast<double>(t.steps_per_epoch), "steps-per-epoch");
  positive(t.lr, "lr");
  non_negative(t.warmup_lr, "warmup-lr");
  non_negative(t.min_lr, "min-lr");
  non_negative(t.warmup_epochs, "warmup-epochs");
  if (t.warmup_epochs >= static_cast<double>(t.epochs)) {
    throw Error(cat("--warmup-epochs ", t.warmup_epochs, " must be shorter than --epochs ", t.epochs));
  }
  non_negative(t.weight_decay, "weight-decay");
  if (!(t.beta1 >= 0 && t.beta1 < 1)) throw Error("--beta1 must be in [0, 1)");
  if (!(t.beta2 >= 0 && t.beta2 < 1)) throw Error("--beta2 must be in [0, 1)");
  positive(t.eps, "opt-eps");
  non_negative(t.clip_grad, "clip-grad");
  positive(static_cast<double>(t.accum_steps), "accum-steps");
  if (!(t.ema_decay >= 0 && t.ema_decay < 1)) throw Error("--model-ema must be in [0, 1) (0: off)");
  if (!(t.smoothing >= 0 && t.smoothing < 1)) throw Error("--smoothing must be in [0, 1)");
  non_negative(t.mixup, "mixup");
  non_negative(t.cutmix, "cutmix");
  probability(t.mixup_prob, "mixup-prob");
  probability(t.mixup_switch_prob, "mixup-switch-prob");
  positive(static_cast<double>(t.repeated_aug), "repeated-aug");
  non_negative(static_cast<double>(t.eval_images), "eval-images");
  non_negative(static_cast<double>(t.entropy_images), "entropy-images");
  if (t.out_dir.empty()) throw Error("--out-dir is required");
  non_negative(static_cast<double>(t.checkpoint_steps), "checkpoint-steps");
  positive(static_cast<double>(t.keep_last), "keep-last");
  positive(static_cast<double>(t.bucket_mb), "bucket-mb");
  positive(t.first_bucket_mb, "first-bucket-mb");
  if (t.device != "cpu" && t.device != "cuda") throw Error(cat("--device must be cpu or cuda, got '", t.device, "'"));
  if (t.bf16 && t.device != "cuda") throw Error("--bf16 needs --device cuda");
  positive(static_cast<double>(t.log_every), "log-every");
}

}  // namespace

std::string join_list(const std::vector<int64_t>& values) { return join(values); }
std::string join_list(const std::vector<double>& values) { return join(values); }

std::vector<double> parse_double_list(const std::string& text, const std::string& what) {
  std::vector<double> values;
  if (text.empty()) return values;
  for (const auto& part : split_commas(text)) {
    char* end = nullptr;
    double v = std::strtod(part.c_str(), &end);
    if (part.empty() || *end != '\0' || !std::isfinite(v)) {
      throw Error(cat(what, ": '", part, "' is not a finite number (in '", text, "')"));
    }
    values.push_back(v);
  }
  return values;
}

std::vector<int64_t> parse_int_list(const std::string& text, const std::string& what) {
  std::vector<int64_t> values;
  if (text.empty()) return values;
  for (const auto& part : split_commas(text)) {
    char* end = nullptr;
    long long v = std::strtoll(part.c_str(), &end, 10);
    if (part.empty() || *end != '\0') {
      throw Error(cat(what, ": '", part, "' is not an integer (in '", text, "')"));
    }
    values.push_back(v);
  }
  return values;
}

void validate(const Config& c) {
  const ModelRequest& m = c.model;
  require_positive(m.img_size, "img-size");
  require_positive(m.patch_size, "patch-size");
  require_positive(m.in_chans, "in-chans");
  require_positive(m.embed_dim, "embed-dim");
  require_positive(m.depth, "depth");
  require_positive(m.num_heads, "num-heads");
  require_positive(m.num_classes, "num-classes");
  if (m.mlp_ratio && !(*m.mlp_ratio > 0)) throw Error("--mlp-ratio must be positive");
  if (m.img_size && m.patch_size && *m.img_size % *m.patch_size != 0) {
    throw Error(cat("--img-size ", *m.img_size, " is not a multiple of --patch-size ", *m.patch_size));
  }
  if (m.embed_dim && m.num_heads && *m.embed_dim % *m.num_heads != 0) {
    throw Error(cat("--embed-dim ", *m.embed_dim, " is not divisible by --num-heads ", *m.num_heads));
  }
  if (!(m.drop_path >= 0 && m.drop_path < 1)) throw Error("--drop-path must be in [0, 1)");
  std::set<int64_t> seen;
  for (int64_t l : c.job == "train" ? c.train.dilute_layers : m.removed_layers) {
    if (l < 0) throw Error(cat("--remove-layers: negative block index ", l));
    if (m.depth && l >= *m.depth) {
      throw Error(cat("--remove-layers: block ", l, " does not exist (depth ", *m.depth, ")"));
    }
    if (!seen.insert(l).second) throw Error(cat("--remove-layers: block ", l, " given twice"));
  }

  const DataConfig& d = c.data;
  static const std::set<std::string> kDatasets = {"fashion-mnist", "cifar10", "cifar100", "imagenet", "folder",
                                                   "synthetic"};
  if (!kDatasets.count(d.dataset)) {
    throw Error(cat("--data-set: unknown dataset '", d.dataset,
                    "' (expected fashion-mnist, cifar10, cifar100, imagenet, folder or synthetic)"));
  }
  if (d.bad_images != "skip" && d.bad_images != "fail") {
    throw Error(cat("--bad-images must be skip or fail, got '", d.bad_images, "'"));
  }
  if (d.augment != "auto" && d.augment != "deit" && d.augment != "none") {
    throw Error(cat("--aug must be deit, none or auto, got '", d.augment, "'"));
  }
  if (!d.class_index.empty() && !d.image_folder()) throw Error("--class-index applies to --data-set imagenet or folder");
  if (!(d.reprob >= 0 && d.reprob <= 1)) throw Error(cat("--reprob must be in [0, 1], got ", d.reprob));
  if (!(d.hflip >= 0 && d.hflip <= 1)) throw Error(cat("--hflip must be in [0, 1], got ", d.hflip));
  if (d.scale.size() != 2 || !(d.scale[0] > 0 && d.scale[0] <= d.scale[1] && d.scale[1] <= 1)) {
    throw Error("--scale must be two values 0 < lo <= hi <= 1 (e.g. 0.08,1)");
  }
  if (d.ratio.size() != 2 || !(d.ratio[0] > 0 && d.ratio[0] <= d.ratio[1])) {
    throw Error("--ratio must be two values 0 < lo <= hi (e.g. 0.75,1.3333)");
  }
  if (!(d.crop_pct > 0 && d.crop_pct <= 1)) throw Error(cat("--crop-pct must be in (0, 1], got ", d.crop_pct));
  if (d.interpolation != "bicubic" && d.interpolation != "bilinear") {
    throw Error(cat("--interpolation must be bicubic or bilinear, got '", d.interpolation, "'"));
  }
  if (d.auto_augment != "none") data::parse_rand_augment(d.auto_augment);  // throws naming --aa
  if (d.workers < 0) throw Error("--workers must be >= 0 (0: load in the training thread)");
  if (d.prefetch < 1) throw Error("--prefetch must be at least 1");
  if (d.split != "train" && d.split != "test") {
    throw Error(cat("--data-split must be train or test, got '", d.split, "'"));
  }
  if (d.calib_images <= 0) throw Error("--calib-images must be positive");
  if (d.batch_size <= 0) throw Error("--batch-size must be positive");
  if (d.mean.size() != d.std.size() && !d.mean.empty() && !d.std.empty()) {
    throw Error(cat("--mean has ", d.mean.size(), " values but --std has ", d.std.size()));
  }
  for (double s : d.std) {
    if (!(s > 0)) throw Error(cat("--std values must be positive, got ", s));
  }

  if (c.runtime.threads < 0) throw Error("--threads must be >= 0 (0: all cores)");

  if (c.job == "entropy") {
    if (c.entropy.out.empty()) throw Error("--out: an output trace path is required");
    if (c.entropy.trace_points <= 0) throw Error("--trace-points must be positive");
  } else if (c.job == "search") {
    const SearchConfig& s = c.search;
    if (s.out.empty()) throw Error("--out: an output file is required");
    if (s.ratios.empty()) throw Error("--ratios: at least one ratio is required");
    for (double r : s.ratios) {
      if (!(r > 0.0 && r < 1.0)) throw Error(cat("--ratios: ", r, " is not in (0, 1)"));
    }
    if (s.beam < 1) throw Error("--beam must be at least 1");
    if (s.exhaustive && s.beam != 1) throw Error("--exhaustive and --beam exclude each other");
    if (s.estimator != "logits" && s.estimator != "cls") {
      throw Error(cat("--estimator must be logits or cls, got '", s.estimator, "'"));
    }
    if (s.cache_mb < 0) throw Error("--cache-mb must be >= 0");
    std::set<int64_t> unique;
    for (int64_t l : s.layers) {
      if (l < 0) throw Error(cat("--layers: negative block index ", l));
      if (!unique.insert(l).second) throw Error(cat("--layers: block ", l, " given twice"));
    }
    if (c.data.calib_images < c.data.batch_size) {
      throw Error(cat("--calib-images ", c.data.calib_images, " is smaller than one batch (--batch-size ",
                      c.data.batch_size, ")"));
    }
  } else if (c.job == "eval") {
    if (c.eval.images < 0) throw Error("--eval-images must be >= 0 (0: all)");
  } else if (c.job == "convert") {
    if (m.weights.empty()) throw Error("convert: --weights is required");
    if (c.convert.out.empty()) throw Error("convert: --out is required");
  } else if (c.job == "bench") {
    if (c.bench.batch_size <= 0 || c.bench.iters <= 0 || c.bench.warmup < 0) {
      throw Error("bench: --batch-size and --iters must be positive, --warmup >= 0");
    }
    if (c.bench.device != "cpu" && c.bench.device != "cuda") {
      throw Error(cat("--device must be cpu or cuda, got '", c.bench.device, "'"));
    }
    if (c.bench.bf16 && c.bench.device != "cuda") throw Error("--bf16 needs --device cuda");
  } else if (c.job == "bench-data") {
    if (c.data.path.empty()) throw Error("bench-data: --data-path (a folder of JPEG/PNG images) is required");
    if (c.bench_data.images <= 0 || c.bench_data.rounds <= 0) throw Error("bench-data: --images and --rounds must be positive");
  } else if (c.job == "train") {
    validate_train(c.train);
  } else if (c.job == "pipeline") {
    const PipelineConfig& p = c.pipeline;
    if (p.out_dir.empty()) throw Error("--out-dir is required");
    if (p.pretrain_epochs <= 0 || p.finetune_epochs <= 0) throw Error("--pretrain-epochs and --finetune-epochs must be positive");
    if (!(p.decay_epochs > 0 && p.decay_epochs < static_cast<double>(p.finetune_epochs))) {
      throw Error(cat("--decay-epochs ", p.decay_epochs, " must be in (0, --finetune-epochs ", p.finetune_epochs,
                      "): the removed blocks need training after lambda reaches 0"));
    }
    if (p.ratios.empty()) throw Error("--ratios: at least one ratio is required");
    for (double r : p.ratios) {
      if (!(r > 0.0 && r < 1.0)) throw Error(cat("--ratios: ", r, " is not in (0, 1)"));
    }
    if (!(p.pretrain_lr > 0 && p.finetune_lr > 0)) throw Error("--pretrain-lr and --finetune-lr must be positive");
    if (p.eval_images < 0) throw Error("--eval-images must be >= 0 (0: all)");
    if (p.steps_per_epoch < 0) throw Error("--steps-per-epoch must be >= 0 (0: one pass)");
    if (p.bench_iters <= 0) throw Error("--bench-iters must be positive");
    if (!m.removed_layers.empty()) throw Error("pipeline: the search chooses the layers; --remove-layers is not used");
  } else if (c.job == "merge") {
    if (c.merge.checkpoint.empty()) throw Error("merge: --checkpoint is required");
    if (c.merge.out.empty()) throw Error("merge: --out is required");
    if (c.merge.check_images <= 0) throw Error("--check-images must be positive");
    if (!m.removed_layers.empty()) throw Error("merge: the checkpoint says which layers go; --remove-layers is not used");
  }
}

std::string config_to_ini(const Config& c) {
  std::ostringstream o;
  auto opt = [&](const char* key, const auto& v) {
    if (v) o << key << " = " << *v << "\n";
  };
  o << "# vitslim " << c.job << " configuration (resolved)\n";
  o << "[model]\n";
  if (!c.model.preset.empty()) o << "model = " << c.model.preset << "\n";
  opt("img-size", c.model.img_size);
  opt("patch-size", c.model.patch_size);
  opt("in-chans", c.model.in_chans);
  opt("embed-dim", c.model.embed_dim);
  opt("depth", c.model.depth);
  opt("num-heads", c.model.num_heads);
  opt("mlp-ratio", c.model.mlp_ratio);
  opt("num-classes", c.model.num_classes);
  o << "drop-path = " << c.model.drop_path << "\n";
  if (!c.model.weights.empty()) o << "weights = " << c.model.weights << "\n";
  o << "reset-head = " << (c.model.reset_head ? "true" : "false") << "\n";
  if (!c.model.removed_layers.empty()) o << "remove-layers = " << join(c.model.removed_layers) << "\n";
  if (c.job == "entropy" || c.job == "search" || c.job == "eval" || c.job == "train" || c.job == "pipeline" ||
      c.job == "bench-data") {
    o << "[data]\n";
    o << "data-set = " << c.data.dataset << "\n";
    if (!c.data.path.empty()) o << "data-path = " << c.data.path << "\n";
    o << "data-split = " << c.data.split << "\n";
    o << "calib-images = " << c.data.calib_images << "\n";
    o << "batch-size = " << c.data.batch_size << "\n";
    if (!c.data.mean.empty()) o << "mean = " << join(c.data.mean) << "\n";
    if (!c.data.std.empty()) o << "std = " << join(c.data.std) << "\n";
    const DataConfig& d = c.data;
    if (!d.class_index.empty()) o << "class-index = " << d.class_index << "\n";
    o << "bad-images = " << d.bad_images << "\ncrop-pct = " << d.crop_pct << "\ninterpolation = " << d.interpolation
      << "\njpeg-dct-scaling = " << (d.dct_scaling ? "true" : "false") << "\n";
    if (c.job == "train" || c.job == "pipeline" || c.job == "bench-data") {
      o << "aug = " << d.augment << "\naa = " << d.auto_augment << "\nreprob = " << d.reprob << "\nhflip = " << d.hflip
        << "\nscale = " << join(d.scale) << "\nratio = " << join(d.ratio) << "\nworkers = " << d.workers
        << "\nprefetch = " << d.prefetch << "\n";
    }
  }
  if (c.job == "entropy") {
    o << "[entropy]\n";
    o << "out = " << c.entropy.out << "\n";
    if (!c.entropy.json.empty()) o << "json = " << c.entropy.json << "\n";
    o << "trace-points = " << c.entropy.trace_points << "\n";
  } else if (c.job == "search") {
    const SearchConfig& s = c.search;
    o << "[search]\n";
    o << "ratios = " << join(s.ratios) << "\n";
    o << "beam = " << s.beam << "\n";
    o << "exhaustive = " << (s.exhaustive ? "true" : "false") << "\n";
    if (!s.layers.empty()) o << "layers = " << join(s.layers) << "\n";
    o << "estimator = " << s.estimator << "\n";
    o << "cache-mb = " << s.cache_mb << "\n";
    o << "out = " << s.out << "\n";
    if (!s.json.empty()) o << "json = " << s.json << "\n";
  } else if (c.job == "eval") {
    o << "[eval]\neval-images = " << c.eval.images << "\n";
    if (!c.eval.json.empty()) o << "json = " << c.eval.json << "\n";
  } else if (c.job == "convert") {
    o << "[convert]\nout = " << c.convert.out << "\n";
  } else if (c.job == "bench") {
    o << "[bench]\nbatch-size = " << c.bench.batch_size << "\nwarmup = " << c.bench.warmup
      << "\niters = " << c.bench.iters << "\ndevice = " << c.bench.device << "\nbf16 = "
      << (c.bench.bf16 ? "true" : "false") << "\ntrain = " << (c.bench.train ? "true" : "false") << "\n";
    if (!c.bench.json.empty()) o << "json = " << c.bench.json << "\n";
  } else if (c.job == "bench-data") {
    o << "[bench-data]\nimages = " << c.bench_data.images << "\nrounds = " << c.bench_data.rounds << "\n";
    if (!c.bench_data.json.empty()) o << "json = " << c.bench_data.json << "\n";
  } else if (c.job == "train") {
    const TrainConfig& t = c.train;
    const auto b = [](bool v) { return v ? "true" : "false"; };
    o << "[train]\n";
    if (!t.dilute_layers.empty()) o << "remove-layers = " << join(t.dilute_layers) << "\n";
    o << "epochs = " << t.epochs << "\ndecay-epochs = " << t.resolved_decay_epochs()
      << "\nlambda-per-step = " << b(t.lambda_per_step) << "\nsteps-per-epoch = " << t.steps_per_epoch
      << "\nlr = " << t.lr << "\nwarmup-lr = " << t.warmup_lr << "\nmin-lr = " << t.min_lr
      << "\nwarmup-epochs = " << t.warmup_epochs << "\nweight-decay = " << t.weight_decay << "\nbeta1 = " << t.beta1
      << "\nbeta2 = " << t.beta2 << "\nopt-eps = " << t.eps << "\nclip-grad = " << t.clip_grad
      << "\naccum-steps = " << t.accum_steps << "\nmodel-ema = " << t.ema_decay << "\nsmoothing = " << t.smoothing
      << "\nmixup = " << t.mixup << "\ncutmix = " << t.cutmix << "\nmixup-prob = " << t.mixup_prob
      << "\nmixup-switch-prob = " << t.mixup_switch_prob << "\nrepeated-aug = " << t.repeated_aug
      << "\ndrop-last = " << b(t.drop_last) << "\neval-images = " << t.eval_images
      << "\nentropy-images = " << t.entropy_images << "\nout-dir = " << t.out_dir
      << "\ncheckpoint-steps = " << t.checkpoint_steps << "\nkeep-last = " << t.keep_last
      << "\nbucket-mb = " << t.bucket_mb << "\nfirst-bucket-mb = " << t.first_bucket_mb << "\ndevice = " << t.device
      << "\nbf16 = " << b(t.bf16) << "\nlog-every = " << t.log_every << "\n";
  }
  if (c.job == "pipeline") {
    const PipelineConfig& p = c.pipeline;
    o << "[pipeline]\nout-dir = " << p.out_dir << "\n";
    if (!p.weights.empty()) o << "pretrained = " << p.weights << "\n";
    o << "pretrain-epochs = " << p.pretrain_epochs << "\nfinetune-epochs = " << p.finetune_epochs
      << "\ndecay-epochs = " << p.decay_epochs << "\nratios = " << join(p.ratios)
      << "\nablation = " << (p.ablation ? "true" : "false") << "\npretrain-lr = " << p.pretrain_lr
      << "\nfinetune-lr = " << p.finetune_lr << "\nsteps-per-epoch = " << p.steps_per_epoch
      << "\neval-images = " << p.eval_images
      << "\nbench-iters = " << p.bench_iters << "\n";
  }
  if (c.job == "merge") {
    o << "[merge]\ncheckpoint = " << c.merge.checkpoint << "\nout = " << c.merge.out
      << "\nfold-residual = " << (c.merge.fold_residual ? "true" : "false") << "\ncheck-images = " << c.merge.check_images
      << "\n";
    if (!c.merge.json.empty()) o << "json = " << c.merge.json << "\n";
  }
  o << "[runtime]\n";
  o << "threads = " << c.runtime.threads << "\n";
  o << "seed = " << c.runtime.seed << "\n";
  return o.str();
}

}  // namespace vitslim
