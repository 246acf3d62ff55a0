// The typed entries of the jobs that the pipeline runs as its stages. Each checks a Config as
// `vitslim <job>` does (the job's validate), hands the job's layer its one Inputs struct and
// returns the layer's typed result; the job's own run() is the same call. A Config is therefore
// unpacked into a layer's inputs once, in the job's file, whichever way the job is reached.
#pragma once

#include "evaluation/bench.h"
#include "evaluation/eval_result.h"
#include "evaluation/tome_sweep.h"
#include "jobs/config.h"
#include "plan/planner.h"
#include "search/result.h"
#include "train/trainer.h"

namespace vitslim {

void run_entropy_job(const Config& c, const dist::MpiSession& mpi);
search::SearchResult run_search_job(const Config& c, const dist::MpiSession& mpi);
train::TrainResult run_train_job(const Config& c, const dist::MpiSession& mpi);
void run_merge_job(const Config& c, const dist::MpiSession& mpi);
evaluation::EvalResult run_eval_job(const Config& c, const dist::MpiSession& mpi);
evaluation::BenchRatios run_bench_job(const Config& c);  // on the calling rank only
evaluation::TomeSweepResult run_tome_sweep_job(const Config& c, const dist::MpiSession& mpi);
plan::PlanResult run_plan_job(const Config& c, const dist::MpiSession& mpi);  // a target not met is in the result

}  // namespace vitslim
