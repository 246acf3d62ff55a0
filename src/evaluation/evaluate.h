// `vitslim eval`: top-1 / top-5 accuracy and mean cross-entropy of a model on a data split,
// each MPI rank taking a contiguous shard; integer counts are summed, so totals are identical
// for any number of ranks.
#pragma once

#include <cstdint>
#include <vector>

#include "core/runtime.h"
#include "core/shape.h"
#include "data/formats/dataset.h"
#include "data/settings.h"
#include "dist/mpi_session.h"
#include "evaluation/eval_result.h"
#include "evaluation/settings.h"
#include "model/request.h"
#include "model/vit.h"

namespace vitslim::evaluation {

// Evaluates `indices` of `dataset` in batches (eval mode, inference, the model's current modes; in
// bf16 autocast when `bf16`, with the counts and the loss sum in 64-bit). Loader threads, as many
// as the cores allow (core/threads.h), decode the next batches while the model runs.
EvalCounts evaluate(model::VisionTransformer& model, const data::Dataset& dataset, const std::vector<int64_t>& indices,
                    const std::vector<double>& mean, const std::vector<double>& std, int64_t batch_size, bool bf16);

// Throws when the model's head and the dataset disagree on the class count.
void check_class_count(const ModelShape& shape, const data::Dataset& dataset);

// The first `total` images of `dataset`, each rank a contiguous shard; counts summed on every
// rank, loss_sum on rank 0 only.
EvalCounts evaluate_sharded(model::VisionTransformer& model, const data::Dataset& dataset, int64_t total,
                            const std::vector<double>& mean, const std::vector<double>& std, int64_t batch_size,
                            bool bf16, const dist::MpiSession& mpi);

// What `vitslim eval` is given.
struct EvalInputs {
  const ModelRequest& model;
  const DataConfig& data;
  const EvalConfig& eval;
  const ComputeConfig& compute;
  const RuntimeConfig& runtime;
};

// `vitslim eval`: evaluates the requested model on `data` and reports (stdout, --json). The
// counts are summed on every rank; the loss sum is complete on rank 0.
EvalResult run_eval(const EvalInputs& inputs, const dist::MpiSession& mpi);

}  // namespace vitslim::evaluation
