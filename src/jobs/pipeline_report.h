// The pipeline's report: report.md (tables for people) and report.json (the same numbers for
// scripts), rendered from the stages' typed results.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/convert_bench.h"
#include "search/coordinator.h"

namespace vitslim {

// One fine-tuning run of the comparison.
struct PipelineRun {
  std::string name;    // unpruned, nose-0.5, random-0.5, first-0.5, ...
  std::string choice;  // none | nose | random | first
  double ratio = 0;
  std::vector<int64_t> layers;
};

struct EvalOutcome {
  double top1 = 0, top5 = 0, loss = 0;
};

struct PipelineResults {
  std::vector<PipelineRun> runs;
  std::map<std::string, EvalOutcome> evals;           // by run name, plus "pretrained"
  std::map<std::string, model::BenchRatios> benches;  // by run name (pruned runs)
  search::SearchResult search;
  nlohmann::json stages = nlohmann::json::object();  // seconds per stage, or "reused"
};

// What the report says about the run as a whole.
struct ReportContext {
  std::string out_dir, preset, shape, dataset, pretrained, config_ini;
  std::string provenance;  // of the starting weights, in words (empty: none)
  int world_size = 1;
  bool pretrained_here = true;  // pretrained from scratch by this pipeline
  int64_t pretrain_epochs = 0, finetune_epochs = 0;
  double decay_epochs = 0, seconds = 0;
};

// Writes report.md and report.json into ctx.out_dir and prints the Markdown.
void write_pipeline_report(const ReportContext& ctx, const PipelineResults& results);

}  // namespace vitslim
