// The stages of the pipeline (see pipeline.h): entropy and the searches, the fine-tuning rows with
// their merge, evaluation and benchmark, token merging on top, and the plan. Each runs through the
// typed entry of its job (jobs/entries.h) and is skipped, with its result read back through the
// result type's own reader, when its files show that an earlier run finished it.
#include <sstream>

#include "core/error.h"
#include "evaluation/bench.h"
#include "evaluation/tome_sweep.h"
#include "jobs/entries.h"
#include "jobs/pipeline.h"
#include "model/presets.h"
#include "model/tome.h"
#include "model/weights/train_checkpoint.h"
#include "plan/report.h"
#include "train/train_summary.h"

namespace vitslim::pipeline {

bool training_finished(const std::string& dir) {
  const auto path = fs::path(dir) / "train.json";
  return fs::exists(path) && train::read_train_summary(path.string()).finished;
}

std::string ratio_name(double ratio) {
  std::ostringstream out;
  out << ratio;
  return out.str();
}

EvalOutcome outcome_of(const evaluation::EvalCounts& n) { return {n.top1_percent(), n.top5_percent(), n.mean_loss()}; }

void Pipeline::analyse() {
  stage("entropy", fs::exists(path("entropy.json")), [&] {
    Config c = stage_config("entropy");
    c.model.weights = pretrained_;
    c.data.calib_images = kCalibImages;
    c.entropy.out = path("entropy.h5");
    c.entropy.json = path("entropy.json");
    run_entropy_job(c, mpi_);
  });
  results_.search = search_stage(Criterion::Nose, p_.ratios, "search");
  for (Criterion criterion : p_.other_criteria()) {
    const std::string name = to_string(criterion);
    results_.criteria.emplace_back(name, search_stage(criterion, {p_.compared_ratio()}, "search-" + name));
  }
}

// One search stage: <stem>.json and <stem>.h5; every rank gets the selections.
search::SearchResult Pipeline::search_stage(Criterion criterion, const std::vector<double>& ratios,
                                            const std::string& stem) {
  const std::string json_file = path(stem + ".json");
  search::SearchResult result;
  const bool done = fs::exists(json_file);
  if (done) result = search::read_search_result(json_file, "pipeline: the finished search");
  stage(criterion == Criterion::Nose ? "search" : cat("search ", to_string(criterion)), done, [&] {
    Config c = stage_config("search");
    c.model.weights = pretrained_;
    c.data.calib_images = kCalibImages;
    c.search.criterion = criterion;
    c.search.ratios = ratios;
    c.search.out = path(stem + ".h5");
    c.search.json = json_file;
    result = run_search_job(c, mpi_);
  });
  return result;
}

// Unpruned, NOSE per ratio, NOSE + distillation and every other criterion at --compare-ratio.
std::vector<PipelineRun> Pipeline::plan_runs() {
  std::vector<PipelineRun> runs = {{"unpruned", "none", 0.0, {}, false}};
  const double compared = p_.compared_ratio();
  std::vector<int64_t> nose_compared;
  for (const search::Selection& s : results_.search.selections) {
    runs.push_back({"nose-" + ratio_name(s.ratio), "nose", s.ratio, s.layers, false});
    if (same_ratio(s.ratio, compared)) nose_compared = s.layers;
  }
  if (p_.distill.kind != Distill::None) {
    runs.push_back({"nose-" + ratio_name(compared) + "+kd", "nose", compared, nose_compared, true});
  }
  for (const auto& [name, result] : results_.criteria) {
    runs.push_back({name + "-" + ratio_name(compared), name, compared, result.selections.at(0).layers, false});
  }
  return runs;
}

// Seed k of a row: its own directory, seed --seed + k; the row's compact model and evaluation.
void Pipeline::finetune(const PipelineRun& run, int64_t seed_index) {
  const std::string tag = run.name + "-seed" + std::to_string(seed_index);
  const std::string dir = path("finetune-" + tag);
  std::optional<train::TrainResult> ran;  // empty: an earlier run finished this stage
  stage("finetune " + tag, training_finished(dir), [&] {
    Config c = train_config(dir, pretrained_, p_.finetune_epochs, p_.finetune_lr);
    c.runtime.seed = base_.runtime.seed + static_cast<uint64_t>(seed_index);
    c.train.warmup_epochs = kFinetuneWarmupEpochs;
    c.train.dilute_layers = run.layers;
    c.train.decay_epochs = p_.decay_epochs;
    c.train.lambda_per_step = true;
    if (run.distill) {
      c.train.teacher = kTeacherStart;  // the pretrained weights, before any attention dilutes
      c.train.distill = p_.distill;
    }
    ran = train(c, "finetune " + tag);
  });
  double step_seconds = 0, steps = 0;
  if (ran) {
    step_seconds = ran->step_seconds;
    steps = static_cast<double>(ran->global_step);
  } else if (mpi_.rank() == 0) {  // a stage an earlier run finished: its train.json (the report is rank 0's)
    const train::TrainSummary done = train::read_train_summary((fs::path(dir) / "train.json").string());
    step_seconds = done.step_seconds;
    steps = static_cast<double>(done.global_step);
  }
  results_.step_seconds[run.name].push_back(step_seconds / std::max(1.0, steps));
  std::string weights = (fs::path(dir) / "final.safetensors").string();
  if (!run.layers.empty()) {
    weights = compact_path(run, seed_index);
    merge(tag, dir, weights);
  }
  results_.evals[run.name].push_back(evaluate("eval " + tag, weights, path("eval-" + tag + ".json")));
  if (!run.layers.empty() && seed_index == 0) bench(run);
}

void Pipeline::merge(const std::string& name, const std::string& dir, const std::string& compact) {
  stage("merge " + name, fs::exists(compact), [&] {
    Config c = stage_config("merge");
    const auto steps = model::list_checkpoints(dir);
    if (steps.empty()) throw Error(cat("pipeline: ", dir, " has no checkpoint to merge"));
    c.merge.checkpoint = model::checkpoint_path(dir, steps.back());
    c.merge.out = compact;
    run_merge_job(c, mpi_);
  });
}

EvalOutcome Pipeline::evaluate(const std::string& name, const std::string& weights, const std::string& out,
                               const model::TomeRequest& tome) {
  const bool done = fs::exists(out);
  EvalOutcome outcome;
  if (done) outcome = outcome_of(evaluation::read_eval_result(out, "pipeline: the finished evaluation").counts);
  stage(name, done, [&] {
    Config c = stage_config("eval");
    c.model.weights = weights;
    c.model.tome = tome;
    c.data.split = "test";
    c.eval.images = p_.eval_images;
    c.eval.json = out;
    outcome = outcome_of(run_eval_job(c, mpi_).counts);
  });
  return outcome;
}

void Pipeline::bench(const PipelineRun& run) {
  const std::string out = path("bench-" + run.name + ".json");
  const bool done = fs::exists(out);
  if (done && mpi_.rank() == 0)
    results_.benches[run.name] = evaluation::read_bench_ratios(out, "pipeline: the finished bench");
  stage("bench " + run.name, done, [&] {
    if (mpi_.rank() != 0) return;
    Config c = stage_config("bench");
    c.model.removed_layers = run.layers;
    c.bench.batch_size = kBenchBatch;
    c.bench.iters = p_.bench_iters;
    c.bench.train = false;  // inference speed is what the compact model is for
    c.bench.json = out;
    results_.benches[run.name] = run_bench_job(c);
  });
}

// The sweep on the row's seed-0 model, on training images (the test split is what the report
// compares); reused from its JSON when an earlier run made it.
model::TomeRequest Pipeline::tune_merging(const PipelineRun& nose) {
  TomeRows& t = *results_.tome;
  const std::string out = path("tome-sweep-" + nose.name + ".json");
  const bool done = fs::exists(out);
  if (done) {
    const evaluation::TomePoint chosen = evaluation::read_tome_sweep(out, "pipeline: the finished tome-sweep").best();
    t.r = chosen.r;
    t.start = chosen.start;
  }
  stage("tome-sweep " + nose.name, done, [&] {
    Config c = stage_config("tome-sweep");
    c.model.weights = compact_path(nose, 0);
    c.data.split = "train";
    c.tome_sweep.r = p_.tome_sweep_r;
    c.tome_sweep.start = {0};
    c.tome_sweep.max_drop = p_.tome_max_drop;
    c.tome_sweep.speeds = p_.tome_speeds;
    c.tome_sweep.images = p_.tome_tune_images;
    c.tome_sweep.bench_batch = kBenchBatch;
    c.tome_sweep.bench_iters = p_.bench_iters;
    c.tome_sweep.json = out;
    c.tome_sweep.csv = path("tome-sweep-" + nose.name + ".csv");
    const evaluation::TomePoint chosen = run_tome_sweep_job(c, mpi_).best();
    t.r = chosen.r;
    t.start = chosen.start;
  });
  model::TomeRequest tome;
  tome.r = {t.r};
  tome.start = t.start;
  return tome;
}

void Pipeline::token_merging() {
  const PipelineRun* nose = nullptr;
  for (const PipelineRun& run : results_.runs) {
    if (run.choice == "nose" && run.ratio == largest_ratio() && !run.distill) nose = &run;
  }
  if (!p_.tome_rows || !nose) return;
  results_.tome =
      TomeRows{nose->name, 0, 0, {}, p_.tome_max_drop, p_.tome_tune_images, p_.tome_sweep_r, {}, {}, "", {}};
  TomeRows& t = *results_.tome;
  const model::TomeRequest tome = tune_merging(*nose);
  if (t.r == 0) {
    log_info(cat("pipeline: no r in {", join_list(p_.tome_sweep_r), "} is faster within ", p_.tome_max_drop,
                 " points; no ToMe rows"));
    return;
  }
  const ModelShape shape = model::preset(base_.model.preset);
  t.per_block = model::resolve_tome(tome, shape.depth).r;
  try {  // the unpruned model has more blocks that merge: the same r may not fit
    model::token_schedule(shape.num_tokens(), shape.num_prefix_tokens(),
                          std::vector<bool>(static_cast<size_t>(shape.depth), true),
                          model::resolve_tome(tome, shape.depth));
  } catch (const Error& e) {
    t.unpruned_note = e.what();
  }
  for (int64_t k = 0; k < p_.seeds; ++k) {
    const std::string seed = "-seed" + std::to_string(k);
    t.pruned.push_back(evaluate("eval " + nose->name + "+tome" + seed, compact_path(*nose, k),
                                path("eval-" + nose->name + "+tome" + seed + ".json"), tome));
    if (t.unpruned_note.empty()) {
      t.unpruned.push_back(
          evaluate("eval unpruned+tome" + seed, unpruned_path(k), path("eval-unpruned+tome" + seed + ".json"), tome));
    }
  }
  const std::string out = path("bench-" + nose->name + "+tome.json");
  const bool done = fs::exists(out);
  if (done && mpi_.rank() == 0) t.bench = evaluation::read_bench_ratios(out, "pipeline: the finished bench");
  stage("bench " + nose->name + "+tome", done, [&] {
    if (mpi_.rank() != 0) return;
    Config c = stage_config("bench");
    c.model.removed_layers = nose->layers;
    c.model.tome = tome;
    c.bench.batch_size = kBenchBatch;
    c.bench.iters = p_.bench_iters;
    c.bench.train = false;
    c.bench.json = out;
    t.bench = run_bench_job(c);
  });
}

void Pipeline::plan_stage() {
  if (p_.plan_target_speedup <= 0) return;
  const std::string dir = path("plan");
  const std::string file = (fs::path(dir) / "plan.json").string();
  std::optional<plan::PlanResult> ran;  // empty: an earlier run finished this stage
  stage("plan", fs::exists(file), [&] {
    Config c = stage_config("plan");
    c.model.weights = pretrained_;
    PlanConfig& plan = c.plan;
    plan.target_speedup = p_.plan_target_speedup;
    plan.runtimes = p_.plan_runtime;
    plan.max_ratio = largest_ratio();
    plan.search = path("search.json");
    plan.probe_steps = p_.steps_per_epoch > 0 ? std::min(p_.plan_probe_steps, p_.steps_per_epoch) : p_.plan_probe_steps;
    plan.probe_lr = p_.finetune_lr;
    plan.probe_images = p_.eval_images > 0 ? p_.eval_images : plan.probe_images;
    plan.out_dir = dir;
    ran = run_plan_job(c, mpi_);  // a target not met is part of the report, not a failure
  });
  if (mpi_.rank() != 0) return;
  results_.plan = summarise_plan(ran ? *ran : plan::read_plan_result(file, "pipeline: the finished plan"));
}

// The report's lines about the plan: its first runtime's choice, NOSE at a fixed 50% beside it.
PlanSummary Pipeline::summarise_plan(const plan::PlanResult& r) const {
  PlanSummary s;
  s.runtime = r.runtimes.at(0);
  s.target = p_.plan_target_speedup;
  s.met = r.met();
  const plan::Choice& choice = r.choices.at(s.runtime);
  s.reason = choice.reason;
  if (choice.chosen) {
    const plan::Candidate& c = r.candidates.at(*choice.chosen);
    s.chosen = c.label();
    s.speedup = c.timings.at(s.runtime).speedup();
    s.probe_top1 = c.probe_top1;
  }
  if (r.fixed_half) {
    const plan::Candidate& c = r.candidates.at(*r.fixed_half);
    s.fixed_half = c.label();
    s.fixed_half_speedup = c.timings.at(s.runtime).speedup();
    s.fixed_half_top1 = c.probe_top1;
  }
  s.unpruned_top1 = r.candidates.at(0).probe_top1;
  return s;
}

}  // namespace vitslim::pipeline
