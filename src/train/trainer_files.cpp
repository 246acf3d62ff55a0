// What the trainer writes besides the trace (see trainer_impl.h): checkpoints and exported models
// (on a background thread on a GPU), train.json, and the provenance recorded in final.safetensors.
#include "train/trainer_impl.h"

namespace vitslim::train {

// On a GPU the tensors come to host memory here (checkpoint_tensors copies them: a snapshot) and
// rank 0 writes the file on a background thread while training goes on; on the CPU they are the
// live tensors, written before the next step.
void Trainer::save_checkpoint() {
  if (mpi_.rank() != 0) return;
  state_.modes = block_modes(model_);
  state_.lambdas.clear();
  for (int64_t b = 0; b < model_->depth(); ++b) state_.lambdas.push_back(model_->block(b)->lambda());
  auto write = [path = model::checkpoint_path(t_.out_dir, state_.global_step), state = state_,
                tensors = model::checkpoint_tensors(params_, optimizer_->state_tensors(), ema_),
                metadata = model::model_metadata(model_), record = summary(false), out_dir = t_.out_dir,
                keep = t_.keep_last] {
    model::write_checkpoint(path, state, tensors, metadata);
    model::prune_checkpoints(out_dir, keep);
    write_train_summary((fs::path(out_dir) / "train.json").string(), record);
  };
  if (device_.is_cuda()) {
    writer_.run(std::move(write));
  } else {
    write();
  }
}

void Trainer::export_model(const std::string& name, bool ema, const std::map<std::string, std::string>& metadata) {
  auto write = [file = model::model_file(model_, metadata, ema ? &ema_ : nullptr),
                path = (fs::path(t_.out_dir) / name).string()] { model::write_model_file(file, path); };
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
  s.last_loss = sync_ ? sync_->last_loss() : 0;
  s.last_top1 = last_top1_;
  s.seconds = seconds_since(started_);
  s.step_seconds = state_.step_seconds;
  s.rss_start_mib = rss_start_mib_;
  s.rss_peak_mib = peak_resident_mib();
  s.checkpoint = state_.global_step > 0 ? model::checkpoint_path(t_.out_dir, state_.global_step) : "";
  if (phases_->enabled()) s.phases = phases_->to_map();
  return s;
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

}  // namespace vitslim::train
