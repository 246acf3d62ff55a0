// Implements the pipeline report (see pipeline_report.h).
#include "jobs/pipeline_report.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_text.h"
#include "core/log.h"
#include "core/options.h"
#include "core/version.h"

namespace vitslim {

namespace {

using nlohmann::json;
constexpr double kGoalPoints = 0.5;  // the goal: half the attention removed within 0.5 top-1 points
constexpr double kGoalRatio = 0.5;

std::string out_path(const ReportContext& ctx, const std::string& name) {
  return (std::filesystem::path(ctx.out_dir) / name).string();
}

void header(std::ostringstream& md, const ReportContext& ctx, const PipelineResults& r) {
  md << "# vitslim pipeline report\n\n"
     << "Model `" << ctx.preset << "` (" << ctx.shape << ") on " << ctx.dataset << ", " << ctx.world_size
     << " process(es). Produced by `vitslim pipeline` " << kVersion << " on " << utc_timestamp() << ".\n\n";
  if (ctx.pretrained_here) {
    md << "Pretrained from scratch for " << ctx.pretrain_epochs << " epochs: top-1 "
       << fmt(r.evals.at("pretrained").top1) << "%.\n";
  } else {
    md << "Started from `" << ctx.pretrained << "`" << (ctx.provenance.empty() ? "" : " (" + ctx.provenance + ")")
       << ": top-1 " << fmt(r.evals.at("pretrained").top1) << "% here.\n";
  }
  md << "Every row below is fine-tuned for " << ctx.finetune_epochs << " epochs from the same pretrained weights; "
     << "diluted blocks go from lambda 1 to 0 over the first " << fmt(ctx.decay_epochs)
     << " epoch(s) and are removed for the rest.\n\n"
     << "| run | attention removed | top-1 (%) | vs unpruned (points) | params | MACs/img | inference speed-up |\n"
     << "|---|---|---|---|---|---|---|\n";
}

// One table row and its JSON.
json run_row(std::ostringstream& md, const PipelineRun& run, const PipelineResults& r, double base_top1) {
  const EvalOutcome& ev = r.evals.at(run.name);
  json row = {{"run", run.name}, {"choice", run.choice}, {"ratio", run.ratio}, {"removed_layers", run.layers},
              {"top1", ev.top1}, {"top5", ev.top5},      {"loss", ev.loss},    {"delta_points", ev.top1 - base_top1}};
  std::string params = "1.000x", macs = "1.000x", speed = "1.000x";
  if (!run.layers.empty()) {
    const model::BenchRatios& b = r.benches.at(run.name);
    row["bench"] = {{"params", b.params}, {"macs", b.macs}, {"inference_speedup", b.inference_speedup}};
    params = fmt(b.params, 3) + "x";
    macs = fmt(b.macs, 3) + "x";
    speed = fmt(b.inference_speedup, 3) + "x";
  }
  const bool pruned = !run.layers.empty();
  md << "| " << run.name << " | " << (pruned ? join_list(run.layers) : std::string("none")) << " | " << fmt(ev.top1)
     << " | " << (pruned ? fmt(ev.top1 - base_top1, 3) : std::string("-")) << " | " << params << " | " << macs << " | "
     << speed << " |\n";
  return row;
}

// Half of the attention layers removed by NOSE within kGoalPoints of the unpruned model?
json goal(std::ostringstream& md, const json& rows) {
  json g;
  for (const json& row : rows) {
    if (row.at("choice") != "nose" || std::fabs(row.at("ratio").get<double>() - kGoalRatio) > 1e-9) continue;
    const double delta = row.at("delta_points").get<double>();
    g = {{"run", row.at("run")},
         {"delta_points", delta},
         {"limit_points", -kGoalPoints},
         {"met", delta >= -kGoalPoints}};
    md << "\nHalf of the attention layers removed by NOSE: " << fmt(delta, 3) << " points against the unpruned "
       << "model (goal: no worse than -" << kGoalPoints << ") -> " << (delta >= -kGoalPoints ? "met" : "not met")
       << ".\n";
  }
  return g;
}

json selections(std::ostringstream& md, const search::SearchResult& search) {
  json out = json::array();
  md << "\nNOSE selections (transfer entropy to the logits; smaller |TE| = removable):\n\n"
     << "| ratio | layers | TE |\n|---|---|---|\n";
  for (const search::Selection& s : search.selections) {
    md << "| " << s.ratio << " | " << join_list(s.layers) << " | " << fmt(s.te) << " |\n";
    out.push_back({{"ratio", s.ratio}, {"count", s.count}, {"layers", s.layers}, {"te", s.te}, {"entropy", s.entropy}});
  }
  return out;
}

}  // namespace

void write_pipeline_report(const ReportContext& ctx, const PipelineResults& r) {
  std::ostringstream md;
  header(md, ctx, r);
  const double base_top1 = r.evals.at("unpruned").top1;
  json rows = json::array();
  for (const PipelineRun& run : r.runs) rows.push_back(run_row(md, run, r, base_top1));
  const json g = goal(md, rows);
  const json sel = selections(md, r.search);
  md << "\nFigures (made from the HDF5 traces by `scripts/plot_pipeline.py " << ctx.out_dir << "`):\n\n"
     << "![entropy per block](plots/entropy.png)\n\n![NOSE search](plots/search.png)\n\n"
     << "![dilution fine-tuning](plots/training.png)\n\n"
     << "Stage seconds (\"reused\": done by an earlier, interrupted run): `" << json_text(r.stages, -1) << "`\n";
  const json j = {
      {"program", "vitslim"},    {"version", kVersion},          {"job", "pipeline"},      {"model", ctx.preset},
      {"data_set", ctx.dataset}, {"pretrained", ctx.pretrained}, {"runs", rows},           {"goal", g},
      {"selections", sel},       {"stages", r.stages},           {"seconds", ctx.seconds}, {"config", ctx.config_ini}};
  write_file_atomic(out_path(ctx, "report.json"), json_text(j) + "\n");
  write_file_atomic(out_path(ctx, "report.md"), md.str());
  std::printf("%s", md.str().c_str());
}

}  // namespace vitslim
