// Implements train.json (see train_summary.h).
#include "train/train_summary.h"

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_text.h"
#include "core/text_file.h"
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

TrainSummary read_train_summary(const std::string& path) {
  const nlohmann::json j = parse_json_text(read_text_file(path, "train.json"), path);
  TrainSummary s;
  try {
    s.finished = j.at("finished").get<bool>();
    s.stopped_by_signal = j.at("stopped_by_signal").get<int>();
    s.epoch = j.at("epoch").get<int64_t>();
    s.global_step = j.at("global_step").get<int64_t>();
    s.epochs = j.at("epochs").get<int64_t>();
    s.steps_per_epoch = j.at("steps_per_epoch").get<int64_t>();
    s.global_batch = j.at("global_batch").get<int64_t>();
    s.world_size = j.at("world_size").get<int>();
    s.dilute_layers = j.at("dilute_layers").get<std::vector<int64_t>>();
    s.removed_layers = j.at("removed_layers").get<std::vector<int64_t>>();
    s.modes = j.at("modes").get<std::vector<std::string>>();
    s.last_loss = j.at("last_loss").get<double>();
    s.last_top1 = j.at("last_top1").get<double>();
    s.best_top1 = j.at("best_top1").get<double>();
    s.best_epoch = j.at("best_epoch").get<int64_t>();
    s.seconds = j.at("seconds").get<double>();
    s.step_seconds = j.at("step_seconds").get<double>();
    s.rss_start_mib = j.at("rss_start_mib").get<double>();
    s.rss_peak_mib = j.at("rss_peak_mib").get<double>();
    s.checkpoint = j.at("checkpoint").get<std::string>();
    if (j.contains("phases")) s.phases = j.at("phases").get<std::map<std::string, double>>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(path, ": not a train.json of this vitslim (", e.what(), ")"));
  }
  return s;
}

}  // namespace vitslim::train
