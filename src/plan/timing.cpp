// Implements the plan's timers (see timing.h).
#include "plan/timing.h"

#include <torch/torch.h>

#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_text.h"
#include "core/subprocess.h"
#include "core/text_file.h"
#include "model/attention_mode.h"
#include "model/autocast.h"

#ifndef VITSLIM_SOURCE_DIR
#define VITSLIM_SOURCE_DIR "."
#endif

namespace vitslim::plan {

namespace fs = std::filesystem;

namespace {

constexpr double kTimerTimeoutSeconds = 4 * 3600.0;  // one group of a very large model on a slow machine
constexpr int kNotInstalled = 3;                     // the timer's exit status for a missing engine
constexpr double kMinTimedMs = 1000;                 // timed milliseconds per model, at least
constexpr int64_t kMaxRounds = 200;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Puts `model` into the variant's modes; the blocks of the previous variant come back first.
void apply(model::VisionTransformer& model, const Variant& v) {
  model->set_token_merging({});
  for (int64_t b = 0; b < model->depth(); ++b) model->set_mode(b, model::AttentionMode::Full);
  for (int64_t b : v.blocks) model->set_mode(b, model::AttentionMode::Skipped);
  model->set_token_merging(v.merging);
}

// Warm-up, then at least `rounds` timed rounds, and more until every model has run for
// kMinTimedMs (small models: a few milliseconds each are too noisy), at most kMaxRounds.
bool more_rounds(int64_t round, const TimingSettings& s, const std::vector<double>& total) {
  if (round < s.warmup + s.rounds) return true;
  if (round >= s.warmup + kMaxRounds) return false;
  return *std::min_element(total.begin(), total.end()) < kMinTimedMs;
}

double forward_ms(model::VisionTransformer& model, const torch::Tensor& images) {
  const bool cuda = images.is_cuda();
  if (cuda) torch::cuda::synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  {
    auto out = model->forward(images);  // [B, K]
  }
  if (cuda) torch::cuda::synchronize();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

std::vector<double> time_in_process(model::VisionTransformer& model, const std::vector<Variant>& variants,
                                    const TimingSettings& s, bool bf16) {
  const ModelShape& shape = model->shape();
  model->eval();
  c10::InferenceMode inference;
  const torch::Device device = model->device();
  model::Bf16Autocast autocast(device.type(), bf16);  // one region: the weights are cast once
  const auto images = torch::randn({s.batch, shape.in_chans, shape.img_size, shape.img_size},
                                   torch::TensorOptions().device(device));  // [B, C, H, W]
  std::vector<std::vector<double>> ms(variants.size());
  std::vector<double> total(variants.size(), 0.0);
  for (int64_t round = 0; more_rounds(round, s, total); ++round) {
    for (size_t v = 0; v < variants.size(); ++v) {
      apply(model, variants[v]);
      const double t = forward_ms(model, images);
      if (round >= s.warmup) {
        ms[v].push_back(t);
        total[v] += t;
      }
    }
  }
  apply(model, Variant{});
  std::vector<double> out;
  for (auto& m : ms) out.push_back(median(m));
  return out;
}

namespace {

nlohmann::json read_result(const std::string& path, const std::string& program) {
  if (!fs::exists(path)) throw Error(cat(program, ": wrote no result (", path, ")"));
  return parse_json_text(read_text_file(path, "timer result"), path);
}

std::string failure(const ExternalTimer& timer, const ProgramResult& r, const std::string& log) {
  const std::string& program = timer.command.back();
  if (r.timed_out) return cat(program, ": no result after ", kTimerTimeoutSeconds, " s");
  const std::string message = last_line(log);
  return cat(program, " failed (exit ", r.exit_code, ")", message.empty() ? "" : ": " + message, " (log: ", log, ")");
}

}  // namespace

void check_external(const ExternalTimer& timer, const std::string& runtime_name, const std::string& work_dir) {
  const std::string log = (fs::path(work_dir) / "timer-check.log").string();
  fs::remove(log);
  std::vector<std::string> argv = timer.command;
  argv.insert(argv.end(), {"--check", timer.engine, timer.precision});
  const ProgramResult r = run_program(argv, log, 600);
  if (r.exit_code == 0) {
    fs::remove(log);
    return;
  }
  const std::string message = last_line(log);
  fs::remove(log);
  if (r.exit_code == kNotInstalled) throw Error(cat("--runtime ", runtime_name, ": ", message));
  throw Error(cat("--runtime ", runtime_name, ": the timer ", timer.command.back(), " cannot run (exit ", r.exit_code,
                  message.empty() ? "" : ": " + message, ")"));
}

std::vector<double> time_external(const ExternalTimer& timer, const std::vector<std::string>& onnx_files,
                                  const std::vector<int64_t>& input_shape, const TimingSettings& s,
                                  const std::string& work_dir) {
  const std::string request = (fs::path(work_dir) / "request.json").string();
  const std::string result = (fs::path(work_dir) / "result.json").string();
  const std::string log = (fs::path(work_dir) / "timer.log").string();
  fs::remove(result);
  fs::remove(log);
  const nlohmann::json req = {{"engine", timer.engine}, {"precision", timer.precision}, {"threads", timer.threads},
                              {"batch", s.batch},       {"input_shape", input_shape},   {"warmup", s.warmup},
                              {"rounds", s.rounds},     {"min_ms", kMinTimedMs},        {"max_rounds", kMaxRounds},
                              {"models", onnx_files}};
  write_file_atomic(request, json_text(req) + "\n");
  std::vector<std::string> argv = timer.command;
  argv.insert(argv.end(), {request, result});
  const ProgramResult r = run_program(argv, log, kTimerTimeoutSeconds);
  if (r.timed_out || r.exit_code != 0) throw Error(failure(timer, r, log));
  const nlohmann::json j = read_result(result, timer.command.back());
  std::vector<double> ms;
  try {
    ms = j.at("median_ms").get<std::vector<double>>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(result, ": no median_ms list (", e.what(), ")"));
  }
  if (ms.size() != onnx_files.size()) {
    throw Error(cat(result, ": ", ms.size(), " timings for ", onnx_files.size(), " models"));
  }
  for (double m : ms) {
    if (!(m > 0) || !std::isfinite(m)) throw Error(cat(result, ": a timing is not a positive number"));
  }
  fs::remove(request);
  fs::remove(result);
  fs::remove(log);
  return ms;
}

std::vector<std::string> timer_command(const std::string& timer) {
  if (!timer.empty()) return {std::filesystem::absolute(timer).string()};
  const std::filesystem::path root = VITSLIM_SOURCE_DIR;
  const std::filesystem::path venv = root / ".venv" / "bin" / "python";
  return {std::filesystem::exists(venv) ? venv.string() : "python3", (root / "scripts" / "time_onnx.py").string()};
}

}  // namespace vitslim::plan
