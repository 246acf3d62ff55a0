// Implements training checkpoints (see train_checkpoint.h) on top of the .safetensors writer.
#include "model/weights/train_checkpoint.h"

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/error.h"
#include "core/json_text.h"
#include "core/log.h"
#include "model/weights/weights.h"

namespace vitslim::model {

namespace fs = std::filesystem;

namespace {
constexpr int kFormat = 1;
constexpr int kStepDigits = 9;
const std::regex kName(R"(step-(\d+)\.safetensors)");
}  // namespace

StateDict checkpoint_model_weights(const Checkpoint& ck) {
  StateDict w;
  w.file = ck.path;
  const std::string prefix = kModelPrefix;
  for (const auto& [key, t] : ck.tensors) {
    if (key.rfind(prefix, 0) == 0) w.tensors.emplace_back(key.substr(prefix.size()), t);
  }
  w.metadata = ck.metadata;
  w.metadata.erase(kTrainStateKey);
  return w;
}

std::string checkpoint_dir(const std::string& out_dir) { return (fs::path(out_dir) / "checkpoints").string(); }

std::string checkpoint_path(const std::string& out_dir, int64_t global_step) {
  char name[64];
  std::snprintf(name, sizeof(name), "step-%0*lld.safetensors", kStepDigits, static_cast<long long>(global_step));
  return (fs::path(checkpoint_dir(out_dir)) / name).string();
}

void write_checkpoint(const std::string& path, const TrainState& s,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      std::map<std::string, std::string> model_metadata) {
  nlohmann::json j = {{"format", kFormat},
                      {"epoch", s.epoch},
                      {"step_in_epoch", s.step_in_epoch},
                      {"global_step", s.global_step},
                      {"modes", s.modes},
                      {"lambdas", s.lambdas},
                      {"best_top1", s.best_top1},
                      {"best_epoch", s.best_epoch},
                      {"world_size", s.world_size},
                      {"seed", s.seed},
                      {"config", s.config},
                      {"epoch_loss_sum", s.epoch_loss_sum},
                      {"epoch_images", s.epoch_images},
                      {"epoch_seconds", s.epoch_seconds},
                      {"step_seconds", s.step_seconds},
                      {"dilute_layers", s.dilute_layers},
                      {"global_batch", s.global_batch},
                      {"teacher", s.teacher}};
  model_metadata[kTrainStateKey] = json_text(j, -1);
  model::write_safetensors(path, tensors, model_metadata);
}

Checkpoint read_checkpoint(const std::string& path) {
  Checkpoint ckpt;
  ckpt.path = path;
  StateDict dict = model::read_safetensors(path);
  auto meta = dict.metadata.find(kTrainStateKey);
  if (meta == dict.metadata.end()) throw Error(cat("checkpoint ", path, ": no ", kTrainStateKey, " metadata"));
  try {
    const auto j = parse_json_text(meta->second, cat("checkpoint ", path, ": ", kTrainStateKey));
    if (j.at("format").get<int>() != kFormat)
      throw Error(cat("checkpoint ", path, ": unknown format ", j.at("format")));
    TrainState& s = ckpt.state;
    s.epoch = j.at("epoch").get<int64_t>();
    s.step_in_epoch = j.at("step_in_epoch").get<int64_t>();
    s.global_step = j.at("global_step").get<int64_t>();
    s.modes = j.at("modes").get<std::vector<std::string>>();
    s.lambdas = j.at("lambdas").get<std::vector<double>>();
    s.best_top1 = j.at("best_top1").get<double>();
    s.best_epoch = j.at("best_epoch").get<int64_t>();
    s.world_size = j.at("world_size").get<int>();
    s.seed = j.at("seed").get<uint64_t>();
    s.config = j.at("config").get<std::string>();
    s.epoch_loss_sum = j.at("epoch_loss_sum").get<double>();
    s.epoch_images = j.at("epoch_images").get<int64_t>();
    s.epoch_seconds = j.at("epoch_seconds").get<double>();
    s.step_seconds = j.value("step_seconds", 0.0);  // absent in checkpoints of older runs
    s.dilute_layers = j.at("dilute_layers").get<std::vector<int64_t>>();
    s.global_batch = j.at("global_batch").get<int64_t>();
    s.teacher = j.value("teacher", std::string());  // absent in checkpoints of runs before distillation
    if (s.modes.size() != s.lambdas.size())
      throw Error(cat("checkpoint ", path, ": modes and lambdas differ in length"));
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat("checkpoint ", path, ": malformed ", kTrainStateKey, " (", e.what(), ")"));
  }
  for (auto& [name, t] : dict.tensors) ckpt.tensors.emplace(name, std::move(t));
  ckpt.metadata = std::move(dict.metadata);
  return ckpt;
}

std::vector<int64_t> list_checkpoints(const std::string& out_dir) {
  std::vector<int64_t> steps;
  const fs::path dir = checkpoint_dir(out_dir);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return steps;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (!std::regex_match(name, m, kName)) continue;
    constexpr std::ptrdiff_t kMaxStepDigits = 18;  // fits an int64
    if (m[1].length() > kMaxStepDigits) {
      log_warn(cat("checkpoints ", dir.string(), ": ignoring ", name, " (step number out of range)"));
      continue;
    }
    steps.push_back(std::stoll(m[1].str()));
  }
  if (ec) throw Error(cat("checkpoints ", dir.string(), ": cannot list (", ec.message(), ")"));
  std::sort(steps.begin(), steps.end());
  return steps;
}

void prune_checkpoints(const std::string& out_dir, int64_t keep) {
  auto steps = list_checkpoints(out_dir);
  for (size_t k = 0; k + static_cast<size_t>(keep) < steps.size(); ++k) {
    std::error_code ec;
    fs::remove(checkpoint_path(out_dir, steps[k]), ec);  // best effort: a leftover costs only disk
  }
}

std::vector<std::pair<std::string, at::Tensor>> checkpoint_tensors(
    const std::vector<std::pair<std::string, at::Tensor>>& params,
    const std::vector<std::pair<std::string, at::Tensor>>& optimizer_state,
    const std::map<std::string, at::Tensor>& ema) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& [name, p] : params) out.emplace_back(kModelPrefix + name, p.detach().to(at::kCPU));
  for (const auto& [name, t] : optimizer_state) out.emplace_back(kOptimPrefix + name, t.to(at::kCPU));
  for (const auto& [name, t] : ema) out.emplace_back(kEmaPrefix + name, t.to(at::kCPU));
  return out;
}

}  // namespace vitslim::model
