// `vitslim eval`: top-1 / top-5 accuracy and mean cross-entropy of a model on a data split,
// each MPI rank taking a contiguous shard; integer counts are summed, so totals are identical
// for any number of ranks.
#pragma once

#include <cstdint>
#include <vector>

#include "core/runtime.h"
#include "core/shape.h"
#include "data/dataset.h"
#include "data/settings.h"
#include "dist/mpi_session.h"
#include "model/request.h"
#include "model/vit.h"
#include "train/settings.h"

namespace vitslim::train {

struct EvalCounts {
  int64_t images = 0;
  int64_t top1 = 0;
  int64_t top5 = 0;
  double loss_sum = 0;  // sum of per-image cross-entropy

  double top1_percent() const { return 100.0 * static_cast<double>(top1) / static_cast<double>(images); }
  double top5_percent() const { return 100.0 * static_cast<double>(top5) / static_cast<double>(images); }
  double mean_loss() const { return loss_sum / static_cast<double>(images); }
};

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

// `vitslim eval`: evaluates the requested model on `data` and reports (stdout, eval.json).
EvalCounts run_eval(ModelRequest model_request, const DataConfig& data, const EvalConfig& eval,
                    const ComputeConfig& compute, const RuntimeConfig& runtime, const dist::MpiSession& mpi);

}  // namespace vitslim::train
