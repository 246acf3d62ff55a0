// The trainer's set-up (see trainer_impl.h): the model (preset, weights, diluting blocks, the
// teacher), the data (sets, normalisation, loader, entropy images), the optimisation (plan, AdamW,
// reducer, trace, progress) and resuming from the newest checkpoint.
#include "train/trainer_impl.h"

namespace vitslim::train {

void Trainer::setup() {
  setup_model();
  setup_data();
  setup_optimisation();
  log_info(cat("train: ", model_->shape().describe(), "; ", describe_plan(plan_, t_)));
  if (!t_.dilute_layers.empty() && plan_.lambda.at(t_.epochs - 1, t_.epochs * plan_.steps_per_epoch - 1) > 0) {
    log_warn(cat("--decay-epochs ", fmt(plan_.lambda.decay_epochs), " is not reached within --epochs ", t_.epochs,
                 ": the diluted blocks keep their attention and no epoch qualifies for best.safetensors"));
  }
  log_info(cat("train: ", train_set_->name(), " ", train_set_->size(), " images, ", mpi_.world_size(),
               " rank(s), backend ", comm_->backend()));
}

void Trainer::setup_model() {
  model::use_default_preset(c_.model);
  device_ = dist::open_device(c_.compute, mpi_);
  model_ = model::build_model(c_.model, c_.runtime.seed);
  model::warn_if_bf16_emulated(device_.type(), t_.bf16);
  const ModelShape& shape = model_->shape();
  for (int64_t b : t_.dilute_layers) {
    if (b >= shape.depth) throw Error(cat("--remove-layers: block ", b, " does not exist (depth ", shape.depth, ")"));
    if (model::is_removed(model_->block(b)->mode())) {
      throw Error(cat("--remove-layers: block ", b, "'s attention is already removed in ", c_.model.weights));
    }
  }
  if (t_.distill.kind != Distill::None) {
    teacher_ = std::make_unique<Teacher>(t_.teacher, c_.model, shape, c_.runtime.seed, device_);
    log_info(cat("train: ", teacher_identity(), " (", teacher_->file(), ")"));
  }
}

void Trainer::setup_data() {
  const ModelShape& shape = model_->shape();
  DataConfig train_data = c_.data;
  train_data.split = "train";
  DataConfig eval_data = c_.data;
  eval_data.split = "test";
  train_set_ = data::open_dataset(train_data, shape, c_.runtime.seed, dist::root_share(mpi_));
  eval_set_ = data::open_dataset(eval_data, shape, c_.runtime.seed, dist::root_share(mpi_));
  dist::agree_across_ranks(mpi_, "data", train_set_->size_summary() + "\n" + eval_set_->size_summary());
  evaluation::check_class_count(shape, *train_set_);
  norm_ = data::normalisation(c_.data, *train_set_);
  eval_images_ = t_.eval_images > 0 ? t_.eval_images : eval_set_->size();
  if (eval_images_ > eval_set_->size()) {
    throw Error(cat("--eval-images ", eval_images_, " is more than the ", eval_set_->size(), " test images"));
  }
  if (t_.entropy_images > train_set_->size()) {
    throw Error(
        cat("--entropy-images ", t_.entropy_images, " is more than the ", train_set_->size(), " training images"));
  }
  entropy_indices_ =
      data::calibration_indices(train_set_->size(), t_.entropy_images, mix_seed(c_.runtime.seed, kEntropySeedSalt));
  batches_ = std::make_unique<TrainBatches>(
      *train_set_, BatchSettings{c_.data, norm_, shape, mixup_options(t_, shape.num_classes), c_.runtime.seed,
                                 mpi_.rank(), mpi_.world_size(), t_.repeated_aug, device_.is_cuda(),
                                 /*planes=*/device_.is_cuda()});
}

void Trainer::setup_optimisation() {
  plan_ = make_plan(t_, c_.data.batch_size, batches_->samples_per_rank(), mpi_.world_size());
  const auto no_decay = model_->no_weight_decay_names();
  optimizer_ = std::make_unique<AdamW>(adamw_options(t_), std::set<std::string>(no_decay.begin(), no_decay.end()));
  deadline_ = std::make_unique<dist::CollectiveDeadline>(mpi_, t_.collective_timeout);
  comm_ = dist::make_communicator(mpi_, device_.is_cuda() ? Device::Cuda : Device::Cpu,
                                  device_.is_cuda() ? device_.index() : 0, dist::CommOptions{t_.collective_timeout});
  model_->to(device_);
  progress_ = std::make_unique<ProgressLine>(mpi_.rank() == 0 && !c_.runtime.quiet);
  std::function<void()> fence;
  if (device_.is_cuda()) fence = [] { torch::cuda::synchronize(); };
  phases_ = std::make_unique<PhaseClock>(t_.profile, std::move(fence));
}

// Sets every diluting block's lambda; at 0 they become Removed (their parameters go away).
void Trainer::apply_lambda(double lambda) {
  const bool removed = train::apply_lambda(model_, t_.dilute_layers, lambda);
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

// Rank 0 chooses the checkpoint (the newest that reads back) and says which; every rank reads it.
namespace {
// Whether out_dir holds a finished run: final.safetensors and a train.json that says so.
bool finished_run(const std::string& out_dir) {
  const fs::path summary = fs::path(out_dir) / "train.json";
  if (!fs::is_regular_file(fs::path(out_dir) / "final.safetensors") || !fs::is_regular_file(summary)) return false;
  try {
    return read_train_summary(summary.string()).finished;
  } catch (const Error&) {
    return false;  // unreadable: the run is finished again and the file rewritten
  }
}
}  // namespace

void Trainer::resume_or_start() {
  std::optional<model::Checkpoint> ckpt;
  if (mpi_.rank() == 0) ckpt = newest_checkpoint(t_.out_dir, t_.resume);
  const int64_t chosen = mpi_.broadcast({ckpt ? ckpt->state.global_step : -1}).at(0);
  if (chosen >= 0 && !ckpt) ckpt = model::read_checkpoint(model::checkpoint_path(t_.out_dir, chosen));
  state_.world_size = mpi_.world_size();
  state_.seed = c_.runtime.seed;
  state_.config = c_.config_ini;
  state_.dilute_layers = t_.dilute_layers;
  state_.global_batch = plan_.global_batch;
  state_.teacher = teacher_identity();
  if (!ckpt) {
    if (t_.resume)
      log_info(cat("--resume: no checkpoint in ", model::checkpoint_dir(t_.out_dir), ", starting from scratch"));
    apply_lambda(current_lambda(0));
  } else {
    restore_modes(*ckpt, model_);
    check_resume_settings(*ckpt, {t_.dilute_layers, c_.runtime.seed, plan_.global_batch, mpi_.world_size(),
                                  state_.teacher, state_.config});
    restore_progress(ckpt->state, state_);
    rebuild_parameters();
    restore_tensors(*ckpt, params_, t_.ema_decay > 0, device_, *optimizer_, ema_);
    log_info(cat("resumed from ", ckpt->path, ": epoch ", state_.epoch, ", step ", state_.step_in_epoch, "/",
                 plan_.steps_per_epoch, ", global step ", state_.global_step));
    apply_lambda(current_lambda(state_.epoch));
  }
  finished_earlier_ =
      mpi_.broadcast({ckpt && state_.epoch >= t_.epochs && mpi_.rank() == 0 && finished_run(t_.out_dir)}).at(0) != 0;
  if (finished_earlier_) return;
  broadcast_weights();
  if (mpi_.rank() == 0) {
    trace_ = std::make_unique<TrainTrace>(
        TraceInfo{(fs::path(t_.out_dir) / "train.h5").string(), c_.config_ini, model_->shape().describe(),
                  model_->depth(), t_.dilute_layers, mpi_.world_size(), plan_.global_batch, plan_.steps_per_epoch},
        ckpt ? state_.global_step : 0, state_.epoch);
  }
}

// Every rank starts from rank 0's weights; the EMA starts from them where the checkpoint had none.
void Trainer::broadcast_weights() {
  broadcast_parameters(*comm_, params_);
  if (t_.ema_decay > 0) {
    for (auto& [name, p] : params_) {
      if (!ema_.count(name)) ema_[name] = p.detach().clone();
    }
  }
}

}  // namespace vitslim::train
