// Implements the training trace (see train_trace.h).
#include "train/train_trace.h"

#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "core/options.h"
#include "core/version.h"
#include "io/trace_reader.h"

namespace vitslim::train {

namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kStepColumns = {"global_step", "epoch",        "loss",         "lr",
                                               "grad_norm",   "images_per_s", "data_seconds", "comm_wait_seconds"};
const std::vector<std::string> kEpochColumns = {"epoch",     "train_loss", "top1",  "top5",
                                                "eval_loss", "seconds",    "images"};

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
  return out;
}

}  // namespace

TrainTrace::TrainTrace(const TraceInfo& info, int64_t resume_step, int64_t epochs_done) : info_(info) {
  const auto carried = resume_step > 0 ? carried_rows(resume_step, epochs_done) : decltype(carried_rows(0, 0)){};
  file_ = std::make_unique<io::TraceFile>(info.path,
                                          std::map<std::string, std::string>{{"program", "vitslim"},
                                                                             {"version", kVersion},
                                                                             {"schema", "vitslim-trace/1"},
                                                                             {"job", "train"},
                                                                             {"created", utc_timestamp()},
                                                                             {"config", info.config_ini},
                                                                             {"model_shape", info.shape}},
                                          /*keep_partial_on_error=*/true);
  create_series(info);
  const auto w = widths();
  for (const auto& [name, rows] : carried) {
    const auto width = static_cast<size_t>(w.at(name));
    for (size_t r = 0; r + width <= rows.size(); r += width) {
      file_->append(name, std::vector<double>(rows.begin() + static_cast<std::ptrdiff_t>(r),
                                              rows.begin() + static_cast<std::ptrdiff_t>(r + width)));
    }
  }
  file_->flush();
}

std::map<std::string, int64_t> TrainTrace::widths() const {
  const int64_t depth = info_.depth;
  return {{"/train/step", static_cast<int64_t>(kStepColumns.size())},
          {"/train/step_lambda", depth},
          {"/train/epoch", static_cast<int64_t>(kEpochColumns.size())},
          {"/train/epoch_lambda", depth},
          {"/train/entropy_attn", depth},
          {"/train/entropy_mlp", depth}};
}

void TrainTrace::create_series(const TraceInfo& info) {
  const int64_t depth = info.depth;
  file_->create_series("/train/step", static_cast<int64_t>(kStepColumns.size()), "one row per optimizer step");
  file_->create_series("/train/step_lambda", depth, "lambda of every block at each step (1 full, 0 removed)");
  file_->create_series("/train/epoch", static_cast<int64_t>(kEpochColumns.size()), "one row per epoch");
  file_->create_series("/train/epoch_lambda", depth, "lambda of every block during each epoch's evaluation");
  file_->create_series("/train/entropy_attn", depth, "entropy of each attention branch after each epoch (NaN removed)");
  file_->create_series("/train/entropy_mlp", depth, "entropy of each MLP branch after each epoch");
  file_->set_attribute("/train/step", "columns", join_names(kStepColumns));
  file_->set_attribute("/train/epoch", "columns", join_names(kEpochColumns));
  file_->set_attribute("/train", "dilute_layers", join_list(info.dilute_layers));
  file_->set_attribute("/train", "world_size", std::to_string(info.world_size));
  file_->set_attribute("/train", "global_batch", std::to_string(info.global_batch));
  file_->set_attribute("/train", "steps_per_epoch", std::to_string(info.steps_per_epoch));
  file_->start_swmr();
}

// The interrupted run's rows: per-step series up to resume_step, per-epoch ones up to epochs_done.
std::map<std::string, std::vector<double>> TrainTrace::carried_rows(int64_t resume_step, int64_t epochs_done) const {
  std::map<std::string, std::vector<double>> carried;
  for (const std::string& candidate : {info_.path + ".partial", info_.path}) {
    if (!fs::exists(candidate)) continue;
    try {
      io::TraceReader old(candidate);
      std::vector<int64_t> dims;
      const auto steps = old.read("/train/step", &dims);
      const auto w = widths();
      const int64_t width = w.at("/train/step");
      int64_t keep = 0;
      while (keep < dims[0] && steps[static_cast<size_t>(keep * width)] <= static_cast<double>(resume_step)) ++keep;
      for (const auto& [name, cols] : w) {
        std::vector<int64_t> d;
        auto rows = old.read(name, &d);
        const bool per_step = name.rfind("/train/step", 0) == 0;
        const int64_t n = per_step ? std::min(keep, d[0]) : std::min(epochs_done, d[0]);
        rows.resize(static_cast<size_t>(n * cols));
        carried[name] = std::move(rows);
      }
    } catch (const Error& e) {
      log_warn(cat("trace ", candidate, " not carried over: ", e.what()));
      carried.clear();
    }
    break;
  }
  return carried;
}

void TrainTrace::add_step(const StepRow& r, const std::vector<double>& lambdas) {
  file_->append("/train/step", {static_cast<double>(r.global_step), static_cast<double>(r.epoch), r.loss, r.lr,
                                r.grad_norm, r.images_per_s, r.data_seconds, r.comm_wait_seconds});
  file_->append("/train/step_lambda", lambdas);
}

void TrainTrace::flush() { file_->flush(); }

void TrainTrace::add_entropy(const std::vector<double>& attn, const std::vector<double>& mlp) {
  file_->append("/train/entropy_attn", attn);
  file_->append("/train/entropy_mlp", mlp);
}

void TrainTrace::add_epoch(const EpochRow& r, const std::vector<double>& lambdas) {
  file_->append("/train/epoch", {static_cast<double>(r.epoch), r.train_loss, r.top1, r.top5, r.eval_loss, r.seconds,
                                 static_cast<double>(r.images)});
  file_->append("/train/epoch_lambda", lambdas);
  file_->flush();
}

void TrainTrace::commit() { file_->commit(); }

}  // namespace vitslim::train
