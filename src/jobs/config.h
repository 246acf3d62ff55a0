// The configuration tree of one `vitslim` invocation: the typed parts of every layer, filled by
// the job's declared options (jobs/job.h). Only the jobs layer sees the whole tree; each job
// hands the lower layers just the parts they use.
#pragma once

#include <string>

#include "core/runtime.h"
#include "data/settings.h"
#include "deploy/settings.h"
#include "entropy/settings.h"
#include "evaluation/settings.h"
#include "jobs/settings.h"
#include "model/request.h"
#include "model/settings.h"
#include "plan/settings.h"
#include "search/settings.h"
#include "train/settings.h"

namespace vitslim {

struct Config {
  std::string job;
  ModelRequest model;
  DataConfig data;
  ComputeConfig compute;
  RuntimeConfig runtime;
  EntropyConfig entropy;
  SearchConfig search;
  EvalConfig eval;
  TomeSweepConfig tome_sweep;
  ConvertConfig convert;
  BenchConfig bench;
  BenchDataConfig bench_data;
  MakeShardsConfig make_shards;
  TrainConfig train;
  MergeConfig merge;
  PipelineConfig pipeline;
  PlanConfig plan;
  ExportConfig export_model;  // `export` is a C++ keyword
  PredictConfig predict;
};

}  // namespace vitslim
