// Implements the training loop (see trainer.h) from its pieces: the plan (plan.h), the step's
// arithmetic (step.h), the trace (train_trace.h), resuming (resume.h) and checkpoints
// (train_checkpoint.h). What is left here is the order of things: setup, resume, per step the
// data, the collective stop / non-finite decision and the record, per epoch the evaluation,
// entropy, best export and checkpoint, and the final exports.
//
// No step waits for the GPU: a step's loss and gradient norm stay on the device until the next
// sync point (every --log-every steps, before a checkpoint, at the end of an epoch), where they
// come back in one copy, the ranks agree on stop signals and non-finite steps, and the trace rows
// are written. A non-finite step is skipped on the device (update_step) and stops the run at the
// sync point, before any checkpoint could hold what came after it.
#include "train/trainer.h"

#include <torch/cuda.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "core/background.h"
#include "core/cpu_memory.h"
#include "core/dir_lock.h"
#include "core/error.h"
#include "core/json_text.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/signals.h"
#include "core/version.h"
#include "data/dataset.h"
#include "data/rng.h"
#include "dist/communicator.h"
#include "dist/gpu_select.h"
#include "dist/mpi_session.h"
#include "dist/reducer.h"
#include "entropy/branch_stats.h"
#include "evaluation/evaluate.h"
#include "model/autocast.h"
#include "model/checkpoint.h"
#include "model/presets.h"
#include "train/batches.h"
#include "train/dilution.h"
#include "train/distill.h"
#include "train/phases.h"
#include "train/plan.h"
#include "train/resume.h"
#include "train/step.h"
#include "train/train_summary.h"
#include "train/train_trace.h"

namespace vitslim::train {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int64_t kMiB = 1 << 20;
// Salts that separate the random streams drawn from (seed, rank, step).
constexpr uint64_t kSaltTorch = 0x746f726368ULL;  // drop-path (LibTorch's generator)
constexpr uint64_t kEntropySeedSalt = 0x656e74ULL;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A step whose numbers are still on the device, waiting for the next sync point.
struct PendingStep {
  int64_t step = 0;  // global step (0-based) that ran
  int64_t epoch = 0;
  at::Tensor values;  // float64 [2] on the device: loss, gradient norm
  double lr = 0, data_seconds = 0;
  int64_t images = 0;                          // this rank's
  std::unique_ptr<dist::WaitTimer> comm_wait;  // null without a reducer
  std::vector<double> lambdas;
};

class Trainer {
 public:
  Trainer(const TrainInputs& inputs, const dist::MpiSession& mpi) : c_(inputs), t_(c_.train), mpi_(mpi) {}
  TrainResult run();

 private:
  void setup();
  void setup_model();
  void setup_data();
  void setup_optimisation();
  void resume_or_start();
  void broadcast_weights();
  TrainResult run_steps();
  void apply_lambda(double lambda);
  void rebuild_parameters();
  bool train_step(int64_t epoch);
  bool sync_due() const;
  int64_t settle_steps();
  void record_steps(const double* values);
  void end_epoch(int64_t epoch, double train_loss, double seconds, int64_t images);
  void record_epoch(const EpochRow& row, const std::vector<double>& lambdas);
  void save_checkpoint();
  // A deployable model file in --out-dir: parameters (or their EMA), removed layers in the metadata.
  void export_model(const std::string& name, bool ema, const std::map<std::string, std::string>& metadata = {}) {
    train::export_model(model_, params_, ema ? &ema_ : nullptr, (fs::path(t_.out_dir) / name).string(), metadata);
  }
  // final.safetensors' provenance (model::kMetaProvenance): what made it and its last evaluation.
  std::map<std::string, std::string> provenance();
  void write_summary(bool finished);
  TrainSummary summary(bool finished);
  double current_lambda(int64_t epoch) const { return plan_.lambda.at(epoch, state_.global_step); }
  StepOptions step_options() const { return {t_.accum_steps, t_.clip_grad, t_.ema_decay, t_.bf16, t_.distill}; }
  // What teaches this run, for its identity: empty without distillation.
  std::string teacher_identity() const {
    if (!teacher_) return "";
    return cat(to_string(t_.distill.kind), " distillation (alpha ", fmt(t_.distill.alpha), ", tau ",
               fmt(t_.distill.tau), ") from teacher ", teacher_->fingerprint());
  }

  TrainInputs c_;
  const TrainConfig& t_;
  const dist::MpiSession& mpi_;
  std::unique_ptr<dist::Communicator> comm_;
  torch::Device device_{torch::kCPU};
  model::VisionTransformer model_{nullptr};
  std::unique_ptr<Teacher> teacher_;  // --distill soft|hard
  std::unique_ptr<data::Dataset> train_set_, eval_set_;
  Normalisation norm_;
  std::unique_ptr<TrainBatches> batches_;
  std::unique_ptr<AdamW> optimizer_;
  std::unique_ptr<dist::GradientReducer> reducer_;
  NamedTensors params_;
  std::map<std::string, torch::Tensor> ema_;
  TrainPlan plan_;
  TrainState state_;
  std::unique_ptr<DirLock> out_lock_;                   // rank 0: --out-dir is this run's alone
  std::unique_ptr<dist::CollectiveDeadline> deadline_;  // MPI collectives end after --collective-timeout
  BackgroundTask writer_;                               // rank 0, GPU runs: checkpoint writes
  std::unique_ptr<TrainTrace> trace_;
  std::unique_ptr<ProgressLine> progress_;
  std::unique_ptr<PhaseClock> phases_;  // --profile, else disabled
  std::string progress_status_;         // the last sync point's loss, lr and images/s
  int64_t eval_images_ = 0;
  std::vector<int64_t> entropy_indices_;
  std::vector<PendingStep> pending_;
  Clock::time_point last_settle_ = Clock::now();
  double last_loss_ = 0, last_top1_ = -1;
  int stop_signal_ = 0;
  bool first_batch_seen_ = false;
  double rss_start_mib_ = -1;  // resident memory when the first step starts
  Clock::time_point started_ = Clock::now();
};

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
  entropy_indices_ = data::calibration_indices(train_set_->size(), t_.entropy_images,
                                               data::mix_seed(c_.runtime.seed, kEntropySeedSalt));
  batches_ = std::make_unique<TrainBatches>(
      *train_set_, BatchSettings{c_.data, norm_, shape, mixup_options(t_, shape.num_classes), c_.runtime.seed,
                                 mpi_.rank(), mpi_.world_size(), t_.repeated_aug, device_.is_cuda()});
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
void Trainer::resume_or_start() {
  std::optional<Checkpoint> ckpt;
  if (mpi_.rank() == 0) ckpt = newest_checkpoint(t_.out_dir, t_.resume);
  const int64_t chosen = mpi_.broadcast({ckpt ? ckpt->state.global_step : -1}).at(0);
  if (chosen >= 0 && !ckpt) ckpt = read_checkpoint(checkpoint_path(t_.out_dir, chosen));
  state_.world_size = mpi_.world_size();
  state_.seed = c_.runtime.seed;
  state_.config = c_.config_ini;
  state_.dilute_layers = t_.dilute_layers;
  state_.global_batch = plan_.global_batch;
  state_.teacher = teacher_identity();
  if (!ckpt) {
    if (t_.resume) log_info(cat("--resume: no checkpoint in ", checkpoint_dir(t_.out_dir), ", starting from scratch"));
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

// One optimizer step (accum_steps micro-batches), queued without waiting for the device. Returns
// false when the run must stop here (a stop signal, agreed at a sync point).
bool Trainer::train_step(int64_t epoch) {
  phases_->begin_step();
  double data_seconds = 0;
  const double lr = plan_.lr.at(state_.global_step);
  if (t_.lambda_per_step) apply_lambda(current_lambda(epoch));
  comm_->set_context(cat("epoch ", epoch, ", global step ", state_.global_step));
  const auto seed_of = [this](int64_t m) {
    const uint64_t stream = static_cast<uint64_t>(state_.global_step * t_.accum_steps + m);
    return data::mix_seed(c_.runtime.seed ^ kSaltTorch, static_cast<uint64_t>(mpi_.rank()), stream);
  };
  const StepLoss step = backward_step(
      model_, params_, step_options(),
      [&](int64_t m) {
        MicroBatch batch =
            batches_->next(static_cast<uint64_t>(state_.global_step * t_.accum_steps + m), device_, data_seconds);
        if (!first_batch_seen_) {  // start-up cost: MPI, the dataset index, the model, the loader
          first_batch_seen_ = true;
          log_info(cat("train: first batch after ", fmt(process_seconds(), 3), " s (from the process start)"));
        }
        phases_->lap(Phase::Data);
        if (teacher_) batch.teacher = teacher_->logits(batch.images, t_.bf16);  // [B, K], same mixed images
        phases_->lap(Phase::Teacher);
        return batch;
      },
      seed_of, reducer_.get(), phases_.get());
  const at::Tensor norm = grad_norm(params_);  // of the averaged gradients: the same on every rank
  update_step(params_, *optimizer_, lr, norm, not_finite(step.loss, norm), step_options(), ema_, phases_.get());
  PendingStep row;
  row.step = state_.global_step;
  row.epoch = epoch;
  row.values = torch::stack({step.loss, norm.to(torch::kFloat64)});  // [2]
  row.lr = lr;
  row.data_seconds = data_seconds;
  row.images = step.images;
  if (reducer_) row.comm_wait = reducer_->take_wait_timer();
  row.lambdas = block_lambdas(model_);
  pending_.push_back(std::move(row));
  ++state_.global_step;
  ++state_.step_in_epoch;
  // A line at most every 10 s (the loss and images/s of the last sync point; no device sync here).
  progress_->update(cat("epoch ", epoch + 1, "/", t_.epochs), state_.step_in_epoch, plan_.steps_per_epoch,
                    progress_status_);
  const int64_t stop = sync_due() ? settle_steps() : 0;
  phases_->lap(Phase::Record);
  phases_->end_step();
  if (sync_due() && t_.checkpoint_steps > 0 && state_.global_step % t_.checkpoint_steps == 0 &&
      state_.step_in_epoch < plan_.steps_per_epoch) {
    save_checkpoint();
    last_settle_ = Clock::now();  // the checkpoint's time is not training time
  }
  if (stop == 0) return true;
  stop_signal_ = static_cast<int>(stop);
  return false;
}

// Every --log-every steps, before each checkpoint and at the end of an epoch.
bool Trainer::sync_due() const {
  return state_.global_step % t_.log_every == 0 ||
         (t_.checkpoint_steps > 0 && state_.global_step % t_.checkpoint_steps == 0) ||
         state_.step_in_epoch == plan_.steps_per_epoch;
}

// The sync point: the pending steps' numbers in one copy from the device, the collective decision
// (any rank's stop signal; the earliest non-finite step on any rank stops every rank here), then
// their trace rows and the progress line. Returns the agreed stop signal (0: go on).
int64_t Trainer::settle_steps() {
  if (pending_.empty()) return 0;
  std::vector<at::Tensor> device_values;
  for (const auto& row : pending_) device_values.push_back(row.values);
  const at::Tensor values = torch::stack(device_values).cpu().contiguous();  // [n, 2] float64: loss, norm
  comm_->check_health();
  const double* v = values.data_ptr<double>();
  int64_t bad_loss = -1, bad_grad = -1;
  for (size_t k = 0; k < pending_.size(); ++k) {
    if (bad_loss < 0 && !std::isfinite(v[2 * k])) bad_loss = pending_[k].step;
    if (bad_grad < 0 && !std::isfinite(v[2 * k + 1])) bad_grad = pending_[k].step;
  }
  const StepFlags f = agree_on_steps(mpi_, StopSignals::received(), bad_loss, bad_grad);
  if (f.first_bad_step() >= 0) {
    const int64_t bad = f.first_bad_step();
    int64_t epoch = pending_.front().epoch;
    for (const auto& row : pending_) epoch = row.step == bad ? row.epoch : epoch;
    const auto kept = mpi_.rank() == 0 ? list_checkpoints(t_.out_dir) : std::vector<int64_t>{};
    throw_if_not_finite(f, epoch, kept.empty() ? "" : checkpoint_path(t_.out_dir, kept.back()));
  }
  record_steps(v);
  pending_.clear();
  return f.stop_signal;
}

// The settled steps (`values`: loss, norm per pending step): epoch sums, trace rows with one
// flush, the progress line. Throughput is over the steps since the last sync point: on a GPU the
// host runs ahead, so only that sum is real time.
void Trainer::record_steps(const double* values) {
  const double seconds = seconds_since(last_settle_);
  last_settle_ = Clock::now();
  int64_t images = 0;
  for (const auto& row : pending_) images += row.images;
  const double rate = static_cast<double>(images * mpi_.world_size()) / seconds;
  state_.epoch_seconds += seconds;
  state_.step_seconds += seconds;
  for (size_t k = 0; k < pending_.size(); ++k) {
    PendingStep& row = pending_[k];
    const double loss = values[2 * k], norm = values[2 * k + 1];
    last_loss_ = loss;
    state_.epoch_loss_sum += loss;
    state_.epoch_images += row.images * mpi_.world_size();
    if (!trace_) continue;
    const double wait = row.comm_wait ? row.comm_wait->seconds() : 0.0;
    trace_->add_step({row.step + 1, row.epoch, loss, row.lr, norm, rate, row.data_seconds, wait}, row.lambdas);
  }
  if (trace_) trace_->flush();
  const PendingStep& last = pending_.back();
  progress_status_ = cat("loss ", fmt(last_loss_), " lr ", fmt(last.lr, 3), " ", static_cast<int64_t>(rate), " img/s");
  progress_->update(cat("epoch ", last.epoch + 1, "/", t_.epochs), state_.step_in_epoch, plan_.steps_per_epoch,
                    progress_status_);
}

void Trainer::end_epoch(int64_t epoch, double train_loss, double seconds, int64_t images) {
  progress_->finish();
  const auto counts = evaluation::evaluate_sharded(model_, *eval_set_, eval_images_, norm_.mean, norm_.std,
                                                   plan_.micro_batch, t_.bf16, mpi_);
  const EpochRow row{epoch,   train_loss, counts.top1_percent(), counts.top5_percent(), counts.mean_loss(),
                     seconds, images};
  last_top1_ = row.top1;
  const std::vector<double> lambdas = block_lambdas(model_);
  ++state_.epoch;
  state_.step_in_epoch = 0;
  state_.epoch_loss_sum = 0;
  state_.epoch_images = 0;
  state_.epoch_seconds = 0;
  if (mpi_.rank() == 0) record_epoch(row, lambdas);
  save_checkpoint();
}

// Rank 0: the epoch's entropy and trace rows, best.safetensors, the log line.
void Trainer::record_epoch(const EpochRow& row, const std::vector<double>& lambdas) {
  if (t_.entropy_images > 0) {
    const auto h =
        entropy::branch_entropies(model_, *train_set_, entropy_indices_, norm_.mean, norm_.std, plan_.micro_batch);
    trace_->add_entropy(h.attn, h.mlp);
  }
  trace_->add_epoch(row, lambdas);
  double min_lambda = 1.0;
  for (int64_t b : t_.dilute_layers) min_lambda = std::min(min_lambda, lambdas[static_cast<size_t>(b)]);
  // "Best" only once every diluted block is gone: an accuracy at lambda > 0 is not the accuracy of
  // the model we ship (the reference code's bug).
  const bool eligible = all_removed(model_, t_.dilute_layers);
  const bool best = eligible && row.top1 > state_.best_top1;
  if (best) {
    state_.best_top1 = row.top1;
    state_.best_epoch = row.epoch;
    export_model("best.safetensors", false);
  }
  log_info(cat("epoch ", row.epoch + 1, "/", t_.epochs, ": train loss ", fmt(row.train_loss), ", top-1 ", fmt(row.top1),
               "%, top-5 ", fmt(row.top5), "%, eval loss ", fmt(row.eval_loss), ", lambda ", fmt(min_lambda, 3),
               best ? " (best)" : (eligible ? "" : " (not final)"), ", ", fmt(row.seconds, 3), " s"));
}

// On a GPU the tensors come to host memory here (checkpoint_tensors copies them: a snapshot) and
// rank 0 writes the file on a background thread while training goes on; on the CPU they are the
// live tensors, written before the next step.
void Trainer::save_checkpoint() {
  if (mpi_.rank() != 0) return;
  state_.modes = block_modes(model_);
  state_.lambdas.clear();
  for (int64_t b = 0; b < model_->depth(); ++b) state_.lambdas.push_back(model_->block(b)->lambda());
  auto write = [path = checkpoint_path(t_.out_dir, state_.global_step), state = state_,
                tensors = checkpoint_tensors(params_, optimizer_->state_tensors(), ema_),
                metadata = model::model_metadata(model_), record = summary(false), out_dir = t_.out_dir,
                keep = t_.keep_last] {
    write_checkpoint(path, state, tensors, metadata);
    prune_checkpoints(out_dir, keep);
    write_train_summary((fs::path(out_dir) / "train.json").string(), record);
  };
  if (device_.is_cuda()) {
    writer_.run(std::move(write));
  } else {
    write();
  }
}

void Trainer::write_summary(bool finished) {
  writer_.finish();  // a checkpoint's summary in flight must not land after this one
  write_train_summary((fs::path(t_.out_dir) / "train.json").string(), summary(finished));
}

TrainSummary Trainer::summary(bool finished) {
  TrainSummary s;
  s.finished = finished;
  s.stopped_by_signal = stop_signal_;
  s.epoch = state_.epoch;
  s.global_step = state_.global_step;
  s.best_top1 = state_.best_top1;
  s.best_epoch = state_.best_epoch;
  s.epochs = t_.epochs;
  s.steps_per_epoch = plan_.steps_per_epoch;
  s.global_batch = plan_.global_batch;
  s.world_size = mpi_.world_size();
  s.dilute_layers = t_.dilute_layers;
  s.removed_layers = model_->removed_blocks();
  s.modes = block_modes(model_);
  s.last_loss = last_loss_;
  s.last_top1 = last_top1_;
  s.seconds = seconds_since(started_);
  s.step_seconds = state_.step_seconds;
  s.rss_start_mib = rss_start_mib_;
  s.rss_peak_mib = peak_resident_mib();
  s.checkpoint = state_.global_step > 0 ? checkpoint_path(t_.out_dir, state_.global_step) : "";
  if (phases_->enabled()) s.phases = phases_->to_map();
  return s;
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
    out_lock_ = std::make_unique<DirLock>(t_.out_dir, "--out-dir");
    std::error_code ec;
    fs::create_directories(checkpoint_dir(t_.out_dir), ec);
    if (ec) throw Error(cat("--out-dir ", t_.out_dir, ": cannot create (", ec.message(), ")"));
  }
  mpi_.barrier();
  resume_or_start();
  rss_start_mib_ = resident_mib();
  while (state_.epoch < t_.epochs) {
    const int64_t epoch = state_.epoch;
    apply_lambda(current_lambda(epoch));
    last_settle_ = Clock::now();  // the epoch's time starts here, after the last evaluation
    batches_->start(epoch, state_.step_in_epoch * t_.accum_steps,
                    (plan_.steps_per_epoch - state_.step_in_epoch) * t_.accum_steps);
    while (state_.step_in_epoch < plan_.steps_per_epoch) {
      if (train_step(epoch)) continue;
      progress_->finish();
      save_checkpoint();
      writer_.finish();
      log_info(cat("signal ", stop_signal_, ": checkpoint ", checkpoint_path(t_.out_dir, state_.global_step),
                   " written; resume with --resume"));
      return {false, stop_signal_, t_.out_dir, state_.best_top1, state_.step_seconds, state_.global_step};
    }
    batches_->stop();
    // The epoch's sums live in the state, so a resumed epoch reports the whole epoch.
    end_epoch(epoch, state_.epoch_loss_sum / static_cast<double>(plan_.steps_per_epoch), state_.epoch_seconds,
              state_.epoch_images);
  }
  train_set_->bad_images().summarise(train_set_->name());
  eval_set_->bad_images().summarise(eval_set_->name());
  if (mpi_.rank() == 0) {
    writer_.finish();
    export_model("final.safetensors", false, provenance());
    if (t_.ema_decay > 0) export_model("final-ema.safetensors", true);
    trace_->commit();
    write_summary(true);
    if (phases_->enabled()) std::cout << phases_->table() << std::flush;  // a result: stdout, also with --quiet
    const auto removed = model_->removed_blocks();
    log_info(cat("done: ", (fs::path(t_.out_dir) / "final.safetensors").string(), " (attention removed in blocks ",
                 removed.empty() ? std::string("none") : join_list(removed), ")",
                 state_.best_epoch >= 0
                     ? cat("; best top-1 ", fmt(state_.best_top1), "% at epoch ", state_.best_epoch + 1)
                     : std::string("; no epoch ran with every diluted block removed")));
  }
  return {true, 0, t_.out_dir, state_.best_top1, state_.step_seconds, state_.global_step};
}

std::map<std::string, std::string> Trainer::provenance() {
  const nlohmann::json j = {
      {"job", "train"},
      {"version", kVersion},
      {"commit", kSourceCommit},
      {"dataset", data::kind_name(c_.data.dataset)},
      {"seed", c_.runtime.seed},
      {"epochs", t_.epochs},
      {"world_size", mpi_.world_size()},
      {"eval", {{"split", "test"}, {"images", eval_images_}, {"top1", last_top1_}}},
      {"tensors", model::weights_hash(model_)},
      {"settings", c_.config_ini},
  };
  return {{model::kMetaProvenance, json_text(j, -1)}};
}

}  // namespace

TrainResult run_training(const TrainInputs& inputs, const dist::MpiSession& mpi) {
  Trainer trainer(inputs, mpi);
  return trainer.run();
}

}  // namespace vitslim::train
