// Implements resuming from checkpoints (see resume.h).
#include "train/resume.h"

#include <torch/torch.h>

#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "core/options.h"

namespace vitslim::train {

namespace fs = std::filesystem;

std::optional<model::Checkpoint> newest_checkpoint(const std::string& out_dir, bool resume) {
  const auto steps = model::list_checkpoints(out_dir);
  if (!resume && !steps.empty()) {
    throw Error(cat("--out-dir ", out_dir, " already holds checkpoints (",
                    model::checkpoint_path(out_dir, steps.back()),
                    "); pass --resume to continue that run or choose another --out-dir"));
  }
  std::string first_problem;
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    const std::string path = model::checkpoint_path(out_dir, *it);
    try {
      return model::read_checkpoint(path);
    } catch (const std::exception& e) {  // ours, or anything LibTorch refuses in the file
      if (first_problem.empty()) first_problem = first_line(e.what());
      log_warn(cat("setting aside unreadable checkpoint (", first_line(e.what()), ") as ", path, ".unreadable"));
      std::error_code ec;
      fs::rename(path, path + ".unreadable", ec);
    }
  }
  if (!steps.empty()) {
    throw Error(cat("--resume: none of the ", steps.size(), " checkpoints in ", model::checkpoint_dir(out_dir),
                    " reads back (", first_problem, "); they were renamed *.unreadable"));
  }
  return std::nullopt;
}

void check_resume_settings(const model::Checkpoint& ckpt, const RunIdentity& run) {
  const model::TrainState& s = ckpt.state;
  if (s.dilute_layers != run.dilute_layers) {
    throw Error(cat("checkpoint ", ckpt.path, " dilutes blocks ", join_list(s.dilute_layers), ", not --remove-layers ",
                    join_list(run.dilute_layers), "; resume with the same selection"));
  }
  if (s.seed != run.seed) {
    throw Error(cat("checkpoint ", ckpt.path, " was trained with --seed ", s.seed, ", not ", run.seed));
  }
  if (s.global_batch != run.global_batch) {
    throw Error(cat("checkpoint ", ckpt.path, " was trained with a global batch of ", s.global_batch, ", not ",
                    run.global_batch, " (batch x ranks x accum-steps); the schedule would change"));
  }
  if (s.teacher != run.teacher) {
    const auto name = [](const std::string& t) { return t.empty() ? std::string("no distillation") : t; };
    throw Error(cat("checkpoint ", ckpt.path, " was trained with ", name(s.teacher), ", not ", name(run.teacher),
                    "; resume with the same --teacher and --distill settings"));
  }
  if (s.world_size != run.world_size) {
    log_warn(cat("checkpoint ", ckpt.path, " was written by ", s.world_size, " rank(s), resuming on ", run.world_size,
                 ": the data order differs from an uninterrupted run"));
  }
  if (s.config != run.config) log_warn(cat("resuming with settings that differ from ", ckpt.path, "'s"));
}

void restore_modes(const model::Checkpoint& ckpt, model::VisionTransformer& model) {
  const model::TrainState& s = ckpt.state;
  const int64_t depth = model->depth();
  if (static_cast<int64_t>(s.modes.size()) != depth) {
    throw Error(cat("checkpoint ", ckpt.path, ": ", s.modes.size(), " blocks, the model has ", depth));
  }
  for (int64_t b = 0; b < depth; ++b) {
    const auto mode = model::parse_attention_mode(s.modes[static_cast<size_t>(b)], "checkpoint " + ckpt.path);
    if (mode != model->block(b)->mode()) model->set_mode(b, mode, s.lambdas[static_cast<size_t>(b)]);
  }
}

void restore_progress(const model::TrainState& from, model::TrainState& to) {
  to.epoch = from.epoch;
  to.step_in_epoch = from.step_in_epoch;
  to.global_step = from.global_step;
  to.best_top1 = from.best_top1;
  to.best_epoch = from.best_epoch;
  to.epoch_loss_sum = from.epoch_loss_sum;
  to.epoch_images = from.epoch_images;
  to.epoch_seconds = from.epoch_seconds;
  to.step_seconds = from.step_seconds;
}

void restore_tensors(const model::Checkpoint& ckpt, NamedTensors& params, bool ema_on, c10::Device device,
                     AdamW& optimizer, std::map<std::string, at::Tensor>& ema) {
  torch::NoGradGuard no_grad;
  for (auto& [name, p] : params) {
    auto it = ckpt.tensors.find(model::kModelPrefix + name);
    if (it == ckpt.tensors.end()) throw Error(cat("checkpoint ", ckpt.path, ": no tensor ", model::kModelPrefix, name));
    if (!it->second.sizes().equals(p.sizes())) {
      throw Error(
          cat("checkpoint ", ckpt.path, ": ", name, " has shape ", it->second.sizes(), ", the model ", p.sizes()));
    }
    p.copy_(it->second);
    auto saved = ckpt.tensors.find(model::kEmaPrefix + name);
    if (ema_on && saved != ckpt.tensors.end()) ema[name] = saved->second.to(device);
  }
  std::map<std::string, torch::Tensor> optim;
  for (auto& [key, tensor] : ckpt.tensors) {
    if (key.rfind(model::kOptimPrefix, 0) == 0)
      optim.emplace(key.substr(std::string(model::kOptimPrefix).size()), tensor.to(device));
  }
  optimizer.load_state(optim, ckpt.state.global_step);
}

void broadcast_parameters(dist::Communicator& comm, NamedTensors& params) {
  torch::NoGradGuard no_grad;
  for (auto& [name, p] : params) {
    auto buffer = p.detach().contiguous();  // parameters are contiguous: in place
    comm.broadcast(buffer.data_ptr(), buffer.numel() * static_cast<int64_t>(buffer.element_size()), 0);
    if (buffer.data_ptr() != p.data_ptr()) p.copy_(buffer);
  }
}

}  // namespace vitslim::train
