// Implements evaluation and the eval job (see evaluate.h).
#include "evaluation/evaluate.h"

#include <torch/torch.h>

#include <chrono>
#include <cstdio>

#include "core/atomic_file.h"
#include "core/cuda_device.h"
#include "core/error.h"
#include "core/log.h"
#include "core/threads.h"
#include "data/loading/batch.h"
#include "data/loading/loader.h"
#include "data/open.h"
#include "dist/gpu_select.h"
#include "dist/mpi_session.h"
#include "model/autocast.h"
#include "model/checkpoint.h"
#include "model/presets.h"

namespace vitslim::evaluation {
namespace {
constexpr int64_t kTopK = 5;
constexpr int64_t kEvalPrefetch = 2;  // batches per loader thread decoded ahead

// One evaluation batch for a model on `device`: pinned for the copy to a GPU; with `planes`
// (photos to a GPU) the uint8 planes, a quarter of the bytes, normalised there to the same floats.
data::Batch eval_batch(const data::Dataset& dataset, const std::vector<int64_t>& chunk, const std::vector<double>& mean,
                       const std::vector<double>& std, const ModelShape& shape, c10::Device device, bool planes) {
  if (planes) {
    return data::load_batch_planes(dataset, chunk, mean, std, shape, /*pinned=*/true);
  }
  data::Batch batch = data::load_batch(dataset, chunk, mean, std, shape);
  if (device.is_cuda()) batch.images = batch.images.pin_memory();
  return batch;
}
}  // namespace

EvalCounts evaluate(model::VisionTransformer& model, const data::Dataset& dataset, const std::vector<int64_t>& indices,
                    const std::vector<double>& mean, const std::vector<double>& std, int64_t batch_size, bool bf16) {
  model->eval();
  c10::InferenceMode inference;
  const c10::Device device = model->device();
  const auto counter = torch::TensorOptions().device(device);
  // Counted on the model's device and read back once, after the last batch.
  torch::Tensor top1 = torch::zeros({}, counter.dtype(torch::kInt64)), top5 = torch::zeros_like(top1);
  torch::Tensor loss_sum = torch::zeros({}, counter.dtype(torch::kFloat64));
  const int64_t k = std::min<int64_t>(kTopK, model->shape().num_classes);
  EvalCounts counts;
  model::Bf16Autocast pass(device.type(), bf16);                  // the weights cast to bf16 once (model/autocast.h)
  const bool planes = device.is_cuda() && !dataset.fixed_size();  // see eval_batch
  const auto to_model =
      planes ? std::make_unique<data::PlaneNormaliser>(data::Normaliser(mean, std, model->shape().in_chans), device)
             : nullptr;
  const auto batches =
      static_cast<int64_t>((indices.size() + static_cast<size_t>(batch_size) - 1) / static_cast<size_t>(batch_size));
  // Batches decoded ahead by loader threads while the model runs.
  data::Loader loader(
      0, batches,
      [&, shape = model->shape()](int64_t b) {
        const size_t lo = static_cast<size_t>(b * batch_size);
        const size_t hi = std::min(indices.size(), lo + static_cast<size_t>(batch_size));
        return eval_batch(
            dataset,
            {indices.begin() + static_cast<std::ptrdiff_t>(lo), indices.begin() + static_cast<std::ptrdiff_t>(hi)},
            mean, std, shape, device, planes);
      },
      default_loader_threads(available_cores(), compute_threads(), device.is_cuda()), kEvalPrefetch);
  for (int64_t b = 0; b < batches; ++b) {
    const data::Batch batch = loader.next();
    const int64_t n = batch.labels.size(0);
    auto images = cuda::to_device(batch.images, device);        // [B, C, H, W]
    if (to_model) images = (*to_model)(images);                 // uint8 planes -> float [B, C, H, W]
    const auto labels = cuda::to_device(batch.labels, device);  // [B]
    torch::Tensor logits;                                       // [B, K], float32
    {
      model::Bf16Autocast autocast(device.type(), bf16);
      logits = model->forward(images).to(torch::kFloat32);
    }
    auto top = std::get<1>(logits.topk(k, 1));  // [B, k]
    auto hit = top.eq(labels.unsqueeze(1));     // [B, k]
    top1 += hit.select(1, 0).sum();
    top5 += hit.any(1).sum();
    loss_sum += torch::nn::functional::cross_entropy(
                    logits, labels, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .to(torch::kFloat64);
    counts.images += n;
  }
  const auto host = torch::stack({top1.to(torch::kFloat64), top5.to(torch::kFloat64), loss_sum}).cpu();  // [3]
  const double* v = host.data_ptr<double>();
  counts.top1 = static_cast<int64_t>(v[0]);
  counts.top5 = static_cast<int64_t>(v[1]);
  counts.loss_sum = v[2];
  return counts;
}

void check_class_count(const ModelShape& shape, const data::Dataset& dataset) {
  if (dataset.num_classes() != shape.num_classes) {
    throw Error(cat("the model has ", shape.num_classes ? cat(shape.num_classes, " classes") : "no head (a backbone)",
                    " but ", dataset.name(), " has ", dataset.num_classes(), "; use --num-classes ",
                    dataset.num_classes(), " --reset-head to attach a new head"));
  }
}

EvalCounts evaluate_sharded(model::VisionTransformer& model, const data::Dataset& dataset, int64_t total,
                            const std::vector<double>& mean, const std::vector<double>& std, int64_t batch_size,
                            bool bf16, const dist::MpiSession& mpi) {
  // The first `total` images in dataset order; rank r takes a contiguous shard.
  const int64_t begin = total * mpi.rank() / mpi.world_size(), end = total * (mpi.rank() + 1) / mpi.world_size();
  std::vector<int64_t> mine;
  for (int64_t i = begin; i < end; ++i) mine.push_back(i);
  EvalCounts local = evaluate(model, dataset, mine, mean, std, batch_size, bf16);
  EvalCounts all;
  all.images = mpi.allreduce_sum(local.images);
  all.top1 = mpi.allreduce_sum(local.top1);
  all.top5 = mpi.allreduce_sum(local.top5);
  const auto loss_parts = mpi.gather({local.loss_sum});
  for (double part : loss_parts) all.loss_sum += part;  // rank order: the same sum for a given rank count
  return all;
}

EvalResult run_eval(const EvalInputs& in, const dist::MpiSession& mpi) {
  const auto started = std::chrono::steady_clock::now();
  const DataConfig& data = in.data;
  ModelRequest model_request = in.model;
  model::use_default_preset(model_request);
  const c10::Device device = dist::open_device(in.compute, mpi);
  model::VisionTransformer model = model::build_model(model_request, in.runtime.seed);
  model->to(device);
  const ModelShape& shape = model->shape();
  auto dataset = data::open_dataset(data, shape, in.runtime.seed, dist::root_share(mpi));
  dist::agree_across_ranks(mpi, "data", dataset->size_summary());
  check_class_count(shape, *dataset);
  const int64_t total = in.eval.images > 0 ? in.eval.images : dataset->size();
  if (total > dataset->size()) {
    throw Error(cat("--eval-images ", total, " is more than the ", dataset->size(), " images of ", dataset->name()));
  }
  const auto [mean, stdev] = data::normalisation(data, *dataset);
  if (!in.eval.json.empty()) check_writable_output(in.eval.json, "--json");
  log_info(cat("eval: ", shape.describe(), ", removed attention ", model->removed_blocks().size(),
               " blocks, token merging ", model->token_merging().describe(), "; ", dataset->name(), ", ", total,
               " images over ", mpi.world_size(), " rank(s)", in.eval.bf16 ? ", bf16" : ""));
  model::warn_if_bf16_emulated(model->device().type(), in.eval.bf16);
  EvalResult r;
  r.counts = evaluate_sharded(model, *dataset, total, mean, stdev, data.batch_size, in.eval.bf16, mpi);
  r.shape = shape.describe();
  r.weights = model_request.weights;
  r.removed_layers = model->removed_blocks();
  r.token_merging = model->token_merging().active() ? model::tome_to_text(model->token_merging()) : "";
  r.data_set = data::kind_name(data.dataset);
  r.split = data.split;
  r.mean = mean;
  r.std = stdev;
  r.bf16 = in.eval.bf16;
  r.device = model->device().is_cuda() ? "cuda" : "cpu";
  r.world_size = mpi.world_size();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (mpi.rank() != 0) return r;

  const EvalCounts& all = r.counts;
  std::printf("eval %s: top-1 %.2f%% (%lld/%lld), top-%lld %.2f%%, loss %.4f (%.1f s)\n", dataset->name().c_str(),
              all.top1_percent(), static_cast<long long>(all.top1), static_cast<long long>(all.images),
              static_cast<long long>(std::min<int64_t>(kTopK, shape.num_classes)), all.top5_percent(), all.mean_loss(),
              r.seconds);
  if (!in.eval.json.empty()) write_file_atomic(in.eval.json, eval_json_text(r));
  return r;
}

}  // namespace vitslim::evaluation
