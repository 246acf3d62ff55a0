// Implements the token-merging sweep (see tome_sweep.h).
#include "evaluation/tome_sweep.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "core/atomic_file.h"
#include "core/cuda_device.h"
#include "core/error.h"
#include "core/json_text.h"
#include "core/log.h"
#include "core/options.h"
#include "core/text_file.h"
#include "core/version.h"
#include "data/loading/batch.h"
#include "data/open.h"
#include "dist/gpu_select.h"
#include "evaluation/evaluate.h"
#include "model/autocast.h"
#include "model/checkpoint.h"
#include "model/flops.h"

namespace vitslim::evaluation {
namespace {

constexpr int64_t kWarmup = 1;
constexpr double kMilli = 1000.0;

// Median forward time of `model` on random input, as images/s.
double images_per_s(model::VisionTransformer& model, int64_t batch, int64_t iters, bool bf16) {
  const ModelShape& s = model->shape();
  model->eval();
  c10::InferenceMode inference;
  auto images = torch::randn({batch, s.in_chans, s.img_size, s.img_size}, model->device());  // [B, C, H, W]
  std::vector<double> seconds;
  for (int64_t i = 0; i < kWarmup + iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    {
      model::Bf16Autocast autocast(model->device().type(), bf16);
      model->forward(images);
    }
    if (images.is_cuda()) cuda::synchronize(images.device().index());  // the kernels, not their launch
    if (i >= kWarmup) seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(seconds.begin(), seconds.end());
  return static_cast<double>(batch) / seconds[seconds.size() / 2];
}

void print(const TomeSweepResult& result, double max_drop) {
  const TomePoint& ref = result.reference();
  std::printf("\n| r | start | r per block | top-1 %% | vs r=0 | img/s | speed-up | GMACs | Pareto |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  for (size_t i = 0; i < result.points.size(); ++i) {
    const TomePoint& p = result.points[i];
    if (!p.merges) {
      std::printf("| %lld | %lld | merges nothing (no attention where it would merge) | - | - | - | - | %.3f | |\n",
                  static_cast<long long>(p.r), static_cast<long long>(p.start), static_cast<double>(p.macs) / 1e9);
      continue;
    }
    std::printf("| %lld | %lld | %s | %.2f | %+.2f | %.1f | %.2fx | %.3f | %s%s |\n", static_cast<long long>(p.r),
                static_cast<long long>(p.start), p.r == 0 ? "-" : join_list(p.per_block).c_str(), p.top1,
                p.top1 - ref.top1, p.images_per_s, p.images_per_s / ref.images_per_s, static_cast<double>(p.macs) / 1e9,
                p.pareto ? "yes" : "", static_cast<int64_t>(i) == result.chosen ? " (chosen)" : "");
  }
  const TomePoint& best = result.best();
  std::printf(
      "\nchosen within %.2f points of r = 0: r %lld from block %lld: top-1 %.2f%% (%+.2f), %.2fx faster, MACs %.3f\n",
      max_drop, static_cast<long long>(best.r), static_cast<long long>(best.start), best.top1, best.top1 - ref.top1,
      best.images_per_s / ref.images_per_s, static_cast<double>(best.macs) / static_cast<double>(ref.macs));
}

nlohmann::json point_json(const TomePoint& p) {
  return {{"r", p.r},
          {"start", p.start},
          {"r_per_block", p.per_block},
          {"top1", p.top1},
          {"images_per_s", p.images_per_s},
          {"macs", p.macs},
          {"merges", p.merges},
          {"pareto", p.pareto}};
}

TomePoint point_from_json(const nlohmann::json& j) {
  TomePoint p;
  p.r = j.at("r").get<int64_t>();
  p.start = j.at("start").get<int64_t>();
  p.per_block = j.at("r_per_block").get<std::vector<int64_t>>();
  p.top1 = j.at("top1").get<double>();
  p.images_per_s = j.at("images_per_s").get<double>();
  p.macs = j.at("macs").get<int64_t>();
  p.merges = j.at("merges").get<bool>();
  p.pareto = j.at("pareto").get<bool>();
  return p;
}

// The JSON and CSV outputs, committed together.
void write_outputs(const TomeSweepResult& result, const TomeSweepConfig& sweep, const std::string& weights,
                   const std::vector<int64_t>& removed) {
  OutputSet outputs;
  if (!sweep.json.empty()) {
    nlohmann::json points = nlohmann::json::array();
    for (const auto& p : result.points) points.push_back(point_json(p));
    const nlohmann::json j = {{"program", "vitslim"},
                              {"version", kVersion},
                              {"job", "tome-sweep"},
                              {"weights", weights},
                              {"removed_layers", removed},
                              {"max_drop", sweep.max_drop},
                              {"bench_batch", sweep.bench_batch},
                              {"speeds", sweep.speeds.empty() ? "timed" : sweep.speeds},
                              {"threads", at::get_num_threads()},
                              {"points", points},
                              {"chosen", point_json(result.best())}};
    outputs.write(sweep.json, json_text(j) + "\n");
  }
  if (!sweep.csv.empty()) {
    std::string text = "r,start,top1,images_per_s,macs,pareto,chosen\n";
    for (size_t i = 0; i < result.points.size(); ++i) {
      const TomePoint& p = result.points[i];
      text += cat(p.r, ",", p.start, ",", p.top1, ",", p.images_per_s, ",", p.macs, ",", p.pareto ? 1 : 0, ",",
                  static_cast<int64_t>(i) == result.chosen ? 1 : 0, "\n");
    }
    outputs.write(sweep.csv, text);
  }
  outputs.commit();
}

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> fields;
  size_t start = 0;
  while (true) {
    const size_t comma = line.find(',', start);
    fields.push_back(line.substr(start, comma - start));
    if (comma == std::string::npos) return fields;
    start = comma + 1;
  }
}

// Before any point is measured: the table has r = 0 and every (r, start) of the grid.
void check_speed_table(const SpeedTable& table, const TomeSweepConfig& sweep) {
  std::vector<std::pair<int64_t, int64_t>> want = {{0, 0}};
  for (int64_t start : sweep.start) {
    for (int64_t r : sweep.r) want.emplace_back(r, start);
  }
  for (const auto& [r, start] : want) {
    if (table.count({r, start}) == 0) {
      throw Error(cat("--speeds ", sweep.speeds, ": no images_per_s for r ", r, " from block ", start,
                      " (the table needs r 0 from block 0 and every --sweep-r x --sweep-start point)"));
    }
  }
}

}  // namespace

SpeedTable read_speed_table(const std::string& path, const std::string& flag) {
  std::istringstream in(read_text_file(path, flag));
  std::string line;
  if (!std::getline(in, line)) throw Error(cat(flag, " ", path, ": empty; want a header with r,start,images_per_s"));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  const std::vector<std::string> header = split_csv_line(line);
  const auto column = [&](const std::string& name) {
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) throw Error(cat(flag, " ", path, ":1: no '", name, "' column (want r,start,images_per_s)"));
    return static_cast<size_t>(it - header.begin());
  };
  const size_t r_at = column("r"), start_at = column("start"), speed_at = column("images_per_s");
  SpeedTable table;
  for (int64_t number = 2; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const std::vector<std::string> f = split_csv_line(line);
    const std::string where = cat(flag, " ", path, ":", number);
    if (f.size() != header.size()) throw Error(cat(where, ": ", f.size(), " fields, the header has ", header.size()));
    const int64_t r = parse_int(f[r_at], where + " r");
    const int64_t start = parse_int(f[start_at], where + " start");
    const double speed = parse_double(f[speed_at], where + " images_per_s");
    if (!(speed > 0) || !std::isfinite(speed))
      throw Error(cat(where, ": images_per_s must be positive, not ", f[speed_at]));
    if (!table.emplace(std::make_pair(r, start), speed).second) {
      throw Error(cat(where, ": r ", r, " from block ", start, " a second time"));
    }
  }
  if (table.empty()) throw Error(cat(flag, " ", path, ": no rows"));
  return table;
}

void choose(TomeSweepResult& result, double max_drop) {
  auto& pts = result.points;
  for (auto& p : pts) {
    p.pareto = p.merges && std::none_of(pts.begin(), pts.end(), [&](const TomePoint& q) {
                 return q.merges && q.top1 >= p.top1 && q.images_per_s >= p.images_per_s &&
                        (q.top1 > p.top1 || q.images_per_s > p.images_per_s);
               });
  }
  result.chosen = 0;
  for (size_t i = 1; i < pts.size(); ++i) {
    if (pts[i].merges && pts[i].top1 >= pts[0].top1 - max_drop &&
        pts[i].images_per_s > pts[static_cast<size_t>(result.chosen)].images_per_s) {
      result.chosen = static_cast<int64_t>(i);
    }
  }
}

TomeSweepResult read_tome_sweep(const std::string& path, const std::string& what) {
  const nlohmann::json j = read_job_json(path, "tome-sweep", what);
  TomeSweepResult result;
  try {
    for (const nlohmann::json& p : j.at("points")) result.points.push_back(point_from_json(p));
    const TomePoint chosen = point_from_json(j.at("chosen"));
    const auto it = std::find_if(result.points.begin(), result.points.end(),
                                 [&](const TomePoint& p) { return p.r == chosen.r && p.start == chosen.start; });
    if (result.points.empty() || result.points.front().r != 0 || it == result.points.end())
      throw Error(cat(what, " ", path, ": the chosen point or r = 0 is not among the points"));
    result.chosen = it - result.points.begin();
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(what, " ", path, ": malformed tome-sweep result (", e.what(), ")"));
  }
  return result;
}

namespace {

// --speeds: every point's images/s from the table (checked to cover the grid), else none.
std::optional<SpeedTable> given_speeds(const TomeSweepConfig& sweep) {
  if (sweep.speeds.empty()) return std::nullopt;
  SpeedTable speeds = read_speed_table(sweep.speeds);
  check_speed_table(speeds, sweep);
  log_info(cat("tome-sweep: images/s from ", sweep.speeds, " (--speeds), not timed here"));
  return speeds;
}

// Sets each (r, start) of the grid on the model and calls measure(r, start); a point the model
// cannot merge (a block with fewer tokens left than r) is skipped with a note.
void sweep_grid(model::VisionTransformer& model, const model::TomeRequest& base, const TomeSweepConfig& sweep,
                const std::function<void(int64_t, int64_t)>& measure) {
  for (int64_t start : sweep.start) {
    for (int64_t r : sweep.r) {
      model::TomeRequest q = base;
      q.r = {r};
      q.start = start;
      try {
        model->set_token_merging(model::resolve_tome(q, model->shape().depth));
      } catch (const Error& e) {
        log_info(cat("tome-sweep: r ", r, " from block ", start, " skipped: ", e.what()));
        continue;
      }
      measure(r, start);
    }
  }
}

}  // namespace

TomeSweepResult run_tome_sweep(const TomeSweepInputs& in, const dist::MpiSession& mpi) {
  const DataConfig& data = in.data;
  const TomeSweepConfig& sweep = in.sweep;
  const RuntimeConfig& runtime = in.runtime;
  ModelRequest model_request = in.model;
  model::use_default_preset(model_request);
  if (!sweep.json.empty()) check_writable_output(sweep.json, "--json");
  if (!sweep.csv.empty()) check_writable_output(sweep.csv, "--csv");
  model_request.tome.r.clear();  // the sweep sets merging itself; the model file's is ignored
  const c10::Device device = dist::open_device(in.compute, mpi);
  model::VisionTransformer model = model::build_model(model_request, runtime.seed);
  model->to(device);
  const ModelShape& shape = model->shape();
  auto dataset = data::open_dataset(data, shape, runtime.seed, dist::root_share(mpi));
  dist::agree_across_ranks(mpi, "data", dataset->size_summary());
  check_class_count(shape, *dataset);
  const int64_t total = sweep.images > 0 ? std::min(sweep.images, dataset->size()) : dataset->size();
  const auto [mean, stdev] = data::normalisation(data, *dataset);
  const std::vector<int64_t> removed = model->removed_blocks();
  log_info(cat("tome-sweep: ", shape.describe(), ", removed attention {", join_list(removed), "}; ", dataset->name(),
               ", ", total, " images; r in {", join_list(sweep.r), "}, start in {", join_list(sweep.start), "}"));
  model::warn_if_bf16_emulated(model->device().type(), sweep.bf16);

  const std::optional<SpeedTable> speeds = given_speeds(sweep);

  TomeSweepResult result;
  auto measure = [&](int64_t r, int64_t start) {  // the model's current merging
    const model::TokenMerging& tm = model->token_merging();
    TomePoint p{r, start, tm.r, 0, 0, model::analytic_cost(shape, removed, tm).macs, false};
    if (r > 0 && p.macs == result.reference().macs) {  // fewer tokens anywhere would cost fewer MACs
      p.merges = false;
      log_info(cat("tome-sweep: r ", r, " from block ", start,
                   " merges nothing: every block it would merge in has "
                   "its attention removed"));
      result.points.push_back(p);
      return;
    }
    p.top1 = evaluate_sharded(model, *dataset, total, mean, stdev, data.batch_size, sweep.bf16, mpi).top1_percent();
    if (speeds) {
      p.images_per_s = speeds->at({r, start});  // present: check_speed_table
    } else {
      // Every rank times (they share the machine alike); rank 0's figure, to the milli-image, decides.
      const double local = images_per_s(model, sweep.bench_batch, sweep.bench_iters, sweep.bf16);
      p.images_per_s = static_cast<double>(mpi.broadcast({std::llround(local * kMilli)})[0]) / kMilli;
    }
    log_info(cat("tome-sweep: r ", r, " from block ", start, ": top-1 ", p.top1, "%, ", p.images_per_s, " img/s"));
    result.points.push_back(p);
  };
  measure(0, 0);
  sweep_grid(model, model_request.tome, sweep, measure);
  choose(result, sweep.max_drop);
  if (mpi.rank() == 0) {
    print(result, sweep.max_drop);
    write_outputs(result, sweep, model_request.weights, removed);
  }
  return result;
}

}  // namespace vitslim::evaluation
