// Implements the eval result's file format (see eval_result.h).
#include "evaluation/eval_result.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_text.h"
#include "core/version.h"

namespace vitslim::evaluation {

std::string eval_json_text(const EvalResult& r) {
  const EvalCounts& n = r.counts;
  const nlohmann::json j = {{"program", "vitslim"},
                            {"version", kVersion},
                            {"job", "eval"},
                            {"model",
                             {{"shape", r.shape},
                              {"weights", r.weights},
                              {"removed_layers", r.removed_layers},
                              {"token_merging", r.token_merging}}},
                            {"data", {{"data_set", r.data_set}, {"split", r.split}, {"mean", r.mean}, {"std", r.std}}},
                            {"images", n.images},
                            {"top1_correct", n.top1},
                            {"top5_correct", n.top5},
                            {"top1", n.top1_percent()},
                            {"top5", n.top5_percent()},
                            {"loss", n.mean_loss()},
                            {"bf16", r.bf16},
                            {"device", r.device},
                            {"world_size", r.world_size},
                            {"seconds", r.seconds}};
  return json_text(j) + "\n";
}

EvalResult read_eval_result(const std::string& path, const std::string& what) {
  const nlohmann::json j = read_job_json(path, "eval", what);
  EvalResult r;
  try {
    const nlohmann::json& model = j.at("model");
    const nlohmann::json& data = j.at("data");
    r.counts.images = j.at("images").get<int64_t>();
    r.counts.top1 = j.at("top1_correct").get<int64_t>();
    r.counts.top5 = j.at("top5_correct").get<int64_t>();
    r.counts.loss_sum = j.at("loss").get<double>() * static_cast<double>(r.counts.images);
    r.shape = model.at("shape").get<std::string>();
    r.weights = model.at("weights").get<std::string>();
    r.token_merging = model.at("token_merging").get<std::string>();
    r.removed_layers = model.at("removed_layers").get<std::vector<int64_t>>();
    r.data_set = data.at("data_set").get<std::string>();
    r.split = data.at("split").get<std::string>();
    r.mean = data.at("mean").get<std::vector<double>>();
    r.std = data.at("std").get<std::vector<double>>();
    r.bf16 = j.at("bf16").get<bool>();
    r.device = j.at("device").get<std::string>();
    r.world_size = j.at("world_size").get<int>();
    r.seconds = j.at("seconds").get<double>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(what, " ", path, ": malformed eval result (", e.what(), ")"));
  }
  if (r.counts.images <= 0 || r.counts.top1 < 0 || r.counts.top1 > r.counts.top5 || r.counts.top5 > r.counts.images)
    throw Error(cat(what, " ", path, ": inconsistent counts (", r.counts.top1, " <= ", r.counts.top5,
                    " <= ", r.counts.images, " expected)"));
  return r;
}

}  // namespace vitslim::evaluation
