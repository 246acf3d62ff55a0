// Implements the pipeline report (see pipeline_report.h): per row the mean and std over the seeds
// and every seed's value; each claim as a paired difference per seed (the same seed gives two rows
// the same data order), its mean against its std over the seeds.
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
#include "jobs/settings.h"

namespace vitslim {

namespace {

using nlohmann::json;
constexpr double kGoalRatio = 0.5;            // the promise: half of the attention layers removed ...
constexpr double kGoalPoints = 0.5;           // ... within 0.5 top-1 points of the unpruned model,
constexpr double kGoalDistillPoints = 0.2;    // within 0.2 with distillation,
constexpr double kGoalStd = 2;                // and better than the other choices by more than 2 std
constexpr double kGoalBaselineFmnist = 90.5;  // a converged Fashion-MNIST baseline
constexpr double kMillis = 1e3;
constexpr double kPercent = 100;

std::string out_path(const ReportContext& ctx, const std::string& name) {
  return (std::filesystem::path(ctx.out_dir) / name).string();
}

// Mean and sample std (0 for one value) of `v`.
struct Spread {
  double mean = 0, std = 0;
  int64_t n = 0;
};
Spread spread(const std::vector<double>& v) {
  Spread s;
  s.n = static_cast<int64_t>(v.size());
  if (v.empty()) return s;
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  if (v.size() > 1) {
    double ss = 0;
    for (double x : v) ss += (x - s.mean) * (x - s.mean);
    s.std = std::sqrt(ss / static_cast<double>(v.size() - 1));
  }
  return s;
}
std::string pm(const Spread& s, int digits = 3) { return fmt(s.mean, digits) + " ± " + fmt(s.std, 2); }

std::vector<double> top1s(const PipelineResults& r, const std::string& run) {
  std::vector<double> out;
  for (const EvalOutcome& e : r.evals.at(run)) out.push_back(e.top1);
  return out;
}
// Mean fine-tuning seconds per optimizer step of a row over its seeds (0: not measured).
double step_seconds(const PipelineResults& r, const std::string& run) {
  const auto it = r.step_seconds.find(run);
  return it == r.step_seconds.end() ? 0.0 : spread(it->second).mean;
}
// Per seed: a - b (both rows have the same seeds).
std::vector<double> paired(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> d;
  for (size_t k = 0; k < std::min(a.size(), b.size()); ++k) d.push_back(a[k] - b[k]);
  return d;
}
std::string seeds_text(const std::vector<double>& v) {
  std::string out;
  for (double x : v) out += (out.empty() ? "" : ", ") + fmt(x, 4);
  return out;
}

void header(std::ostringstream& md, const ReportContext& ctx, const PipelineResults& r) {
  md << "# vitslim pipeline report\n\n"
     << "Model `" << ctx.preset << "` (" << ctx.shape << ") on " << data::kind_name(ctx.dataset) << ", "
     << ctx.world_size << " process(es). Produced by `vitslim pipeline` " << kVersion << " (commit " << kSourceCommit
     << ") on " << utc_timestamp() << ".\n\n";
  if (ctx.pretrained_here) {
    md << "Pretrained from scratch for " << ctx.pretrain_epochs << " epochs: top-1 " << fmt(r.pretrained.top1)
       << "%.\n";
  } else {
    md << "Started from `" << ctx.pretrained << "`" << (ctx.provenance.empty() ? "" : " (" + ctx.provenance + ")")
       << ": top-1 " << fmt(r.pretrained.top1) << "% here.\n";
  }
  md << "Every row is fine-tuned for " << ctx.finetune_epochs << " epochs from the same pretrained weights, with "
     << ctx.seeds << " seed(s) (" << ctx.first_seed << " to " << ctx.first_seed + static_cast<uint64_t>(ctx.seeds) - 1
     << "); diluted blocks go from lambda 1 to 0 over the first " << fmt(ctx.decay_epochs)
     << " epoch(s) and are removed for the rest. Top-1 is the mean ± std over the seeds; \"vs unpruned\" is the "
     << "mean ± std of the per-seed difference (same seed, same data order).\n\n"
     << "| run | attention removed | top-1 (%) | per seed | vs unpruned (points) | params | MACs/img | "
        "inference speed-up | fine-tuning ms/step |\n"
     << "|---|---|---|---|---|---|---|---|---|\n";
}

// One table row and its JSON.
json run_row(std::ostringstream& md, const PipelineRun& run, const PipelineResults& r) {
  const std::vector<double> top1 = top1s(r, run.name);
  const std::vector<double> delta = paired(top1, top1s(r, "unpruned"));
  const Spread t = spread(top1), d = spread(delta);
  std::vector<double> top5;
  for (const EvalOutcome& e : r.evals.at(run.name)) top5.push_back(e.top5);
  json row = {{"run", run.name},        {"choice", run.choice},         {"ratio", run.ratio},
              {"distill", run.distill}, {"removed_layers", run.layers}, {"top1", t.mean},
              {"top1_std", t.std},      {"top1_seeds", top1},           {"top5", spread(top5).mean},
              {"delta_points", d.mean}, {"delta_std", d.std},           {"delta_seeds", delta}};
  std::string params = "1.000x", macs = "1.000x", speed = "1.000x";
  const bool pruned = !run.layers.empty();
  if (pruned) {
    const evaluation::BenchRatios& b = r.benches.at(run.name);
    row["bench"] = {{"params", b.params}, {"macs", b.macs}, {"inference_speedup", b.inference_speedup}};
    params = fmt(b.params, 3) + "x";
    macs = fmt(b.macs, 3) + "x";
    speed = fmt(b.inference_speedup, 3) + "x";
  }
  const double step_ms = kMillis * step_seconds(r, run.name);
  row["step_ms"] = step_ms;
  md << "| " << run.name << " | " << (pruned ? join_list(run.layers) : std::string("none")) << " | " << pm(t, 4)
     << " | " << seeds_text(top1) << " | " << (pruned ? pm(d) : std::string("-")) << " | " << params << " | " << macs
     << " | " << speed << " | " << fmt(step_ms, 3) << " |\n";
  return row;
}

const PipelineRun* find_run(const PipelineResults& r, const std::string& choice, double ratio, bool distill) {
  for (const PipelineRun& run : r.runs) {
    if (run.choice == choice && same_ratio(run.ratio, ratio) && run.distill == distill) return &run;
  }
  return nullptr;
}

// What the teacher's forward pass costs: the distilled row's fine-tuning time per step against the
// same selection fine-tuned without a teacher, measured in this run.
void distill_cost(std::ostringstream& md, const PipelineResults& r, const PipelineRun& kd) {
  const PipelineRun* plain = find_run(r, kd.choice, kd.ratio, false);
  if (!plain) return;
  const double with = step_seconds(r, kd.name), without = step_seconds(r, plain->name);
  if (with <= 0 || without <= 0) return;
  md << "- Cost of distillation (the teacher's forward pass): " << fmt(kMillis * with, 3) << " ms per step against "
     << fmt(kMillis * without, 3) << " ms without a teacher (" << (with >= without ? "+" : "")
     << fmt(kPercent * (with / without - 1), 3) << "%)\n";
}

// The method's promises, each with its margin against the noise over the seeds.
json claims(std::ostringstream& md, const ReportContext& ctx, const PipelineResults& r) {
  json out = json::array();
  md << "\n## Claims\n\n";
  const auto add = [&](const std::string& text, const Spread& margin, bool met, const std::string& goal) {
    md << "- " << text << ": " << pm(margin) << " points (" << goal << ") -> " << (met ? "met" : "not met")
       << (margin.n < 2 ? "; one seed, so no noise estimate" : "") << "\n";
    out.push_back({{"claim", text},
                   {"margin", margin.mean},
                   {"std", margin.std},
                   {"seeds", margin.n},
                   {"goal", goal},
                   {"met", met}});
  };
  if (ctx.dataset == data::DataKind::FashionMnist) {
    const bool met = r.pretrained.top1 >= kGoalBaselineFmnist;
    md << "- Baseline (the starting weights): " << fmt(r.pretrained.top1) << "% top-1 (goal >= " << kGoalBaselineFmnist
       << "%) -> " << (met ? "met" : "not met") << "\n";
    out.push_back({{"claim", "baseline top-1"}, {"margin", r.pretrained.top1}, {"goal", ">= 90.5%"}, {"met", met}});
  }
  const std::vector<double> base = top1s(r, "unpruned");
  if (const PipelineRun* nose = find_run(r, "nose", kGoalRatio, false)) {
    const Spread d = spread(paired(top1s(r, nose->name), base));
    add("NOSE at 50% without distillation vs unpruned", d, d.mean >= -kGoalPoints, "goal: a drop of at most 0.5");
    for (const PipelineRun& other : r.runs) {
      if (other.choice == "none" || other.choice == "nose" || !same_ratio(other.ratio, kGoalRatio)) {
        continue;
      }
      const Spread m = spread(paired(top1s(r, nose->name), top1s(r, other.name)));
      add("NOSE beats " + other.choice + " at 50%", m, m.n > 1 && m.mean > kGoalStd * m.std, "goal: more than 2 std");
    }
  }
  if (const PipelineRun* kd = find_run(r, "nose", kGoalRatio, true)) {
    const Spread d = spread(paired(top1s(r, kd->name), base));
    add("NOSE at 50% with distillation vs unpruned", d, d.mean >= -kGoalDistillPoints, "goal: a drop of at most 0.2");
    distill_cost(md, r, *kd);
  }
  return out;
}

// NOSE at the largest ratio with the token merging tome-sweep chose, against the same row without
// it and against the unpruned model with the same merging.
json tome_section(std::ostringstream& md, const PipelineResults& r) {
  if (!r.tome) return nullptr;
  const TomeRows& t = *r.tome;
  md << "\n## Token merging (ToMe) on " << t.row << "\n\n"
     << "`vitslim tome-sweep` on " << t.row << "'s seed-0 model, r in {" << join_list(t.swept)
     << "} from block 0, top-1 on the first " << t.tune_images << " training images, budget " << fmt(t.max_drop)
     << " points: ";
  json out = {{"row", t.row}, {"r", t.r}, {"start", t.start}, {"max_drop", t.max_drop}, {"swept", t.swept}};
  if (t.r == 0) {
    md << "no r is faster within the budget, so there are no ToMe rows.\n";
    return out;
  }
  md << "r = " << t.r << " (per block " << join_list(t.per_block) << "). Top-1 on the test split, mean ± std over "
     << "the seeds; speed-ups from one bench run against the unpruned model.\n\n"
     << "| run | top-1 (%) | vs the same model without ToMe (points) | MACs/img | inference speed-up |\n"
     << "|---|---|---|---|---|\n";
  const evaluation::BenchRatios& b = t.bench;
  const std::vector<double> plain = top1s(r, t.row);
  md << "| " << t.row << " | " << pm(spread(plain), 4) << " | - | " << fmt(b.macs, 3) << "x | "
     << fmt(b.inference_speedup, 3) << "x |\n";
  // One "+ ToMe" row against the same model's top-1 without merging, and its JSON.
  const auto merged_row = [&](const std::string& name, const std::vector<EvalOutcome>& evals,
                              const std::vector<double>& without, double macs, double speedup) {
    std::vector<double> top1;
    for (const EvalOutcome& e : evals) top1.push_back(e.top1);
    const Spread d = spread(paired(top1, without));
    md << "| " << name << " + ToMe r=" << t.r << " | " << pm(spread(top1), 4) << " | " << pm(d) << " | " << fmt(macs, 3)
       << "x | " << fmt(speedup, 3) << "x |\n";
    return std::make_pair(d, json{{"top1_seeds", top1},
                                  {"delta_points", d.mean},
                                  {"delta_std", d.std},
                                  {"macs", macs},
                                  {"inference_speedup", speedup}});
  };
  const auto [d, pruned] = merged_row(t.row, t.pruned, plain, b.merged_macs, b.merged_inference_speedup);
  out["pruned"] = pruned;
  if (t.unpruned_note.empty()) {
    out["unpruned"] =
        merged_row("unpruned", t.unpruned, top1s(r, "unpruned"), b.full_merged_macs, b.full_merged_inference_speedup)
            .second;
  } else {
    md << "\nNo unpruned + ToMe row: " << t.unpruned_note << "\n";
  }
  const bool met = d.mean >= -t.max_drop && b.merged_inference_speedup > b.inference_speedup;
  md << "\n- " << t.row << " + ToMe within " << fmt(t.max_drop) << " points of " << t.row << " and faster: " << pm(d)
     << " points, " << fmt(b.merged_inference_speedup / b.inference_speedup, 3) << "x the speed -> "
     << (met ? "met" : "not met") << "\n";
  out["met"] = met;
  return out;
}

// The plan stage: what `vitslim plan` chose for the target, beside NOSE at a fixed 50%.
json plan_section(std::ostringstream& md, const PipelineResults& r) {
  if (!r.plan) return nullptr;
  const PlanSummary& p = *r.plan;
  const auto top1 = [](const std::optional<double>& v) { return v ? fmt(*v, 4) + "%" : std::string("-"); };
  md << "\n## Plan for a " << fmt(p.target, 3) << "x speed-up on " << p.runtime
     << "\n\n`vitslim plan` (in plan/): " << p.reason
     << ".\n\n| candidate | measured speed-up | probe top-1 |\n|---|---|---|\n";
  if (!p.chosen.empty())
    md << "| " << p.chosen << " (the plan) | " << fmt(p.speedup, 3) << "x | " << top1(p.probe_top1) << " |\n";
  if (!p.fixed_half.empty()) {
    md << "| " << p.fixed_half << " (NOSE at a fixed 50%) | " << fmt(p.fixed_half_speedup, 3) << "x | "
       << top1(p.fixed_half_top1) << " |\n";
  }
  md << "| unpruned | 1x | " << top1(p.unpruned_top1) << " |\n";
  const auto opt = [](const std::optional<double>& v) { return v ? json(*v) : json(nullptr); };
  return {{"runtime", p.runtime},
          {"target_speedup", p.target},
          {"met", p.met},
          {"chosen", p.chosen},
          {"speedup", p.speedup},
          {"probe_top1", opt(p.probe_top1)},
          {"fixed_half", p.fixed_half},
          {"fixed_half_speedup", p.fixed_half_speedup},
          {"fixed_half_probe_top1", opt(p.fixed_half_top1)},
          {"unpruned_probe_top1", opt(p.unpruned_top1)}};
}

json selections(std::ostringstream& md, const PipelineResults& r) {
  json out = json::array();
  md << "\nSelections (TE: transfer entropy to the logits of the chosen set; smaller |TE| = less change):\n\n"
     << "| criterion | ratio | layers | TE |\n|---|---|---|---|\n";
  const auto list = [&](const std::string& criterion, const search::SearchResult& result) {
    for (const search::Selection& s : result.selections) {
      md << "| " << criterion << " | " << s.ratio << " | " << join_list(s.layers) << " | " << fmt(s.te) << " |\n";
      out.push_back({{"criterion", criterion},
                     {"ratio", s.ratio},
                     {"count", s.count},
                     {"layers", s.layers},
                     {"te", s.te},
                     {"entropy", s.entropy}});
    }
  };
  list("nose", r.search);
  for (const auto& [name, result] : r.criteria) list(name, result);
  return out;
}

}  // namespace

void write_pipeline_report(const ReportContext& ctx, const PipelineResults& r) {
  std::ostringstream md;
  header(md, ctx, r);
  json rows = json::array();
  for (const PipelineRun& run : r.runs) rows.push_back(run_row(md, run, r));
  const json c = claims(md, ctx, r);
  const json tome = tome_section(md, r);
  const json plan = plan_section(md, r);
  const json sel = selections(md, r);
  md << "\nFigures (made from report.json and the HDF5 traces by `scripts/plot_pipeline.py " << ctx.out_dir << "`):\n\n"
     << "![top-1 against removal ratio](plots/ratios.png)\n\n"
     << "![entropy per block](plots/entropy.png)\n\n![NOSE search](plots/search.png)\n\n"
     << "![dilution fine-tuning](plots/training.png)\n\n"
     << "Stage seconds (\"reused\": done by an earlier, interrupted run): `" << json_text(r.stages, -1) << "`\n";
  const json j = {{"program", "vitslim"},
                  {"version", kVersion},
                  {"commit", kSourceCommit},
                  {"job", "pipeline"},
                  {"model", ctx.preset},
                  {"data_set", data::kind_name(ctx.dataset)},
                  {"pretrained", ctx.pretrained},
                  {"pretrained_top1", r.pretrained.top1},
                  {"seeds", ctx.seeds},
                  {"runs", rows},
                  {"claims", c},
                  {"token_merging", tome},
                  {"plan", plan},
                  {"selections", sel},
                  {"stages", r.stages},
                  {"seconds", ctx.seconds},
                  {"config", ctx.config_ini}};
  OutputSet outputs;  // report.json and report.md appear together
  outputs.write(out_path(ctx, "report.json"), json_text(j) + "\n");
  outputs.write(out_path(ctx, "report.md"), md.str());
  outputs.commit();
  std::printf("%s", md.str().c_str());
}

}  // namespace vitslim
