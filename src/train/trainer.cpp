// Implements the training loop (see trainer.h) from its pieces: the plan (plan.h), the step's
// arithmetic (step.h), the sync point (sync_point.h), the trace (train_trace.h), resuming
// (resume.h), checkpoints (model/weights/train_checkpoint.h), the set-up (trainer_setup.cpp) and
// the files it writes (trainer_files.cpp). What is left here is the order of things: per step the
// data and the sync point, per epoch the evaluation, entropy, best export and checkpoint, and the
// final exports.
//
// No step waits for the GPU: a step's loss and gradient norm stay on the device until the next
// sync point (every --log-every steps, before a checkpoint, at the end of an epoch), where they
// come back in one copy, the ranks agree on stop signals and non-finite steps, and the trace rows
// are written. A non-finite step is skipped on the device (update_step) and stops the run at the
// sync point, before any checkpoint could hold what came after it.
#include "train/trainer.h"

#include "train/trainer_impl.h"

namespace vitslim::train {

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
    return mix_seed(c_.runtime.seed ^ kSaltTorch, static_cast<uint64_t>(mpi_.rank()), stream);
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
  sync_->add(std::move(row));
  ++state_.global_step;
  ++state_.step_in_epoch;
  // A line at most every 10 s (the loss and images/s of the last sync point; no device sync here).
  progress_->update(cat("epoch ", epoch + 1, "/", t_.epochs), state_.step_in_epoch, plan_.steps_per_epoch,
                    sync_->status());
  const int64_t stop = sync_due() ? sync_->settle(*comm_, trace_.get(), *progress_) : 0;
  phases_->lap(Phase::Record);
  phases_->end_step();
  if (sync_due() && t_.checkpoint_steps > 0 && state_.global_step % t_.checkpoint_steps == 0 &&
      state_.step_in_epoch < plan_.steps_per_epoch) {
    save_checkpoint();
    sync_->restart_clock();  // the checkpoint's time is not training time
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
               best ? " (best)" : (eligible ? "" : " (not final)"), ", ", ProgressLine::duration_text(row.seconds)));
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
    fs::create_directories(model::checkpoint_dir(t_.out_dir), ec);
    if (ec) throw Error(cat("--out-dir ", t_.out_dir, ": cannot create (", ec.message(), ")"));
  }
  mpi_.barrier();
  resume_or_start();
  if (finished_earlier_) {
    log_warn(cat("train: ", (fs::path(t_.out_dir) / "final.safetensors").string(),
                 ": this run finished earlier; its outputs are kept (a new --out-dir trains again)"));
    return {true, 0, t_.out_dir, state_.best_top1, state_.step_seconds, state_.global_step};
  }
  sync_ = std::make_unique<SyncPoint>(SyncPoint::Run{mpi_, state_, t_.out_dir, t_.epochs, plan_.steps_per_epoch});
  rss_start_mib_ = resident_mib();
  while (state_.epoch < t_.epochs) {
    const int64_t epoch = state_.epoch;
    apply_lambda(current_lambda(epoch));
    sync_->restart_clock();  // the epoch's time starts here, after the last evaluation
    batches_->start(epoch, state_.step_in_epoch * t_.accum_steps,
                    (plan_.steps_per_epoch - state_.step_in_epoch) * t_.accum_steps);
    while (state_.step_in_epoch < plan_.steps_per_epoch) {
      if (train_step(epoch)) continue;
      progress_->finish();
      save_checkpoint();
      writer_.finish();
      log_info(cat("signal ", stop_signal_, ": checkpoint ", model::checkpoint_path(t_.out_dir, state_.global_step),
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

TrainResult run_training(const TrainInputs& inputs, const dist::MpiSession& mpi) {
  Trainer trainer(inputs, mpi);
  return trainer.run();
}

}  // namespace vitslim::train
