// The pipeline's report: report.md (tables for people) and report.json (the same numbers for
// scripts), rendered from the stages' typed results.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "data/kinds.h"
#include "evaluation/bench.h"
#include "search/coordinator.h"

namespace vitslim {

// One row of the comparison, fine-tuned once per seed.
struct PipelineRun {
  std::string name;    // unpruned, nose-0.25, nose-0.5, nose-0.5+kd, cosine-0.5, random-0.5, ...
  std::string choice;  // none, or the criterion that chose the layers (nose, cosine, random, ...)
  double ratio = 0;
  std::vector<int64_t> layers;
  bool distill = false;  // taught by the starting weights
};

struct EvalOutcome {
  double top1 = 0, top5 = 0, loss = 0;
};

// Token merging tuned for NOSE at the largest ratio, and the rows it adds.
struct TomeRows {
  std::string row;                 // the pruned row it applies to (nose-0.5)
  int64_t r = 0, start = 0;        // chosen by the sweep; r = 0: nothing faster within the budget
  std::vector<int64_t> per_block;  // r of every block
  double max_drop = 0;
  int64_t tune_images = 0;
  std::vector<int64_t> swept;         // the r values tried
  std::vector<EvalOutcome> pruned;    // per seed: the row's compact model with merging
  std::vector<EvalOutcome> unpruned;  // per seed: the unpruned model with the same merging
  std::string unpruned_note;          // why there is no unpruned + ToMe row ("" if there is)
  evaluation::BenchRatios bench;      // full, pruned, full + ToMe, pruned + ToMe
};

// The plan stage's answer on its first runtime (from its plan.json).
struct PlanSummary {
  std::string runtime, reason, chosen, fixed_half;  // labels ("" when none)
  double target = 0;
  bool met = false;
  double speedup = 0, fixed_half_speedup = 0;
  std::optional<double> probe_top1, fixed_half_top1, unpruned_top1;
};

struct PipelineResults {
  std::vector<PipelineRun> runs;
  EvalOutcome pretrained;                                              // the starting weights
  std::map<std::string, std::vector<EvalOutcome>> evals;               // by run name, per seed (in seed order)
  std::map<std::string, evaluation::BenchRatios> benches;              // by run name (pruned runs)
  std::map<std::string, std::vector<double>> step_seconds;             // by run name, per seed: fine-tuning s/step
  search::SearchResult search;                                         // NOSE
  std::vector<std::pair<std::string, search::SearchResult>> criteria;  // the other criteria, --criteria order
  std::optional<TomeRows> tome;                                        // with --tome-rows
  std::optional<PlanSummary> plan;                                     // with --plan-target-speedup
  nlohmann::json stages = nlohmann::json::object();                    // seconds per stage, or "reused"
};

// What the report says about the run as a whole.
struct ReportContext {
  std::string out_dir, preset, shape, pretrained, config_ini;
  data::DataKind dataset = data::DataKind::FashionMnist;
  std::string provenance;  // of the starting weights, in words (empty: none)
  int world_size = 1;
  bool pretrained_here = true;  // pretrained from scratch by this pipeline
  int64_t pretrain_epochs = 0, finetune_epochs = 0, seeds = 1;
  uint64_t first_seed = 0;
  double decay_epochs = 0, seconds = 0;
};

// Writes report.md and report.json into ctx.out_dir and prints the Markdown.
void write_pipeline_report(const ReportContext& ctx, const PipelineResults& results);

}  // namespace vitslim
