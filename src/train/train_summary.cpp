// Implements train.json (see train_summary.h).
#include "train/train_summary.h"

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/json_text.h"
#include "core/version.h"

namespace vitslim::train {

void write_train_summary(const std::string& path, const TrainSummary& s) {
  nlohmann::json j = {{"program", "vitslim"},
                      {"version", kVersion},
                      {"job", "train"},
                      {"finished", s.finished},
                      {"stopped_by_signal", s.stopped_by_signal},
                      {"epoch", s.epoch},
                      {"global_step", s.global_step},
                      {"epochs", s.epochs},
                      {"steps_per_epoch", s.steps_per_epoch},
                      {"global_batch", s.global_batch},
                      {"world_size", s.world_size},
                      {"dilute_layers", s.dilute_layers},
                      {"removed_layers", s.removed_layers},
                      {"modes", s.modes},
                      {"last_loss", s.last_loss},
                      {"last_top1", s.last_top1},
                      {"best_top1", s.best_top1},
                      {"best_epoch", s.best_epoch},
                      {"seconds", s.seconds},
                      {"step_seconds", s.step_seconds},
                      {"rss_start_mib", s.rss_start_mib},
                      {"rss_peak_mib", s.rss_peak_mib},
                      {"checkpoint", s.checkpoint}};
  if (!s.phases.empty()) j["phases"] = s.phases;
  write_file_atomic(path, json_text(j) + "\n");
}

}  // namespace vitslim::train
