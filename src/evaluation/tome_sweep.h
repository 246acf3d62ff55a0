// `vitslim tome-sweep`: token merging tuned for one model (docs/method.md section 7). Every point
// of a grid over r and the start block is measured for top-1 on the eval split, images/s on
// random input and analytic MACs; the report gives the Pareto front (top-1 against images/s) and
// the fastest setting within --max-drop points of the model without merging. With --speeds the
// images/s come from a table instead of the clock (the choice is then exactly reproducible).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/runtime.h"
#include "data/settings.h"
#include "dist/mpi_session.h"
#include "evaluation/settings.h"
#include "model/request.h"

namespace vitslim::evaluation {

struct TomePoint {
  int64_t r = 0, start = 0;  // r = 0: no merging (the reference)
  std::vector<int64_t> per_block;
  double top1 = 0;  // percent
  double images_per_s = 0;
  int64_t macs = 0;  // per image
  bool pareto = false;
  // False when no block merges a token (every block the schedule reaches has its attention
  // removed): not measured, shown as such, never on the front nor chosen.
  bool merges = true;
};

struct TomeSweepResult {
  std::vector<TomePoint> points;  // points[0] is r = 0
  int64_t chosen = 0;             // index of the fastest point within the budget (0 if none is faster)
  const TomePoint& reference() const { return points.front(); }
  const TomePoint& best() const { return points[static_cast<size_t>(chosen)]; }
};

// images/s per (r, start) point, read from a CSV with r, start and images_per_s columns (what
// --csv writes): speeds timed elsewhere (the deployment machine, or a test's table) given to the
// chooser instead of timing each point here. Errors name `flag` (--speeds, the pipeline's
// --tome-speeds), the file and the line.
using SpeedTable = std::map<std::pair<int64_t, int64_t>, double>;
SpeedTable read_speed_table(const std::string& path, const std::string& flag = "--speeds");

// Marks the points no other point beats in both top-1 and images/s, and picks the fastest within
// `max_drop` points of points[0]; points that merge nothing take no part. Pure; exposed for tests.
void choose(TomeSweepResult& result, double max_drop);

// The --json file: every point, the front and the choice (with what the sweep ran on), read
// back here next to its writer (tome_sweep.cpp). Error naming `what` and the path when the file is
// missing, malformed or another job's.
TomeSweepResult read_tome_sweep(const std::string& path, const std::string& what);

// What `vitslim tome-sweep` is given.
struct TomeSweepInputs {
  const ModelRequest& model;
  const DataConfig& data;
  const TomeSweepConfig& sweep;
  const ComputeConfig& compute;
  const RuntimeConfig& runtime;
};

// The sweep on the device of `compute`; accuracy by evaluate_sharded, speed timed there (or --speeds).
TomeSweepResult run_tome_sweep(const TomeSweepInputs& inputs, const dist::MpiSession& mpi);

}  // namespace vitslim::evaluation
