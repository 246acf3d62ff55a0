// Implements the training job (see trainer.h): setup and resume, the step loop (micro-batches,
// mixup, backward with the overlapped reducer, collective stop/non-finite check, clipping,
// AdamW, EMA), the per-epoch evaluation and entropy trace, checkpoints and exports.
#include "train/trainer.h"

#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "core/atomic_file.h"
#include "core/cpu_memory.h"
#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/signals.h"
#include "core/version.h"
#include "data/batch.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/mixup.h"
#include "data/sampler.h"
#include "dist/communicator.h"
#include "dist/reducer.h"
#include "entropy/entropy_job.h"
#include "io/trace.h"
#include "io/trace_reader.h"
#include "model/autocast.h"
#include "model/checkpoint.h"
#include "model/presets.h"
#include "train/eval_job.h"
#include "train/loss.h"
#include "train/optimizer.h"
#include "train/schedule.h"
#include "train/train_checkpoint.h"

namespace vitslim::train {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using Named = std::vector<std::pair<std::string, torch::Tensor>>;

namespace {

constexpr int64_t kMiB = 1 << 20;
// Salts that separate the random streams drawn from (seed, rank, step).
constexpr uint64_t kSaltTorch = 0x746f726368ULL;  // drop-path (LibTorch's generator)
constexpr uint64_t kSaltMix = 0x6d69787570ULL;    // mixup / cutmix decisions
constexpr uint64_t kSaltAugment = 0x617567ULL;    // per-image augmentation streams
constexpr uint64_t kEntropySeedSalt = 0x656e74ULL;
// Step trace columns (docs/hdf5-schema.md).
const std::vector<std::string> kStepColumns = {"global_step", "epoch",        "loss",         "lr",
                                               "grad_norm",   "images_per_s", "data_seconds", "comm_wait_seconds"};
const std::vector<std::string> kEpochColumns = {"epoch",     "train_loss", "top1",  "top5",
                                                "eval_loss", "seconds",    "images"};

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
  return out;
}

model::AttentionMode parse_mode(const std::string& text, const std::string& file) {
  for (auto mode : {model::AttentionMode::Full, model::AttentionMode::Diluting, model::AttentionMode::Skipped,
                    model::AttentionMode::Removed}) {
    if (text == model::to_string(mode)) return mode;
  }
  throw Error(cat("checkpoint ", file, ": unknown attention mode '", text, "'"));
}

class Trainer {
 public:
  Trainer(const TrainInputs& inputs, const dist::MpiSession& mpi) : c_(inputs), t_(c_.train), mpi_(mpi) {}
  TrainResult run();

 private:
  void setup();
  void resume_or_start();
  int64_t choose_checkpoint();
  void check_resume_settings(const Checkpoint& ckpt);
  TrainResult run_steps();
  void apply_lambda(double lambda);
  void rebuild_parameters();
  void open_trace(int64_t resume_step);
  bool train_step(int64_t epoch);
  void start_loader(const std::vector<int64_t>& order, int64_t epoch);
  void end_epoch(int64_t epoch, double train_loss, double seconds, int64_t images);
  void save_checkpoint();
  void export_model(const std::string& name, bool ema);
  void write_summary(bool finished);
  Named tensors_for_checkpoint();
  double current_lambda(int64_t epoch) const { return lambda_.at(epoch, state_.global_step); }
  bool all_removed();
  std::vector<double> block_lambdas();  // per block: 1 full, lambda diluting, 0 removed
  std::optional<Checkpoint> chosen_;    // rank 0: the checkpoint choose_checkpoint() read

  TrainInputs c_;
  const TrainConfig& t_;
  const dist::MpiSession& mpi_;
  std::unique_ptr<dist::Communicator> comm_;
  torch::Device device_{torch::kCPU};
  model::VisionTransformer model_{nullptr};
  std::unique_ptr<data::Dataset> train_set_, eval_set_;
  data::Normalisation norm_;
  bool augment_ = false;
  data::TransformSettings augment_settings_;
  std::unique_ptr<data::Loader> loader_;
  std::unique_ptr<data::DistributedSampler> sampler_;
  data::MixupOptions mixup_;
  std::unique_ptr<AdamW> optimizer_;
  std::unique_ptr<dist::GradientReducer> reducer_;
  Named params_;
  std::map<std::string, torch::Tensor> ema_;
  LrSchedule lr_;
  LambdaSchedule lambda_;
  TrainState state_;
  std::unique_ptr<io::TraceFile> trace_;
  std::unique_ptr<ProgressLine> progress_;
  int64_t steps_per_epoch_ = 0, micro_batch_ = 0, global_batch_ = 0;
  int64_t eval_images_ = 0;
  std::vector<int64_t> entropy_indices_;
  double last_loss_ = 0, last_top1_ = -1;
  int stop_signal_ = 0;
  double rss_start_mib_ = -1;  // resident memory when the first step starts
  Clock::time_point started_ = Clock::now();
};

void Trainer::setup() {
  model::use_default_preset(c_.model);
  if (t_.device == Device::Cuda) {
    if (!torch::cuda::is_available())
      throw Error("--device cuda: no CUDA device is available to this build of LibTorch");
    device_ =
        torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(mpi_.local_rank() % torch::cuda::device_count()));
  }
  model_ = model::build_model(c_.model, c_.runtime.seed);
  const ModelShape& shape = model_->shape();
  for (int64_t b : t_.dilute_layers) {
    if (b >= shape.depth) throw Error(cat("--remove-layers: block ", b, " does not exist (depth ", shape.depth, ")"));
    if (model_->block(b)->mode() == model::AttentionMode::Removed) {
      throw Error(cat("--remove-layers: block ", b, "'s attention is already removed in ", c_.model.weights));
    }
  }

  DataConfig train_data = c_.data;
  train_data.split = "train";
  DataConfig eval_data = c_.data;
  eval_data.split = "test";
  train_set_ = data::open_dataset(train_data, shape, c_.runtime.seed);
  eval_set_ = data::open_dataset(eval_data, shape, c_.runtime.seed);
  check_class_count(shape, *train_set_);
  norm_ = data::normalisation(c_.data, *train_set_);
  augment_ = c_.data.train_augment();
  if (augment_) augment_settings_ = data::train_settings(c_.data, norm_.mean, norm_.std, shape);
  eval_images_ = t_.eval_images > 0 ? t_.eval_images : eval_set_->size();
  if (eval_images_ > eval_set_->size()) {
    throw Error(cat("--eval-images ", eval_images_, " is more than the ", eval_set_->size(), " test images"));
  }
  if (t_.entropy_images > train_set_->size()) {
    throw Error(
        cat("--entropy-images ", t_.entropy_images, " is more than the ", train_set_->size(), " training images"));
  }
  entropy_indices_ = data::calibration_indices(train_set_->size(), t_.entropy_images,
                                               data::mix_seed(c_.runtime.seed, kEntropySeedSalt));

  sampler_ = std::make_unique<data::DistributedSampler>(train_set_->size(), mpi_.rank(), mpi_.world_size(),
                                                        c_.runtime.seed, t_.repeated_aug);
  micro_batch_ = c_.data.batch_size;
  const int64_t per_step = micro_batch_ * t_.accum_steps;
  const int64_t full =
      t_.drop_last ? sampler_->samples_per_rank() / per_step : (sampler_->samples_per_rank() + per_step - 1) / per_step;
  if (full == 0) {
    throw Error(cat("--batch-size ", micro_batch_, " x --accum-steps ", t_.accum_steps, " is more than the ",
                    sampler_->samples_per_rank(), " images each of the ", mpi_.world_size(),
                    " rank(s) gets per epoch"));
  }
  if (t_.steps_per_epoch > full) {
    throw Error(cat("--steps-per-epoch ", t_.steps_per_epoch, " is more than the ", full,
                    " steps one pass over the training split gives"));
  }
  steps_per_epoch_ = t_.steps_per_epoch > 0 ? t_.steps_per_epoch : full;
  global_batch_ = per_step * mpi_.world_size();

  // DeiT scales the peak learning rate with the global batch; warm-up start and floor are absolute.
  lr_.peak = scaled_lr(t_.lr, global_batch_);
  lr_.warmup_lr = t_.warmup_lr;
  lr_.min_lr = t_.min_lr;
  lr_.warmup_steps = static_cast<int64_t>(std::llround(t_.warmup_epochs * static_cast<double>(steps_per_epoch_)));
  lr_.total_steps = t_.epochs * steps_per_epoch_;
  lambda_.decay_epochs = t_.resolved_decay_epochs();
  lambda_.steps_per_epoch = steps_per_epoch_;
  lambda_.per_step = t_.lambda_per_step;

  mixup_.mixup_alpha = t_.mixup;
  mixup_.cutmix_alpha = t_.cutmix;
  mixup_.prob = t_.mixup_prob;
  mixup_.switch_prob = t_.mixup_switch_prob;
  mixup_.smoothing = t_.smoothing;
  mixup_.num_classes = shape.num_classes;

  AdamWOptions adam;
  adam.weight_decay = t_.weight_decay;
  adam.beta1 = t_.beta1;
  adam.beta2 = t_.beta2;
  adam.eps = t_.eps;
  const auto no_decay = model_->no_weight_decay_names();
  optimizer_ = std::make_unique<AdamW>(adam, std::set<std::string>(no_decay.begin(), no_decay.end()));
  comm_ = dist::make_communicator(mpi_, t_.device, device_.is_cuda() ? device_.index() : 0);
  model_->to(device_);
  progress_ = std::make_unique<ProgressLine>(mpi_.rank() == 0 && !c_.runtime.quiet, t_.log_every);

  log_info(cat("train: ", shape.describe(), "; diluting blocks ", join_list(t_.dilute_layers), " (lambda 0 at epoch ",
               fmt(lambda_.decay_epochs), ")"));
  if (!t_.dilute_layers.empty() && lambda_.at(t_.epochs - 1, t_.epochs * steps_per_epoch_ - 1) > 0) {
    log_warn(cat("--decay-epochs ", fmt(lambda_.decay_epochs), " is not reached within --epochs ", t_.epochs,
                 ": the diluted blocks keep their attention and no epoch qualifies for best.safetensors"));
  }
  log_info(cat("train: ", train_set_->name(), " ", train_set_->size(), " images, ", mpi_.world_size(), " rank(s) x ",
               micro_batch_, " x ", t_.accum_steps, " accumulation = global batch ", global_batch_, ", ",
               steps_per_epoch_, " steps/epoch x ", t_.epochs, " epochs, peak lr ", fmt(lr_.peak, 3), ", backend ",
               comm_->backend()));
}

std::vector<double> Trainer::block_lambdas() {
  std::vector<double> lambdas;
  for (int64_t b = 0; b < model_->depth(); ++b) {
    const auto& block = model_->block(b);
    lambdas.push_back(block->mode() == model::AttentionMode::Removed ? 0.0 : block->lambda());
  }
  return lambdas;
}

bool Trainer::all_removed() {
  for (int64_t b : t_.dilute_layers) {
    if (model_->block(b)->mode() != model::AttentionMode::Removed) return false;
  }
  return true;
}

// Sets every diluting block's lambda; at 0 they become Removed (their parameters go away).
void Trainer::apply_lambda(double lambda) {
  bool removed = false;
  for (int64_t b : t_.dilute_layers) {
    auto& block = model_->block(b);
    if (block->mode() == model::AttentionMode::Removed) continue;
    if (lambda <= 0.0) {
      block->set_mode(model::AttentionMode::Removed);
      removed = true;
    } else {
      block->set_mode(model::AttentionMode::Diluting, lambda);
    }
  }
  if (removed || params_.empty()) rebuild_parameters();
}

void Trainer::rebuild_parameters() {
  reducer_.reset();
  params_.clear();
  std::set<std::string> names;
  for (const auto& p : model_->named_parameters()) {
    if (!p.value().requires_grad()) continue;
    params_.emplace_back(p.key(), p.value());
    names.insert(p.key());
  }
  optimizer_->retain(names);
  for (auto it = ema_.begin(); it != ema_.end();) it = names.count(it->first) ? std::next(it) : ema_.erase(it);
  if (comm_->size() > 1) {
    reducer_ = std::make_unique<dist::GradientReducer>(
        params_, *comm_, t_.bucket_mb * kMiB, static_cast<int64_t>(t_.first_bucket_mb * static_cast<double>(kMiB)));
  }
}

// Rank 0 picks the newest checkpoint that reads back (-1: none). Newer unreadable files are set
// aside as <file>.unreadable so that pruning never mistakes them for the newest.
int64_t Trainer::choose_checkpoint() {
  const auto steps = list_checkpoints(t_.out_dir);
  if (!t_.resume && !steps.empty()) {
    throw Error(cat("--out-dir ", t_.out_dir, " already holds checkpoints (", checkpoint_path(t_.out_dir, steps.back()),
                    "); pass --resume to continue that run or choose another --out-dir"));
  }
  std::string first_problem;
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    const std::string path = checkpoint_path(t_.out_dir, *it);
    try {
      chosen_ = read_checkpoint(path);  // kept: resume_or_start() uses it instead of reading again
      return *it;
    } catch (const Error& e) {
      if (first_problem.empty()) first_problem = e.what();
      log_warn(cat("setting aside unreadable checkpoint (", e.what(), ") as ", path, ".unreadable"));
      std::error_code ec;
      fs::rename(path, path + ".unreadable", ec);
    }
  }
  if (!steps.empty()) {
    throw Error(cat("--resume: none of the ", steps.size(), " checkpoints in ", checkpoint_dir(t_.out_dir),
                    " reads back (", first_problem, "); they were renamed *.unreadable"));
  }
  return -1;
}

// Resuming with other settings than the run that wrote the checkpoint would silently train
// something else: the dilution set, seed and global batch must match; other changes are named.
void Trainer::check_resume_settings(const Checkpoint& ckpt) {
  const TrainState& s = ckpt.state;
  if (s.dilute_layers != t_.dilute_layers) {
    throw Error(cat("checkpoint ", ckpt.path, " dilutes blocks ", join_list(s.dilute_layers), ", not --remove-layers ",
                    join_list(t_.dilute_layers), "; resume with the same selection"));
  }
  if (s.seed != c_.runtime.seed) {
    throw Error(cat("checkpoint ", ckpt.path, " was trained with --seed ", s.seed, ", not ", c_.runtime.seed));
  }
  if (s.global_batch != global_batch_) {
    throw Error(cat("checkpoint ", ckpt.path, " was trained with a global batch of ", s.global_batch, ", not ",
                    global_batch_, " (batch x ranks x accum-steps); the schedule would change"));
  }
  if (s.world_size != mpi_.world_size()) {
    log_warn(cat("checkpoint ", ckpt.path, " was written by ", s.world_size, " rank(s), resuming on ",
                 mpi_.world_size(), ": the data order differs from an uninterrupted run"));
  }
  if (s.config != state_.config) log_warn(cat("resuming with settings that differ from ", ckpt.path, "'s"));
}

void Trainer::resume_or_start() {
  const int64_t chosen = mpi_.broadcast({mpi_.rank() == 0 ? choose_checkpoint() : -1}).at(0);
  state_.world_size = mpi_.world_size();
  state_.seed = c_.runtime.seed;
  state_.config = c_.config_ini;
  state_.dilute_layers = t_.dilute_layers;
  state_.global_batch = global_batch_;
  if (chosen < 0) {
    if (t_.resume) log_info(cat("--resume: no checkpoint in ", checkpoint_dir(t_.out_dir), ", starting from scratch"));
    apply_lambda(current_lambda(0));
  } else {
    Checkpoint ckpt = chosen_ ? std::move(*chosen_) : read_checkpoint(checkpoint_path(t_.out_dir, chosen));
    chosen_.reset();
    const TrainState& s = ckpt.state;
    const int64_t depth = model_->depth();
    if (static_cast<int64_t>(s.modes.size()) != depth) {
      throw Error(cat("checkpoint ", ckpt.path, ": ", s.modes.size(), " blocks, the model has ", depth));
    }
    check_resume_settings(ckpt);
    for (int64_t b = 0; b < depth; ++b) {
      const auto mode = parse_mode(s.modes[static_cast<size_t>(b)], ckpt.path);
      if (mode != model_->block(b)->mode()) model_->set_mode(b, mode, s.lambdas[static_cast<size_t>(b)]);
    }
    state_.epoch = s.epoch;
    state_.step_in_epoch = s.step_in_epoch;
    state_.global_step = s.global_step;
    state_.best_top1 = s.best_top1;
    state_.best_epoch = s.best_epoch;
    state_.epoch_loss_sum = s.epoch_loss_sum;
    state_.epoch_images = s.epoch_images;
    state_.epoch_seconds = s.epoch_seconds;
    rebuild_parameters();
    torch::NoGradGuard no_grad;
    std::map<std::string, torch::Tensor> optim;
    for (auto& [name, p] : params_) {
      auto it = ckpt.tensors.find(kModelPrefix + name);
      if (it == ckpt.tensors.end()) throw Error(cat("checkpoint ", ckpt.path, ": no tensor ", kModelPrefix, name));
      if (!it->second.sizes().equals(p.sizes())) {
        throw Error(
            cat("checkpoint ", ckpt.path, ": ", name, " has shape ", it->second.sizes(), ", the model ", p.sizes()));
      }
      p.copy_(it->second);
      auto ema = ckpt.tensors.find(kEmaPrefix + name);
      if (t_.ema_decay > 0 && ema != ckpt.tensors.end()) ema_[name] = ema->second.to(device_);
    }
    for (auto& [key, tensor] : ckpt.tensors) {
      if (key.rfind(kOptimPrefix, 0) == 0)
        optim.emplace(key.substr(std::string(kOptimPrefix).size()), tensor.to(device_));
    }
    optimizer_->load_state(optim, s.global_step);
    log_info(cat("resumed from ", ckpt.path, ": epoch ", s.epoch, ", step ", s.step_in_epoch, "/", steps_per_epoch_,
                 ", global step ", s.global_step));
    apply_lambda(current_lambda(state_.epoch));
  }
  // Every rank starts from rank 0's weights.
  torch::NoGradGuard no_grad;
  for (auto& [name, p] : params_) {
    auto buffer = p.detach().contiguous();  // parameters are contiguous: in place
    comm_->broadcast(buffer.data_ptr(), buffer.numel() * static_cast<int64_t>(buffer.element_size()), 0);
    if (buffer.data_ptr() != p.data_ptr()) p.copy_(buffer);
  }
  if (t_.ema_decay > 0) {
    for (auto& [name, p] : params_) {
      if (!ema_.count(name)) ema_[name] = p.detach().clone();
    }
  }
  open_trace(chosen < 0 ? 0 : state_.global_step);
}

// Rank 0's trace. On resume the rows of the interrupted run up to the checkpoint are carried
// over, so train.h5 always describes one continuous run.
void Trainer::open_trace(int64_t resume_step) {
  if (mpi_.rank() != 0) return;
  const std::string path = (fs::path(t_.out_dir) / "train.h5").string();
  const int64_t depth = model_->depth();
  std::map<std::string, std::vector<double>> carried;
  std::map<std::string, int64_t> widths = {{"/train/step", static_cast<int64_t>(kStepColumns.size())},
                                           {"/train/step_lambda", depth},
                                           {"/train/epoch", static_cast<int64_t>(kEpochColumns.size())},
                                           {"/train/epoch_lambda", depth},
                                           {"/train/entropy_attn", depth},
                                           {"/train/entropy_mlp", depth}};
  if (resume_step > 0) {
    for (const std::string& candidate : {path + ".partial", path}) {
      if (!fs::exists(candidate)) continue;
      try {
        io::TraceReader old(candidate);
        std::vector<int64_t> dims;
        const auto steps = old.read("/train/step", &dims);
        const int64_t width = widths["/train/step"];
        int64_t keep = 0;
        while (keep < dims[0] && steps[static_cast<size_t>(keep * width)] <= static_cast<double>(resume_step)) ++keep;
        for (const auto& [name, w] : widths) {
          std::vector<int64_t> d;
          auto rows = old.read(name, &d);
          const bool per_step = name.rfind("/train/step", 0) == 0;
          const int64_t n = per_step ? std::min(keep, d[0]) : std::min(state_.epoch, d[0]);
          rows.resize(static_cast<size_t>(n * w));
          carried[name] = std::move(rows);
        }
      } catch (const Error& e) {
        log_warn(cat("trace ", candidate, " not carried over: ", e.what()));
        carried.clear();
      }
      break;
    }
  }
  trace_ =
      std::make_unique<io::TraceFile>(path,
                                      std::map<std::string, std::string>{{"program", "vitslim"},
                                                                         {"version", kVersion},
                                                                         {"schema", "vitslim-trace/1"},
                                                                         {"job", "train"},
                                                                         {"created", utc_timestamp()},
                                                                         {"config", c_.config_ini},
                                                                         {"model_shape", model_->shape().describe()}},
                                      /*keep_partial_on_error=*/true);
  trace_->create_series("/train/step", static_cast<int64_t>(kStepColumns.size()), "one row per optimizer step");
  trace_->create_series("/train/step_lambda", depth, "lambda of every block at each step (1 full, 0 removed)");
  trace_->create_series("/train/epoch", static_cast<int64_t>(kEpochColumns.size()), "one row per epoch");
  trace_->create_series("/train/epoch_lambda", depth, "lambda of every block during each epoch's evaluation");
  trace_->create_series("/train/entropy_attn", depth,
                        "entropy of each attention branch after each epoch (NaN removed)");
  trace_->create_series("/train/entropy_mlp", depth, "entropy of each MLP branch after each epoch");
  trace_->set_attribute("/train/step", "columns", join_names(kStepColumns));
  trace_->set_attribute("/train/epoch", "columns", join_names(kEpochColumns));
  trace_->set_attribute("/train", "dilute_layers", join_list(t_.dilute_layers));
  trace_->set_attribute("/train", "world_size", std::to_string(mpi_.world_size()));
  trace_->set_attribute("/train", "global_batch", std::to_string(global_batch_));
  trace_->set_attribute("/train", "steps_per_epoch", std::to_string(steps_per_epoch_));
  trace_->start_swmr();
  for (const auto& [name, rows] : carried) {
    const int64_t w = widths[name];
    for (size_t r = 0; r + static_cast<size_t>(w) <= rows.size(); r += static_cast<size_t>(w)) {
      trace_->append(name, std::vector<double>(rows.begin() + static_cast<std::ptrdiff_t>(r),
                                               rows.begin() + static_cast<std::ptrdiff_t>(r + static_cast<size_t>(w))));
    }
  }
  trace_->flush();
}

// The epoch's micro-batches from where the run stands, built ahead by the loader threads. Micro-batch
// b holds order[b * B, (b + 1) * B) (wrapping; an empty tail takes the first index, so every rank
// runs the same number of steps). Image i of it is sample number (b * B + i) * world + rank of the
// epoch, which seeds its augmentation: the same for any worker count and on resume.
void Trainer::start_loader(const std::vector<int64_t>& order, int64_t epoch) {
  loader_.reset();
  const int64_t first = state_.step_in_epoch * t_.accum_steps;
  const int64_t count = steps_per_epoch_ * t_.accum_steps - first;
  const int64_t B = micro_batch_, n = static_cast<int64_t>(order.size());
  const uint64_t seed = c_.runtime.seed ^ kSaltAugment;
  const int rank = mpi_.rank(), world = mpi_.world_size();
  const bool pinned = device_.is_cuda();
  const ModelShape shape = model_->shape();  // a copy: the workers never touch the model
  auto make = [this, order, epoch, B, n, seed, rank, world, pinned, shape](int64_t b) {
    const int64_t lo = b * B, hi = std::min<int64_t>(lo + B, n);
    std::vector<int64_t> chunk;
    std::vector<uint64_t> seeds;
    for (int64_t i = lo; i < hi; ++i) {
      chunk.push_back(order[static_cast<size_t>(i % n)]);
      seeds.push_back(data::mix_seed(seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(i * world + rank)));
    }
    if (chunk.empty()) {
      chunk.push_back(order.front());
      seeds.push_back(data::mix_seed(seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(rank)));
    }
    if (augment_) return data::load_train_batch(*train_set_, chunk, seeds, augment_settings_, pinned);
    return data::load_batch(*train_set_, chunk, norm_.mean, norm_.std, shape);
  };
  loader_ = std::make_unique<data::Loader>(first, count, make, c_.data.workers, c_.data.prefetch);
}

// One optimizer step (accum_steps micro-batches). Returns false when the run must stop here.
bool Trainer::train_step(int64_t epoch) {
  const auto step_start = Clock::now();
  double data_seconds = 0;
  const double lr = lr_.at(state_.global_step);
  if (t_.lambda_per_step) apply_lambda(current_lambda(epoch));
  model_->train();
  for (auto& [name, p] : params_) p.mutable_grad() = torch::Tensor();  // set to none: fresh accumulation
  double loss_sum = 0;
  int64_t images = 0;
  for (int64_t m = 0; m < t_.accum_steps; ++m) {
    const auto data_start = Clock::now();
    auto batch = loader_->next();
    const uint64_t stream = static_cast<uint64_t>(state_.global_step * t_.accum_steps + m);
    const auto mix =
        data::draw_mix(mixup_, batch.images.size(2), batch.images.size(3),
                       data::mix_seed(c_.runtime.seed ^ kSaltMix, static_cast<uint64_t>(mpi_.rank()), stream));
    auto targets = data::apply_mix(batch.images, batch.labels, mix, mixup_);  // [B, K]
    auto images_dev = batch.images.to(device_, /*non_blocking=*/true);
    targets = targets.to(device_, /*non_blocking=*/true);
    data_seconds += std::chrono::duration<double>(Clock::now() - data_start).count();

    torch::manual_seed(data::mix_seed(c_.runtime.seed ^ kSaltTorch, static_cast<uint64_t>(mpi_.rank()), stream));
    torch::Tensor loss;
    {
      model::CudaBf16Autocast autocast(device_.is_cuda() && t_.bf16);
      loss = soft_cross_entropy(model_->forward(images_dev), targets);  // logits [B, K] -> []
    }
    loss_sum += loss.item<double>();
    images += batch.labels.size(0);
    if (reducer_) reducer_->begin(m + 1 == t_.accum_steps);
    (loss / static_cast<double>(t_.accum_steps)).backward();
  }
  if (reducer_) reducer_->finish();
  const double loss = loss_sum / static_cast<double>(t_.accum_steps);
  const double norm = grad_norm(params_);  // of the averaged gradients: the same on every rank

  // Collective decision: any rank's stop signal, non-finite loss or gradient stops every rank here.
  auto flags = torch::tensor({static_cast<int64_t>(StopSignals::received()),
                              static_cast<int64_t>(std::isfinite(loss) ? 0 : mpi_.rank() + 1),
                              static_cast<int64_t>(std::isfinite(norm) ? 0 : mpi_.rank() + 1)},
                             torch::kInt64)
                   .to(device_);
  comm_->allreduce_max(flags.data_ptr(), 3, dist::DType::Int64);
  flags = flags.cpu();
  const int64_t control[3] = {flags[0].item<int64_t>(), flags[1].item<int64_t>(), flags[2].item<int64_t>()};
  if (control[1] != 0 || control[2] != 0) {
    const auto kept = mpi_.rank() == 0 ? list_checkpoints(t_.out_dir) : std::vector<int64_t>{};
    throw CollectiveError(cat(control[1] != 0 ? "non-finite loss" : "non-finite gradients", " at epoch ", epoch,
                              ", global step ", state_.global_step, " on rank ",
                              (control[1] != 0 ? control[1] : control[2]) - 1, "; the weights were not updated",
                              kept.empty() ? std::string("; no checkpoint was written yet")
                                           : cat("; last good checkpoint ", checkpoint_path(t_.out_dir, kept.back()))));
  }
  clip_grad_norm(params_, t_.clip_grad, norm);
  optimizer_->step(params_, lr);
  if (t_.ema_decay > 0) {
    torch::NoGradGuard no_grad;
    for (auto& [name, p] : params_) ema_[name].lerp_(p, 1.0 - t_.ema_decay);
  }
  ++state_.global_step;
  ++state_.step_in_epoch;
  last_loss_ = loss;
  state_.epoch_loss_sum += loss;
  state_.epoch_images += images * mpi_.world_size();

  const double seconds = std::chrono::duration<double>(Clock::now() - step_start).count();
  state_.epoch_seconds += seconds;
  const double rate = static_cast<double>(images * mpi_.world_size()) / seconds;
  if (trace_) {
    const double wait = reducer_ ? reducer_->stats().last_wait_seconds : 0.0;
    trace_->append("/train/step", {static_cast<double>(state_.global_step), static_cast<double>(epoch), loss, lr, norm,
                                   rate, data_seconds, wait});
    trace_->append("/train/step_lambda", block_lambdas());
    trace_->flush();
  }
  progress_->update(cat("epoch ", epoch + 1, "/", t_.epochs), state_.step_in_epoch, steps_per_epoch_,
                    cat("loss ", fmt(loss), " lr ", fmt(lr, 3), " ", static_cast<int64_t>(rate), " img/s"));

  if (t_.checkpoint_steps > 0 && state_.global_step % t_.checkpoint_steps == 0 &&
      state_.step_in_epoch < steps_per_epoch_) {
    save_checkpoint();
  }
  if (control[0] != 0) {
    stop_signal_ = static_cast<int>(control[0]);
    return false;
  }
  return true;
}

void Trainer::end_epoch(int64_t epoch, double train_loss, double seconds, int64_t images) {
  progress_->finish();
  const auto counts = evaluate_sharded(model_, *eval_set_, eval_images_, norm_.mean, norm_.std, micro_batch_, mpi_);
  const double top1 = 100.0 * static_cast<double>(counts.top1) / static_cast<double>(counts.images);
  const double top5 = 100.0 * static_cast<double>(counts.top5) / static_cast<double>(counts.images);
  const double eval_loss = counts.loss_sum / static_cast<double>(counts.images);
  last_top1_ = top1;
  const std::vector<double> lambdas = block_lambdas();
  double min_lambda = 1.0;
  for (int64_t b : t_.dilute_layers) min_lambda = std::min(min_lambda, lambdas[static_cast<size_t>(b)]);
  ++state_.epoch;
  state_.step_in_epoch = 0;
  state_.epoch_loss_sum = 0;
  state_.epoch_images = 0;
  state_.epoch_seconds = 0;
  if (mpi_.rank() == 0) {
    if (t_.entropy_images > 0) {
      const auto h =
          entropy::branch_entropies(model_, *train_set_, entropy_indices_, norm_.mean, norm_.std, micro_batch_);
      trace_->append("/train/entropy_attn", h.attn);
      trace_->append("/train/entropy_mlp", h.mlp);
    }
    trace_->append("/train/epoch", {static_cast<double>(epoch), train_loss, top1, top5, eval_loss, seconds,
                                    static_cast<double>(images)});
    trace_->append("/train/epoch_lambda", lambdas);
    trace_->flush();
    // "Best" only once every diluted block is gone: an accuracy at lambda > 0 is not the
    // accuracy of the model we ship (the reference code's bug).
    const bool eligible = all_removed();
    const bool best = eligible && top1 > state_.best_top1;
    if (best) {
      state_.best_top1 = top1;
      state_.best_epoch = epoch;
      export_model("best.safetensors", false);
    }
    log_info(cat("epoch ", epoch + 1, "/", t_.epochs, ": train loss ", fmt(train_loss), ", top-1 ", fmt(top1),
                 "%, top-5 ", fmt(top5), "%, eval loss ", fmt(eval_loss), ", lambda ", fmt(min_lambda, 3),
                 best       ? " (best)"
                 : eligible ? ""
                            : " (not final)",
                 ", ", fmt(seconds, 3), " s"));
  }
  save_checkpoint();
}

Named Trainer::tensors_for_checkpoint() {
  Named out;
  for (auto& [name, p] : params_) out.emplace_back(kModelPrefix + name, p.detach().to(torch::kCPU));
  for (auto& [name, t] : optimizer_->state_tensors()) out.emplace_back(kOptimPrefix + name, t.to(torch::kCPU));
  for (auto& [name, t] : ema_) out.emplace_back(kEmaPrefix + name, t.to(torch::kCPU));
  return out;
}

void Trainer::save_checkpoint() {
  if (mpi_.rank() != 0) return;
  state_.modes.clear();
  state_.lambdas.clear();
  for (int64_t b = 0; b < model_->depth(); ++b) {
    state_.modes.emplace_back(model::to_string(model_->block(b)->mode()));
    state_.lambdas.push_back(model_->block(b)->lambda());
  }
  const std::string path = checkpoint_path(t_.out_dir, state_.global_step);
  write_checkpoint(path, state_, tensors_for_checkpoint(), model::model_metadata(model_));
  prune_checkpoints(t_.out_dir, t_.keep_last);
  write_summary(false);
}

// A deployable model file: parameters (or their EMA) with the removed layers in the metadata.
void Trainer::export_model(const std::string& name, bool ema) {
  const std::string path = (fs::path(t_.out_dir) / name).string();
  if (!ema) {
    model::export_safetensors(model_, path);
    return;
  }
  // Swap the EMA weights in, export, swap back.
  torch::NoGradGuard no_grad;
  std::map<std::string, torch::Tensor> saved;
  for (auto& [n, p] : params_) {
    saved[n] = p.detach().clone();
    p.copy_(ema_.at(n));
  }
  model::export_safetensors(model_, path);
  for (auto& [n, p] : params_) p.copy_(saved[n]);
}

void Trainer::write_summary(bool finished) {
  std::vector<std::string> modes;
  for (int64_t b = 0; b < model_->depth(); ++b) modes.emplace_back(model::to_string(model_->block(b)->mode()));
  nlohmann::json j = {{"program", "vitslim"},
                      {"version", kVersion},
                      {"job", "train"},
                      {"finished", finished},
                      {"stopped_by_signal", stop_signal_},
                      {"epoch", state_.epoch},
                      {"global_step", state_.global_step},
                      {"epochs", t_.epochs},
                      {"steps_per_epoch", steps_per_epoch_},
                      {"global_batch", global_batch_},
                      {"world_size", mpi_.world_size()},
                      {"dilute_layers", t_.dilute_layers},
                      {"removed_layers", model_->removed_blocks()},
                      {"modes", modes},
                      {"last_loss", last_loss_},
                      {"last_top1", last_top1_},
                      {"best_top1", state_.best_top1},
                      {"best_epoch", state_.best_epoch},
                      {"seconds", std::chrono::duration<double>(Clock::now() - started_).count()},
                      {"rss_start_mib", rss_start_mib_},
                      {"rss_peak_mib", peak_resident_mib()},
                      {"checkpoint", state_.global_step > 0 ? checkpoint_path(t_.out_dir, state_.global_step) : ""}};
  write_file_atomic((fs::path(t_.out_dir) / "train.json").string(), j.dump(2) + "\n");
}

// Errors on one rank end every rank here, before the communicator and reducer unwind: their
// teardown could wait on collectives the other ranks will never join.
TrainResult Trainer::run() {
  try {
    return run_steps();
  } catch (const CollectiveError&) {
    throw;  // every rank stops here together
  } catch (const std::exception& e) {
    if (mpi_.world_size() > 1) mpi_.abort_with_error(e.what());
    throw;
  }
}

TrainResult Trainer::run_steps() {
  setup();
  if (mpi_.rank() == 0) {
    std::error_code ec;
    fs::create_directories(checkpoint_dir(t_.out_dir), ec);
    if (ec) throw Error(cat("--out-dir ", t_.out_dir, ": cannot create (", ec.message(), ")"));
  }
  mpi_.barrier();
  resume_or_start();
  StopSignals signals;
  rss_start_mib_ = resident_mib();
  while (state_.epoch < t_.epochs) {
    const int64_t epoch = state_.epoch;
    apply_lambda(current_lambda(epoch));
    start_loader(sampler_->epoch_indices(epoch), epoch);
    while (state_.step_in_epoch < steps_per_epoch_) {
      if (!train_step(epoch)) {
        progress_->finish();
        save_checkpoint();
        log_info(cat("signal ", stop_signal_, ": checkpoint ", checkpoint_path(t_.out_dir, state_.global_step),
                     " written; resume with --resume"));
        return {false, stop_signal_, t_.out_dir, state_.best_top1};
      }
    }
    loader_.reset();
    // The epoch's sums live in the state, so a resumed epoch reports the whole epoch.
    end_epoch(epoch, state_.epoch_loss_sum / static_cast<double>(steps_per_epoch_), state_.epoch_seconds,
              state_.epoch_images);
  }
  train_set_->bad_images().summarise(train_set_->name());
  eval_set_->bad_images().summarise(eval_set_->name());
  if (mpi_.rank() == 0) {
    export_model("final.safetensors", false);
    if (t_.ema_decay > 0) export_model("final-ema.safetensors", true);
    trace_->commit();
    write_summary(true);
    const auto removed = model_->removed_blocks();
    log_info(cat("done: ", (fs::path(t_.out_dir) / "final.safetensors").string(), " (attention removed in blocks ",
                 removed.empty() ? std::string("none") : join_list(removed), ")",
                 state_.best_epoch >= 0
                     ? cat("; best top-1 ", fmt(state_.best_top1), "% at epoch ", state_.best_epoch + 1)
                     : std::string("; no epoch ran with every diluted block removed")));
  }
  return {true, 0, t_.out_dir, state_.best_top1};
}

}  // namespace

TrainResult run_training(const TrainInputs& inputs, const dist::MpiSession& mpi) {
  Trainer trainer(inputs, mpi);
  return trainer.run();
}

}  // namespace vitslim::train
